"""Figures of a sodiation run (the study's Figures 4 to 7).

* :func:`snapshot_figure` (Fig. 4): the structure every few iterations, Na coloured by site;
* :func:`environment_figure` (Fig. 5): the neighbourhood of one example Na of each site class;
* :func:`voltage_figure` (Fig. 6): the voltage curve with each Na's contribution as a point;
* :func:`site_distribution_figure` (Fig. 7): where the Na of the last (overcharged) state sit,
  and how many there are in each class;
* :func:`site_fraction_figure`: the fraction of Na in each class against capacity.

All read what :func:`hardcarbon.sodiation.run.sodiate` writes in its workdir
(``sodiation.csv``, ``na_voltages.csv`` and ``states/state_NNN.xyz``), so they can be redrawn at
any time, also while a run is still going.  Colours follow the study: blue adsorption, green
intercalation, red filling; carbon is grey.

Structures are drawn with ASE's matplotlib renderer (:class:`ase.visualize.plot.Matplotlib`, the
engine of :func:`ase.visualize.plot.plot_atoms`: orthographic projection, atoms as discs sorted
by depth).  Its discs are added to the axes as one
:class:`~matplotlib.collections.PatchCollection` per layer instead of one patch at a time, and
the cell is outlined separately: that keeps a panel of the 6933-atom study cell well under a
second, where :func:`~ase.visualize.plot.plot_atoms` itself takes several.  In the overview
panels the Na are drawn as a layer above the carbon, so that Na deep in the cell stay visible.
All figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas: no display
is needed.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Patch

from hardcarbon.electrochem import specific_capacity, voltage_profile
from hardcarbon.errors import InputError
from hardcarbon.sodiation.sites import (
    SITE_CLASSES,
    SiteRules,
    classify_sites,
    site_labels_array,
)
from hardcarbon.storage import atomic_write, read_structure

#: Colour of each site class (the study's Figure 6).
SITE_COLOURS: dict[str, str] = {
    "adsorption": "tab:blue",
    "intercalation": "tab:green",
    "filling": "tab:red",
}

#: Site counts of the study's overcharged state with 700 Na (Figure 7).
STUDY_OVERCHARGE_COUNTS: dict[str, int] = {"adsorption": 340, "intercalation": 223, "filling": 137}

#: Na count of that state, and the relative margin within which a state is compared with it.
STUDY_OVERCHARGE_NA = 700
REFERENCE_MARGIN = 0.10

_DPI = 150
_CARBON_COLOUR = "0.6"
_OTHER_COLOUR = "0.85"
_UNCLASSIFIED_COLOUR = "tab:purple"
#: Disc radii (Å) in the overview panels: small carbon so the Na stand out.
_OVERVIEW_C_RADIUS = 0.35
_OVERVIEW_NA_RADIUS = 0.9
_STATE_NAME = re.compile(r"state_(\d+)\.xyz")


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise InputError(f"{path} does not exist: give the workdir of a sodiation run")
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _figure(width: float = 6.0, height: float = 4.2) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI))


def voltage_figure(workdir: str | Path) -> Figure:
    """Step voltage curve against capacity, with each Na's voltage contribution as a point.

    The step of eq. (1) between states ``k-1`` and ``k`` is drawn as a flat line over its
    capacity range.  The Na inserted in iteration ``k`` are drawn over the same range, spread
    evenly in insertion order, at their own voltage contribution in state ``k`` and coloured
    by their site in that state.

    Parameters
    ----------
    workdir : str or Path
        Workdir of a sodiation run.

    Returns
    -------
    matplotlib.figure.Figure
    """
    workdir = Path(workdir)
    rows = _read_csv(workdir / "sodiation.csv")
    if len(rows) < 2:
        raise InputError(f"{workdir} holds no sodiated state yet: a voltage needs two states")
    n_na = np.array([float(r["n_na"]) for r in rows])
    capacity = np.array([float(r["capacity_mAh_g"]) for r in rows])
    profile = voltage_profile(n_na, [float(r["formation_energy_eV"]) for r in rows])
    fig, ax = _figure()

    per_na = _read_csv(workdir / "na_voltages.csv") if (workdir / "na_voltages.csv").is_file() \
        else []
    points: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in SITE_CLASSES}
    for k in range(1, len(rows)):
        new = [p for p in per_na
               if int(p["iteration"]) == k and int(p["inserted_at"]) == k and p["voltage_V"]]
        for rank, p in enumerate(new):
            x = capacity[k - 1] + (rank + 0.5) / len(new) * (capacity[k] - capacity[k - 1])
            xs, ys = points.setdefault(p["site"], ([], []))
            xs.append(x)
            ys.append(float(p["voltage_V"]))
    for site, (xs, ys) in points.items():
        if xs:
            ax.scatter(xs, ys, s=6, alpha=0.6, color=SITE_COLOURS.get(site, "grey"),
                       label=f"{site} when inserted ({len(xs)})", linewidths=0)

    step_x = np.column_stack([capacity[:-1], capacity[1:]]).ravel()
    step_v = np.repeat(profile.voltage, 2)
    ax.plot(step_x, step_v, color="black", lw=1.5, label="voltage (eq. 1)")
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("Capacity (mAh/g of carbon)")
    ax.set_ylabel("Voltage vs Na/Na$^+$ (V)")
    ax.set_xlim(0.0, capacity[-1])
    ax.legend(fontsize=8, loc="upper right", markerscale=2)
    return fig


def site_fraction_figure(workdir: str | Path) -> Figure:
    """Fraction of the stored Na in each site class against capacity.

    Parameters
    ----------
    workdir : str or Path
        Workdir of a sodiation run.

    Returns
    -------
    matplotlib.figure.Figure
    """
    workdir = Path(workdir)
    rows = [r for r in _read_csv(workdir / "sodiation.csv") if int(r["n_na"]) > 0]
    if not rows:
        raise InputError(f"{workdir} holds no sodiated state yet: nothing to classify")
    capacity = np.array([float(r["capacity_mAh_g"]) for r in rows])
    n_na = np.array([float(r["n_na"]) for r in rows])
    fig, ax = _figure()
    for site in SITE_CLASSES:
        fraction = np.array([float(r[f"n_{site}"]) for r in rows]) / n_na
        ax.plot(capacity, fraction, marker="o", ms=3, color=SITE_COLOURS[site], label=site)
    ax.set_xlabel("Capacity (mAh/g of carbon)")
    ax.set_ylabel("Fraction of stored Na")
    ax.set_ylim(0.0, 1.0)
    ax.legend(fontsize=8)
    return fig


# -- states ------------------------------------------------------------------------------------
def _state_paths(workdir: Path) -> dict[int, Path]:
    """``states/state_NNN.xyz`` of a workdir by iteration, in order; one-line error if none."""
    folder = workdir / "states"
    found = {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = _STATE_NAME.fullmatch(path.name)
            if match:
                found[int(match.group(1))] = path
    if not found:
        raise InputError(f"{folder} holds no state_NNN.xyz: give the workdir of a sodiation run")
    return dict(sorted(found.items()))


def _capacities(workdir: Path) -> dict[int, float]:
    """Capacity (mAh/g) of each iteration in ``sodiation.csv``; empty when there is none yet."""
    path = workdir / "sodiation.csv"
    if not path.is_file():
        return {}
    return {int(r["iteration"]): float(r["capacity_mAh_g"]) for r in _read_csv(path)
            if r.get("capacity_mAh_g")}


def _capacity_of(atoms: Atoms, iteration: int | None, table: dict[int, float]) -> float:
    """Capacity (mAh/g) of a state: from the table, else its own counts."""
    if iteration is not None and iteration in table:
        return table[iteration]
    n_c = int(np.count_nonzero(atoms.numbers == 6))
    n_na = int(np.count_nonzero(atoms.numbers == 11))
    return float(specific_capacity(n_na, n_c)) if n_c else float("nan")


def _site_labels(atoms: Atoms, rules: SiteRules | None) -> np.ndarray:
    """Per-atom labels: the ``site`` array if present, else classified now (symbols otherwise)."""
    symbols = np.asarray(atoms.get_chemical_symbols())
    if "site" in atoms.arrays:
        labels = np.asarray(atoms.arrays["site"]).astype("<U16")
        if labels.shape != symbols.shape:
            raise InputError("the structure's 'site' array does not have one label per atom")
        return labels
    if np.any(symbols == "Na") and np.any(symbols == "C"):
        return site_labels_array(atoms, classify_sites(atoms, rules)).astype("<U16")
    return symbols.astype("<U16")


def _load_state(
    workdir: str | Path | None, state: int | Atoms | None, rules: SiteRules | None
) -> tuple[Atoms, np.ndarray, str, float]:
    """The structure to draw, its labels, a name for titles and its capacity (mAh/g)."""
    if isinstance(state, Atoms):
        iteration = state.info.get("iteration")
        table = _capacities(Path(workdir)) if workdir is not None else {}
        capacity = (float(state.info["capacity_mAh_g"]) if "capacity_mAh_g" in state.info
                    else _capacity_of(state, iteration, table))
        name = f"iteration {iteration}" if iteration is not None else "the given structure"
        return state, _site_labels(state, rules), name, capacity
    if workdir is None:
        raise InputError("give the workdir of a sodiation run or a structure to draw")
    workdir = Path(workdir)
    paths = _state_paths(workdir)
    iteration = list(paths)[-1] if state is None else int(state)
    if iteration not in paths:
        raise InputError(f"{workdir} has no state {iteration}: it holds iterations "
                         f"{min(paths)} to {max(paths)}")
    atoms = read_structure(paths[iteration])
    capacity = _capacity_of(atoms, iteration, _capacities(workdir))
    return atoms, _site_labels(atoms, rules), f"iteration {iteration}", capacity


def _colours(atoms: Atoms, labels: np.ndarray) -> list[str]:
    """Colour of every atom: carbon grey, Na by site class, anything else light grey."""
    colours = []
    for number, label in zip(atoms.numbers, labels, strict=True):
        if number == 11:
            colours.append(SITE_COLOURS.get(str(label), _UNCLASSIFIED_COLOUR))
        else:
            colours.append(_CARBON_COLOUR if number == 6 else _OTHER_COLOUR)
    return colours


def _counts(atoms: Atoms, labels: np.ndarray) -> dict[str, int]:
    """Na per site class (all three keys), plus ``unclassified`` when some Na have no class."""
    na_labels = labels[atoms.numbers == 11]
    counts = {name: int(np.count_nonzero(na_labels == name)) for name in SITE_CLASSES}
    other = int(na_labels.size - sum(counts.values()))
    if other:
        counts["unclassified"] = other
    return counts


# -- drawing ------------------------------------------------------------------------------------
def _draw_atoms(
    ax: Axes,
    atoms: Atoms,
    colours: Sequence[str],
    radii: np.ndarray,
    layers: Sequence[tuple[np.ndarray, str, float]],
    rotation: np.ndarray | None = None,
    show_cell: bool = True,
    pad: float = 0.5,
) -> np.ndarray:
    """Draw atoms as discs with ASE's matplotlib renderer; return the image-plane origin (Å).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes to draw on; its limits are set to the picture, its axis is switched off.
    atoms : ase.Atoms
        Structure (positions in Å).
    colours : sequence of str
        Matplotlib colour of each atom.
    radii : ndarray, shape (len(atoms),)
        Disc radius of each atom (Å).
    layers : sequence of (mask, edge colour, edge width)
        Groups of atoms drawn one above the other, each sorted by depth; the edge width is in
        points.  Atoms in no layer are not drawn (they still set the picture's extent).
    rotation : ndarray, shape (3, 3), optional
        ``positions @ rotation`` gives the image-plane coordinates (x right, y up, z towards the
        viewer); default: looking down the z axis.
    show_cell : bool
        Outline the cell (dashed) when the structure has one.
    pad : float
        Margin around the atoms and cell (Å).

    Returns
    -------
    ndarray, shape (2,)
        Image-plane coordinates (Å) of the picture's lower-left corner: a point ``p`` (Å) is
        drawn at ``(p @ rotation)[:2] - origin``.
    """
    from ase.io.utils import make_patch_list
    from ase.visualize.plot import Matplotlib

    rotation = np.eye(3) if rotation is None else np.asarray(rotation, dtype=float)
    radii = np.asarray(radii, dtype=float)
    image = atoms.positions @ rotation
    extent = [image[:, :2] - radii[:, None], image[:, :2] + radii[:, None]]
    corners = None
    if show_cell and atoms.cell.rank == 3:
        corners = (np.array(list(itertools.product((0, 1), repeat=3)), dtype=float)
                   @ atoms.cell.array + atoms.get_celldisp().ravel()) @ rotation
        extent.append(corners[:, :2])
    points = np.vstack(extent)
    low, high = points.min(axis=0) - pad, points.max(axis=0) + pad
    bbox = (low[0], low[1], high[0], high[1])
    for mask, edge, width in layers:
        index = np.flatnonzero(mask)
        if index.size == 0:
            continue
        # no cell: ASE's cell-line bookkeeping costs O(atoms x lines) in Python
        part = Atoms(numbers=atoms.numbers[index], positions=atoms.positions[index])
        writer = Matplotlib(part, ax, rotation=rotation, radii=radii[index],
                            colors=[colours[i] for i in index], scale=1, show_unit_cell=0,
                            bbox=bbox)
        discs = PatchCollection(make_patch_list(writer), match_original=True)
        discs.set_edgecolor(edge)
        discs.set_linewidth(width)
        ax.add_collection(discs)
    if corners is not None:
        for a, b in itertools.combinations(range(8), 2):
            if bin(a ^ b).count("1") == 1:  # corners differing in one cell vector: an edge
                ends = corners[[a, b], :2] - low
                ax.plot(ends[:, 0], ends[:, 1], color="0.3", lw=0.6, ls="--", zorder=0.5)
    _frame(ax, np.zeros(2), high - low)
    return low


def _frame(ax: Axes, low: np.ndarray, high: np.ndarray) -> None:
    """Show the rectangle ``low``-``high`` (Å) at equal scale, without axis.

    The axes shrink to the picture's aspect and keep to the top of their slot: constrained
    layout measures titles from the top of the slot, so a picture centred lower would let the
    titles run into the figure's title.
    """
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_aspect("equal", adjustable="box")
    ax.set_anchor("N")
    ax.set_axis_off()


def _slab_mask(atoms: Atoms, slab: float | None) -> np.ndarray:
    """Atoms in a slab ``slab`` Å thick, parallel to the a-b plane, through the cell's middle."""
    if slab is None:
        return np.ones(len(atoms), dtype=bool)
    if not slab > 0:
        raise InputError(f"slab thickness {slab} Å is not positive: give a thickness > 0")
    if atoms.cell.rank != 3:
        raise InputError("a slab needs a structure with a full cell: draw it without slab")
    cell = atoms.cell.array
    height = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[0], cell[1]))
    depth = (atoms.get_scaled_positions(wrap=True)[:, 2] - 0.5) * height
    return np.abs(depth) <= slab / 2


