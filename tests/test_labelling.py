"""Reference labelling: process pool, resume, failures, D3, training file, GPAW."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, graphene
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.units import Bohr, Hartree

from hardcarbon import InputError
from hardcarbon.forcefield import labelling
from hardcarbon.forcefield.labelling import (
    FAILED_FILE,
    LabelConfig,
    collect_labels,
    d3_correction,
    kpoint_mesh,
    label_filename,
    label_structures,
    own_kpoint_mesh,
    pulay_stress,
    structure_hash,
    write_training_file,
)

HAVE_GPAW = importlib.util.find_spec("gpaw") is not None
HAVE_DFTD3 = importlib.util.find_spec("dftd3") is not None


# Calculator factories, imported by name ("test_labelling:...") in the worker processes.


def counting_emt(counter: str, atoms: Atoms | None = None):
    """EMT that leaves one line in ``counter`` per structure it is made for."""
    with open(counter, "a") as fh:
        fh.write(f"{atoms.get_chemical_formula() if atoms is not None else '?'}\n")
    return EMT()


def picky_emt(counter: str, atoms: Atoms):
    """EMT, except for structures tagged 'bad', which fail like an unconverged SCF."""
    counting_emt(counter, atoms)
    if atoms.info.get("config_type") == "bad":
        raise RuntimeError("SCF did not converge in 333 iterations")
    return EMT()


def crashing_emt(atoms: Atoms):
    """EMT, except that the worker process dies on structures tagged 'crash' (like an OOM kill)."""
    if atoms.info.get("config_type") == "crash":
        os._exit(9)
    return EMT()


def _cu_cells(n: int) -> list[Atoms]:
    cells = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        if i % 2:
            atoms = atoms.repeat((1, 1, 2))
        atoms.rattle(0.05, seed=i)
        atoms.info["config_type"] = f"cu/{i}"
        cells.append(atoms)
    return cells


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.xyz")}


def test_emt_labels_in_pool_and_resume_recomputes_only_missing(tmp_path):
    counter = tmp_path / "calls.txt"
    config = LabelConfig(calculator="test_labelling:counting_emt", workers=2,
                         factory_kwargs={"counter": str(counter)})
    cells = _cu_cells(4)
    labelled = label_structures(cells, config, tmp_path / "labels")

    assert len(counter.read_text().splitlines()) == 4
    assert len(labelled) == 4
    for atoms, label in zip(cells, labelled, strict=True):
        np.testing.assert_allclose(label.positions, atoms.positions, atol=1e-7)
        ref = atoms.copy()
        ref.calc = EMT()
        assert label.info["REF_energy"] == pytest.approx(ref.get_potential_energy(), abs=1e-6)
        np.testing.assert_allclose(label.arrays["REF_forces"], ref.get_forces(), atol=1e-6)
        np.testing.assert_allclose(label.info["REF_stress"],
                                   ref.get_stress(voigt=False).reshape(9), atol=1e-8)
        assert label.info["config_type"] == atoms.info["config_type"]
        assert label.info["REF_method"] == "test_labelling:counting_emt"
        assert label.calc is None  # labels live under REF_ keys only
    folder = tmp_path / "labels"
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 4 and all(n.startswith(("Cu4-", "Cu8-")) for n in names)
    assert not list(folder.glob(".*.tmp"))

    # resume: delete one file; only that structure is recomputed
    before = _stamps(folder)
    victim = sorted(before)[1]
    (folder / victim).unlink()
    again = label_structures(cells, config, folder)
    assert len(counter.read_text().splitlines()) == 5
    after = _stamps(folder)
    assert set(after) == set(before)
    assert {n for n in after if after[n] != before[n]} == {victim}
    for a, b in zip(labelled, again, strict=True):
        assert a.info["REF_energy"] == pytest.approx(b.info["REF_energy"], abs=1e-9)

    # the same structures with other settings get other files
    emt = label_structures(cells[:1], LabelConfig(calculator="emt", workers=1), folder)
    assert emt[0].info["REF_method"] == "ASE EMT"
    assert len(list(folder.glob("*.xyz"))) == 5
    assert len(collect_labels(folder)) == 5


def test_failure_is_recorded_and_skipped(tmp_path):
    counter = tmp_path / "calls.txt"
    config = LabelConfig(calculator="test_labelling:picky_emt", workers=2,
                         factory_kwargs={"counter": str(counter)})
    cells = _cu_cells(3)
    cells[1].info["config_type"] = "bad"
    folder = tmp_path / "labels"

    labelled = label_structures(cells, config, folder)
    assert [a.info["config_type"] for a in labelled] == ["cu/0", "cu/2"]
    (entry,) = [json.loads(line) for line in (folder / FAILED_FILE).read_text().splitlines()]
    assert entry["index"] == 1 and entry["config_type"] == "bad"
    assert entry["reason"] == "RuntimeError: SCF did not converge in 333 iterations"
    assert entry["file"].startswith("Cu8-") and not (folder / entry["file"]).exists()

    # a rerun tries the failed one again, unless told to skip it
    label_structures(cells, config, folder, skip_failed=True)
    assert len(counter.read_text().splitlines()) == 3
    label_structures(cells, config, folder)
    assert len(counter.read_text().splitlines()) == 4
    assert len((folder / FAILED_FILE).read_text().splitlines()) == 2


def test_dead_worker_fails_only_its_structure(tmp_path):
    cells = _cu_cells(3)
    cells[0].info["config_type"] = "crash"
    config = LabelConfig(calculator="test_labelling:crashing_emt", workers=2)
    labelled = label_structures(cells, config, tmp_path)
    assert [a.info["config_type"] for a in labelled] == ["cu/1", "cu/2"]
    (entry,) = [json.loads(line) for line in (tmp_path / FAILED_FILE).read_text().splitlines()]
    assert entry["index"] == 0 and "worker process died" in entry["reason"]


def test_external_executor_with_plain_futures(tmp_path, monkeypatch):
    """Any object with submit() works (Dask's Client has the same interface)."""

    class Done:
        def __init__(self, value):
            self.value = value

        def result(self):
            return self.value

    class SerialExecutor:
        submitted = 0

        def submit(self, fn, *args):
            self.submitted += 1
            return Done(fn(*args))

    monkeypatch.setattr(labelling, "pin_threads", lambda: None)  # keep this process as is
    executor = SerialExecutor()
    labelled = label_structures(_cu_cells(2), LabelConfig(calculator="emt"), tmp_path,
                                executor=executor)
    assert executor.submitted == 2 and len(labelled) == 2


def test_unknown_or_missing_calculator_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="unknown calculator 'abinit': use one of gpaw,") as e:
        LabelConfig(calculator="abinit")
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="workers"):
        LabelConfig.model_validate({"calculator": "emt", "workers": 0})
    with pytest.raises(InputError, match="unknown setting 'ecut'"):
        LabelConfig(calculator="emt", ecut=500)
    with pytest.raises(InputError, match="'Na-X' is not an element pair"):
        LabelConfig(d3_exclude_pairs=["Na-X"])
    with pytest.raises(InputError, match="cannot import no_such_module"):
        label_structures(_cu_cells(1), LabelConfig(calculator="no_such_module:make"), tmp_path)

    real = labelling._importable
    monkeypatch.setattr(labelling, "_importable", lambda m: m != "gpaw" and real(m))
    with pytest.raises(InputError) as e:
        label_structures(_cu_cells(1), LabelConfig(calculator="gpaw"), tmp_path)
    assert str(e.value) == ("GPAW is not installed: run scripts/install-dft.sh then "
                            "pip install '.[dft]'")
    monkeypatch.setattr(labelling, "_importable", lambda m: m != "sevenn" and real(m))
    with pytest.raises(InputError, match="SevenNet is not installed: pip install sevenn"):
        label_structures(_cu_cells(1), LabelConfig(calculator="sevenn"), tmp_path)
    monkeypatch.delenv("ASE_VASP_COMMAND", raising=False)
    monkeypatch.delenv("VASP_COMMAND", raising=False)
    monkeypatch.delenv("VASP_SCRIPT", raising=False)
    with pytest.raises(InputError, match="VASP is not set up"):
        label_structures(_cu_cells(1), LabelConfig(calculator="vasp"), tmp_path)
    assert not list(tmp_path.glob("*.xyz"))


