"""Where the development data and weights are (never committed): ``SRLIB_DATA`` / ``SRLIB_WEIGHTS``, else the
``shared/`` folder beside the checkout, else None (tests that need them skip with the reason)."""

import os
from pathlib import Path

_SHARED = Path(__file__).resolve().parents[2] / "shared"


def _locate(env: str, name: str) -> Path | None:
    if os.environ.get(env):
        return Path(os.environ[env])
    p = _SHARED / name
    return p if p.is_dir() else None


DATA = _locate("SRLIB_DATA", "data")
WEIGHTS = _locate("SRLIB_WEIGHTS", "weights")
