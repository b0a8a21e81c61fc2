"""Training checkpoints that are written atomically and loaded without running code.

A checkpoint is a ``torch.save`` zip archive of a dict holding only tensors, numbers, strings, ``None``, lists,
tuples and dicts: model and optimiser ``state_dict()``\\ s, the step, a ``torch.Generator``'s state (already a
uint8 tensor: ``generator.get_state()``), the configuration as a plain dict or a JSON string.

* :func:`save_checkpoint` refuses anything else before writing (so every checkpoint it writes loads with
  ``weights_only=True``) and writes through :func:`srlib.fileio.atomic_write` (temporary file in the same folder,
  fsync, rename): a crash, a kill or a full disk during the write leaves the previous checkpoint intact.
* :func:`load_checkpoint` first checks every archive member against its CRC-32 checksum (``torch.load`` does not:
  a zeroed block inside a tensor would load silently as wrong weights) and hands torch an archive rebuilt from the
  verified bytes, which it loads with ``torch.load(weights_only=True)``, whose unpickler builds only tensors and
  plain containers and refuses every other global, so a checkpoint carrying a pickle payload (``__reduce__``
  calling ``os.system``, ``open``, ...) is refused and nothing in it runs.

Errors are :class:`CheckpointError` subclasses whose message names the file, the problem and what to do; none is a
traceback from deep inside torch.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from srlib.fileio import atomic_write

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "UnsafeCheckpointError",
    "load_checkpoint",
    "save_checkpoint",
]

#: Leaf types a checkpoint may hold (besides tensors); all load with ``weights_only=True``.
_PLAIN_LEAVES = (bool, int, float, complex, str, bytes, type(None), torch.dtype, torch.device, torch.Size)

_RESTART_HINT = ("rerun with --restart to discard it and train the run again from the start, or delete the run "
                 "folder {folder}")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or used. ``path`` is the file."""

    def __init__(self, path: str | os.PathLike, message: str):
        super().__init__(message)
        self.path = Path(path)


class CheckpointNotFoundError(CheckpointError):
    """The checkpoint file does not exist."""


class CorruptCheckpointError(CheckpointError):
    """The file is truncated, has damaged bytes, or is not a ``torch.save`` archive."""


class UnsafeCheckpointError(CheckpointError):
    """The file holds pickled objects other than tensors and plain containers (possibly code); it was not run."""


