"""Atomic file writes (a run killed at any moment leaves either the old file or the new one),
structure reading with one-line errors, bare copies of structures, the key that names
cached results of a structure, and the rule for when a setting names a file."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
from ase import Atoms

from hardcarbon.errors import InputError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def looks_like_file(name: str) -> bool:
    """Whether a name-or-file setting such as ``rebo`` or ``nep.txt`` reads as a file name:
    it has a suffix or a folder in it. Names of built-in choices have neither."""
    return bool(Path(name).suffix) or "/" in name


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, default=_jsonable) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_structure(path: str | Path, atoms: Atoms | list[Atoms]) -> Path:
    """Write one or more structures as extended XYZ, atomically."""
    return atomic_write(path, lambda tmp: ase.io.write(tmp, atoms, format="extxyz"))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def read_structure(path: str | Path, index: int | str = -1) -> Atoms:
    """Read one structure with ASE, turning any failure into a one-line :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"structure file {path} does not exist: give the path of an XYZ, CIF or POSCAR file"
        )
    atoms = _ase_read(path, index, "structure", "give a file ASE can read, e.g. extended XYZ")
    if len(atoms) == 0:
        raise InputError(f"structure file {path} holds no atoms")
    return atoms


#: Compressions that ASE reads transparently, by file suffix.
_DECOMPRESS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def read_frames(path: str | Path, kind: str = "structure",
                hint: str = "give a file ASE can read, e.g. extended XYZ") -> list[Atoms]:
    """Every structure of a file, turning any failure into a one-line :class:`InputError`.

    ``kind`` and ``hint`` name the file and the remedy in the errors (``"<kind> file <path>
    does not exist: <hint>"``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{kind} file {path} does not exist: {hint}")
    return list(_ase_read(path, ":", kind, hint))


def _ase_read(path: Path, index: int | str, kind: str, hint: str) -> Atoms | list[Atoms]:
    """``ase.io.read``, with any failure as a one-line :class:`InputError`.

    A compressed extended-XYZ file (``.xyz.gz``, ``.bz2``, ``.xz``) is decompressed into
    memory first: ASE's extxyz reader seeks back to every frame, and each seek on a
    compressed stream decompresses it again from the start, so a 2250-frame ``.xyz.gz``
    took 5 min to read instead of 1 s.
    """
    try:
        opener = _DECOMPRESS.get(path.suffix)
        if opener is not None and Path(path.stem).suffix in (".xyz", ".extxyz"):
            with opener(path, "rt") as handle:
                return ase.io.read(io.StringIO(handle.read()), index=index, format="extxyz")
        return ase.io.read(path, index=index)
    except Exception as exc:  # ASE raises many types for unreadable files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read {kind} file {path} ({reason}): {hint}") from None


def structure_key(atoms: Atoms) -> str:
    """Key of a structure's geometry: numbers, positions and cell to 1e-5 Å (24 hex digits).

    Names cached results of a structure (validation energies) and matches the same geometry
    across label sets; two copies read from extended XYZ get the same key.
    """
    digest = hashlib.sha256(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    digest.update(np.round(atoms.positions, 5).tobytes())
    digest.update(np.round(np.asarray(atoms.cell[:]), 5).tobytes())
    return digest.hexdigest()[:24]



def bare_structure(atoms: Atoms, info: tuple[str, ...] = ()) -> Atoms:
    """A copy with only numbers, positions, cell and pbc, plus the named ``info`` keys.

    No calculator, results, labels or per-atom arrays travel with it: what a new calculation
    or a cache key should see.
    """
    out = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    for key in info:
        if key in atoms.info:
            out.info[key] = atoms.info[key]
    return out
