"""Formation energy of sodiated carbon relative to the carbon host and bulk Na."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from hardcarbon.errors import InputError


def formation_energy(
    e_total: ArrayLike, e_carbon: float, n_na: ArrayLike, mu_na: float
) -> float | np.ndarray:
    """Formation energy ``E_f = E(C_N Na_n) - E(C_N) - n mu_Na``.

    Parameters
    ----------
    e_total : float or array_like
        Total energies of the sodiated structures (eV).
    e_carbon : float
        Total energy of the same carbon host without Na (eV).
    n_na : int or array_like
        Number of Na atoms in each structure (broadcast against ``e_total``).
    mu_na : float
        Chemical potential of Na, the energy per atom of bulk bcc Na (eV/atom),
        see :func:`sodium_chemical_potential`.

    Returns
    -------
    float or ndarray
        Formation energies (eV, per structure, not per Na); negative means sodiation is
        favourable with respect to Na metal.
    """
    e = np.asarray(e_total, dtype=float)
    n = np.asarray(n_na, dtype=float)
    if np.any(n < 0):
        raise InputError("the number of Na atoms is negative: give counts >= 0")
    values = (e, np.asarray(e_carbon, dtype=float), n, np.asarray(mu_na, dtype=float))
    if not all(np.all(np.isfinite(v)) for v in values):
        raise InputError("energies, Na counts and mu_Na must be finite numbers")
    try:
        result = e - float(e_carbon) - n * float(mu_na)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"cannot combine energies and Na counts ({exc}): give arrays of the same length"
        ) from None
    return float(result) if result.ndim == 0 else result
