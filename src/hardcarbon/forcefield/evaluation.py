"""Errors of a force field against reference labels, parity plots and the descriptor map.

:func:`evaluate_calculator` runs any ASE calculator on labelled structures and reports the
root mean square (and mean absolute) errors of the energy per atom (meV/atom), of the force
components (meV/Å) and of the stress components (GPa; six Voigt components, only for
structures with a reference stress), over all structures and per family
(:func:`hardcarbon.forcefield.training.family_of`).  :func:`evaluate_model` does the same for a
nep.txt through calorine's CPUNEP, and :func:`evaluate_labels` compares two sets of stored
labels of the same structures (e.g. SevenNet + D3 labels, made with the exact Na–Na D3
exclusion of the labelling module, against GPAW labels): one implementation,
:func:`_compare`, computes every number.

A calculator whose energy zero differs from the reference's (SevenNet against GPAW, whose
energies are relative to isolated-atom references) can be compared with
``align_energies=True``: a constant energy per element is then fitted by least squares to the
per-atom energy differences and removed before the energy errors are computed (the fitted
offsets are reported).  Forces and stresses do not depend on it.

Figures (PNG, written atomically): :func:`parity_plots` (energy and force parity, as
Figure 1b–c of the study, and stress parity when there are stresses) and :func:`dataset_map`
(Figure 2: a principal-component projection of the per-structure mean NEP descriptors,
coloured by family, with each family's count and share).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from hardcarbon.errors import InputError
from hardcarbon.forcefield.nep import nep_calculator, nep_elements
from hardcarbon.forcefield.training import family_of, load_training_data, reference_labels
from hardcarbon.storage import atomic_write, bare_structure, read_frames

#: eV/Å³ in GPa.
EV_PER_A3_IN_GPA = 160.21766208
_VOIGT = ([0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1])  # xx yy zz yz xz xy
_DPI = 150


# --------------------------------------------------------------------------------------------
# models


def load_nep(path: str | Path, elements: Sequence[str]) -> Any:
    """calorine ``CPUNEP`` for ``path``, checked to cover ``elements`` and to evaluate.

    calorine reads the parameters only at the first calculation, so a truncated or garbled
    file is found here by evaluating a small probe structure of ``elements``.

    Raises
    ------
    InputError
        If the file is missing, not a NEP model, does not cover ``elements``, or is corrupt.
    """
    path = Path(path)
    calc = nep_calculator(path, set(elements))
    symbols = list(elements) or nep_elements(path)[:1]
    probe = Atoms(symbols, positions=[(2.0 + 2.2 * i, 3.0, 3.0) for i in range(len(symbols))],
                  cell=[3.0 + 2.2 * len(symbols), 6.0, 6.0], pbc=True)
    probe.calc = calc
    try:
        energy = probe.get_potential_energy()
    except Exception as exc:  # calorine raises RuntimeError/ValueError for malformed files
        reason = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise InputError(f"cannot load NEP model {path} ({reason}): the file is corrupt or "
                         "truncated") from None
    if not np.isfinite(energy):
        raise InputError(f"NEP model {path} gives a non-finite energy: the file is corrupt")
    return calc


def _structures(structures: Sequence[Atoms] | str | Path, kind: str = "reference"
                ) -> list[Atoms]:
    return load_training_data(structures, kind)


def _elements(structures: Sequence[Atoms]) -> list[str]:
    return sorted({s for atoms in structures for s in atoms.get_chemical_symbols()})


# --------------------------------------------------------------------------------------------
# errors


def evaluate_model(model_path: str | Path, structures: Sequence[Atoms] | str | Path,
                   *, align_energies: bool = False) -> dict[str, Any]:
    """Errors of the NEP model ``model_path`` on labelled ``structures``.

    Parameters
    ----------
    model_path
        A nep.txt.
    structures
        Labelled structures (``REF_energy`` eV, ``REF_forces`` eV/Å, optional ``REF_stress``
        eV/Å³), or an extended-XYZ file of them (e.g. a ``test.xyz``), or a label folder.
    align_energies
        Remove a fitted constant energy per element first (see the module docstring).

    Returns
    -------
    dict
        As :func:`evaluate_calculator`, with ``model`` ``"NEP (<model_path>)"``.

    Raises
    ------
    InputError
        Missing, corrupt or not covering model; structures without labels.
    """
    labelled = _structures(structures)
    calc = load_nep(model_path, _elements(labelled))
    return evaluate_calculator(calc, labelled, align_energies=align_energies,
                               name=f"NEP ({model_path})")


def evaluate_calculator(calc: Any, structures: Sequence[Atoms] | str | Path, *,
                        align_energies: bool = False, name: str | None = None
                        ) -> dict[str, Any]:
    """Errors of the ASE calculator ``calc`` on labelled ``structures``.

    Parameters
    ----------
    calc
        Any ASE calculator; it is attached to a plain copy of each structure in turn.
    structures
        Labelled structures, an extended-XYZ file of them or a label folder.
    align_energies
        Remove a fitted constant energy per element first (for a calculator with another
        energy zero than the reference).
    name
        Name of the model in the result and in the plots; the calculator's class by default.

    Returns
    -------
    dict
        ``model``; ``units``; ``overall`` and ``families`` (family name → metrics), each with
        ``n_structures``, ``n_atoms``, ``energy_rmse_meV_atom``, ``energy_mae_meV_atom``,
        ``force_rmse_meV_A``, ``force_mae_meV_A``, ``n_stress`` and ``stress_rmse_GPa``,
        ``stress_mae_GPa`` (None without stresses); ``energy_offsets_eV`` (element → eV, only
        with ``align_energies``); and the data of the parity plots: ``structures`` (one dict
        per structure: family, config_type, n_atoms, energy_ref and energy_pred in eV/atom),
        ``forces`` (``ref``, ``pred``: M×3 arrays in eV/Å; ``structure``: index of each
        atom's structure) and ``stress`` (``ref``, ``pred``: K×6 Voigt arrays in GPa;
        ``structure``: index of each).
    """
    labelled = _structures(structures)
    predictions = []
    for atoms in labelled:
        work = bare_structure(atoms)
        work.calc = calc
        energy = float(work.get_potential_energy())
        forces = np.array(work.get_forces())
        stress = (np.array(work.get_stress(voigt=False))
                  if "REF_stress" in atoms.info else None)
        predictions.append((energy, forces, stress))
    return _compare(labelled, predictions, align_energies,
                    name or type(calc).__name__)


def evaluate_labels(predicted: Sequence[Atoms] | str | Path,
                    reference: Sequence[Atoms] | str | Path, *, align_energies: bool = False,
                    name: str | None = None) -> dict[str, Any]:
    """Errors of one set of stored labels against another, structure by structure.

    E.g. SevenNet + D3 labels from :func:`~hardcarbon.forcefield.labelling.label_structures`
    of the test structures against their GPAW labels.  Both sets hold the same structures in
    the same order (same elements and positions).  Arguments and result as
    :func:`evaluate_calculator`; ``name`` defaults to the ``REF_method`` of the predictions.
    """
    pred = _structures(predicted, "predicted")
    ref = _structures(reference)
    if len(pred) != len(ref):
        raise InputError(f"{len(pred)} predicted and {len(ref)} reference structures: compare "
                         "labels of the same structures")
    predictions = []
    for i, (p, r) in enumerate(zip(pred, ref, strict=True)):
        if (len(p) != len(r) or not np.array_equal(p.numbers, r.numbers)
                or not np.allclose(p.positions, r.positions, atol=1e-4)):
            raise InputError(f"structure {i} differs between the predicted and the reference "
                             "labels: compare labels of the same structures, in the same order")
        energy, forces, stress = reference_labels(p, f"predicted structure {i}")
        predictions.append((energy, forces, stress))
    if name is None:
        methods = {a.info.get("REF_method") for a in pred}
        name = methods.pop() if len(methods) == 1 and None not in methods else "labels"
    return _compare(ref, predictions, align_energies, name)


def _compare(reference: Sequence[Atoms],
             predictions: Sequence[tuple[float, np.ndarray, np.ndarray | None]],
             align_energies: bool, name: str) -> dict[str, Any]:
    """The metrics and parity data of predictions against the reference labels."""
    n = len(reference)
    families = [family_of(a) for a in reference]
    n_atoms = np.array([len(a) for a in reference])
    e_ref = np.empty(n)
    e_pred = np.array([p[0] for p in predictions], dtype=float) / n_atoms
    f_ref, f_pred, f_struct = [], [], []
    s_ref, s_pred, s_struct = [], [], []
    for i, (atoms, (_, forces, stress)) in enumerate(zip(reference, predictions, strict=True)):
        energy, ref_forces, ref_stress = reference_labels(atoms, f"reference structure {i}")
        e_ref[i] = energy / len(atoms)
        f_ref.append(ref_forces)
        f_pred.append(np.asarray(forces, dtype=float).reshape(len(atoms), 3))
        f_struct.append(np.full(len(atoms), i))
        if ref_stress is not None and stress is not None and atoms.pbc.all():
            s_ref.append(ref_stress[_VOIGT] * EV_PER_A3_IN_GPA)
            s_pred.append(np.asarray(stress, dtype=float).reshape(3, 3)[_VOIGT]
                          * EV_PER_A3_IN_GPA)
            s_struct.append(i)

    offsets: dict[str, float] | None = None
    if align_energies:
        elements = _elements(reference)
        fractions = np.array([[np.count_nonzero(a.symbols == el) / len(a) for el in elements]
                              for a in reference])
        mu, *_ = np.linalg.lstsq(fractions, e_pred - e_ref, rcond=None)
        e_pred = e_pred - fractions @ mu
        offsets = {el: float(m) for el, m in zip(elements, mu, strict=True)}

    forces = {"ref": np.concatenate(f_ref), "pred": np.concatenate(f_pred),
              "structure": np.concatenate(f_struct)}
    stress = {"ref": np.array(s_ref).reshape(-1, 6), "pred": np.array(s_pred).reshape(-1, 6),
              "structure": np.array(s_struct, dtype=int)}

    def metrics(mask: np.ndarray) -> dict[str, Any]:
        de = (e_pred - e_ref)[mask] * 1000.0
        atom_mask = mask[forces["structure"]]
        df = (forces["pred"] - forces["ref"])[atom_mask] * 1000.0
        stress_mask = mask[stress["structure"]] if len(stress["structure"]) else np.zeros(
            0, dtype=bool)
        ds = (stress["pred"] - stress["ref"])[stress_mask]
        return {
            "n_structures": int(mask.sum()), "n_atoms": int(n_atoms[mask].sum()),
            "energy_rmse_meV_atom": _rmse(de), "energy_mae_meV_atom": _mae(de),
            "force_rmse_meV_A": _rmse(df), "force_mae_meV_A": _mae(df),
            "n_stress": int(stress_mask.sum()),
            "stress_rmse_GPa": _rmse(ds) if ds.size else None,
            "stress_mae_GPa": _mae(ds) if ds.size else None,
        }

    family_array = np.array(families)
    result: dict[str, Any] = {
        "model": name,
        "units": {"energy": "meV/atom", "forces": "meV/Å", "stress": "GPa",
                  "parity energies": "eV/atom", "parity forces": "eV/Å",
                  "parity stress": "GPa"},
        "overall": metrics(np.ones(n, dtype=bool)),
        "families": {family: metrics(family_array == family)
                     for family in dict.fromkeys(families)},
        "structures": [{"family": families[i],
                        "config_type": reference[i].info.get("config_type"),
                        "n_atoms": int(n_atoms[i]), "energy_ref": float(e_ref[i]),
                        "energy_pred": float(e_pred[i])} for i in range(n)],
        "forces": forces,
        "stress": stress,
    }
    if offsets is not None:
        result["energy_offsets_eV"] = offsets
    return result


def _rmse(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if values.size else float("nan")


def _mae(values: np.ndarray) -> float:
    return float(np.mean(np.abs(values))) if values.size else float("nan")


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` without the per-atom parity arrays (``model``, ``overall``, ``families``...)."""
    return {key: value for key, value in results.items()
            if key not in ("forces", "stress", "structures")}