def _overview(ax: Axes, atoms: Atoms, labels: np.ndarray, slab: float | None = None) -> None:
    """Whole cell seen down z: small grey carbon, Na drawn above it coloured by site."""
    atoms = atoms.copy()
    if atoms.cell.rank == 3:
        atoms.wrap()
    is_na = atoms.numbers == 11
    radii = np.where(is_na, _OVERVIEW_NA_RADIUS, _OVERVIEW_C_RADIUS)
    inside = _slab_mask(atoms, slab)
    _draw_atoms(ax, atoms, _colours(atoms, labels), radii,
                [(~is_na & inside, "none", 0.0), (is_na & inside, "0.1", 0.25)])


def _site_handles(counts: dict[str, int] | None = None) -> list[Patch]:
    """Legend entries: carbon and the site classes (with their counts when given)."""
    handles = [Patch(color=_CARBON_COLOUR, label="C")]
    for name in SITE_CLASSES:
        label = name if counts is None else f"{name} ({counts[name]})"
        handles.append(Patch(color=SITE_COLOURS[name], label=label))
    if counts is not None and counts.get("unclassified"):
        handles.append(Patch(color=_UNCLASSIFIED_COLOUR,
                             label=f"unclassified ({counts['unclassified']})"))
    return handles


# -- Figure 4 ----------------------------------------------------------------------------------
def snapshot_figure(workdir: str | Path, every: int = 2, slab: float | None = None) -> Figure:
    """The structure every ``every`` iterations (the study's Figure 4).

    Panels show states 0, ``every``, ``2 every``, ... and always the last state, each seen down
    the z axis (orthographic projection of the wrapped cell): carbon as small grey discs
    (0.35 Å), Na (0.9 Å) drawn above the carbon and coloured by site class.  Each title gives
    the iteration, the Na count and the capacity (mAh per g of carbon, from ``sodiation.csv``).

    Parameters
    ----------
    workdir : str or Path
        Workdir of a sodiation run.
    every : int
        Iterations between panels (>= 1).
    slab : float, optional
        Draw only the atoms of a slab this thick (Å), parallel to the cell's a-b plane,
        through the middle of the cell; default: the whole cell, projected.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if every < 1:
        raise InputError(f"every must be at least 1 iteration, got {every}")
    workdir = Path(workdir)
    paths = _state_paths(workdir)
    iterations = [k for k in paths if k % every == 0]
    last = list(paths)[-1]
    if last not in iterations:
        iterations.append(last)
    table = _capacities(workdir)
    n_cols = min(4, len(iterations))
    n_rows = -(-len(iterations) // n_cols)
    fig = Figure(figsize=(3.0 * n_cols, 3.2 * n_rows + 0.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    for ax, iteration in zip(axes, iterations, strict=False):
        atoms = read_structure(paths[iteration])
        labels = _site_labels(atoms, None)
        n_na = int(np.count_nonzero(atoms.numbers == 11))
        capacity = _capacity_of(atoms, iteration, table)
        _overview(ax, atoms, labels, slab)
        ax.set_title(f"iteration {iteration}: {n_na} Na\n{capacity:.0f} mAh/g", fontsize=9)
    for ax in axes[len(iterations):]:
        ax.set_axis_off()
    view = "projection along z" if slab is None else f"{slab:g} Å slab, seen down z"
    fig.suptitle(f"Sodiation every {every} iterations ({view})", fontsize=11)
    fig.legend(handles=_site_handles(), loc="outside lower center", ncol=4, fontsize=8)
    return fig


# -- Figure 5 ----------------------------------------------------------------------------------
def _neighbours(
    atoms: Atoms, centres: np.ndarray, cutoff: float
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each centre, the indices, distances (Å) and vectors (Å) of atoms within ``cutoff``.

    Vectors point from the centre to the neighbour's periodic image; in cells wider than twice
    the cut-off these are the minimum-image vectors.
    """
    from matscipy.neighbours import neighbour_list

    if atoms.pbc.any():
        i, j, d, vec = neighbour_list("ijdD", atoms, cutoff)
        out = {}
        for c in centres:
            sel = i == c
            out[int(c)] = (j[sel], d[sel], vec[sel])
        return out
    out = {}
    for c in centres:
        vec = atoms.positions - atoms.positions[c]
        d = np.linalg.norm(vec, axis=1)
        sel = (d < cutoff) & (np.arange(len(atoms)) != c)
        out[int(c)] = (np.flatnonzero(sel), d[sel], vec[sel])
    return out


