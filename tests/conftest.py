"""Shared fixtures: the development data and weights located by :mod:`shared_paths` (skip when absent), and the
native-convolution switch for tests of tiny models."""

import warnings
from pathlib import Path

import pytest
import torch
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


@pytest.fixture(scope="module")
def native_conv():
    """Run the convolutions of a test module without oneDNN: it JIT-compiles a primitive per new convolution shape
    (~25 ms each), which dominates tests of tiny models with many shapes; the native CPU path computes the same
    convolution in well under a millisecond. Use with ``pytestmark = pytest.mark.usefixtures("native_conv")``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns about TF32 on oneDNN when toggling the flags
        with torch.backends.mkldnn.flags(enabled=False):
            yield