# --------------------------------------------------------------------------------------------
# figures


def _figure(width: float = 4.6, height: float = 4.2) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _colours(families: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {family: cmap(i % 10) for i, family in enumerate(dict.fromkeys(families))}


def _save(fig: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI))


def _parity(ax: Any, ref: np.ndarray, pred: np.ndarray, groups: np.ndarray,
            colours: dict[str, Any], text: str, size: float) -> None:
    finite = np.concatenate([ref, pred])
    lo, hi = float(finite.min()), float(finite.max())
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", lw=0.8, ls="--", zorder=0)
    for family, colour in colours.items():
        mask = groups == family
        if mask.any():
            ax.scatter(ref[mask], pred[mask], s=size, color=colour, alpha=0.7, lw=0,
                       label=family, rasterized=True)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    ax.text(0.04, 0.96, text, transform=ax.transAxes, va="top", ha="left", fontsize=9,
            bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.9})
    ax.legend(loc="lower right", fontsize=8, frameon=False, markerscale=2.0)


def parity_plots(results: dict[str, Any], outdir: str | Path) -> list[Path]:
    """Energy and force parity plots (Figure 1b–c) and, with stresses, a stress parity plot.

    Parameters
    ----------
    results
        A result of :func:`evaluate_model`, :func:`evaluate_calculator` or
        :func:`evaluate_labels`.
    outdir
        Folder of ``energy_parity.png``, ``force_parity.png`` and ``stress_parity.png``.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    outdir = Path(outdir)
    model = results.get("model", "model")
    structures = results["structures"]
    families = np.array([s["family"] for s in structures])
    colours = _colours(list(families))
    overall = results["overall"]
    written = []

    fig, ax = _figure()
    _parity(ax, np.array([s["energy_ref"] for s in structures]),
            np.array([s["energy_pred"] for s in structures]), families, colours,
            f"RMSE {overall['energy_rmse_meV_atom']:.1f} meV/atom\n"
            f"{len(structures)} structures", 14)
    ax.set_xlabel("Reference energy (eV/atom)")
    ax.set_ylabel(f"{_short(model)} energy (eV/atom)")
    written.append(_save(fig, outdir / "energy_parity.png"))

    forces = results["forces"]
    ref = np.asarray(forces["ref"], dtype=float).reshape(-1)
    pred = np.asarray(forces["pred"], dtype=float).reshape(-1)
    groups = np.repeat(families[np.asarray(forces["structure"], dtype=int)], 3)
    fig, ax = _figure()
    _parity(ax, ref, pred, groups, colours,
            f"RMSE {overall['force_rmse_meV_A']:.0f} meV/Å\n{ref.size} components", 4)
    ax.set_xlabel("Reference force (eV/Å)")
    ax.set_ylabel(f"{_short(model)} force (eV/Å)")
    written.append(_save(fig, outdir / "force_parity.png"))

    stress = results.get("stress") or {}
    s_ref = np.asarray(stress.get("ref", []), dtype=float).reshape(-1)
    if s_ref.size:
        s_pred = np.asarray(stress["pred"], dtype=float).reshape(-1)
        groups = np.repeat(families[np.asarray(stress["structure"], dtype=int)], 6)
        fig, ax = _figure()
        _parity(ax, s_ref, s_pred, groups, colours,
                f"RMSE {overall['stress_rmse_GPa']:.2f} GPa\n{overall['n_stress']} "
                "structures", 8)
        ax.set_xlabel("Reference stress (GPa)")
        ax.set_ylabel(f"{_short(model)} stress (GPa)")
        written.append(_save(fig, outdir / "stress_parity.png"))
    return written


def _short(model: str) -> str:
    name = "NEP" if model.startswith("NEP (") else model
    return name if len(name) <= 28 else name[:25] + "..."


def descriptor_projection(model_path: str | Path, structures: Sequence[Atoms] | str | Path
                          ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Per-structure mean NEP descriptors of ``model_path`` projected on two principal axes.

    The descriptors (calorine ``get_descriptors``) are averaged over the atoms of each
    structure, standardised per component over the data set, and projected with a singular
    value decomposition.

    Returns
    -------
    coordinates : numpy.ndarray
        N×2 projections.
    families : list of str
        :func:`~hardcarbon.forcefield.training.family_of` of each structure.
    explained : numpy.ndarray
        Share of the variance along each of the two axes.
    """
    from calorine.nep import get_descriptors

    if isinstance(structures, str | Path):
        structures = _read_any(structures)
    structures = list(structures)
    if not structures:
        raise InputError("no structures for the descriptor map")
    load_nep(model_path, _elements(structures))
    means = np.array([np.asarray(get_descriptors(bare_structure(a), str(model_path))).mean(axis=0)
                      for a in structures])
    centred = means - means.mean(axis=0)
    scale = centred.std(axis=0)
    centred = centred / np.where(scale > 1e-12, scale, 1.0)
    coords = np.zeros((len(structures), 2))
    explained = np.zeros(2)
    if len(structures) > 1:
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        k = min(2, len(s))
        coords[:, :k] = u[:, :k] * s[:k]
        total = float(np.sum(s**2))
        if total > 0:
            explained[:k] = s[:k] ** 2 / total
    return coords, [family_of(a) for a in structures], explained


