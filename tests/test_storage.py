"""Reading structure files: compressed extended XYZ and one-line errors."""

import gzip
import lzma

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from hardcarbon.errors import InputError
from hardcarbon.storage import read_frames, read_structure


def _frames() -> list:
    frames = []
    for n in range(5):
        atoms = bulk("Na", "bcc", a=4.2 + 0.01 * n).repeat(2)
        atoms.rattle(0.05, seed=n)
        atoms.info["config_type"] = f"sodium/bcc_{n}"
        atoms.info["REF_energy"] = -1.3 * len(atoms) + n
        atoms.arrays["REF_forces"] = np.full((len(atoms), 3), 0.1 * n)
        frames.append(atoms)
    return frames


@pytest.mark.parametrize("opener,suffix", [(None, ""), (gzip.open, ".gz"), (lzma.open, ".xz")])
def test_compressed_extxyz_reads_every_frame_with_its_labels(tmp_path, opener, suffix):
    plain = tmp_path / "frames.xyz"
    ase.io.write(plain, _frames(), format="extxyz")
    path = tmp_path / f"frames.xyz{suffix}"
    if opener is not None:
        with opener(path, "wb") as out:
            out.write(plain.read_bytes())
    frames = read_frames(path)
    assert len(frames) == 5
    for n, atoms in enumerate(frames):
        assert atoms.info["config_type"] == f"sodium/bcc_{n}"
        assert atoms.info["REF_energy"] == pytest.approx(-1.3 * len(atoms) + n)
        assert np.allclose(atoms.arrays["REF_forces"], 0.1 * n)
        assert np.allclose(atoms.positions, _frames()[n].positions)


def test_missing_and_unreadable_files_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match=r"^training file .*none\.xyz does not exist: label"):
        read_frames(tmp_path / "none.xyz", "training", "label it first")
    bad = tmp_path / "bad.xyz.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match=r"^cannot read structure file .*bad\.xyz\.gz \("):
        read_frames(bad)


def test_read_structure_picks_one_frame_of_a_compressed_file(tmp_path):
    path = tmp_path / "frames.xyz.gz"
    with gzip.open(path, "wt") as out:
        ase.io.write(out, _frames(), format="extxyz")
    assert read_structure(path).info["config_type"] == "sodium/bcc_4"
    assert np.allclose(read_structure(path, 1).positions, _frames()[1].positions)
    with pytest.raises(InputError, match=r"^cannot read structure file .*frames\.xyz\.gz \("):
        read_structure(path, 9)