def test_kpoint_mesh_gives_one_kpoint_across_vacuum():
    sheet = graphene(a=2.46, vacuum=7.5, size=(4, 4, 1))
    sheet.pbc = True
    assert kpoint_mesh(sheet, 0.25) == (3, 3, 1)  # 15 Å cell, 15 Å of vacuum
    sheet.pbc = (True, True, False)
    assert kpoint_mesh(sheet, 0.15) == (5, 5, 1)
    na = bulk("Na", "bcc", a=4.2)
    assert kpoint_mesh(na, 0.25) == (9, 9, 9)
    assert kpoint_mesh(na, 0.18) == (12, 12, 12)
    tube = bulk("Na", "bcc", a=4.2, cubic=True)
    tube.info["vacuum_axes"] = "xy"  # as written by hardcarbon.forcefield.families
    assert kpoint_mesh(tube, 0.25) == (1, 1, 6)
    graphite = graphene(a=2.46, vacuum=1.675, size=(1, 1, 1))  # c = 3.35 Å, no vacuum
    graphite.pbc = True
    assert kpoint_mesh(graphite, 0.25)[2] == 8


def test_own_kpoint_mesh_must_be_three_positive_integers(tmp_path):
    na = bulk("Na", "bcc", a=4.2)
    assert own_kpoint_mesh(na) is None
    na.info["kpts"] = np.array([7, 7, 7])
    assert own_kpoint_mesh(na) == (7, 7, 7)
    config = LabelConfig(calculator="emt")
    assert label_filename(na, config) != label_filename(bulk("Na", "bcc", a=4.2), config)
    na.info["kpts"] = (7, 7)
    with pytest.raises(InputError, match=r"info\['kpts'\] must be three positive integers"):
        label_structures([na], config, tmp_path)


