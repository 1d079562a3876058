"""Chemical potential of sodium: the energy per atom of relaxed bcc Na metal."""

from __future__ import annotations

import math
from typing import Any

from ase.build import bulk
from ase.calculators.calculator import BaseCalculator
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from hardcarbon.errors import InputError


def _bcc_lattice_constant(volume: float, n_atoms: int) -> float:
    """Cubic lattice constant (Å) of a bcc crystal with ``volume`` (Å^3) for ``n_atoms``."""
    return (2.0 * volume / n_atoms) ** (1.0 / 3.0)


def sodium_chemical_potential(
    calculator: BaseCalculator,
    lattice_constant_guess: float = 4.2,
    relax: bool = True,
    fmax: float = 1e-3,
    steps: int = 200,
) -> dict[str, Any]:
    """Energy per atom of bcc Na with ``calculator``, after relaxing the lattice constant.

    The one-atom primitive bcc cell is relaxed with :class:`ase.filters.FrechetCellFilter`
    (hydrostatic strain only, so the cell stays cubic bcc: the reference phase of the study)
    and :class:`ase.optimize.BFGS` until the generalised forces are below ``fmax``; the atom
    itself feels no force by symmetry.

    Parameters
    ----------
    calculator : ase calculator
        Must provide energy, and stress when ``relax`` is true.
    lattice_constant_guess : float
        Starting cubic lattice constant (Å); the experimental value is 4.23 Å.
    relax : bool
        If false, return the single-point energy at ``lattice_constant_guess``.
    fmax : float
        Convergence threshold of the cell relaxation (eV/Å; for the cell degrees of freedom
        this is the virial per atom, eV).
    steps : int
        Maximum number of optimiser steps.

    Returns
    -------
    dict
        ``mu_na`` (eV/atom), ``lattice_constant`` (Å), ``volume_per_atom`` (Å^3),
        ``stress`` (Voigt, eV/Å^3), ``n_steps`` and ``relaxed``.
    """
    if calculator is None:
        raise InputError("no calculator given for bcc Na: pass an ASE calculator that covers Na")
    if not (math.isfinite(lattice_constant_guess) and 2.0 < lattice_constant_guess < 8.0):
        raise InputError(
            f"lattice constant guess {lattice_constant_guess} Å is unphysical for bcc Na: "
            "give a value near 4.23 Å"
        )
    if fmax <= 0 or steps < 1:
        raise InputError("fmax must be positive and steps at least 1")
    atoms = bulk("Na", "bcc", a=lattice_constant_guess)
    atoms.calc = calculator
    n_steps = 0
    if relax:
        cell_filter = FrechetCellFilter(atoms, hydrostatic_strain=True)
        optimizer = BFGS(cell_filter, logfile=None)
        converged = optimizer.run(fmax=fmax, steps=steps)
        n_steps = optimizer.get_number_of_steps()
        if not converged:
            raise InputError(
                f"bcc Na cell relaxation did not reach fmax={fmax} in {steps} steps: "
                "raise steps, loosen fmax, or check that the calculator describes Na"
            )
    energy = float(atoms.get_potential_energy())
    n_atoms = len(atoms)
    volume = float(atoms.get_volume())
    stress = atoms.get_stress(voigt=True).tolist() if relax else None
    return {
        "mu_na": energy / n_atoms,
        "lattice_constant": _bcc_lattice_constant(volume, n_atoms),
        "volume_per_atom": volume / n_atoms,
        "stress": stress,
        "n_steps": n_steps,
        "relaxed": relax,
    }
