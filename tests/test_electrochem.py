"""Formation energies, voltages and capacities with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.lj import LennardJones

from hardcarbon.electrochem import (
    FARADAY,
    capacity_at_zero_volt,
    formation_energy,
    na_fraction,
    sodium_chemical_potential,
    specific_capacity,
    voltage_profile,
)
from hardcarbon.errors import InputError


def test_capacity_of_nac6_and_nac8() -> None:
    assert FARADAY == pytest.approx(96485.33212, abs=1e-4)
    assert specific_capacity(1, 6) == pytest.approx(371.9, abs=0.05)
    assert specific_capacity(1, 8) == pytest.approx(278.9, abs=0.05)
    assert specific_capacity(0, 6) == 0.0
    np.testing.assert_allclose(specific_capacity([1, 2], [6, 12]), [371.90, 371.90], atol=0.01)
    assert na_fraction(1, 6) == pytest.approx(1 / 6)
    with pytest.raises(InputError, match="C atoms"):
        specific_capacity(1, 0)
    with pytest.raises(InputError, match="negative"):
        na_fraction(-1, 6)


def test_formation_energy_arithmetic() -> None:
    # E_f = E_total - E_C - n mu: 0 and -103.5 + 100 + 2 * 1.3 = -0.9
    e_f = formation_energy([-100.0, -103.5], -100.0, [0, 2], -1.3)
    np.testing.assert_allclose(e_f, [0.0, -0.9], atol=1e-12)
    assert formation_energy(-103.5, -100.0, 2, -1.3) == pytest.approx(-0.9)
    with pytest.raises(InputError, match="same length"):
        formation_energy([-1.0, -2.0, -3.0], 0.0, [1, 2], -1.3)


def test_voltage_steps_by_eq1() -> None:
    # V = -dE_f/dn: -(-1.0 - 0)/2 = 0.5, -(-1.6 + 1.0)/3 = 0.2, -(-1.55 + 1.6)/1 = -0.05
    profile = voltage_profile([0, 2, 5, 6], [0.0, -1.0, -1.6, -1.55])
    np.testing.assert_allclose(profile.voltage, [0.5, 0.2, -0.05], atol=1e-12)
    np.testing.assert_allclose(profile.n_mid, [1.0, 3.5, 5.5])
    np.testing.assert_allclose(profile.n_start, [0, 2, 5])
    np.testing.assert_allclose(profile.n_end, [2, 5, 6])
    n, v = profile.step_curve()
    np.testing.assert_allclose(n, [0, 2, 2, 5, 5, 6])
    np.testing.assert_allclose(v, [0.5, 0.5, 0.2, 0.2, -0.05, -0.05], atol=1e-12)
    assert profile.as_dict()["voltage_V"] == pytest.approx([0.5, 0.2, -0.05])


def test_capacity_at_zero_volt() -> None:
    # steps at 0.5, 0.2, -0.05 V: the cut-off state is the 5-Na state, NaC_7.2 with 36 C
    cut = capacity_at_zero_volt([0, 2, 5, 6], [0.0, -1.0, -1.6, -1.55], n_c=36)
    assert cut.reached_zero
    assert cut.step_index == 2
    assert cut.n_na == 5
    assert cut.na_fraction == pytest.approx(5 / 36)
    assert cut.capacity == pytest.approx(371.9019 * 6 * 5 / 36, abs=1e-3)  # 309.918 mAh/g
    # a step of exactly 0 V ends the curve too
    flat = capacity_at_zero_volt([0, 1, 2, 3], [0.0, -0.3, -0.3, -0.5], n_c=6)
    assert (flat.step_index, flat.n_na) == (1, 1.0)
    # first step already at or below 0 V: the first state
    first = capacity_at_zero_volt([0, 1], [0.0, 0.2], n_c=6)
    assert (first.step_index, first.capacity) == (0, 0.0)
    # never reaching 0 V: the last state, flagged as a lower bound
    never = capacity_at_zero_volt([0, 1, 2], [0.0, -0.4, -0.5], n_c=6)
    assert not never.reached_zero
    assert never.step_index is None
    assert never.capacity == pytest.approx(2 * 371.9019, abs=1e-3)


@pytest.mark.parametrize(
    ("n_na", "e_f", "match"),
    [
        ([0, 2, 2], [0.0, -1.0, -1.5], "strictly increasing"),
        ([0, 3, 2], [0.0, -1.0, -1.5], "strictly increasing"),
        ([0, 1, 2], [0.0, -1.0], "one energy per state"),
        ([0], [0.0], "at least two"),
        ([0, np.nan], [0.0, -1.0], "finite"),
    ],
)
def test_voltage_input_validation(n_na: list[float], e_f: list[float], match: str) -> None:
    with pytest.raises(InputError, match=match):
        voltage_profile(n_na, e_f)


def _na_like_lj() -> LennardJones:
    # minimum of the pair potential at the bcc Na nearest-neighbour distance, 3.66 Å
    return LennardJones(sigma=3.66 / 2 ** (1 / 6), epsilon=0.05, rc=9.0, smooth=True)


def test_sodium_chemical_potential_at_stress_minimum() -> None:
    result = sodium_chemical_potential(_na_like_lj(), lattice_constant_guess=4.2)
    a = result["lattice_constant"]
    assert result["relaxed"]
    assert np.max(np.abs(result["stress"])) < 1e-4  # eV/Å^3
    assert result["volume_per_atom"] == pytest.approx(a**3 / 2)

    def energy_per_atom(lattice: float) -> float:
        atoms = bulk("Na", "bcc", a=lattice)
        atoms.calc = _na_like_lj()
        return atoms.get_potential_energy() / len(atoms)

    assert result["mu_na"] == pytest.approx(energy_per_atom(a), abs=1e-10)
    assert energy_per_atom(a - 0.02) > result["mu_na"]
    assert energy_per_atom(a + 0.02) > result["mu_na"]
    unrelaxed = sodium_chemical_potential(_na_like_lj(), lattice_constant_guess=4.2, relax=False)
    assert unrelaxed["lattice_constant"] == pytest.approx(4.2)
    assert unrelaxed["mu_na"] == pytest.approx(energy_per_atom(4.2), abs=1e-10)
    with pytest.raises(InputError, match="lattice constant"):
        sodium_chemical_potential(_na_like_lj(), lattice_constant_guess=-1.0)