@pytest.mark.skipif(not HAVE_DFTD3, reason="dftd3 not installed: run scripts/install-dft.sh")
def test_d3_leaves_out_na_na_pairs_exactly():
    from ase.calculators.mixing import SumCalculator
    from dftd3.ase import DFTD3
    from dftd3.interface import DispersionModel, RationalDampingParam

    atoms = graphene(a=2.46, vacuum=5.0, size=(2, 2, 1))
    atoms.pbc = True
    for x in (0.0, 2.46):
        atoms.append("Na")
        atoms.positions[-1] = (x, 1.42, 7.3)
    atoms.rattle(0.02, seed=1)

    # without exclusions it is dftd3's ASE calculator with PBE D3(BJ) parameters, which
    # SumCalculator adds to another calculator (GPAW in production, Lennard-Jones here)
    energy, forces, stress = d3_correction(atoms, exclude_pairs=())
    summed = atoms.copy()
    summed.calc = SumCalculator([LennardJones(rc=4.0), DFTD3(method="PBE", damping="d3bj")])
    lj = atoms.copy()
    lj.calc = LennardJones(rc=4.0)
    assert summed.get_potential_energy() == pytest.approx(
        lj.get_potential_energy() + energy, abs=1e-8)
    np.testing.assert_allclose(summed.get_forces(), lj.get_forces() + forces, atol=1e-8)
    np.testing.assert_allclose(summed.get_stress(voigt=False),
                               lj.get_stress(voigt=False) + stress, atol=1e-10)

    # with Na–Na left out, the difference is exactly the Na–Na pair energy
    excl_energy, excl_forces, excl_stress = d3_correction(atoms, exclude_pairs=("Na-Na",))
    model = DispersionModel(atoms.numbers, atoms.positions / Bohr, atoms.cell[:] / Bohr,
                            atoms.pbc)
    pairs = model.get_pairwise_dispersion(RationalDampingParam(method="pbe"))
    na = atoms.numbers == 11
    na_na = pairs["additive pairwise energy"][np.ix_(na, na)].sum() * Hartree
    assert na_na < 0
    assert energy - excl_energy == pytest.approx(na_na, rel=1e-9)

    # forces and stress are derivatives of that energy
    step = 1e-4
    for index in (0, len(atoms) - 1):
        moved = [atoms.copy(), atoms.copy()]
        moved[0].positions[index, 2] += step
        moved[1].positions[index, 2] -= step
        e_plus, e_minus = (d3_correction(m, ("Na-Na",), stress=False)[0] for m in moved)
        assert -(e_plus - e_minus) / (2 * step) == pytest.approx(excl_forces[index, 2], abs=1e-6)
    strained = [atoms.copy(), atoms.copy()]
    for sign, s in zip((1, -1), strained, strict=True):
        s.set_cell(s.cell[:] @ np.diag([1 + sign * step / 10, 1, 1]), scale_atoms=True)
    e_plus, e_minus = (d3_correction(s, ("Na-Na",), stress=False)[0] for s in strained)
    dedeps = (e_plus - e_minus) / (2 * step / 10)
    assert dedeps / atoms.get_volume() == pytest.approx(excl_stress[0, 0], abs=1e-7)

    # pure sodium gets no D3 at all
    assert d3_correction(bulk("Na", "bcc", a=4.2), ("Na-Na",))[0] == 0.0


