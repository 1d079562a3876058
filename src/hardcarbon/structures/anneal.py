"""Annealing protocols: a list of MD stages plus a final minimisation, run in LAMMPS or ASE.

Classical carbon potentials run in LAMMPS (fast, OpenMP); NEP models run through calorine's
CPUNEP calculator and ASE's integrators. Both engines read the same :class:`AnnealStage` list,
so a protocol means the same thing whichever potential runs it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms, units
from ase.data import atomic_masses, atomic_numbers
from pydantic import Field, model_validator

from hardcarbon.errors import InputError
from hardcarbon.forcefield.carbon import CarbonPotential
from hardcarbon.settings import Settings

Thermostat = Literal["nose-hoover", "langevin", "berendsen"]


class AnnealStage(Settings):
    """One MD stage: a linear temperature ramp from ``t_start`` to ``t_end`` (K).

    Give either ``duration_ps`` or ``rate_k_per_ps`` (the ramp rate, e.g. a quench rate).
    """

    name: str
    t_start: float = Field(gt=0, description="temperature at the start (K)")
    t_end: float = Field(gt=0, description="temperature at the end (K)")
    duration_ps: float | None = Field(None, gt=0, description="stage length (ps)")
    rate_k_per_ps: float | None = Field(None, gt=0, description="ramp rate (K/ps)")
    timestep_fs: float = Field(0.5, gt=0, le=5, description="MD time step (fs)")
    ensemble: Literal["nvt", "npt"] = "nvt"
    thermostat: Thermostat = "nose-hoover"
    t_damp_fs: float = Field(50.0, gt=0, description="thermostat time constant (fs)")
    pressure_gpa: float = Field(0.0, description="target pressure for NPT (GPa)")
    p_damp_fs: float = Field(1000.0, gt=0, description="barostat time constant (fs)")

    @model_validator(mode="after")
    def _one_length(self) -> AnnealStage:
        if (self.duration_ps is None) == (self.rate_k_per_ps is None):
            raise ValueError(f"stage '{self.name}': give exactly one of duration_ps, rate_k_per_ps")
        if self.rate_k_per_ps is not None and self.t_start == self.t_end:
            raise ValueError(f"stage '{self.name}': a rate needs t_start != t_end")
        return self

    @property
    def length_ps(self) -> float:
        """Stage length (ps)."""
        if self.duration_ps is not None:
            return self.duration_ps
        return abs(self.t_end - self.t_start) / self.rate_k_per_ps

    @property
    def n_steps(self) -> int:
        """Number of MD steps."""
        return max(1, math.ceil(self.length_ps * 1000 / self.timestep_fs))


class Minimisation(Settings):
    """Final energy minimisation of positions (fixed cell)."""

    fmax: float = Field(0.05, gt=0, description="force tolerance (eV/Å)")
    max_steps: int = Field(5000, ge=0)


class LammpsEngine:
    """An MD/minimisation session in LAMMPS for a classical carbon potential.

    Parameters
    ----------
    atoms
        Structure in an orthorhombic periodic cell; its velocities are used if set.
    potential
        The carbon potential.
    threads
        OpenMP threads.
    """

    def __init__(self, atoms: Atoms, potential: CarbonPotential, threads: int = 1,
                 log_file: Path | None = None) -> None:
        from hardcarbon.forcefield.lammps import load_lammps

        if not atoms.cell.orthorhombic or not atoms.pbc.all():
            raise InputError("the LAMMPS engine needs a periodic orthorhombic cell")
        self.atoms = atoms.copy()
        elements = sorted(set(atoms.get_chemical_symbols()))
        commands = potential.lammps_commands(elements)
        self.lmp = load_lammps(log_file=log_file, threads=threads if potential.omp else 1)
        lengths = atoms.cell.lengths()
        self.lmp.commands_string(
            "units metal\natom_style atomic\natom_modify map array sort 0 0.0\n"
            f"boundary p p p\nregion box block 0 {lengths[0]} 0 {lengths[1]} 0 {lengths[2]}\n"
            f"create_box {len(elements)} box\nneighbor 1.0 bin\nthermo 1000\n"
        )
        for k, element in enumerate(elements, start=1):
            self.lmp.command(f"mass {k} {atomic_masses[atomic_numbers[element]]}")
        types = [elements.index(s) + 1 for s in atoms.get_chemical_symbols()]
        positions = atoms.get_positions(wrap=True)
        self.lmp.create_atoms(len(atoms), None, types, positions.ravel().tolist())
        self.lmp.commands_string("\n".join(commands))
        velocities = atoms.get_velocities()
        if np.any(velocities):
            v = np.ascontiguousarray(velocities * _ASE_TO_A_PER_PS)
            self.lmp.scatter_atoms("v", 1, 3, v.ravel().ctypes)

    def run_stage(self, stage: AnnealStage, seed: int) -> Atoms:
        """Run one MD stage and return the structure (with velocities) at its end."""
        if not np.any(self.atoms.get_velocities()):
            self.lmp.command(
                f"velocity all create {stage.t_start} {_lammps_seed(seed)} "
                "mom yes rot no dist gaussian"
            )
        self.lmp.command(f"timestep {stage.timestep_fs / 1000}")
        fixes = _lammps_fixes(stage, seed)
        self.lmp.commands_string("\n".join(fixes))
        self.lmp.command(f"run {stage.n_steps}")
        for fix in fixes:
            self.lmp.command(f"unfix {fix.split()[1]}")
        return self._sync(velocities=True)

    def minimise(self, settings: Minimisation) -> tuple[Atoms, float]:
        """Minimise positions by conjugate gradients; return the structure and energy (eV)."""
        self.lmp.command("min_style cg")
        steps = settings.max_steps
        self.lmp.command(f"minimize 0.0 {settings.fmax} {steps} {10 * steps}")
        atoms = self._sync(velocities=False)
        return atoms, float(self.lmp.get_thermo("pe"))

    def close(self) -> None:
        """Free the LAMMPS instance."""
        self.lmp.close()

    def _sync(self, velocities: bool) -> Atoms:
        n = len(self.atoms)
        lo, hi = self.lmp.extract_box()[:2]
        self.atoms.set_cell(np.asarray(hi) - np.asarray(lo), scale_atoms=False)
        self.atoms.set_positions(_gather(self.lmp, "x", n) - np.asarray(lo))
        v = _gather(self.lmp, "v", n) / _ASE_TO_A_PER_PS if velocities else np.zeros((n, 3))
        self.atoms.set_velocities(v)
        return self.atoms.copy()


_ASE_TO_A_PER_PS = 1000 * units.fs  # an ASE velocity times this is in Å/ps


def _lammps_seed(seed: int) -> int:
    return seed % 900_000_000 + 1


def _lammps_fixes(stage: AnnealStage, seed: int) -> list[str]:
    t1, t2 = stage.t_start, stage.t_end
    tdamp = stage.t_damp_fs / 1000
    pdamp = stage.p_damp_fs / 1000
    bar = stage.pressure_gpa * 1e4
    if stage.thermostat == "nose-hoover":
        if stage.ensemble == "nvt":
            return [f"fix hc_int all nvt temp {t1} {t2} {tdamp}"]
        return [f"fix hc_int all npt temp {t1} {t2} {tdamp} iso {bar} {bar} {pdamp}"]
    integrator = "nve" if stage.ensemble == "nvt" else f"nph iso {bar} {bar} {pdamp}"
    if stage.thermostat == "langevin":
        thermostat = f"langevin {t1} {t2} {tdamp} {_lammps_seed(seed)} zero yes"
    else:
        thermostat = f"temp/berendsen {t1} {t2} {tdamp}"
    return [f"fix hc_int all {integrator}", f"fix hc_thermo all {thermostat}"]


def _gather(lmp, name: str, n: int) -> np.ndarray:
    data = lmp.gather_atoms(name, 1, 3)
    return np.ctypeslib.as_array(data, shape=(n * 3,)).reshape(n, 3).copy()


class AseEngine:
    """An MD/minimisation session with any ASE calculator (NEP models through calorine).

    Temperature ramps are applied in chunks of ``ramp_chunk`` steps, each run at the chunk's
    mean target temperature; thermostats are ASE's own integrators.
    """

    ramp_chunk = 20

    def __init__(self, atoms: Atoms, calculator) -> None:
        self.atoms = atoms.copy()
        self.atoms.calc = calculator

    def run_stage(self, stage: AnnealStage, seed: int) -> Atoms:
        """Run one MD stage and return the structure (with velocities) at its end."""
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

        rng = np.random.default_rng(seed)
        if not np.any(self.atoms.get_velocities()):
            MaxwellBoltzmannDistribution(self.atoms, temperature_K=stage.t_start, rng=rng)
            Stationary(self.atoms)
        done = 0
        while done < stage.n_steps:
            steps = min(self.ramp_chunk, stage.n_steps - done)
            fraction = (done + steps / 2) / stage.n_steps
            target = stage.t_start + (stage.t_end - stage.t_start) * fraction
            _ase_integrator(self.atoms, stage, target, rng).run(steps)
            done += steps
        return self.atoms.copy()

    def minimise(self, settings: Minimisation) -> tuple[Atoms, float]:
        """Minimise positions with FIRE; return the structure and energy (eV)."""
        from ase.optimize import FIRE

        self.atoms.set_velocities(np.zeros((len(self.atoms), 3)))
        FIRE(self.atoms, logfile=None).run(fmax=settings.fmax, steps=settings.max_steps)
        return self.atoms.copy(), float(self.atoms.get_potential_energy())

    def close(self) -> None:
        """Nothing to free."""


def _ase_integrator(atoms: Atoms, stage: AnnealStage, temperature: float, rng):
    from ase.md.langevin import Langevin
    from ase.md.langevinbaoab import LangevinBAOAB
    from ase.md.nose_hoover_chain import IsotropicMTKNPT, NoseHooverChainNVT
    from ase.md.nptberendsen import NPTBerendsen
    from ase.md.nvtberendsen import NVTBerendsen

    dt = stage.timestep_fs * units.fs
    tdamp = stage.t_damp_fs * units.fs
    pdamp = stage.p_damp_fs * units.fs
    pressure = stage.pressure_gpa * units.GPa
    if stage.ensemble == "nvt":
        if stage.thermostat == "nose-hoover":
            return NoseHooverChainNVT(atoms, dt, temperature_K=temperature, tdamp=tdamp)
        if stage.thermostat == "langevin":
            return Langevin(atoms, dt, temperature_K=temperature, friction=1 / tdamp, rng=rng)
        return NVTBerendsen(atoms, dt, temperature_K=temperature, taut=tdamp)
    if stage.thermostat == "nose-hoover":
        return IsotropicMTKNPT(atoms, dt, temperature_K=temperature, pressure_au=pressure,
                               tdamp=tdamp, pdamp=pdamp)
    if stage.thermostat == "langevin":
        return LangevinBAOAB(atoms, dt, temperature_K=temperature, externalstress=pressure,
                             hydrostatic=True, T_tau=tdamp, P_tau=pdamp, rng=rng)
    return NPTBerendsen(atoms, dt, temperature_K=temperature, pressure_au=pressure, taut=tdamp,
                        taup=pdamp, compressibility_au=4.57e-5 / units.bar)