def _side_view(vectors: np.ndarray) -> np.ndarray:
    """Rotation that looks along the carbon around a Na: the sheet normal points up the image.

    The principal axes of the carbon vectors (SVD) give the largest spread (image x), the
    smallest, i.e. a sheet's normal (image y), and the middle one (depth).
    """
    if len(vectors) < 3:
        return np.eye(3)
    _, _, vt = np.linalg.svd(vectors - vectors.mean(axis=0), full_matrices=True)
    rotation = np.column_stack([vt[0], vt[2], vt[1]])
    if np.linalg.det(rotation) < 0:
        rotation[:, 2] *= -1
    return rotation


def environment_figure(
    workdir: str | Path | None,
    state: int | Atoms | None = None,
    radius: float = 5.0,
    rules: SiteRules | None = None,
    seed: int = 0,
) -> Figure:
    """The neighbourhood of one example Na of each site class (the study's Figure 5).

    For each class present in the state one Na is drawn at random (``seed``) and shown with
    every atom within ``radius`` of it, unwrapped around it (periodic-image vectors), seen side
    on to the nearby carbon.  The centre Na is drawn larger with a thick black edge; carbon
    within ``r_contact`` (2.7 Å) is dark grey, within ``r_shell`` (3.5 Å) mid grey, farther
    light grey; other Na are coloured by their class.  Dashed circles mark ``r_contact`` and
    ``r_shell`` (the projected spheres).  Each title gives the Na's index, its Na–C counts within
    ``r_contact`` and ``r_shell`` and its Na–Na count within ``r_na_na`` (3.9 Å).  A class with no
    Na in the state gets a panel that says it is absent.

    Parameters
    ----------
    workdir : str or Path or None
        Workdir of a sodiation run (None only when ``state`` is a structure).
    state : int or ase.Atoms, optional
        Iteration to draw (default: the last one), or a structure; its per-atom ``site`` array
        is used when present, else its Na are classified with ``rules``.
    radius : float
        Radius of the neighbourhood drawn (Å).
    rules : SiteRules, optional
        Cut-offs of the counts (default :class:`SiteRules`: 2.7, 3.5 and 3.9 Å).
    seed : int
        Seed of the choice of the example Na.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not radius > 0:
        raise InputError(f"neighbourhood radius {radius} Å is not positive")
    rules = SiteRules() if rules is None else rules
    atoms, labels, name, capacity = _load_state(workdir, state, rules)
    na = np.flatnonzero(atoms.numbers == 11)
    rng = np.random.default_rng(seed)
    chosen = {}
    for site in SITE_CLASSES:
        members = na[labels[na] == site]
        if members.size:
            chosen[site] = int(rng.choice(members))
    # the counts in the titles are the classifier's own descriptors, not a second count
    counts = classify_sites(atoms, rules) if chosen else None
    position = {int(k): n for n, k in enumerate(counts.na_indices)} if counts else {}
    neighbours = _neighbours(atoms, np.array(list(chosen.values()), dtype=int), radius)

    fig = Figure(figsize=(4.0 * len(SITE_CLASSES), 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(SITE_CLASSES))
    absent = [site for site in SITE_CLASSES if site not in chosen]
    for ax, site in zip(axes, SITE_CLASSES, strict=True):
        if site not in chosen:
            ax.set_axis_off()
            ax.set_title(f"{site}: absent", fontsize=10)
            ax.text(0.5, 0.5, f"no {site} Na\nin {name}", ha="center", va="center",
                    transform=ax.transAxes, fontsize=10, color=SITE_COLOURS[site])
            continue
        centre = chosen[site]
        index, dist, vec = neighbours[centre]
        is_c = atoms.numbers[index] == 6
        is_na = atoms.numbers[index] == 11
        n_contact = int(counts.n_c_contact[position[centre]])
        n_shell = int(counts.n_c_shell[position[centre]])
        n_na_na = int(counts.n_na_neighbours[position[centre]])
        local = Atoms(numbers=np.concatenate([[11], atoms.numbers[index]]),
                      positions=np.vstack([np.zeros((1, 3)), vec]))
        colours = [SITE_COLOURS[site]]
        for k, d in zip(index, dist, strict=True):
            if atoms.numbers[k] == 6:
                colours.append("0.15" if d < rules.r_contact
                               else "0.45" if d < rules.r_shell else "0.78")
            elif atoms.numbers[k] == 11:
                colours.append(SITE_COLOURS.get(str(labels[k]), _UNCLASSIFIED_COLOUR))
            else:
                colours.append(_OTHER_COLOUR)
        radii = np.concatenate([[1.0], np.where(is_na, 0.7, 0.4)])
        centre_mask = np.zeros(len(local), dtype=bool)
        centre_mask[0] = True
        origin = _draw_atoms(ax, local, colours, radii,
                             [(~centre_mask, "0.1", 0.3), (centre_mask, "black", 2.0)],
                             rotation=_side_view(vec[is_c]), show_cell=False)
        # the same frame for every Na: the whole sphere of radius `radius` around the centre
        half = radius + 1.2
        _frame(ax, -origin - half, -origin + half)
        for r, style, angle in ((rules.r_contact, "--", 0.25 * np.pi),
                                (rules.r_shell, ":", -0.25 * np.pi)):
            ax.add_patch(Circle(tuple(-origin), r, fill=False, ls=style, lw=0.9, color="0.2",
                                zorder=5))
            ax.annotate(f"{r:g} Å", tuple(-origin + r * np.array([np.cos(angle), np.sin(angle)])),
                        fontsize=7, color="0.2", zorder=6,
                        bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0, "pad": 0.5})
        ax.set_title(
            f"{site}: Na {centre}\n"
            f"Na–C: {n_contact} within {rules.r_contact:g} Å, "
            f"{n_shell} within {rules.r_shell:g} Å\n"
            f"Na–Na: {n_na_na} within {rules.r_na_na:g} Å",
            fontsize=9, color=SITE_COLOURS[site])
    title = (f"Na environments in {name}: {na.size} Na, {capacity:.0f} mAh/g; "
             f"atoms within {radius:g} Å")
    if absent:
        title += "\nabsent in this state: " + ", ".join(absent)
    fig.suptitle(title, fontsize=10)
    shades = [Patch(facecolor=c, edgecolor="0.1", label=text) for c, text in (
        ("0.15", f"C within {rules.r_contact:g} Å"),
        ("0.45", f"C within {rules.r_shell:g} Å"),
        ("0.78", "C farther"),
    )]
    centre = Patch(facecolor="white", edgecolor="black", linewidth=2.0, label="centre Na")
    others = [Patch(color=SITE_COLOURS[k], label=f"{k} Na") for k in SITE_CLASSES]
    fig.legend(handles=[centre, *shades, *others], loc="outside lower center", ncol=7,
               fontsize=8)
    return fig


# -- Figure 7 ----------------------------------------------------------------------------------
def site_distribution_figure(
    workdir: str | Path | None,
    state: int | Atoms | None = None,
    rules: SiteRules | None = None,
    slab: float | None = None,
) -> Figure:
    """Where the Na of a state sit and how many are in each class (the study's Figure 7).

    Left: the whole cell seen down z, carbon small and grey, every Na above it coloured by its
    site class.  Right: the Na count of each class with the numbers on the bars.  When the
    state holds 700 Na within 10 % (the study's overcharged state), the study's counts (340
    adsorption, 223 intercalation, 137 filling) are drawn beside them as hatched bars.

    Parameters
    ----------
    workdir : str or Path or None
        Workdir of a sodiation run (None only when ``state`` is a structure).
    state : int or ase.Atoms, optional
        Iteration to draw (default: the last, i.e. the overcharged, one), or a structure; its
        ``site`` array is used when present, else its Na are classified with ``rules``.
    rules : SiteRules, optional
        Classification rules for a structure without ``site`` labels.
    slab : float, optional
        Draw only the atoms of a slab this thick (Å), parallel to the cell's a-b plane,
        through the middle of the cell; the bar chart always counts every Na.

    Returns
    -------
    matplotlib.figure.Figure
    """
    atoms, labels, name, capacity = _load_state(workdir, state, rules)
    counts = _counts(atoms, labels)
    n_na = sum(counts.values())
    fig = Figure(figsize=(11.0, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=(1.15, 1.0))
    _overview(left, atoms, labels, slab)
    left.set_title(f"{name}: {n_na} Na, {capacity:.0f} mAh/g", fontsize=10)
    left.legend(handles=_site_handles(counts), loc="upper center", bbox_to_anchor=(0.5, 0.0),
                ncol=2, fontsize=8, frameon=False)

    names = list(counts)
    values = [counts[k] for k in names]
    colours = [SITE_COLOURS.get(k, _UNCLASSIFIED_COLOUR) for k in names]
    x = np.arange(len(names), dtype=float)
    reference = abs(n_na - STUDY_OVERCHARGE_NA) <= REFERENCE_MARGIN * STUDY_OVERCHARGE_NA
    width = 0.4 if reference else 0.6
    shift = width / 2 if reference else 0.0
    bars = right.bar(x - shift, values, width, color=colours, label="this run")
    right.bar_label(bars, labels=[f"{v}" if v else "0 (absent)" for v in values], fontsize=9)
    if reference:
        study = [STUDY_OVERCHARGE_COUNTS.get(k, 0) for k in names]
        ref_bars = right.bar(x + shift, study, width, facecolor="white", edgecolor=colours,
                             hatch="//", label=f"study, {STUDY_OVERCHARGE_NA} Na")
        right.bar_label(ref_bars, labels=[str(v) for v in study], fontsize=9, color="0.3")
        right.legend(fontsize=8)
    else:
        right.text(0.98, 0.98, f"study reference ({STUDY_OVERCHARGE_NA} Na) not shown:\n"
                   f"this state holds {n_na} Na", transform=right.transAxes, ha="right",
                   va="top", fontsize=8, color="0.4")
    right.set_xticks(x, names)
    right.set_ylabel("Number of Na")
    right.set_ylim(0, max([*values, 1] + ([max(STUDY_OVERCHARGE_COUNTS.values())]
                                          if reference else [])) * 1.18)
    right.set_title("Na per storage site", fontsize=10)
    return fig


def write_figures(workdir: str | Path) -> dict[str, Path]:
    """Write every figure of a run into ``workdir``, each atomically.

    ``voltage.png`` (Fig. 6), ``site_fractions.png``, ``snapshots.png`` (Fig. 4, every 2
    iterations), ``environments.png`` (Fig. 5, last state) and ``site_distribution.png``
    (Fig. 7, last state).

    Parameters
    ----------
    workdir : str or Path
        Workdir of a sodiation run with at least one sodiated state.

    Returns
    -------
    dict
        File name to path of each figure written.
    """
    workdir = Path(workdir)
    figures = {
        "voltage.png": voltage_figure,
        "site_fractions.png": site_fraction_figure,
        "snapshots.png": snapshot_figure,
        "environments.png": environment_figure,
        "site_distribution.png": site_distribution_figure,
    }
    return {name: _save(draw(workdir), workdir / name) for name, draw in figures.items()}