def test_training_file_is_what_gpumd_reads(tmp_path):
    labelled = label_structures(_cu_cells(2), LabelConfig(calculator="emt", workers=1),
                                tmp_path / "labels")
    del labelled[1].info["REF_stress"]  # as from GPAW LCAO
    path = write_training_file(labelled, tmp_path / "train.xyz")

    text = path.read_text().splitlines()
    assert "Properties=species:S:1:pos:R:3:forces:R:3" in text[1]
    assert "energy=" in text[1] and 'stress="' in text[1] and "config_type=cu/0" in text[1]
    assert "REF_" not in path.read_text()
    second_header = text[3 + len(labelled[0])]
    assert "energy=" in second_header and "stress=" not in second_header
    back = ase.io.read(path, index=":")
    assert back[0].get_potential_energy() == pytest.approx(labelled[0].info["REF_energy"])
    np.testing.assert_allclose(back[0].get_forces(), labelled[0].arrays["REF_forces"])
    np.testing.assert_allclose(back[0].get_stress(voigt=False).reshape(9),
                               labelled[0].info["REF_stress"], atol=1e-12)
    with pytest.raises(InputError, match=r"structure 0 .* has no REF_energy"):
        write_training_file([bulk("Cu")], tmp_path / "bad.xyz")
    assert not (tmp_path / "bad.xyz").exists()


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_GPAW, reason="GPAW is not installed: run scripts/install-dft.sh "
                                          "then pip install '.[dft]'")
def test_gpaw_labels_tiny_cells(tmp_path):
    """Na2 in a box with LCAO (no stress), and 2-atom bcc Na with plane waves (stress)."""
    dimer = Atoms("Na2", positions=[(0, 0, 0), (3.2, 0, 0)], cell=[9.0, 8.0, 8.0])
    dimer.center()
    dimer.info["config_type"] = "sodium/Na2"
    lcao = LabelConfig(calculator="gpaw", workers=1, gpaw={"basis": "sz(dzp)", "h": 0.25})
    (label,) = label_structures([dimer], lcao, tmp_path / "lcao")
    assert label.info["REF_method"].startswith("GPAW ") and "LCAO(sz(dzp))" in label.info[
        "REF_method"]
    assert label.info["REF_method"].endswith("+ D3(BJ) w/o Na-Na")
    assert "REF_stress" not in label.info and label.info["d3_energy"] == 0.0
    forces = label.arrays["REF_forces"]
    assert forces[0, 0] > 0.01 and forces.sum(axis=0) == pytest.approx(np.zeros(3), abs=1e-3)
    assert (tmp_path / "lcao" / "logs").is_dir()

    na = bulk("Na", "bcc", a=4.2, cubic=True)
    na.positions[0] += (0.1, 0.05, 0.0)
    pw = LabelConfig(calculator="gpaw", workers=1,
                     gpaw={"mode": "pw", "ecut": 300, "kpoint_spacing": 0.8})
    (label,) = label_structures([na], pw, tmp_path / "pw")
    assert "PW 300 eV" in label.info["REF_method"]
    stress = label.info["REF_stress"].reshape(3, 3)
    np.testing.assert_allclose(stress, stress.T, atol=1e-6)
    assert np.abs(stress).max() < 0.01  # eV/Å³ (1.6 GPa)
    assert not (tmp_path / "pw" / FAILED_FILE).exists()

    # a structure's own mesh (a scan's points share one): the same mesh as the spacing gives
    # the same label, another mesh another label, in a file of its own
    assert kpoint_mesh(na, 0.8) == (2, 2, 2)
    same, other = na.copy(), na.copy()
    same.info["kpts"] = (2, 2, 2)
    other.info["kpts"] = (3, 3, 3)
    labels = label_structures([same, other], pw, tmp_path / "pw")
    assert labels[0].info["REF_energy"] == pytest.approx(label.info["REF_energy"], abs=1e-6)
    assert abs(labels[1].info["REF_energy"] - label.info["REF_energy"]) > 1e-3
    assert "k-mesh 3x3x3" in labels[1].info["REF_method"]
    assert list(labels[1].info["kpts"]) == [3, 3, 3]
    assert len(list((tmp_path / "pw").glob("*.xyz"))) == 3


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_GPAW, reason="GPAW is not installed: run scripts/install-dft.sh "
                                          "then pip install '.[dft]'")
