"""Structure analysis on structures with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, graphene, make_supercell
from ase.lattice.hexagonal import Graphite

from hardcarbon.analysis import (
    AnalyzeConfig,
    analyze_structure,
    coordination_numbers,
    density,
    first_peak,
    form_factor,
    hybridisation,
    partial_rdf,
    pore_analysis,
    rdf_set,
    ring_statistics,
    write_analysis,
    xrd_002_peak,
    xrd_pattern,
)
from hardcarbon.errors import InputError

CU_KALPHA = 1.5406


def graphite() -> Atoms:
    """AB (Bernal) graphite, a = 2.46 Å, c = 6.70 Å, hexagonal 4-atom cell."""
    return Graphite("C", latticeconstant={"a": 2.46, "c": 6.70}, size=(1, 1, 1))


def graphite_orthorhombic() -> Atoms:
    """The same graphite in an orthorhombic 8-atom cell (a, √3 a, c)."""
    return make_supercell(graphite(), [[1, 0, 0], [1, 2, 0], [0, 0, 1]])


def graphene_sheet(c: float = 10.0) -> Atoms:
    """Orthorhombic periodic graphene, 4-atom cell (2.46 × 4.26 Å), sheets ``c`` Å apart."""
    sheet = graphene(a=2.46)
    sheet.cell[2, 2] = c
    sheet.pbc = True
    return make_supercell(sheet, [[1, 0, 0], [1, 2, 0], [0, 0, 1]])


def lens_union(radius: float, d: float) -> float:
    """Volume (Å³) of the union of two spheres of ``radius`` whose centres are ``d`` apart."""
    lens = math.pi * (4 * radius + d) * (2 * radius - d) ** 2 / 12
    return 2 * 4 / 3 * math.pi * radius**3 - lens


def sparse_box() -> Atoms:
    """A C2 dimer (1.42 Å) and a lone C atom in a 12 Å periodic cube."""
    return Atoms("C3", positions=[[2, 3, 3], [3.42, 3, 3], [9, 9, 9]], cell=[12, 12, 12],
                 pbc=True)


# -- density, coordination, rings ---------------------------------------------------------------

def test_density_of_graphite():
    # 4 C (12.011 u) in a*a*sin(120°)*c
    volume = 2.46**2 * math.sqrt(3) / 2 * 6.70
    expected = 4 * 12.011 * 1.66053906660 / volume
    assert density(graphite()) == pytest.approx(expected, rel=1e-4)
    assert density(graphite()) == pytest.approx(2.27, abs=0.01)


def test_diamond_is_all_sp3():
    hyb = hybridisation(bulk("C", "diamond", a=3.567))
    assert hyb["sp3"] == 1.0
    assert hyb["sp"] == hyb["sp2"] == hyb["other"] == 0.0
    assert hyb["mean_cn"] == 4.0


def test_graphene_is_sp2_with_only_six_rings():
    sheet = graphene_sheet().repeat((4, 2, 1))  # 32 atoms, ~9.8 × 8.5 Å
    assert hybridisation(sheet)["sp2"] == 1.0
    rings = ring_statistics(sheet)
    assert rings[6] == len(sheet) // 2  # one hexagon per two atoms
    assert all(count == 0 for size, count in rings.items() if size != 6)
    assert set(rings) == set(range(3, 13))


def test_coordination_ignores_sodium_and_clusters_work_without_cell():
    dimer = Atoms("C2Na", positions=[[0, 0, 0], [1.4, 0, 0], [0.7, 1.0, 0]])
    assert coordination_numbers(dimer).tolist() == [1, 1]


# -- RDF -----------------------------------------------------------------------------------------

def test_bcc_sodium_first_peak():
    a = 4.23
    r, g = partial_rdf(bulk("Na", "bcc", a=a), "Na", "Na", rmax=8.0, dr=0.02)
    assert first_peak(r, g) == pytest.approx(math.sqrt(3) / 2 * a, abs=0.04)


def test_rdf_of_ideal_gas_tends_to_one():
    rng = np.random.default_rng(1)
    box = 30.0
    gas = Atoms("C1000Na500", positions=rng.random((1500, 3)) * box, cell=[box] * 3, pbc=True)
    for a, b in (("C", "C"), ("Na", "C"), ("Na", "Na")):
        r, g = partial_rdf(gas, a, b, rmax=8.0, dr=0.05)
        assert np.mean(g[r > 3.0]) == pytest.approx(1.0, abs=0.03), (a, b)
    np.testing.assert_allclose(partial_rdf(gas, "C", "Na")[1], partial_rdf(gas, "Na", "C")[1])
    assert set(rdf_set(gas)) == {"C-C", "Na-C", "Na-Na"}
    assert set(rdf_set(graphite())) == {"C-C"}


def test_graphite_first_cc_peak():
    r, g = partial_rdf(graphite(), rmax=5.0, dr=0.01)
    assert first_peak(r, g) == pytest.approx(2.46 / math.sqrt(3), abs=0.02)


# -- XRD -----------------------------------------------------------------------------------------

def test_form_factors_at_zero_angle_equal_electron_count():
    assert form_factor("C", 0.0) == pytest.approx(6.0, abs=0.01)
    assert form_factor("Na", 0.0) == pytest.approx(11.0, abs=0.01)
    assert form_factor("C", 4.0) < form_factor("C", 1.0) < 6.0


def test_graphite_002_peak():
    two_theta, intensity = xrd_pattern(graphite())
    assert two_theta[0] == pytest.approx(10.0) and two_theta[-1] == pytest.approx(80.0)
    assert np.all(intensity > 0)  # spherical-grain window: no negative lobes
    peak = xrd_002_peak(two_theta, intensity)
    assert peak["two_theta_deg"] == pytest.approx(26.5, abs=0.2)
    assert peak["d002_angstrom"] == pytest.approx(3.35, abs=0.03)
    # the (002) reflection dominates the pattern and (100)/(101) appear near 42-45°
    assert intensity.max() == pytest.approx(np.interp(peak["two_theta_deg"], two_theta, intensity),
                                            rel=0.02)
    # Scherrer: the 30 Å pair range limits L_c to ~0.8 r_max; check the formula itself
    theta = math.radians(peak["two_theta_deg"] / 2)
    beta = math.radians(peak["fwhm_deg"])
    assert peak["lc_angstrom"] == pytest.approx(0.89 * CU_KALPHA / (beta * math.cos(theta)))
    assert 15.0 < peak["lc_angstrom"] < 30.0


def test_002_peak_of_synthetic_gaussian():
    two_theta = np.arange(10.0, 40.0, 0.01)
    sigma = 2.0
    intensity = 5.0 + 0.1 * two_theta + 100 * np.exp(-0.5 * ((two_theta - 24.0) / sigma) ** 2)
    peak = xrd_002_peak(two_theta, intensity, window=(12.0, 36.0))
    assert peak["two_theta_deg"] == pytest.approx(24.0, abs=0.01)
    assert peak["fwhm_deg"] == pytest.approx(2 * math.sqrt(2 * math.log(2)) * sigma, rel=0.01)
    assert peak["d002_angstrom"] == pytest.approx(CU_KALPHA / (2 * math.sin(math.radians(12))))
    flat = xrd_002_peak(two_theta, np.ones_like(two_theta))
    assert flat["two_theta_deg"] is None and flat["lc_angstrom"] is None


def test_bcc_sodium_110_peak():
    a = 4.23
    two_theta, intensity = xrd_pattern(bulk("Na", "bcc", a=a), two_theta_range=(20, 40))
    bragg = 2 * math.degrees(math.asin(CU_KALPHA / (2 * a / math.sqrt(2))))  # (110), 29.85°
    assert two_theta[np.argmax(intensity)] == pytest.approx(bragg, abs=0.3)


def brute_force_debye(atoms: Atoms, two_theta: np.ndarray, r_max: float) -> np.ndarray:
    """Reference: the same windowed, density-subtracted Debye sum over individual pairs (ASE's
    neighbour list, unbinned distances) with the continuum term integrated numerically."""
    from ase.neighborlist import neighbor_list

    q = 4 * np.pi * np.sin(np.radians(two_theta) / 2) / CU_KALPHA
    i, j, d = neighbor_list("ijd", atoms, r_max)
    x = d / r_max
    weight = 1 - 1.5 * x + 0.5 * x**3
    symbols = np.array(atoms.get_chemical_symbols())
    f = {el: form_factor(el, q) for el in set(symbols)}
    intensity = sum(f[el] ** 2 for el in symbols)
    for a in f:
        for b in f:
            pick = (symbols[i] == a) & (symbols[j] == b)
            intensity = intensity + f[a] * f[b] * (
                np.sinc(np.outer(q, d[pick]) / np.pi) @ weight[pick])
            r = np.linspace(1e-6, r_max, 20001)
            xr = r / r_max
            shell = 4 * np.pi * r**2 * (1 - 1.5 * xr + 0.5 * xr**3)
            kernel = shell * np.sinc(np.outer(q, r) / np.pi)
            density_b = np.count_nonzero(symbols == b) / atoms.get_volume()
            intensity = intensity - f[a] * f[b] * np.count_nonzero(symbols == a) * density_b * (
                np.trapezoid(kernel, r, axis=1))
    return intensity / len(atoms)


def test_xrd_matches_brute_force_debye_sum_with_sodium():
    atoms = graphite_orthorhombic().repeat((2, 1, 1))
    atoms += Atoms("Na2", positions=[[1.23, 2.13, 1.675], [3.69, 0.0, 5.025]])
    atoms.rattle(0.05, seed=3)
    two_theta, intensity = xrd_pattern(atoms, two_theta_range=(10, 80), step=0.5, r_max=12.0)
    reference = brute_force_debye(atoms, two_theta, 12.0)
    np.testing.assert_allclose(intensity, reference, atol=0.006 * reference.max())


# -- pores ---------------------------------------------------------------------------------------

def test_porosity_of_sparse_box_matches_geometry():
    box = sparse_box()
    volume = 12.0**3
    result = pore_analysis(box, probe_radius=1.0, grid_spacing=0.25)
    occupied = lens_union(1.70, 1.42) + 4 / 3 * math.pi * 1.70**3
    excluded = lens_union(2.70, 1.42) + 4 / 3 * math.pi * 2.70**3
    assert result["porosity"] == pytest.approx(1 - occupied / volume, abs=3e-4)
    # grid counting error on a 2.7 Å sphere at 0.25 Å spacing is ~1% of its volume
    assert result["accessible_porosity"] == pytest.approx(1 - excluded / volume, abs=1.5e-3)
    assert result["accessible_porosity"] < result["probe_occupiable_porosity"]
    assert result["probe_occupiable_porosity"] <= result["porosity"]
    assert sum(result["psd"]["volume_fraction"]) == pytest.approx(result["porosity"])


def test_slit_pore_size_distribution():
    c = 12.0
    slit = graphene_sheet(c).repeat((2, 1, 1))
    result = pore_analysis(slit, probe_radius=1.0, grid_spacing=0.25, psd_bin=0.5)
    # the widest sphere sits midway between the sheets above a hexagon centre
    widest = 2 * (math.hypot(c / 2, 1.42) - 1.70)
    assert result["largest_pore_diameter"] == pytest.approx(widest, abs=0.02)
    diameter = np.asarray(result["psd"]["diameter"])
    fraction = np.asarray(result["psd"]["volume_fraction"])
    assert fraction[diameter > widest - 1.0].sum() > 0.85 * result["porosity"]


def test_graphite_has_no_room_for_a_probe():
    result = pore_analysis(graphite_orthorhombic().repeat((2, 1, 1)), probe_radius=1.5)
    assert result["accessible_porosity"] == 0.0
    assert result["probe_occupiable_porosity"] == 0.0
    assert 0.0 < result["porosity"] < 0.1
    assert result["largest_pore_diameter"] < 1.5


# -- summary and files ---------------------------------------------------------------------------

def sodiated_carbon() -> Atoms:
    """AA-stacked graphene sheets 4.6 Å apart (96 C) with 2 Na above hexagon centres."""
    host = graphene_sheet(4.6).repeat((3, 2, 4))
    host += Atoms("Na2", positions=[[0.0, 1.42, 2.3], [3.69, 3.55, 2.3]])
    return host


def test_analyze_structure_summary_is_json(tmp_path):
    config = AnalyzeConfig(grid_spacing=0.5, max_ring=8)
    summary = write_analysis(sodiated_carbon(), tmp_path, config)
    assert summary["n_atoms"] == 98
    assert summary["composition"] == {"C": 96, "Na": 2}
    assert summary["hybridisation"]["sp2"] == 1.0
    assert summary["rings"][6] == 48
    assert set(summary["rdf_first_peaks"]) == {"C-C", "Na-C", "Na-Na"}
    assert summary["rdf_first_peaks"]["C-C"] == pytest.approx(1.42, abs=0.02)
    assert summary["rdf_first_peaks"]["Na-C"] == pytest.approx(math.hypot(2.3, 1.42), abs=0.03)
    assert summary["rdf_first_peaks"]["Na-Na"] == pytest.approx(math.hypot(3.69, 2.13), abs=0.03)
    assert summary["min_cc_distance"] == pytest.approx(1.42, abs=0.01)
    assert summary["xrd_002"]["d002_angstrom"] == pytest.approx(4.6, abs=0.1)
    assert 0 < summary["pores"]["porosity"] < 1
    written = json.loads((tmp_path / "analysis.json").read_text())
    assert written["density"] == pytest.approx(summary["density"])
    json.dumps(summary, allow_nan=False)
    for name in ("xrd.png", "rdf.png", "rings.png", "pores.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "analysis.json", "pores.png", "rdf.png", "rings.png", "xrd.png"]


# -- bad input -----------------------------------------------------------------------------------

def _one_line_input_error(call, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize("call", [density, hybridisation, ring_statistics, xrd_pattern,
                                  pore_analysis, analyze_structure, rdf_set])
def test_empty_structure(call):
    assert "empty" in _one_line_input_error(call, Atoms())


def test_structure_without_carbon():
    sodium = bulk("Na", "bcc", a=4.23)
    for call in (hybridisation, coordination_numbers, ring_statistics, analyze_structure):
        assert "needs C atoms" in _one_line_input_error(call, sodium)
    assert "needs C atoms" in _one_line_input_error(partial_rdf, sodium, "C", "C")


def test_bad_pore_options():
    box = sparse_box()
    for radius in (0.0, -1.0, float("nan")):
        assert "probe radius" in _one_line_input_error(pore_analysis, box, probe_radius=radius)
    assert "grid spacing" in _one_line_input_error(pore_analysis, box, grid_spacing=0)
    assert "orthorhombic" in _one_line_input_error(pore_analysis, graphite())
    assert "coarser" in _one_line_input_error(pore_analysis, box, grid_spacing=0.005)


def test_cells_without_volume_or_periodicity():
    cluster = Atoms("C2", positions=[[0, 0, 0], [1.4, 0, 0]])
    assert "volume" in _one_line_input_error(density, cluster)
    assert "periodic" in _one_line_input_error(xrd_pattern, cluster)
    slab = graphite()
    slab.pbc = [True, True, False]
    assert "periodic" in _one_line_input_error(xrd_pattern, slab)
    flat = Atoms("C2", positions=[[0, 0, 0], [1.4, 0, 0]], cell=[5, 5, 0], pbc=True)
    assert "volume" in _one_line_input_error(density, flat)


def test_bad_xrd_input():
    iron = bulk("Fe", "bcc", a=2.87)
    assert "form factor" in _one_line_input_error(xrd_pattern, iron)
    assert "window" in _one_line_input_error(xrd_pattern, graphite(), window="hann")
    assert "2θ range" in _one_line_input_error(xrd_pattern, graphite(), two_theta_range=(50, 20))
    two_theta = np.linspace(10, 80, 50)
    assert "window" in _one_line_input_error(xrd_002_peak, two_theta, two_theta, window=(1, 5))


def test_bad_config():
    assert "probe_radius" in _one_line_input_error(AnalyzeConfig, probe_radius=-1.0)
    assert "unknown setting 'colour'" in _one_line_input_error(AnalyzeConfig, colour=1)
    assert "below" in _one_line_input_error(AnalyzeConfig, xrd_two_theta_min=60,
                                            xrd_two_theta_max=20)
    assert "xrd_step" in _one_line_input_error(AnalyzeConfig.model_validate, {"xrd_step": "x"})
    assert AnalyzeConfig.model_validate({"probe_radius": 1.5}).probe_radius == 1.5
