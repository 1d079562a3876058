"""Electrochemistry of sodiated carbon: formation energies, step voltage curves, capacities."""

from hardcarbon.electrochem.capacity import (
    CARBON_MOLAR_MASS,
    FARADAY,
    ZeroVoltCapacity,
    capacity_at_zero_volt,
    na_fraction,
    specific_capacity,
)
from hardcarbon.electrochem.formation import formation_energy
from hardcarbon.electrochem.reference import sodium_chemical_potential
from hardcarbon.electrochem.voltage import VoltageProfile, voltage_profile

__all__ = [
    "CARBON_MOLAR_MASS",
    "FARADAY",
    "VoltageProfile",
    "ZeroVoltCapacity",
    "capacity_at_zero_volt",
    "formation_energy",
    "na_fraction",
    "sodium_chemical_potential",
    "specific_capacity",
    "voltage_profile",
]
