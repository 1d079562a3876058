"""Physical checks of a Na–C NEP against SevenNet-0 + D3(BJ), by rigid scans.

Usage: python benchmarks/physical_checks.py MODEL.txt

Prints the bcc Na lattice constant and chemical potential, the AB graphite interlayer spacing
and the energy of Na above the graphene hollow relative to bcc Na (best height), each from a
parabola through the lowest points of a scan, for the NEP model and for SevenNet-0 + D3(BJ)
(Na–Na pairs without D3, as in the labels). A proxy until the relaxed checks against GPAW of
issue 3 exist.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.build import bulk, graphene

from hardcarbon.forcefield.labelling import SevenNetOptions, _sevennet, d3_correction
from hardcarbon.forcefield.nep import nep_calculator

Energy = Callable[[Atoms], float]


def energy_with(calc, d3: bool) -> Energy:
    """Energy (eV) of a structure with ``calc``, plus D3(BJ) without Na–Na pairs if ``d3``."""

    def energy(atoms: Atoms) -> float:
        atoms = atoms.copy()
        atoms.calc = calc
        extra = d3_correction(atoms, stress=False)[0] if d3 else 0.0
        return atoms.get_potential_energy() + extra

    return energy


def minimum(make: Callable[[float], Atoms], xs: np.ndarray, energy: Energy
            ) -> tuple[float, float]:
    """Position and energy of the minimum of ``energy(make(x))``, by a local parabola."""
    es = np.array([energy(make(x)) for x in xs])
    k = int(np.argmin(es))
    lo, hi = max(k - 2, 0), min(k + 3, len(xs))
    p = np.polyfit(xs[lo:hi], es[lo:hi], 2)
    x0 = -p[1] / (2 * p[0])
    return float(x0), float(np.polyval(p, x0))


def graphite(spacing: float) -> Atoms:
    """AB graphite, a = 2.46 Å, interlayer ``spacing`` (Å)."""
    cell = [[2.46, 0, 0], [-1.23, 2.46 * 3**0.5 / 2, 0], [0, 0, 2 * spacing]]
    frac = [[0, 0, 0.25], [1 / 3, 2 / 3, 0.25], [0, 0, 0.75], [2 / 3, 1 / 3, 0.75]]
    return Atoms("C4", cell=cell, pbc=True, scaled_positions=frac)


def main() -> None:
    methods = {
        "nep": energy_with(nep_calculator(sys.argv[1], {"C", "Na"}), d3=False),
        "sevennet_d3": energy_with(_sevennet(SevenNetOptions())[0], d3=True),
    }
    sheet = graphene(size=(4, 4, 1), vacuum=9.0)
    sheet.pbc = True
    bond = sheet.get_distance(0, 1, mic=True, vector=True)
    hollow = sheet.positions[0] - bond  # a hexagon centre: one bond from atom 0, opposite it

    def with_na(height: float) -> Atoms:
        top = [hollow[0], hollow[1], sheet.positions[0, 2] + height]
        return sheet + Atoms("Na", positions=[top])

    out: dict[str, dict[str, float]] = {}
    for name, energy in methods.items():
        a0, e_bcc = minimum(lambda a: bulk("Na", "bcc", a=a, cubic=True),
                            np.linspace(3.9, 4.5, 13), energy)
        mu = e_bcc / 2
        d002, _ = minimum(graphite, np.linspace(3.0, 4.2, 13), energy)
        height, e_ads = minimum(with_na, np.linspace(1.8, 3.2, 15), energy)
        out.setdefault("bcc_Na_a0_A", {})[name] = round(a0, 3)
        out.setdefault("mu_Na_eV", {})[name] = round(mu, 4)
        out.setdefault("graphite_d002_A", {})[name] = round(d002, 3)
        out.setdefault("Na_graphene_height_A", {})[name] = round(height, 3)
        out.setdefault("Na_graphene_vs_bcc_eV", {})[name] = round(e_ads - energy(sheet) - mu, 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
