"""Shared pytest fixtures."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The SR data root (``SRLIB_DATA``, else ``../shared/data`` beside the repository), or skip."""
    env = os.environ.get("SRLIB_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not root.is_dir():
        pytest.skip(f"shared SR data not found at {root}: set SRLIB_DATA to a folder with <Set>/HR/*.png")
    return root


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    """Offline weights (``SRLIB_WEIGHTS``, else ``../shared/weights`` beside the repository), or skip."""
    env = os.environ.get("SRLIB_WEIGHTS")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "weights"
    if not (root / "lpips_check").is_dir():
        pytest.skip(f"offline weights not found at {root}: set SRLIB_WEIGHTS to the folder with lpips_check/")
    return root
