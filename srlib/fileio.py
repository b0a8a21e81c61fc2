"""Atomic file writes: every file srlib writes (images, tables, figures, manifests, checkpoints) goes through here.

A write goes to a temporary file in the target's folder, is flushed and fsynced, and then replaces the target in
one step (``os.replace``). Whatever goes wrong on the way (a full disk, a read-only or unwritable folder, an
exception in the caller's block, Ctrl-C) leaves the previous file byte for byte as it was and no temporary file
behind; an operating-system error comes back as :class:`WriteError`, which names the file and the OS error.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["WriteError", "atomic_write"]

_HINTS = {
    errno.ENOSPC: "the disk is full: free some space and run again",
    errno.EDQUOT: "the disk quota is exhausted: free some space and run again",
    errno.EFBIG: "the file exceeds the size limit of this process or file system",
    errno.EROFS: "the file system is mounted read-only: write the results somewhere else",
    errno.EACCES: "no permission to write there: fix the folder's permissions or write somewhere else",
    errno.EPERM: "no permission to write there: fix the folder's permissions or write somewhere else",
}


class WriteError(OSError):
    """Writing a file failed for an operating-system reason (disk full, read-only or unwritable folder, ...).

    An ``OSError`` whose ``errno`` is the original one and whose ``filename`` is the target path; the message names
    the path, the OS error and what to do, and says that the previous file (if any) is unchanged.
    """


def _default_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _write_error(path: Path, exc: OSError) -> WriteError:
    reason = exc.strerror or str(exc)
    hint = _HINTS.get(exc.errno)
    kept = "the previous file is unchanged" if path.exists() else "no file was written"
    msg = f"could not write {path}: {reason}" + (f" ({hint})" if hint else "") + f"; {kept}"
    err = WriteError(exc.errno, msg)
    err.filename = str(path)
    return err


@contextmanager
def atomic_write(path: str | os.PathLike, binary: bool = True) -> Iterator[IO]:
    """Write ``path`` through a temporary file in the same folder that replaces it only when the block succeeds.

    A failure (an exception, an interrupt) leaves the previous file untouched and no temporary file behind. The
    parent folder is created; the file gets the permissions ``open()`` would give it (``mkstemp`` makes 0600).

    Usage: ``with atomic_write(p, binary=False) as f: f.write(text)``.

    Raises:
        WriteError: an ``OSError`` while creating, writing, syncing or renaming the file (full disk, read-only or
            unwritable folder, ...), including one raised by the caller's block while it writes ``f``; the message
            names ``path`` and the OS error. Other exceptions from the block propagate unchanged.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _write_error(path, e) from e
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            Path(tmp).unlink(missing_ok=True)
        except OSError:  # pragma: no cover - the folder became unwritable meanwhile; nothing more we can do
            pass
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise _write_error(path, e) from e
        raise
