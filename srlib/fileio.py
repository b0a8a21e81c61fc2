"""Atomic file writes: every file srlib writes (images, tables, figures, manifests) goes through here."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _default_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_write(path: str | os.PathLike, binary: bool = True) -> Iterator[IO]:
    """Write ``path`` through a temporary file in the same folder that replaces it only when the block succeeds.

    A failure (an exception, an interrupt) leaves the previous file untouched and no temporary file behind. The
    parent folder is created; the file gets the permissions ``open()`` would give it (``mkstemp`` makes 0600).

    Usage: ``with atomic_write(p, binary=False) as f: f.write(text)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
