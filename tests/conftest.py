"""Shared fixtures: the development data and weights located by :mod:`shared_paths`; skip when absent."""

from pathlib import Path

import pytest
from shared_paths import DATA, WEIGHTS


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The SR data root (``<root>/<Set>/HR/*.png``), or skip."""
    if DATA is None or not (DATA / "Set5" / "HR").is_dir():
        pytest.skip(f"SR data not found ({DATA}): set SRLIB_DATA to a folder with <Set>/HR/*.png")
    return DATA


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    """Offline weights folder (lpips backbone, lpips_check/, niqe_pris_params.npz), or skip."""
    if WEIGHTS is None or not (WEIGHTS / "lpips_check").is_dir():
        pytest.skip(f"offline weights not found ({WEIGHTS}): set SRLIB_WEIGHTS to the folder with lpips_check/")
    return WEIGHTS
