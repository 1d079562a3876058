"""Structures: random carbon placement and the annealed hard-carbon model."""

from hardcarbon.structures.anneal import AnnealStage, Minimisation
from hardcarbon.structures.build import BuildConfig, build_hard_carbon, default_protocol
from hardcarbon.structures.random_carbon import random_carbon

__all__ = [
    "AnnealStage",
    "BuildConfig",
    "Minimisation",
    "build_hard_carbon",
    "default_protocol",
    "random_carbon",
]
