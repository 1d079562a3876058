"""Validation of a NEP model against a reference: physical checks and Table 1 relaxations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from hardcarbon import InputError
from hardcarbon.forcefield.labelling import LabelConfig
from hardcarbon.forcefield.validation import (
    ValidateConfig,
    _store_relaxed,
    ab_graphite,
    compare_checks,
    energy,
    energy_function,
    graphene_sheet,
    intercalated_graphite,
    nep_factory,
    physical_checks,
    relax,
    scan_minimum,
    table1_structures,
    validate,
)

PRETRAINED = Path(__file__).parents[1] / "data" / "models" / "pretrain-sevenn-v0" / "nep.txt"


def edge_shy_nep(model_filename: str):
    """The NEP model as a reference that fails on the zigzag edge (C18Na), as SCF can."""
    from calorine.calculators import CPUNEP

    class EdgeShy(CPUNEP):
        def calculate(self, atoms=None, properties=None, system_changes=None):
            if atoms is not None and atoms.get_chemical_formula() == "C18Na":
                raise RuntimeError("SCF did not converge in 333 iterations")
            super().calculate(atoms, properties, system_changes)

    return EdgeShy(model_filename)


def test_check_structures_have_the_right_stoichiometry():
    assert intercalated_graphite("NaC6", 4.5).get_chemical_formula() == "C6Na"
    assert intercalated_graphite("NaC8", 4.5).get_chemical_formula() == "C8Na"
    nac6 = intercalated_graphite("NaC6", 4.5)
    d = nac6.get_distances(-1, range(6), mic=True)
    assert np.allclose(d, np.hypot(2.46 / 3**0.5, 2.25), atol=1e-6)  # above a hexagon centre
    assert len(graphene_sheet("pristine")[0]) == 32
    assert len(graphene_sheet("monovacancy")[0]) == 31
    assert len(graphene_sheet("divacancy")[0]) == 30
    assert np.isclose(ab_graphite(3.4).cell[2, 2], 6.8)
    with pytest.raises(InputError):
        graphene_sheet("trivacancy")


def test_scan_minimum_of_a_known_parabola():
    from ase.calculators.calculator import Calculator

    class Spring(Calculator):  # E = (a - 4.2)^2 on the bcc lattice constant
        implemented_properties = ("energy",)

        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            super().calculate(atoms, properties, system_changes)
            a = self.atoms.cell[0, 0]
            self.results = {"energy": (a - 4.2) ** 2 - 1.0}

    x0, e0 = scan_minimum(lambda a: bulk("Na", "bcc", a=a, cubic=True),
                          np.linspace(3.9, 4.5, 7), lambda atoms: energy(atoms, lambda a: Spring()))
    assert x0 == pytest.approx(4.2) and e0 == pytest.approx(-1.0)
    with pytest.raises(InputError, match="edge"):
        scan_minimum(lambda a: bulk("Na", "bcc", a=a, cubic=True),
                     np.linspace(3.3, 3.9, 7), lambda atoms: energy(atoms, lambda a: Spring()))


def test_scan_minimum_of_a_steep_morse_well():
    """A Morse well on a coarse grid with a steep wall (as Na over a vacancy): the refined
    spline finds the true minimum, the coarse spline alone misses it by 0.46 eV."""
    from ase.calculators.calculator import Calculator

    class Morse(Calculator):
        implemented_properties = ("energy",)

        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            super().calculate(atoms, properties, system_changes)
            r = self.atoms.cell[0, 0]
            self.results = {"energy": 1.0 * ((1 - np.exp(-2.5 * (r - 2.1))) ** 2 - 1.0)}

    xs = np.linspace(1.2, 3.2, 6)
    def scan(refine):
        return scan_minimum(lambda a: bulk("Na", "bcc", a=a, cubic=True), xs,
                            lambda atoms: energy(atoms, lambda a: Morse()), refine=refine)

    x0, e0 = scan(2)
    assert x0 == pytest.approx(2.1, abs=0.005) and e0 == pytest.approx(-1.0, abs=0.005)
    assert scan(0)[1] < -1.4


def test_physical_checks_of_the_pretrained_model_are_physical():
    checks = physical_checks(energy_function(nep_factory(PRETRAINED)))
    assert 4.0 < checks["bcc_Na_a0_A"] < 4.4
    assert 3.2 < checks["graphite_d002_A"] < 3.5
    assert checks["Na_divacancy_vs_bcc_eV"] < checks["Na_pristine_vs_bcc_eV"]
    assert checks["Na_monovacancy_height_A"] < checks["Na_pristine_height_A"]


def test_each_scan_keeps_one_kpoint_mesh_and_caches_it_apart(tmp_path):
    from hardcarbon.forcefield.labelling import kpoint_mesh

    nep = energy_function(nep_factory(PRETRAINED))
    seen = []

    def recording(atoms):
        seen.append((atoms.get_chemical_formula(), atoms.cell.lengths()[2],
                     atoms.info.get("kpts")))
        return nep(atoms)

    cache = tmp_path / "energies.json"
    physical_checks(recording, lambda a: kpoint_mesh(a, 0.25))
    bcc = [(c, k) for f, c, k in seen if f == "Na2"]
    assert len(bcc) >= 7
    # 3.9 Å has 7³ k-points at 0.25 Å⁻¹; 4.2 Å and above would have 6³ but keep 7³
    assert all(k is None for c, k in bcc if c < 4.15)
    assert all(k == (7, 7, 7) for c, k in bcc if c > 4.15)
    assert all(k is None for f, c, k in seen if f in ("C32", "C31", "C30"))
    # a fixed mesh is part of the cache key: the same cell on its own mesh is another entry
    atoms = bulk("Na", "bcc", a=4.4, cubic=True)
    store = energy_function(nep_factory(PRETRAINED), cache)
    store(atoms)
    atoms.info["kpts"] = (7, 7, 7)
    store(atoms)
    assert len(json.loads(cache.read_text())) == 2


def test_validate_against_itself_agrees_exactly_and_caches_the_reference(tmp_path):
    # the reference is the same model, through the module:factory route of LabelConfig
    reference = LabelConfig(calculator="calorine.calculators:CPUNEP",
                            factory_kwargs={"model_filename": str(PRETRAINED)})
    config = ValidateConfig(reference=reference, max_atoms=40, steps=40)
    result = validate(PRETRAINED, config, tmp_path)
    assert all(row["difference"] == pytest.approx(0, abs=1e-4)
               for row in result["checks"]["comparison"].values())
    assert len(result["table1"]) == 6
    for row in result["table1"]:
        assert row["relative_error_percent"] == pytest.approx(0, abs=1e-6)
        assert row["rmsd_A"] < 1e-6
    assert (tmp_path / "validation.md").read_text().count("| yes") == len(
        result["checks"]["comparison"])
    cache = json.loads((tmp_path / "reference.json").read_text())
    assert len(next(iter(cache.values()))["relaxed"]) == 6
    assert not list((tmp_path / "reference-relax").iterdir())  # checkpoints of finished ones go
    # a run killed with two relaxations unfinished reports the four it has ...
    for entry in cache.values():
        del entry["relaxed"]["1"], entry["relaxed"]["4"]
    (tmp_path / "reference.json").write_text(json.dumps(cache))
    partial = validate(PRETRAINED, config.model_copy(update={"cached_reference": True}),
                       tmp_path)
    assert [r["structure"] for r in partial["table1"]] == [
        r["structure"] for i, r in enumerate(result["table1"]) if i not in (1, 4)]
    # ... one restricted to the edges relaxes the zigzag edge (4) and leaves 1 alone ...
    edges = validate(PRETRAINED, config.model_copy(update={"relax_only": "edge"}), tmp_path)
    assert [r["structure"] for r in edges["table1"]] == [
        r["structure"] for i, r in enumerate(result["table1"]) if i != 1]
    assert "edge" in result["table1"][4]["structure"] and "edge" not in result["table1"][1][
        "structure"]
    # ... and the next run relaxes the rest
    again = validate(PRETRAINED, config, tmp_path)
    assert again["table1"] == result["table1"]
    # a cache of the older format (a list, in order; here the first four) is still read
    cache = json.loads((tmp_path / "reference.json").read_text())
    for entry in cache.values():
        entry["relaxed"] = [entry["relaxed"][str(i)] for i in range(4)]
    (tmp_path / "reference.json").write_text(json.dumps(cache))
    old = validate(PRETRAINED, config.model_copy(update={"cached_reference": True}), tmp_path)
    assert len(old["table1"]) == 4


def test_relax_only_that_matches_nothing_is_a_one_line_error(tmp_path):
    reference = LabelConfig(calculator="calorine.calculators:CPUNEP",
                            factory_kwargs={"model_filename": str(PRETRAINED)})
    config = ValidateConfig(reference=reference, checks=False, relax_only="edges$")
    with pytest.raises(InputError, match="matches none of the Table 1 structures") as error:
        validate(PRETRAINED, config, tmp_path)
    assert "\n" not in str(error.value)


def test_a_finished_relaxation_keeps_what_another_job_cached_meanwhile(tmp_path):
    cache = tmp_path / "reference.json"
    cache.write_text(json.dumps({"k": {"relaxed": {"0": {"energy": -1.0}}}, "other": {}}))
    # another job (a different relax_only) caches row 5 after this one read the file
    cache.write_text(json.dumps({"k": {"relaxed": {"0": {"energy": -1.0},
                                                   "5": {"energy": -5.0}}}, "other": {}}))
    _store_relaxed(cache, "k", 4, {"energy": -4.0})
    stored = json.loads(cache.read_text())
    assert sorted(stored["k"]["relaxed"]) == ["0", "4", "5"] and "other" in stored
    cache.write_text(json.dumps({"k": {"relaxed": [{"energy": -1.0}]}}))  # pre-session-11 list
    _store_relaxed(cache, "k", 3, {"energy": -3.0})
    assert sorted(json.loads(cache.read_text())["k"]["relaxed"]) == ["0", "3"]


def test_compare_checks_applies_the_tolerances():
    rows = compare_checks({"model": {"bcc_Na_a0_A": 4.25, "NaC6_formation_eV_per_Na": 0.10},
                           "reference": {"bcc_Na_a0_A": 4.22,
                                         "NaC6_formation_eV_per_Na": 0.06}})
    assert rows["bcc_Na_a0_A"]["ok"] is False
    assert rows["NaC6_formation_eV_per_Na"]["ok"] is True


def test_table1_structures_are_small_and_hold_sodium():
    cells = table1_structures(max_atoms=40)
    assert len(cells) == 6
    assert all("Na" in c.get_chemical_symbols() for c in cells)
    assert all(len(c) <= 40 for c in cells[:4])
    names = [c.info["config_type"] for c in cells]  # relax_only can pick any one row
    assert len(set(names)) == 6
    assert names[2] == "disordered/bulk_rho2.12_C32_Na3"
    assert names[3] == "disordered/bulk_rho2.12_C32_Na3_2"


def test_cached_reference_only_reports_what_is_cached(tmp_path):
    reference = LabelConfig(calculator="calorine.calculators:CPUNEP",
                            factory_kwargs={"model_filename": str(PRETRAINED)})
    config = ValidateConfig(reference=reference, relax=False, cached_reference=True)
    result = validate(PRETRAINED, config, tmp_path)  # nothing cached: every reference missing
    assert all(v is None for v in result["checks"]["reference"].values())
    assert result["checks"]["model"]["bcc_Na_a0_A"] is not None
    assert result["checks"]["comparison"] == {}
    full = validate(PRETRAINED, ValidateConfig(reference=reference, relax=False), tmp_path)
    again = validate(PRETRAINED, config, tmp_path)  # now all cached
    assert again["checks"]["reference"] == full["checks"]["reference"]


def test_killed_relaxation_resumes_where_it_stopped(tmp_path):
    atoms = table1_structures(max_atoms=40)[0]
    factory = nep_factory(PRETRAINED)
    whole, e_whole, n_whole = relax(atoms, factory, fmax=0.05, steps=60)
    checkpoint = tmp_path / "relax.json"
    relax(atoms, factory, fmax=0.05, steps=7, checkpoint=checkpoint)  # "killed" after 7 steps
    assert json.loads(checkpoint.read_text())["steps"] == 7
    assert checkpoint.with_suffix(".bfgs.json").is_file()  # the Hessian, kept by ASE
    resumed, e_resumed, n_resumed = relax(atoms, factory, fmax=0.05, steps=60,
                                          checkpoint=checkpoint)
    # the same BFGS path as the uninterrupted run, not a restart with a fresh Hessian
    assert n_resumed == n_whole
    assert e_resumed == pytest.approx(e_whole, abs=1e-8)
    assert np.allclose(resumed.positions, whole.positions, atol=1e-8)
    # a torn Hessian file (killed while ASE wrote it) costs the Hessian, not the steps
    torn = tmp_path / "torn.json"
    relax(atoms, factory, fmax=0.05, steps=7, checkpoint=torn)
    torn.with_suffix(".bfgs.json").write_text('{"hessian": [')
    assert relax(atoms, factory, fmax=0.05, steps=10, checkpoint=torn)[2] == 10


def test_a_failed_reference_relaxation_leaves_the_others_in_table1(tmp_path):
    reference = LabelConfig(calculator="test_validation:edge_shy_nep", workers=2,
                            factory_kwargs={"model_filename": str(PRETRAINED)})
    config = ValidateConfig(reference=reference, checks=False, max_atoms=40, steps=10)
    result = validate(PRETRAINED, config, tmp_path)
    assert len(result["table1"]) == 5
    assert "zigzag_edge_Na" not in {row["structure"] for row in result["table1"]}
    assert result["table1_failed"] == {
        "zigzag_edge_Na": "RuntimeError: SCF did not converge in 333 iterations"}
    assert "relaxation of zigzag_edge_Na failed" in (tmp_path / "validation.md").read_text()
    cache = json.loads((tmp_path / "reference.json").read_text())
    assert sorted(next(iter(cache.values()))["relaxed"]) == ["0", "1", "2", "3", "5"]
