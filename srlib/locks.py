"""Inter-process locks: one writer per run folder and per cached LR set, built on the ``filelock`` library.

Two processes (two ``srlib train``, two ``make reproduce``, two ranks of a job) may reach the same run folder or the
same LR cache folder. Each such folder has a lock file beside it (``<parent>/.<name>.lock``, an ``flock`` lock,
which the kernel releases when its holder dies, even by SIGKILL: no stale locks). The holder writes who it is
(pid, host, since when, what it is doing) into ``<parent>/.<name>.lock.json`` so that a waiting process can say
whom it waits for.

* :func:`run_lock` -- around everything that writes a run folder (training, resuming, ``--restart``):
  ``with run_lock(run_dir, wait=True) as held: ...``. ``wait=True`` blocks until the other process is done (and
  says so on stderr); ``wait=False`` does not wait: ``held`` is False and the caller skips the run.
* :func:`path_lock` -- the same for any folder or file (the LR cache uses it with ``what="LR cache"``).

The lock file sits beside the folder, not inside it, so that deleting the folder (``--restart``) while holding the
lock cannot hand a second process a fresh lock on a new inode. Within one process the lock is re-entrant per thread:
a trainer inside a pipeline that already holds the run's lock gets it again at once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from filelock import FileLock, Timeout

from srlib.fileio import atomic_write

__all__ = ["LockTimeout", "holder", "lock_file", "path_lock", "run_lock"]


class LockTimeout(TimeoutError):
    """Another process held the lock for longer than the caller's ``timeout``. ``path`` is the locked folder."""

    def __init__(self, path: Path, message: str):
        super().__init__(message)
        self.path = path


def lock_file(target: str | os.PathLike) -> Path:
    """The lock file of ``target`` (a run folder, a cache folder, a file): ``<parent>/.<name>.lock``."""
    target = Path(target).absolute()
    return target.parent / f".{target.name}.lock"


def _info_file(target: Path) -> Path:
    return lock_file(target).with_suffix(".lock.json")


def holder(target: str | os.PathLike) -> dict | None:
    """What the last holder of ``target``'s lock wrote about itself (pid, host, since, what), or None.

    Only meaningful while the lock is held by someone else (the file is removed on release, but a holder killed
    by SIGKILL leaves it behind: its lock is gone with it, so an acquirable lock means nobody holds it).
    """
    try:
        return json.loads(_info_file(Path(target).absolute()).read_text())
    except (OSError, ValueError):
        return None


def _describe(info: dict | None) -> str:
    if not info:
        return "another process"
    return (f"process {info.get('pid')} on {info.get('host')} ({info.get('what', '?')}, since "
            f"{info.get('since', '?')})")


_LOCKS: dict[tuple[str, int], FileLock] = {}


def _file_lock(path: Path) -> FileLock:
    """One FileLock object per (lock file, process): re-entrant in the thread that holds it. After a fork the child
    makes its own (an flock held by the parent is not the child's)."""
    key = (str(path), os.getpid())
    if key not in _LOCKS:
        _LOCKS[key] = FileLock(str(path))
    return _LOCKS[key]


@contextmanager
def path_lock(target: str | os.PathLike, *, wait: bool = True, timeout: float | None = None, what: str = "",
              stream: TextIO | None = None) -> Iterator[bool]:
    """Hold the inter-process lock of ``target`` for the ``with`` block.

    Args:
        target: the folder (or file) to protect; it need not exist. Its parent folder is created.
        wait: if another process holds the lock, wait for it (True) or give up at once (False).
        timeout: with ``wait=True``, the longest wait in seconds (None: no limit).
        what: what the holder is doing, for the other processes' messages (e.g. ``"training"``).
        stream: where the waiting/skipping messages go (default: ``sys.stderr`` at the time of the call).

    Yields:
        True when the lock is held for the block; False (only with ``wait=False``) when another process holds it,
        in which case the block runs without the lock and must not write ``target``.

    Raises:
        LockTimeout: with ``wait=True`` and a ``timeout``, the other process kept the lock longer.
    """
    target = Path(target).absolute()
    out = stream if stream is not None else sys.stderr
    path = lock_file(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _file_lock(path)
    first = not lock.is_locked  # the outermost acquisition in this process writes the holder file
    try:
        lock.acquire(blocking=False)
        busy = False
    except Timeout:
        busy = True
    if busy:
        other = _describe(holder(target))
        if not wait:
            print(f"srlib: {target} is in use by {other}; skipping it", file=out, flush=True)
            yield False
            return
        limit = "" if timeout is None else f" (at most {timeout:g} s)"
        print(f"srlib: {target} is in use by {other}; waiting for it to finish{limit}", file=out, flush=True)
        t0 = time.monotonic()
        try:
            lock.acquire(timeout=-1 if timeout is None else timeout)
        except Timeout:
            raise LockTimeout(target, f"{target} is still in use by {other} after {timeout:g} s; run again later, "
                                      f"or stop that process") from None
        print(f"srlib: {target} is free after {time.monotonic() - t0:.1f} s; continuing", file=out, flush=True)
    try:
        if first:
            info = {"pid": os.getpid(), "host": socket.gethostname(), "what": what or "writing",
                    "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
            with atomic_write(_info_file(target), binary=False) as f:
                f.write(json.dumps(info) + "\n")
        yield True
    finally:
        try:
            if first:
                _info_file(target).unlink(missing_ok=True)
        finally:
            lock.release()


@contextmanager
def run_lock(run_dir: str | os.PathLike, *, wait: bool = True, timeout: float | None = None,
             stream: TextIO | None = None) -> Iterator[bool]:
    """Hold the lock of the run folder ``run_dir`` while training (resuming, restarting) it.

    ``with run_lock(run_dir, wait=False) as held: if not held: skip`` (the message says who trains it), or
    ``wait=True`` to wait for the other process and then find its finished checkpoint. See :func:`path_lock`.
    """
    with path_lock(run_dir, wait=wait, timeout=timeout, what="training", stream=stream) as held:
        yield held
