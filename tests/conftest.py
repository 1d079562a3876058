"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def random_nep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight NEP4 model for C and Na (radial cut-off 5 Å, angular 4 Å, ZBL core).

    A real nep.txt evaluated by the real engine: good for algorithmic identities and loop
    mechanics, meaningless physically (see tests/nep_models.py).
    """
    from nep_models import write_random_nep

    return write_random_nep(tmp_path_factory.mktemp("nep") / "nep.txt")