def _check_plain(obj: Any, where: str) -> None:
    """Raise TypeError naming the first entry of ``obj`` that ``torch.load(weights_only=True)`` would refuse."""
    if isinstance(obj, torch.Tensor):
        if type(obj) is not torch.Tensor and not isinstance(obj, torch.nn.Parameter):
            raise TypeError(f"{where} is a {type(obj).__name__} (a tensor subclass); store a plain tensor "
                            f"(.detach().clone() or .as_subclass(torch.Tensor))")
        return
    if isinstance(obj, _PLAIN_LEAVES):
        return
    if isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        if type(obj) not in (dict, OrderedDict):  # state_dict() returns an OrderedDict
            raise TypeError(f"{where} is a {type(obj).__name__}; store a plain dict")
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool, type(None))):
                raise TypeError(f"{where} has a key of type {type(k).__name__} ({k!r}); use str or int keys")
            _check_plain(v, f"{where}[{k!r}]")
        return
    hint = ""
    if isinstance(obj, torch.Generator):
        hint = " (store generator.get_state(), a uint8 tensor)"
    elif hasattr(obj, "__dataclass_fields__") or hasattr(obj, "__dict__"):
        hint = " (store its fields as a plain dict or a JSON string)"
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}{hint}; a checkpoint holds only "
                    f"tensors, numbers, strings, None, lists, tuples and dicts, so that it loads with "
                    f"torch.load(weights_only=True)")


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    Killed at any moment, the file at ``path`` is the previous complete checkpoint or the new one. Call it while
    holding the run folder's lock (:func:`srlib.locks.run_lock`): it deletes temporary files that a killed writer
    of the same checkpoint left behind.

    Args:
        path: the checkpoint file (conventionally ``<run_dir>/checkpoint.pt``); its folder is created.
        state: a dict of tensors, numbers, strings, ``None``, lists, tuples and dicts, e.g. ``{"model":
            model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": 100,
            "generator": g.get_state(), "config": cfg.to_dict()}``.

    Returns:
        ``path``.

    Raises:
        TypeError: ``state`` holds anything else (a ``torch.Generator``, a dataclass, a function, ...); the message
            names the entry. Nothing is written.
        srlib.fileio.WriteError: the disk is full or the folder unwritable; the previous checkpoint is unchanged.
    """
    path = Path(path)
    if not isinstance(state, dict):
        raise TypeError(f"save_checkpoint({path}): state must be a dict, got {type(state).__name__}")
    _check_plain(state, "state")
    # A process killed while writing (SIGKILL, power loss) leaves its temporary file behind; the caller holds the run
    # folder's lock (srlib.locks.run_lock), so any such file is stale: free its space before writing.
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    # Serialise in memory first: torch's zip writer turns a short write (a file-size limit, a full disk) into a
    # RuntimeError about stream positions; a plain write of the finished bytes reports the OS error itself.
    buf = io.BytesIO()
    torch.save(state, buf)
    with atomic_write(path) as f:
        f.write(buf.getbuffer())
    return path


def _weights_only_detail(exc: BaseException) -> str:
    """The one informative line of torch's weights-only refusal (without its advice to disable the check)."""
    text = str(exc)
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("WeightsUnpickler error:"):
            detail = line.removeprefix("WeightsUnpickler error:").strip()
            return detail.split(" Please use ")[0].strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _verified_archive(path: Path) -> io.BytesIO:
    """The archive's members, each checked against its CRC-32, rewritten into a fresh in-memory zip archive.

    ``torch.load`` reads zip archives with its own reader, which checks no checksum and trusts header fields that
    Python's ``zipfile`` ignores (a flipped attribute byte in the central directory makes it read another member's
    bytes). Handing it an archive rebuilt from verified member data means every byte it reads was verified.

    Raises:
        CorruptCheckpointError: not a complete zip archive, or a member whose bytes do not match their CRC-32.
    """
    hint = _RESTART_HINT.format(folder=path.parent)
    size = path.stat().st_size
    buf = io.BytesIO()
    member = None
    try:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as dst:
            for info in src.infolist():
                member = info.filename
                dst.writestr(member, src.read(info))  # zipfile raises BadZipFile on a CRC-32 mismatch
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, RuntimeError, NotImplementedError) as e:
        where = f" (member {member!r})" if member else ""
        raise CorruptCheckpointError(
            path, f"checkpoint {path} ({size} bytes) is truncated or corrupt{where}: {type(e).__name__}: {e}; "
                  f"{hint}") from None
    buf.seek(0)
    return buf


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu",
                    required: Iterable[str] = ()) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, verifying its bytes and running no code from it.

    Args:
        path: the checkpoint file.
        map_location: where tensors go (``torch.load``'s argument), e.g. ``"cpu"`` or the training device.
        required: keys the dict must have (e.g. ``("model", "optimizer", "step")``).

    Returns:
        The saved dict: tensors bit-identical to those saved, containers and numbers equal.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist.
        CorruptCheckpointError: truncated, damaged (CRC-32 mismatch), not a torch archive, or missing a
            ``required`` key; the message names the file and says to rerun with ``--restart`` or delete the run
            folder.
        UnsafeCheckpointError: the archive is intact but holds pickled objects other than tensors and plain
            containers (e.g. a ``__reduce__`` payload); it was refused and nothing in it ran.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(path, f"checkpoint {path} does not exist")
    archive = _verified_archive(path)
    hint = _RESTART_HINT.format(folder=path.parent)
    try:
        state = torch.load(archive, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            path, f"refused to load checkpoint {path}: it holds pickled objects other than tensors, numbers, "
                  f"strings, lists and dicts ({_weights_only_detail(e)}). Nothing in it was run. srlib never "
                  f"writes such a file: if you did not make it, delete it; if an older srlib made it, {hint}"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, AttributeError, IndexError, TypeError) as e:
        raise CorruptCheckpointError(
            path, f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                  f"; {hint}") from None
    if not isinstance(state, dict):
        raise CorruptCheckpointError(path, f"checkpoint {path} holds a {type(state).__name__}, not a dict; {hint}")
    missing = [k for k in required if k not in state]
    if missing:
        raise CorruptCheckpointError(
            path, f"checkpoint {path} is not a training checkpoint of this kind: it lacks {missing} (has "
                  f"{sorted(map(str, state))}); {hint}")
    return state
