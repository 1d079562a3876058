"""NEP model files (GPUMD's nep.txt) evaluated on the CPU through calorine."""

from __future__ import annotations

import shutil
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


def nep_header(path: str | Path) -> dict[str, list[str]]:
    """The keyword lines after a nep.txt's first line (``zbl``, ``cutoff``, ``n_max``,
    ``basis_size``, ``l_max``, ``ANN``), each with its values as strings; the parameters that
    follow are not read."""
    header: dict[str, list[str]] = {}
    with open(path) as lines:
        next(lines, None)  # "nep4_zbl 2 C Na": see nep_elements
        for line in lines:
            key, *values = line.split() or [""]
            if not key[:1].isalpha():  # the first parameter: the header is over
                break
            header[key] = values
    return header


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


def widen_nep(source: str | Path, n_neuron: int, destination: str | Path,
              seed: int = 42) -> Path:
    """Write ``source`` with its hidden layer widened to ``n_neuron`` neurons.

    The new neurons get input weights drawn from U(±1/√n_descriptor) and zero biases, as
    neppo initialises a network, and zero output weights, so the widened model gives exactly
    the energies, forces and virials of ``source`` until training moves them.  With
    ``n_neuron`` equal to the model's width the file is copied unchanged.  A fine-tune
    started from it keeps everything the narrow model learned and gains capacity for what it
    could not fit.  calorine's ``Model.augment`` pads with zeros only, which gradient
    training cannot leave (every new weight's gradient is zero), hence this function.
    """
    import numpy as np
    from calorine.nep import read_model

    width = int(nep_header(source)["ANN"][0])
    if width == n_neuron:  # nothing to add: the file as it is, byte for byte
        shutil.copyfile(source, destination)
        return Path(destination)
    if n_neuron < width:
        raise InputError(f"{source} has {width} neurons, more than the {n_neuron} asked "
                         "for: a model can only be widened")
    model = read_model(str(source))
    if model.n_neuron_second_layer:
        raise InputError(f"{source} has two hidden layers: only one-layer NEP4 models widen")
    rng = np.random.default_rng(seed)
    added = n_neuron - width
    for species in model.types:
        layer = model.ann_parameters[species]
        n_in = layer["w0"].shape[1]
        bound = 1 / np.sqrt(n_in)
        layer["w0"] = np.vstack([layer["w0"], rng.uniform(-bound, bound, (added, n_in))])
        layer["b0"] = np.vstack([layer["b0"], np.zeros((added, 1))])
        layer["w1"] = np.hstack([layer["w1"], np.zeros((1, added))])
    model.n_neuron = n_neuron
    destination = Path(destination)
    model.write(str(destination))
    return destination
