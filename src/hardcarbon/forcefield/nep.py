"""NEP model files (GPUMD's nep.txt) evaluated on the CPU through calorine."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from hardcarbon.errors import InputError

_NEP_VERSIONS = ("nep3", "nep4", "nep5")

#: File name of the Na–C model shipped in ``hardcarbon/data``.
BUNDLED_MODEL_NAME = "nep_na_c.txt"


def bundled_model() -> Path | None:
    """Path of the Na–C nep.txt shipped with hardcarbon, or None while none is bundled."""
    path = resources.files("hardcarbon").joinpath("data", BUNDLED_MODEL_NAME)
    return Path(str(path)) if path.is_file() else None


def nep_elements(path: str | Path) -> list[str]:
    """Elements covered by a nep.txt, read from its header line (e.g. ``nep4 2 C Na``)."""
    path = Path(path)
    try:
        header = path.read_text().split("\n", 1)[0].split()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read NEP model {path} ({exc.__class__.__name__}): "
                         "give a nep.txt written by GPUMD or neppo") from None
    ok = len(header) >= 3 and header[0].split("_")[0] in _NEP_VERSIONS and header[1].isdigit()
    if not ok or len(header) != 2 + int(header[1]):
        raise InputError(f"{path} is not a NEP model (first line '{' '.join(header)[:40]}'): "
                         "give a nep.txt written by GPUMD or neppo")
    return header[2:]


def nep_calculator(path: str | Path, elements: list[str] | set[str]):
    """A calorine ``CPUNEP`` calculator for ``path`` that must cover ``elements``."""
    covered = nep_elements(path)
    missing = sorted(set(elements) - set(covered))
    if missing:
        raise InputError(f"NEP model {path} covers {', '.join(covered)} but not "
                         f"{', '.join(missing)}: use a model trained on these elements")
    from calorine.calculators import CPUNEP

    try:
        return CPUNEP(str(path))
    except Exception as exc:  # calorine raises bare exceptions for malformed parameter blocks
        raise InputError(f"cannot load NEP model {path} ({str(exc).splitlines()[0][:80]}): "
                         "the file is corrupt or truncated") from None
