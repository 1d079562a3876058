"""Specific capacity of sodiated carbon, and the capacity where the voltage reaches 0 V.

Capacities are gravimetric, per gram of *carbon* (the host), as is usual for hard-carbon
anodes: ``Q = n_Na F / (3.6 n_C M_C)`` in mAh/g, with the Faraday constant from the
CODATA-2018 constants of :mod:`ase.units` and the molar mass of carbon from :mod:`ase.data`.
NaC6 gives 371.9 mAh/g and NaC8 278.9 mAh/g.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ase.data import atomic_masses, atomic_numbers
from ase.units import create_units
from numpy.typing import ArrayLike

from hardcarbon.electrochem.voltage import voltage_profile
from hardcarbon.errors import InputError

_CODATA = create_units("2018")
#: Faraday constant (C/mol), CODATA 2018: elementary charge times Avogadro's number.
FARADAY: float = _CODATA["_e"] * _CODATA["_Nav"]
#: Molar mass of carbon (g/mol).
CARBON_MOLAR_MASS: float = float(atomic_masses[atomic_numbers["C"]])
#: Seconds per hour over mA per A: converts C/g to mAh/g.
_COULOMB_PER_MAH = 3.6


def _check_counts(n_na: ArrayLike, n_c: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    na = np.asarray(n_na, dtype=float)
    c = np.asarray(n_c, dtype=float)
    if not (np.all(np.isfinite(na)) and np.all(np.isfinite(c))):
        raise InputError("sodium and carbon counts must be finite numbers")
    if np.any(na < 0):
        raise InputError("the number of Na atoms is negative: give a count >= 0")
    if np.any(c <= 0):
        raise InputError(
            "the number of C atoms must be positive: give the carbon count of the host"
        )
    return na, c


def _scalar_or_array(value: np.ndarray) -> float | np.ndarray:
    return float(value) if value.ndim == 0 else value


def specific_capacity(n_na: ArrayLike, n_c: ArrayLike) -> float | np.ndarray:
    """Gravimetric capacity of ``n_na`` Na stored in ``n_c`` carbon atoms.

    Parameters
    ----------
    n_na, n_c : float or array_like
        Numbers of Na and C atoms (broadcast against each other).

    Returns
    -------
    float or ndarray
        Capacity in mAh per gram of carbon, ``n_na F / (3.6 n_c M_C)``.
    """
    na, c = _check_counts(n_na, n_c)
    return _scalar_or_array(na * FARADAY / (_COULOMB_PER_MAH * c * CARBON_MOLAR_MASS))


def na_fraction(n_na: ArrayLike, n_c: ArrayLike) -> float | np.ndarray:
    """Sodium content ``x`` of Na_xC, i.e. ``n_na / n_c`` (dimensionless)."""
    na, c = _check_counts(n_na, n_c)
    return _scalar_or_array(na / c)


@dataclass(frozen=True)
class ZeroVoltCapacity:
    """Where a step voltage curve first reaches 0 V.

    Attributes
    ----------
    capacity : float
        Capacity of the cut-off state (mAh/g of carbon).
    n_na : float
        Na count of the cut-off state.
    na_fraction : float
        ``x`` in Na_xC of the cut-off state.
    step_index : int or None
        Index of the first step with voltage <= 0 V; None when no step reaches 0 V.
    reached_zero : bool
        False when every step stays above 0 V; ``capacity`` is then that of the last state
        and only a lower bound of the zero-volt capacity.
    """

    capacity: float
    n_na: float
    na_fraction: float
    step_index: int | None
    reached_zero: bool

    def as_dict(self) -> dict[str, float | int | bool | None]:
        """Plain-type dictionary for JSON output."""
        return asdict(self)


def capacity_at_zero_volt(
    n_na: ArrayLike, e_formation: ArrayLike, n_c: float
) -> ZeroVoltCapacity:
    """Capacity at which the step voltage curve of eq. (1) first drops to 0 V or below.

    The study stops sodiation when the voltage reaches 0 V.  With the states sorted by Na
    count, the step from state ``i`` to ``i+1`` has voltage ``V_i``; if ``k`` is the first
    step with ``V_k <= 0``, the cut-off state is ``k``: the last state reached through steps
    that all stayed above 0 V (state 0 when the very first step is already <= 0 V).  If no
    step reaches 0 V the last state is returned with ``reached_zero=False``.

    Parameters
    ----------
    n_na : array_like
        Na counts of the states, strictly increasing.
    e_formation : array_like
        Formation energies of the states (eV), see :func:`formation_energy`.
    n_c : float
        Number of carbon atoms of the host.

    Returns
    -------
    ZeroVoltCapacity
        The cut-off state and its capacity (mAh/g).
    """
    profile = voltage_profile(n_na, e_formation)
    nonpositive = np.flatnonzero(profile.voltage <= 0.0)
    if nonpositive.size:
        step = int(nonpositive[0])
        state = step
    else:
        step = None
        state = len(profile.n_na) - 1
    n_cut = float(profile.n_na[state])
    return ZeroVoltCapacity(
        capacity=float(specific_capacity(n_cut, n_c)),
        n_na=n_cut,
        na_fraction=float(na_fraction(n_cut, n_c)),
        step_index=step,
        reached_zero=step is not None,
    )
