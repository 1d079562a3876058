"""Input checks shared by the analysis modules; each failure is a one-line :class:`InputError`."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from hardcarbon.errors import InputError


def require_atoms(atoms: Atoms, what: str) -> None:
    """Raise if ``atoms`` is not a non-empty ASE ``Atoms`` object."""
    if not isinstance(atoms, Atoms):
        raise InputError(f"{what} needs an ase.Atoms structure, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise InputError(f"{what} got an empty structure: give a structure with atoms in it")


def require_positive(value: float, name: str) -> float:
    """Return ``value`` as a float, raising if it is not a finite positive number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(number) or number <= 0:
        raise InputError(f"{name} must be a positive number, got {value!r}")
    return number


def require_volume(atoms: Atoms, what: str) -> float:
    """Return the cell volume (Å³), raising if the cell has no volume."""
    volume = abs(float(np.linalg.det(atoms.cell.array)))
    if not np.isfinite(volume) or volume < 1e-6:
        raise InputError(f"{what} needs a cell with positive volume, but the structure's cell is "
                         "empty or flat: give a structure with a 3D periodic cell")
    return volume


def require_periodic(atoms: Atoms, what: str) -> float:
    """Return the cell volume (Å³), raising unless the cell is periodic along all three axes."""
    if not all(atoms.pbc):
        pbc = [bool(flag) for flag in atoms.pbc]
        raise InputError(f"{what} needs a structure periodic along all three axes (pbc={pbc}): "
                         "give a bulk model with a 3D periodic cell")
    return require_volume(atoms, what)


def require_element(atoms: Atoms, symbol: str, what: str) -> np.ndarray:
    """Return the indices of ``symbol`` atoms, raising if there are none."""
    if symbol not in atomic_numbers:
        raise InputError(f"{what}: unknown element {symbol!r}: give a chemical symbol such as 'C'")
    index = np.flatnonzero(atoms.numbers == atomic_numbers[symbol])
    if index.size == 0:
        formula = atoms.get_chemical_formula()
        raise InputError(f"{what} needs {symbol} atoms, but the structure ({formula}) has none: "
                         f"give a structure that contains {symbol}")
    return index


def with_cell(atoms: Atoms, margin: float) -> Atoms:
    """Return ``atoms`` ready for a neighbour list: a cluster without a cell gets a bounding box.

    matscipy's neighbour list needs an invertible cell; a non-periodic cluster read from a plain
    XYZ file has none, so it is given one ``margin`` (Å) larger than its extent on every side.
    """
    if abs(np.linalg.det(atoms.cell.array)) > 1e-6:
        return atoms
    if any(atoms.pbc):
        raise InputError("the structure is periodic but its cell is empty or flat: give the "
                         "cell vectors, or clear pbc for an isolated cluster")
    boxed = atoms.copy()
    lower = boxed.positions.min(axis=0) - margin
    boxed.positions -= lower
    boxed.cell = np.diag(boxed.positions.max(axis=0) + margin)
    return boxed
