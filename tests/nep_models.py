"""Random-weight NEP4 models for tests: real nep.txt files evaluated by the real NEP engine.

A NEP model with random parameters is a valid potential (a sum of site energies, each a
function of the neighbours within the cut-off), so it serves to test algorithmic identities
(local energy differences equal full-model differences) and the mechanics of loops that call
the model.  Its energies mean nothing physically.

The file follows GPUMD's ``nep.txt`` layout for a NEP4 potential with one hidden layer::

    nep4[_zbl] <n_types> <symbols...>
    [zbl <inner> <outer>]
    cutoff <r_radial> <r_angular> <max_neighbours_radial> <max_neighbours_angular>
    n_max <n_max_radial> <n_max_angular>
    basis_size <n_basis_radial> <n_basis_angular>
    l_max <l_max_3b> <l_max_4b> <l_max_5b>
    ANN <n_neuron> 0

followed by one number per line: for each element its network (``w0`` row-major, shape
``(n_neuron, n_input)``, then ``b0`` and ``w1``, both ``(n_neuron,)``), the shared output bias
``b1``, the descriptor coefficients (``n_types**2`` blocks of ``(n_max_R+1)(n_basis_R+1) +
(n_max_A+1)(n_basis_A+1)`` values) and the ``n_input`` descriptor scalers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def n_descriptor(n_max: tuple[int, int], l_max: tuple[int, int, int]) -> int:
    """Number of descriptor components (network inputs) of a NEP4 potential."""
    n_angular_terms = l_max[0] + int(l_max[1] > 0) + int(l_max[2] > 0)
    return (n_max[0] + 1) + (n_max[1] + 1) * n_angular_terms


def write_random_nep(
    path: str | Path,
    elements: tuple[str, ...] = ("C", "Na"),
    radial_cutoff: float = 5.0,
    angular_cutoff: float = 4.0,
    n_max: tuple[int, int] = (4, 4),
    basis_size: tuple[int, int] = (6, 6),
    l_max: tuple[int, int, int] = (4, 2, 0),
    n_neuron: int = 8,
    max_neighbours: tuple[int, int] = (200, 100),
    zbl: tuple[float, float] | None = (1.0, 1.8),
    zbl_typewise: float | None = None,
    seed: int = 0,
) -> Path:
    """Write a NEP4 potential with small random parameters to ``path``.

    Parameters
    ----------
    path : str or Path
        Output file (conventionally ``nep.txt``).
    elements : tuple of str
        Chemical symbols the model covers, in the order of the header.
    radial_cutoff, angular_cutoff : float
        Cut-offs of the radial and angular descriptors (Å).
    n_max, basis_size : tuple of int
        Radial and angular ``n_max`` and basis sizes.
    l_max : tuple of int
        ``l_max`` of the three-, four- and five-body terms (the four-body flag is 0 or 2).
    n_neuron : int
        Neurons of the single hidden layer.
    max_neighbours : tuple of int
        Largest radial and angular neighbour counts the engine allocates for.
    zbl : tuple of float or None
        Inner and outer cut-off (Å) of the universal ZBL repulsion added at short range, which
        keeps relaxations with the random model from collapsing; None for a pure NEP.
    zbl_typewise : float or None
        GPUMD's typewise ZBL factor, written as a third value of the ``zbl`` line.
    seed : int
        Seed of the random parameters: the same seed gives the same file.

    Returns
    -------
    Path
        ``path``.
    """
    rng = np.random.default_rng(seed)
    n_types = len(elements)
    n_input = n_descriptor(n_max, l_max)
    values: list[np.ndarray] = []
    for _ in elements:
        values.append(rng.normal(0.0, 1.0 / np.sqrt(n_input), n_neuron * n_input))  # w0
        values.append(rng.normal(0.0, 0.1, n_neuron))  # b0
        values.append(rng.normal(0.0, 0.3, n_neuron))  # w1
    values.append(rng.normal(0.0, 0.1, 1))  # b1, shared by all elements
    n_coefficients = (n_max[0] + 1) * (basis_size[0] + 1) + (n_max[1] + 1) * (basis_size[1] + 1)
    values.append(rng.normal(0.0, 0.5, n_types * n_types * n_coefficients))
    values.append(rng.uniform(0.5, 2.0, n_input))  # q_scaler: positive, like 1 / (max - min)

    version = "nep4_zbl" if zbl is not None else "nep4"
    lines = [f"{version} {n_types} {' '.join(elements)}"]
    if zbl is not None:
        typewise = "" if zbl_typewise is None else f" {zbl_typewise:g}"
        lines.append(f"zbl {zbl[0]:g} {zbl[1]:g}{typewise}")
    lines += [
        f"cutoff {radial_cutoff:g} {angular_cutoff:g} {max_neighbours[0]} {max_neighbours[1]}",
        f"n_max {n_max[0]} {n_max[1]}",
        f"basis_size {basis_size[0]} {basis_size[1]}",
        f"l_max {l_max[0]} {l_max[1]} {l_max[2]}",
        f"ANN {n_neuron} 0",
    ]
    lines += [f"{v:15.7e}" for v in np.concatenate(values)]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
