"""Step voltage curve from formation energies, eq. (1) of the study.

Between two sodiation states with Na counts ``x1 < x2`` the average voltage against Na/Na+ is
``V = -(E_f(x2) - E_f(x1)) / ((x2 - x1) e)``; with energies in eV and ``x`` a number of atoms
this is directly in volts.  Each pair of successive states gives one flat step of the curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from hardcarbon.errors import InputError


@dataclass(frozen=True)
class VoltageProfile:
    """Step voltage curve between successive sodiation states.

    Attributes
    ----------
    n_na : ndarray, shape (m,)
        Na counts of the states.
    e_formation : ndarray, shape (m,)
        Formation energies of the states (eV).
    voltage : ndarray, shape (m-1,)
        Voltage of each step (V vs Na/Na+).
    n_start, n_end, n_mid : ndarray, shape (m-1,)
        Na count at the start, end and middle of each step.
    """

    n_na: np.ndarray
    e_formation: np.ndarray
    voltage: np.ndarray
    n_start: np.ndarray
    n_end: np.ndarray
    n_mid: np.ndarray

    def step_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Points ``(n, V)`` that draw the steps as one line: each step is a flat segment.

        Returns
        -------
        n, v : ndarray, shape (2(m-1),)
            Na counts ``[x0, x1, x1, x2, ...]`` and voltages ``[V0, V0, V1, V1, ...]`` (V).
        """
        n = np.column_stack([self.n_start, self.n_end]).ravel()
        v = np.repeat(self.voltage, 2)
        return n, v

    def as_dict(self) -> dict[str, list[float]]:
        """Plain lists for JSON output."""
        return {
            "n_na": self.n_na.tolist(),
            "e_formation_eV": self.e_formation.tolist(),
            "voltage_V": self.voltage.tolist(),
            "n_start": self.n_start.tolist(),
            "n_end": self.n_end.tolist(),
            "n_mid": self.n_mid.tolist(),
        }


def voltage_profile(n_na: ArrayLike, e_formation: ArrayLike) -> VoltageProfile:
    """Voltages between successive states by eq. (1), ``V = -dE_f / dx / e``.

    Parameters
    ----------
    n_na : array_like, shape (m,)
        Na counts of the states, strictly increasing, ``m >= 2``.
    e_formation : array_like, shape (m,)
        Formation energies of the states (eV).

    Returns
    -------
    VoltageProfile
        Step edges, midpoints and the voltage of each step (V).
    """
    n = np.asarray(n_na, dtype=float)
    e = np.asarray(e_formation, dtype=float)
    if n.ndim != 1 or e.ndim != 1:
        raise InputError("Na counts and formation energies must be 1-D sequences")
    if n.shape != e.shape:
        raise InputError(
            f"got {n.size} Na counts but {e.size} formation energies: give one energy per state"
        )
    if n.size < 2:
        raise InputError("a voltage needs at least two sodiation states: give two or more")
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(e))):
        raise InputError("Na counts and formation energies must be finite numbers")
    if np.any(np.diff(n) <= 0):
        raise InputError(
            "Na counts must be strictly increasing: sort the states and drop duplicates"
        )
    voltage = -np.diff(e) / np.diff(n)
    return VoltageProfile(
        n_na=n,
        e_formation=e,
        voltage=voltage,
        n_start=n[:-1].copy(),
        n_end=n[1:].copy(),
        n_mid=0.5 * (n[:-1] + n[1:]),
    )
