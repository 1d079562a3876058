"""Force fields: classical carbon potentials in LAMMPS and NEP models through calorine."""

from hardcarbon.forcefield.carbon import CARBON_POTENTIALS, CarbonPotential, carbon_potential
from hardcarbon.forcefield.lammps import load_lammps

__all__ = ["CARBON_POTENTIALS", "CarbonPotential", "carbon_potential", "load_lammps"]