def _read_any(path: str | Path) -> list[Atoms]:
    """Structures of a file or label folder (no labels needed)."""
    path = Path(path)
    if path.is_dir():
        from hardcarbon.forcefield.labelling import collect_labels

        return collect_labels(path)
    return read_frames(path)


def dataset_map(model_path: str | Path, structures: Sequence[Atoms] | str | Path,
                outfile: str | Path) -> Path:
    """Figure 2: the data set in the space of the NEP descriptors, coloured by family.

    Parameters
    ----------
    model_path
        The nep.txt whose descriptors are used.
    structures
        Structures (labels not needed), a file of them or a label folder.
    outfile
        The PNG to write.

    Returns
    -------
    pathlib.Path
        ``outfile``.
    """
    coords, families, explained = descriptor_projection(model_path, structures)
    colours = _colours(families)
    groups = np.array(families)
    fig, ax = _figure(5.6, 4.4)
    for family, colour in colours.items():
        mask = groups == family
        count = int(mask.sum())
        ax.scatter(coords[mask, 0], coords[mask, 1], s=14, color=colour, alpha=0.75, lw=0,
                   label=f"{family}: {count} ({100.0 * count / len(groups):.1f}%)",
                   rasterized=True)
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f}% of variance)")
    ax.set_title(f"{len(groups)} structures, mean NEP descriptors", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="best")
    return _save(fig, Path(outfile))
