"""Figures of a sodiation run: the voltage curve with per-Na points (Fig. 6) and site fractions.

Both read the tables that :func:`hardcarbon.sodiation.run.sodiate` writes in its workdir
(``sodiation.csv`` and ``na_voltages.csv``), so they can be redrawn at any time, also while a
run is still going.  Colours follow the study: blue adsorption, green intercalation, red
filling.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hardcarbon.electrochem import voltage_profile
from hardcarbon.errors import InputError
from hardcarbon.sodiation.sites import SITE_CLASSES
from hardcarbon.storage import atomic_write

#: Colour of each site class (the study's Figure 6).
SITE_COLOURS: dict[str, str] = {
    "adsorption": "tab:blue",
    "intercalation": "tab:green",
    "filling": "tab:red",
}

_DPI = 150


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
                       label=f"{site} ({len(xs)})", linewidths=0)

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


def write_figures(workdir: str | Path) -> dict[str, Path]:
    """Write ``voltage.png`` and ``site_fractions.png`` into ``workdir`` (atomically).

    Returns
    -------
    dict
        File name to path of each figure written.
    """
    workdir = Path(workdir)
    return {
        "voltage.png": _save(voltage_figure(workdir), workdir / "voltage.png"),
        "site_fractions.png": _save(site_fraction_figure(workdir),
                                    workdir / "site_fractions.png"),
    }