def test_gpaw_spin_polarised_labels_start_magnetic(tmp_path):
    """A spin-polarised label of a Na atom is magnetic without moments set on the structure:
    GPAW alone would keep it at 0 μB, the non-spin-polarised energy."""
    atom = Atoms("Na", positions=[(4.0, 4.0, 4.0)], cell=[8.0, 8.0, 8.0])
    energies = {}
    for spinpol in (False, True):
        config = LabelConfig(calculator="gpaw", workers=1, gpaw={
            "basis": "sz(dzp)", "h": 0.25, "spinpol": spinpol, "d3": False})
        (label,) = label_structures([atom], config, tmp_path / str(spinpol))
        energies[spinpol] = label.info["REF_energy"]
    assert energies[True] < energies[False] - 0.05  # the atom's spin-polarisation energy (eV)
    assert not np.any(atom.get_initial_magnetic_moments())  # the input is left as it was


def test_pulay_stress_is_isotropic_and_per_atom(tmp_path):
    graphite = Atoms("C4Na", cell=[[2.46, 0, 0], [-1.23, 2.13, 0], [0, 0, 9.0]], pbc=True,
                     scaled_positions=[[0, 0, 0], [1 / 3, 2 / 3, 0], [0, 0, .5],
                                       [2 / 3, 1 / 3, .5], [0, 0, .25]])
    dedecut = {"C": -2e-4, "Na": -1e-5}
    sigma = pulay_stress(graphite, 500.0, dedecut)
    expected = 2 / 3 * 500 * (4 * -2e-4 - 1e-5) / graphite.get_volume()
    np.testing.assert_allclose(sigma, expected * np.eye(3))
    with pytest.raises(InputError, match=r"no dE/dEcut for Na: add it to gpaw\.dedecut"):
        pulay_stress(graphite, 500.0, {"C": -2e-4})

    labelled = graphite.copy()
    labelled.info.update(REF_stress=np.arange(9.0), REF_method="GPAW PW 500 eV")
    (once,) = labelling.add_pulay_stress([labelled], 500.0, dedecut)
    (twice,) = labelling.add_pulay_stress([once], 500.0, dedecut)
    np.testing.assert_allclose(once.info["REF_stress"], np.arange(9.0) + expected * np.eye(3)
                               .reshape(9))
    assert once.info["REF_method"] == "GPAW PW 500 eV + Pulay stress"
    np.testing.assert_array_equal(twice.info["REF_stress"], once.info["REF_stress"])
    assert labelled.info["REF_stress"][0] == 0.0  # the input is not changed

    # unset, the option leaves the names of older label files alone; set, it renames them
    plain = LabelConfig(calculator="gpaw", gpaw={"mode": "pw"})
    assert "dedecut" not in plain.settings()["gpaw"]
    with_pulay = LabelConfig(calculator="gpaw", gpaw={"mode": "pw", "dedecut": dedecut})
    assert structure_hash(graphite, plain) != structure_hash(graphite, with_pulay)
    with pytest.raises(InputError, match="unknown elements"):
        LabelConfig(calculator="gpaw", gpaw={"mode": "pw", "dedecut": {"Xx": 1.0}})
    with pytest.raises(InputError, match="dedecut is for plane waves"):
        LabelConfig(calculator="gpaw", gpaw={"mode": "lcao", "dedecut": dedecut})


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_GPAW, reason="GPAW is not installed: run scripts/install-dft.sh "
                                          "then pip install '.[dft]'")
