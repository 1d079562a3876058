"""Structure characterisation of hard-carbon models: density, bonding, rings, RDFs, XRD, pores."""

from hardcarbon.analysis.pores import VDW_RADII, pore_analysis
from hardcarbon.analysis.rdf import first_peak, partial_rdf, rdf_set
from hardcarbon.analysis.report import AnalyzeConfig, analyze_structure, write_analysis
from hardcarbon.analysis.rings import ring_statistics
from hardcarbon.analysis.structure import (
    coordination_numbers,
    density,
    hybridisation,
    min_distance,
    shortest_by_pair,
)
from hardcarbon.analysis.xrd import (
    CROMER_MANN,
    CU_KALPHA,
    form_factor,
    pair_histograms,
    xrd_002_peak,
    xrd_pattern,
)

__all__ = [
    "CROMER_MANN",
    "CU_KALPHA",
    "VDW_RADII",
    "AnalyzeConfig",
    "analyze_structure",
    "coordination_numbers",
    "density",
    "first_peak",
    "form_factor",
    "hybridisation",
    "min_distance",
    "pair_histograms",
    "partial_rdf",
    "pore_analysis",
    "rdf_set",
    "ring_statistics",
    "shortest_by_pair",
    "write_analysis",
    "xrd_002_peak",
    "xrd_pattern",
]
