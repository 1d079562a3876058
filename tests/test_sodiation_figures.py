"""Figures of a sodiation run (Figs. 4-7) drawn from a real small run with a random NEP."""

from __future__ import annotations

import csv
import re
import struct
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from matplotlib.figure import Figure
from matplotlib.text import Text

from hardcarbon.errors import InputError
from hardcarbon.sodiation.figures import (
    environment_figure,
    site_distribution_figure,
    snapshot_figure,
    write_figures,
)
from hardcarbon.sodiation.run import SodiationConfig, sodiate
from hardcarbon.sodiation.sites import SITE_CLASSES, classify_sites
from hardcarbon.structures import random_carbon

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("voltage.png", "site_fractions.png", "snapshots.png", "environments.png",
           "site_distribution.png")


@pytest.fixture(scope="module")
def run_dir(random_nep: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Workdir of a 3-iteration run: 150 C, 3 Na per iteration, states 0 to 3."""
    workdir = tmp_path_factory.mktemp("figures_run")
    host = random_carbon(150, (13.0, 13.0, 13.0), seed=1)
    config = SodiationConfig(model=random_nep, batch_size=3, n_candidates=30, max_steps=15,
                             target_na=9, seed=4)
    sodiate(host, config, workdir, progress=False)
    return workdir


def _texts(fig: Figure) -> list[str]:
    """Every non-empty text of a figure (titles, labels, legend entries, annotations)."""
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _table(workdir: Path) -> dict[int, dict[str, str]]:
    with (workdir / "sodiation.csv").open() as handle:
        return {int(r["iteration"]): r for r in csv.DictReader(handle)}


def test_write_figures_writes_five_pngs_atomically(run_dir):
    paths = write_figures(run_dir)
    assert tuple(paths) == FIGURES
    for name, path in paths.items():
        assert path == run_dir / name and path.is_file()
        width, height = _png_size(path)
        assert 600 <= width <= 4000 and 400 <= height <= 4000, (name, width, height)
        assert 10_000 < path.stat().st_size < 5_000_000, name
    assert not list(run_dir.glob(".*.tmp"))  # no temporaries left by the atomic writes


def test_snapshots_every_two_iterations_and_the_last(run_dir):
    table = _table(run_dir)
    titles = [ax.get_title() for ax in snapshot_figure(run_dir, every=2).axes if ax.get_title()]
    assert [int(re.match(r"iteration (\d+)", t).group(1)) for t in titles] == [0, 2, 3]
    for title in titles:
        k = int(re.match(r"iteration (\d+)", title).group(1))
        assert f"{table[k]['n_na']} Na" in title
        assert f"{float(table[k]['capacity_mAh_g']):.0f} mAh/g" in title
    assert len([ax for ax in snapshot_figure(run_dir, every=1).axes if ax.get_title()]) == 4
    with pytest.raises(InputError, match="every"):
        snapshot_figure(run_dir, every=0)


def test_environment_counts_follow_the_site_rules(run_dir):
    state = ase.io.read(run_dir / "states" / "state_003.xyz")
    classes = classify_sites(state)
    fig = environment_figure(run_dir)
    present = set(state.arrays["site"][state.numbers == 11])
    titles = {ax.get_title().split(":")[0]: ax.get_title() for ax in fig.axes}
    assert set(titles) == set(SITE_CLASSES)
    for site in SITE_CLASSES:
        title = titles[site]
        if site not in present:
            assert title == f"{site}: absent"
            continue
        index = int(re.search(r"Na (\d+)", title).group(1))
        assert state.arrays["site"][index] == site
        k = int(np.flatnonzero(classes.na_indices == index)[0])
        assert (f"Na–C: {classes.n_c_contact[k]} within 2.7 Å, "
                f"{classes.n_c_shell[k]} within 3.5 Å") in title
        assert f"Na–Na: {classes.n_na_neighbours[k]} within 3.9 Å" in title


def test_missing_classes_are_stated(run_dir):
    state = ase.io.read(run_dir / "states" / "state_003.xyz")
    na = state.numbers == 11
    state.arrays["site"][na] = "adsorption"

    texts = _texts(environment_figure(None, state))
    assert "intercalation: absent" in texts and "filling: absent" in texts
    assert any("absent in this state: intercalation, filling" in t for t in texts)
    assert any(t.startswith("adsorption: Na ") for t in texts)

    texts = _texts(site_distribution_figure(None, state))
    assert texts.count("0 (absent)") == 2
    assert f"{int(na.sum())}" in texts  # the adsorption bar
    assert any("not shown" in t for t in texts)  # 9 Na: no comparison with the 700-Na state

    # the bare host: every class absent, and still a figure
    texts = _texts(environment_figure(run_dir, state=0))
    assert all(f"{site}: absent" in texts for site in SITE_CLASSES)


def test_neighbourhood_is_unwrapped_across_the_cell_boundary():
    atoms = Atoms("NaC3", positions=[[0.2, 6, 6], [11.0, 6, 6], [2.0, 6, 6], [6.2, 6, 6]],
                  cell=[12.0, 12.0, 12.0], pbc=True)
    atoms.arrays["site"] = np.array(["adsorption", "C", "C", "C"])
    title = environment_figure(None, atoms).axes[0].get_title()
    # C at 1.2 Å through the boundary and at 1.8 Å; the third, 6.0 Å away, is outside both
    assert "Na–C: 2 within 2.7 Å, 2 within 3.5 Å" in title
    assert "Na–Na: 0 within 3.9 Å" in title


@pytest.mark.parametrize("n_na, shown", [(700, True), (660, True), (600, False)])
def test_study_reference_only_near_700_na(n_na, shown):
    rng = np.random.default_rng(1)
    cell = 40.0
    atoms = Atoms(f"C100Na{n_na}", positions=rng.uniform(0, cell, (100 + n_na, 3)),
                  cell=[cell] * 3, pbc=True)
    atoms.arrays["site"] = np.array(
        ["C"] * 100 + list(rng.choice(SITE_CLASSES, n_na, p=[0.5, 0.3, 0.2])))
    texts = _texts(site_distribution_figure(None, atoms))
    assert ("study, 700 Na" in texts) is shown
    assert all(v in texts for v in ("340", "223", "137")) is shown
    counts = [int(np.count_nonzero(atoms.arrays["site"] == k)) for k in SITE_CLASSES]
    assert all(str(c) in texts for c in counts)


def test_bad_requests_are_one_line(run_dir, tmp_path):
    with pytest.raises(InputError, match="no state 99"):
        environment_figure(run_dir, state=99)
    with pytest.raises(InputError, match="state_NNN"):
        snapshot_figure(tmp_path)
    with pytest.raises(InputError, match="workdir"):
        site_distribution_figure(None)


def test_every_class_present_gets_a_panel_with_its_counts():
    rng = np.random.default_rng(2)
    atoms = Atoms("C300Na60", positions=rng.uniform(0, 20.0, (360, 3)), cell=[20.0] * 3,
                  pbc=True)
    atoms.arrays["site"] = np.array(["C"] * 300 + [SITE_CLASSES[k % 3] for k in range(60)])
    fig = environment_figure(None, atoms, seed=3)
    for ax, site in zip(fig.axes, SITE_CLASSES, strict=True):
        title = ax.get_title()
        assert title.startswith(f"{site}: Na ") and "Na–C: " in title and "Na–Na: " in title
    assert not any("absent" in t for t in _texts(fig))