def test_pulay_stress_matches_the_energy_slope_at_fixed_cutoff(tmp_path):
    """Diamond at 400 eV: GPAW's plane-wave stress misses the slope of its own energy by a
    Pulay term (0.11 eV/Å³ here); dE/dEcut measured with GPAW closes about 90 % of it."""
    from gpaw import GPAW, PW

    def energy(atoms: Atoms, ecut: float) -> float:
        atoms = atoms.copy()
        atoms.calc = GPAW(mode=PW(ecut), xc="PBE", kpts={"size": (3, 3, 3), "gamma": True},
                          occupations={"name": "fermi-dirac", "width": 0.1}, txt=None,
                          convergence={"energy": 1e-7})
        return atoms.get_potential_energy()

    diamond = bulk("C", "diamond", a=3.57)
    diamond.info["kpts"] = (3, 3, 3)
    config = {"mode": "pw", "ecut": 400, "d3": False}
    dedecut = {"C": labelling.measure_dedecut(diamond, LabelConfig(calculator="gpaw",
                                                                   gpaw=config), step=25)}
    assert dedecut["C"] == pytest.approx(
        (energy(diamond, 425) - energy(diamond, 375)) / 50 / len(diamond), abs=1e-7)
    assert dedecut["C"] < 0
    points = []  # along an isotropic strain of ±2 %
    for strain in (0.98, 1.02):
        strained = diamond.copy()
        strained.set_cell(diamond.cell * strain, scale_atoms=True)
        points.append((strained.get_volume(), energy(strained, 400)))
    (v0, e0), (v1, e1) = points
    slope = (e1 - e0) / (v1 - v0)  # eV/Å³, the mean stress the energy implies
    plain, pulay = (label_structures([diamond], LabelConfig(
        calculator="gpaw", workers=1, gpaw=config | extra), tmp_path / name)[0]
        for name, extra in (("plain", {}), ("pulay", {"dedecut": dedecut})))
    assert pulay.info["REF_method"].endswith("+ Pulay stress")
    assert pulay.info["REF_energy"] == pytest.approx(plain.info["REF_energy"], abs=1e-6)
    gap = {name: np.trace(label.info["REF_stress"].reshape(3, 3)) / 3 - slope
           for name, label in (("plain", plain), ("pulay", pulay))}
    assert gap["plain"] > 0.05
    assert abs(gap["pulay"]) < 0.25 * gap["plain"]


HAVE_SEVENN = importlib.util.find_spec("sevenn") is not None


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:No tensor product accelerator")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.skipif(not (HAVE_SEVENN and HAVE_DFTD3),
                    reason="SevenNet or dftd3 is not installed: pip install '.[train,dft]' "
                           "(torch==2.13.0 first, see docs/training.md)")
def test_sevennet_labels_tiny_cells(tmp_path):
    """Na on graphene (D3 on C-C and Na-C) and bcc Na (no D3: Na-Na is left out), stress."""
    sheet = graphene(a=2.46, size=(2, 2, 1), vacuum=6.0)
    sheet.pbc = True
    sheet.append("Na")
    sheet.positions[-1] = sheet.positions[:6].mean(axis=0) * (1, 1, 0) + (0, 0, 8.3)
    sheet.info["config_type"] = "layered/graphene_Na"
    na = bulk("Na", "bcc", a=4.2, cubic=True)
    na.positions[0] += (0.1, 0.05, 0.0)
    config = LabelConfig(calculator="sevenn", workers=1)
    labelled = label_structures([sheet, na], config, tmp_path)

    assert len(labelled) == 2 and not (tmp_path / FAILED_FILE).exists()
    for atoms in labelled:
        assert atoms.info["REF_method"].startswith("SevenNet 0.")
        assert atoms.info["REF_method"].endswith("7net-0 + D3(BJ) w/o Na-Na")
        assert np.isfinite(atoms.arrays["REF_forces"]).all()
        assert atoms.info["REF_stress"].shape == (9,)
    on_graphene, metal = labelled
    assert on_graphene.info["config_type"] == "layered/graphene_Na"
    assert on_graphene.info["d3_energy"] < -0.1 and metal.info["d3_energy"] == 0.0
    assert metal.info["REF_energy"] / 2 == pytest.approx(-1.3, abs=0.3)  # eV/atom, 7net-0
    assert np.abs(metal.arrays["REF_forces"]).max() > 0.01

    # the stored labels are SevenNet plus D3, evaluated here independently
    from sevenn.calculator import SevenNetCalculator

    plain = Atoms(on_graphene.numbers, on_graphene.positions, cell=on_graphene.cell, pbc=True)
    plain.calc = SevenNetCalculator("7net-0", device="cpu")
    e_d3, f_d3, s_d3 = d3_correction(plain, ["Na-Na"])
    assert on_graphene.info["REF_energy"] == pytest.approx(
        plain.get_potential_energy() + e_d3, abs=1e-4)
    np.testing.assert_allclose(on_graphene.arrays["REF_forces"], plain.get_forces() + f_d3,
                               atol=1e-4)
    np.testing.assert_allclose(on_graphene.info["REF_stress"].reshape(3, 3),
                               plain.get_stress(voigt=False) + s_d3, atol=1e-6)
