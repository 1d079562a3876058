"""Force fields: classical carbon potentials in LAMMPS and NEP models through calorine."""

from hardcarbon.forcefield.carbon import CARBON_POTENTIALS, CarbonPotential, carbon_potential
from hardcarbon.forcefield.families import (
    DEFAULT_COUNTS,
    FAMILIES,
    DatasetConfig,
    check_structure,
    fullerene,
    generate_dataset,
    generate_family,
)
from hardcarbon.forcefield.lammps import load_lammps
from hardcarbon.forcefield.learning import ExploreConfig, LearnConfig, learn

__all__ = [
    "CARBON_POTENTIALS",
    "DEFAULT_COUNTS",
    "FAMILIES",
    "CarbonPotential",
    "DatasetConfig",
    "ExploreConfig",
    "LearnConfig",
    "carbon_potential",
    "check_structure",
    "fullerene",
    "generate_dataset",
    "generate_family",
    "learn",
    "load_lammps",
]
