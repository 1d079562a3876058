"""One-call structure analysis: options, JSON summary and figures."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import ConfigDict, Field, model_validator

from hardcarbon.analysis._checks import require_atoms, require_element, require_periodic
from hardcarbon.analysis.pores import pore_analysis
from hardcarbon.analysis.rdf import first_peak, rdf_set
from hardcarbon.analysis.rings import ring_statistics
from hardcarbon.analysis.structure import density, hybridisation, min_distance
from hardcarbon.analysis.xrd import CU_KALPHA, xrd_002_peak, xrd_pattern
from hardcarbon.settings import Settings
from hardcarbon.storage import atomic_write, write_json

_DPI = 150


class AnalyzeConfig(Settings):
    """Options of :func:`analyze_structure`; lengths in Å, angles in degrees.

    Invalid or unknown options raise :class:`InputError` (not pydantic's ``ValidationError``),
    both from the constructor and from :meth:`model_validate`.
    """

    model_config = ConfigDict(frozen=True)

    cutoff: float = Field(1.85, gt=0, description="C–C bond cutoff (Å)")
    max_ring: int = Field(12, ge=3, le=40, description="largest ring size searched for")
    rdf_rmax: float = Field(8.0, gt=0, description="RDF range (Å)")
    rdf_dr: float = Field(0.02, gt=0, description="RDF bin width (Å)")
    xrd_wavelength: float = Field(CU_KALPHA, gt=0, description="X-ray wavelength (Å)")
    xrd_two_theta_min: float = Field(10.0, gt=0, lt=180, description="first 2θ (degrees)")
    xrd_two_theta_max: float = Field(80.0, gt=0, lt=180, description="last 2θ (degrees)")
    xrd_step: float = Field(0.02, gt=0, description="2θ step (degrees)")
    xrd_r_max: float = Field(30.0, gt=0, description="pair-distance range of the Debye sum (Å)")
    xrd_dr: float = Field(0.01, gt=0, description="pair-distance bin of the Debye sum (Å)")
    xrd_window: Literal["sphere", "lorch", "none"] = Field(
        "sphere", description="damping window of the Debye sum")
    xrd_002_window: tuple[float, float] = Field(
        (15.0, 35.0), description="2θ range holding the (002) peak (degrees)")
    probe_radius: float = Field(1.0, gt=0, description="pore probe radius (Å)")
    grid_spacing: float = Field(0.5, gt=0, description="pore grid spacing (Å)")
    psd_bin: float = Field(0.5, gt=0, description="pore-diameter bin width (Å)")

    @model_validator(mode="after")
    def _check_ranges(self) -> AnalyzeConfig:
        if self.xrd_two_theta_min >= self.xrd_two_theta_max:
            raise ValueError(f"xrd_two_theta_min={self.xrd_two_theta_min} must be below "
                             f"xrd_two_theta_max={self.xrd_two_theta_max}")
        if self.xrd_002_window[0] >= self.xrd_002_window[1]:
            raise ValueError(f"xrd_002_window={list(self.xrd_002_window)} must be (low, high) "
                             "in degrees, low < high")
        if self.rdf_dr >= self.rdf_rmax or self.xrd_dr >= self.xrd_r_max:
            raise ValueError("distance bins (rdf_dr, xrd_dr) must be smaller than their ranges "
                             "(rdf_rmax, xrd_r_max)")
        return self


def _compute(atoms: Atoms, config: AnalyzeConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON summary and the arrays behind the figures."""
    require_atoms(atoms, "structure analysis")
    require_element(atoms, "C", "structure analysis")
    volume = require_periodic(atoms, "structure analysis")
    symbols = atoms.get_chemical_symbols()

    rdfs = rdf_set(atoms, config.rdf_rmax, config.rdf_dr)
    two_theta, intensity = xrd_pattern(
        atoms, config.xrd_wavelength, (config.xrd_two_theta_min, config.xrd_two_theta_max),
        config.xrd_step, config.xrd_r_max, config.xrd_dr, config.xrd_window)
    peak = xrd_002_peak(two_theta, intensity, config.xrd_002_window, config.xrd_wavelength)
    rings = ring_statistics(atoms, config.cutoff, config.max_ring)
    pores = pore_analysis(atoms, config.probe_radius, config.grid_spacing, config.psd_bin)

    summary = {
        "n_atoms": len(atoms),
        "formula": atoms.get_chemical_formula(),
        "composition": dict(sorted(Counter(symbols).items())),
        "cell_volume": volume,
        "density": density(atoms),
        "hybridisation": hybridisation(atoms, config.cutoff),
        "rings": rings,
        "rdf_first_peaks": {name: first_peak(r, g) for name, (r, g) in rdfs.items()},
        "min_cc_distance": min_distance(atoms, "C", "C", config.rdf_rmax),
        "xrd_002": peak,
        "pores": {key: _plain(value) for key, value in pores.items()},
        "units": {"length": "Å", "volume": "Å^3", "density": "g/cm^3", "angle": "degrees",
                  "xrd_intensity": "electrons^2 per atom", "fractions": "of the cell volume"},
        "config": config.model_dump(mode="json"),
    }
    arrays = {"xrd": (two_theta, intensity), "rdfs": rdfs}
    return summary, arrays


def _plain(value: Any) -> Any:
    """Numpy arrays and scalars (also inside dicts) as plain Python values."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value


def analyze_structure(atoms: Atoms, config: AnalyzeConfig | None = None) -> dict[str, Any]:
    """Characterise a periodic carbon (or sodiated carbon) model.

    Parameters
    ----------
    atoms
        Structure containing carbon, periodic along all three axes; the pore analysis needs an
        orthorhombic cell.
    config
        Options (default :class:`AnalyzeConfig`).

    Returns
    -------
    dict
        JSON-able summary: ``n_atoms``, ``formula``, ``composition``, ``cell_volume`` (Å³),
        ``density`` (g/cm³), ``hybridisation`` (see :func:`hybridisation`), ``rings`` (ring size →
        count), ``rdf_first_peaks`` (Å, for C-C, Na-C, Na-Na where present), ``min_cc_distance``
        (Å, None if no C–C pair within ``rdf_rmax``), ``xrd_002`` (see :func:`xrd_002_peak`),
        ``pores`` (see :func:`pore_analysis`), ``units`` and ``config``.
    """
    return _compute(atoms, config or AnalyzeConfig())[0]


def write_analysis(atoms: Atoms, outdir: str | Path, config: AnalyzeConfig | None = None
                   ) -> dict[str, Any]:
    """Analyse a structure and write ``analysis.json`` and four PNG figures to ``outdir``.

    Parameters
    ----------
    atoms
        Structure, as for :func:`analyze_structure`.
    outdir
        Output directory (created if missing).
    config
        Options (default :class:`AnalyzeConfig`).

    Returns
    -------
    dict
        The summary of :func:`analyze_structure` plus ``files``: the paths written
        (``analysis.json``, ``xrd.png``, ``rdf.png``, ``rings.png``, ``pores.png``).
    """
    summary, arrays = _compute(atoms, config or AnalyzeConfig())
    outdir = Path(outdir)
    figures = {
        "xrd.png": _xrd_figure(*arrays["xrd"], summary["xrd_002"],
                               summary["config"]["xrd_wavelength"]),
        "rdf.png": _rdf_figure(arrays["rdfs"]),
        "rings.png": _rings_figure(summary["rings"]),
        "pores.png": _pores_figure(summary["pores"], summary["config"]["psd_bin"]),
    }
    files = {}
    for name, fig in figures.items():
        files[name] = str(atomic_write(outdir / name, lambda tmp, fig=fig: fig.savefig(
            tmp, format="png", dpi=_DPI)))
    files["analysis.json"] = str(outdir / "analysis.json")
    summary["files"] = files
    write_json(outdir / "analysis.json", summary)
    return summary


def _figure(width: float = 6.0, height: float = 4.0) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _xrd_figure(two_theta: np.ndarray, intensity: np.ndarray, peak: dict[str, Any],
                wavelength: float) -> Figure:
    fig, ax = _figure()
    ax.plot(two_theta, intensity, color="black", lw=1.0)
    ax.set_xlabel(f"2θ (degrees, λ = {wavelength:.4f} Å)")
    ax.set_ylabel("Intensity (electron units per atom)")
    ax.set_xlim(two_theta[0], two_theta[-1])
    if peak["two_theta_deg"] is not None:
        position = peak["two_theta_deg"]
        ax.axvline(position, color="tab:red", ls="--", lw=0.8)
        lines = [f"(002)  2θ = {position:.2f}°", f"d002 = {peak['d002_angstrom']:.3f} Å"]
        if peak["fwhm_deg"] is not None:
            lines += [f"FWHM = {peak['fwhm_deg']:.2f}°", f"Lc = {peak['lc_angstrom']:.1f} Å"]
        ax.text(0.98, 0.97, "\n".join(lines), transform=ax.transAxes, ha="right", va="top",
                fontsize=9, color="tab:red")
    return fig


def _rdf_figure(rdfs: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    fig, ax = _figure()
    for name, (r, g) in rdfs.items():
        ax.plot(r, g, lw=1.0, label=name.replace("-", "–"))
    ax.axhline(1.0, color="grey", lw=0.5, ls=":")
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.legend(frameon=False)
    return fig


def _rings_figure(rings: dict[int, int]) -> Figure:
    fig, ax = _figure()
    sizes = list(rings)
    counts = [rings[size] for size in sizes]
    ax.bar(sizes, counts, color="tab:blue")
    ax.set_xticks(sizes)
    ax.set_xlabel("Ring size (atoms)")
    ax.set_ylabel("Number of shortest-path rings")
    return fig


def _pores_figure(pores: dict[str, Any], bin_width: float) -> Figure:
    fig, ax = _figure()
    diameter = np.asarray(pores["psd"]["diameter"])
    fraction = 100.0 * np.asarray(pores["psd"]["volume_fraction"])
    ax.bar(diameter, fraction, width=0.9 * bin_width, color="tab:green")
    ax.set_xlabel("Pore diameter (Å)")
    ax.set_ylabel("Volume (% of cell)")
    ax.text(0.98, 0.97,
            f"porosity {100 * pores['porosity']:.2f}%\n"
            f"accessible ({pores['probe_radius']:g} Å probe) "
            f"{100 * pores['accessible_porosity']:.2f}%\n"
            f"largest pore {pores['largest_pore_diameter']:.2f} Å",
            transform=ax.transAxes, ha="right", va="top", fontsize=9)
    return fig
