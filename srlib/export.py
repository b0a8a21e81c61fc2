"""Trained models as files: load a run folder, export it to a self-describing file that cannot run code when it is
loaded, and load that file back (``srlib export``, ``srlib upscale --run / --checkpoint``, the notebooks).

**Run folder** (written by the trainer under ``.runs/<profile>/``)::

    run.json       {"id": {"paper", "method", "network", "scale", "seed", "stage", "arm"},
                    "arch": {"name": <srlib.archs.ARCHITECTURES key>, "kwargs": {constructor keyword arguments}},
                    "scale": int, "precision": "fp32" | "bf16", "world_size": int, "train": {TrainConfig},
                    "fingerprint": str, "data": str}
    checkpoint.pt  torch.save dict whose "model" entry is the network's state_dict (plus optimiser, step, ...)
    metrics.json   optional: whatever the run measured (any JSON); copied into exports
    losses.csv     per-iteration losses; its last row is copied into exports as "final_losses"

:func:`load_run` rebuilds the network from ``run.json`` (:func:`srlib.archs.build_arch`) and loads the weights with
:func:`srlib.checkpoint.load_checkpoint` (CRC-verified bytes, ``torch.load(weights_only=True)``), which refuses any
pickled object other than tensors and plain containers: a checkpoint carrying a code payload (an object whose
``__reduce__`` calls a function) raises :class:`UnsafeCheckpointError` and nothing in it is executed.

**Export** (:func:`export_run`): a `safetensors <https://github.com/huggingface/safetensors>`_ file, which holds raw
tensors and a JSON header only (no pickle). The state dict's tensors are stored under their state-dict names; the
header's metadata has one key, ``"srlib"``, whose value is a JSON string::

    {"format": "srlib-model", "format_version": 1, "arch": {"name", "kwargs"}, "scale": int,
     "run": <run.json>, "metrics": <metrics.json> | null, "final_losses": {...} | null, "step": int | null,
     "source": <run folder name>, "srlib_version": str, "torch_version": str}

When ``safetensors`` is not installed (or ``fmt="torch"``), the same content is written with ``torch.save`` as
``{"srlib": <that JSON string>, "tensors": {name: tensor}}``, which loads with ``torch.load(weights_only=True)``.
:func:`load_export` reads both. Loading a run folder and loading its export give the same weights, hence
byte-identical SR output. Exporting the same run twice gives the same bytes (no time stamps).

Every error is a :class:`ModelFileError` (a ``ValueError``) whose message names the file and the problem.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from srlib.archs import ARCHITECTURES, build_arch
from srlib.fileio import atomic_write

__all__ = [
    "EXPORT_FORMAT",
    "FORMATS",
    "ModelFileError",
    "ModelInfo",
    "UnsafeCheckpointError",
    "export_run",
    "load_export",
    "load_model",
    "load_run",
    "model_name",
]

EXPORT_FORMAT = "srlib-model"
"""Value of ``"format"`` in an export's metadata."""
FORMAT_VERSION = 1
METADATA_KEY = "srlib"
"""The safetensors metadata key (and the torch-fallback dict key) holding the JSON description."""
FORMATS = ("auto", "safetensors", "torch")
"""``auto``: safetensors when installed, else the torch fallback."""
RUN_FILE, CHECKPOINT_FILE, METRICS_FILE, LOSSES_FILE = "run.json", "checkpoint.pt", "metrics.json", "losses.csv"


class ModelFileError(ValueError):
    """A run folder or model file that cannot be loaded; the message names the file and the problem."""


class UnsafeCheckpointError(ModelFileError):
    """A checkpoint holding pickled Python objects beyond tensors and plain containers (loading them could run code)."""


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What a run folder or an export says about its network.

    Attributes:
        source: the run folder or export file it was loaded from.
        arch: class name in :data:`srlib.archs.ARCHITECTURES`. arch_kwargs: its constructor keyword arguments.
        scale: SR factor.
        run: the run's ``run.json`` (``id``, ``train``, ``precision``, ``fingerprint``, ``data``, ...).
        metrics: the run's ``metrics.json`` (None when it has none).
        final_losses: the last row of ``losses.csv`` (None when absent).
        step: the training step of the checkpoint (None when the checkpoint does not say).
        srlib_version: the srlib version that wrote the export (None for a run folder).
    """

    source: Path
    arch: str
    arch_kwargs: dict = field(default_factory=dict)
    scale: int
    run: dict = field(default_factory=dict)
    metrics: dict | None = None
    final_losses: dict | None = None
    step: int | None = None
    srlib_version: str | None = None

    @property
    def id(self) -> dict:
        """The run's identity (``paper``, ``method``, ``network``, ``scale``, ``seed``, ``stage``, ``arm``)."""
        return dict(self.run.get("id") or {})

    def describe(self) -> str:
        """One line, e.g. ``DASR x4 (blind/dasr, seed 0, stage joint, step 250)``."""
        i = self.id
        parts = ["/".join(str(i[k]) for k in ("paper", "method") if i.get(k))]
        parts += [f"{k} {i[k]}" for k in ("network", "arm", "seed", "stage") if i.get(k) not in (None, "")]
        if self.step is not None:
            parts.append(f"step {self.step}")
        inner = ", ".join(p for p in parts if p)
        return f"{self.arch} x{self.scale}" + (f" ({inner})" if inner else "")

    def names(self) -> set[str]:
        """The ``--model`` names this model answers to (normalised by :func:`model_name`): its method, network and
        architecture, and the network joined with each part of the method (without the paper's prefix) and with the
        arm. Examples: RCAN fine-tuned as ``pcl-pcl-haar-gen`` answers to ``rcan``, ``rcan+pcl``, ``pcl-pcl-haar-gen``;
        the L1 control ``pcl-l1`` of EDSR-S to ``edsr``, ``edsr-s+l1``, ``edsr+control``; ``crl-f`` to ``crl-sr``,
        ``crl-f``, ``crl-sr+f``; DASR to ``dasr``."""
        i = self.id
        method = str(i.get("method") or "")
        nets = {model_name(str(v)) for v in (i.get("network"), self.arch) if v} - {""}
        tokens = [t for t in method.lower().split("-") if t]
        prefixed = len(tokens) > 1 and tokens[0] == _PAPER_PREFIX.get(str(i.get("paper")))
        tokens = tokens[1:] if prefixed else []
        tags = {model_name(t) for t in tokens} | {model_name("-".join(tokens)), model_name(str(i.get("arm") or ""))}
        tags -= {""}
        return nets | ({model_name(method)} if method else set()) | {f"{n}+{t}" for n in nets for t in tags}

    def matches(self, name: str) -> bool:
        """Whether ``--model name`` names this model (see :meth:`names`)."""
        return model_name(name) in self.names()

    def to_metadata(self) -> dict:
        """The JSON description written into an export (see the module docstring)."""
        return {
            "format": EXPORT_FORMAT,
            "format_version": FORMAT_VERSION,
            "arch": {"name": self.arch, "kwargs": self.arch_kwargs},
            "scale": self.scale,
            "run": self.run,
            "metrics": self.metrics,
            "final_losses": self.final_losses,
            "step": self.step,
            "source": self.source.name,
            "srlib_version": _srlib_version(),
            "torch_version": torch.__version__.split("+")[0],
        }


_NAME_ALIASES = {"edsrs": "edsr", "edsrl": "edsr", "crl": "crlsr", "control": "l1"}
"""Spellings of one thing: EDSR-S/EDSR-L are EDSR sizes; CRL and CRL-SR are one method; PCL-SR's control arm is its
L1 fine-tuning."""
_PAPER_PREFIX = {"pcl-sr": "pcl", "crl-sr": "crl"}
"""The prefix a paper's method names carry (``pcl-l1``, ``crl-f``), dropped before joining the rest to the network."""


def model_name(text: str) -> str:
    """Normalised model name: lower case, only letters, digits and ``+`` kept, each ``+``-separated part mapped
    through :data:`_NAME_ALIASES` (``"CRL-SR"`` -> ``"crlsr"``, ``"EDSR-S + PCL"`` -> ``"edsr+pcl"``)."""
    parts = ["".join(c for c in part.lower() if c.isalnum()) for part in text.split("+")]
    return "+".join(_NAME_ALIASES.get(p, p) for p in parts)


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------


def _srlib_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("srlib")
    except PackageNotFoundError:
        return "unknown"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path}: not readable JSON ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _spec_fields(desc: dict, where: Path) -> tuple[str, dict, int]:
    """(arch name, kwargs, scale) from a run.json-like dict, checked."""
    arch = desc.get("arch")
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        raise ModelFileError(f'{where}: no "arch": {{"name": ..., "kwargs": {{...}}}} entry naming the architecture')
    name, kwargs = arch["name"], arch.get("kwargs") or {}
    if name not in ARCHITECTURES:
        raise ModelFileError(f"{where}: unknown architecture {name!r}; srlib knows {sorted(ARCHITECTURES)}")
    if not isinstance(kwargs, dict):
        raise ModelFileError(f'{where}: "arch.kwargs" must be a JSON object, got {type(kwargs).__name__}')
    scale = desc.get("scale", kwargs.get("scale"))
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ModelFileError(f'{where}: "scale" must be an integer >= 1, got {scale!r}')
    if "scale" in kwargs and kwargs["scale"] != scale:
        raise ModelFileError(f'{where}: "scale" is {scale} but "arch.kwargs.scale" is {kwargs["scale"]}')
    return name, kwargs, scale


def _torch_load(path: Path, required: tuple[str, ...] = (), model_file: bool = False) -> dict:
    """:func:`srlib.checkpoint.load_checkpoint` (CRC-verified, ``torch.load(weights_only=True)``) on the CPU, its errors
    as :class:`ModelFileError` (a refused pickle payload: :class:`UnsafeCheckpointError`). ``model_file``: ``path``
    was given as an exported model (the error then says so instead of suggesting to retrain a run)."""
    from srlib import checkpoint

    try:
        return checkpoint.load_checkpoint(path, map_location="cpu", required=required)
    except checkpoint.UnsafeCheckpointError as e:
        raise UnsafeCheckpointError(str(e)) from None
    except checkpoint.CheckpointError as e:
        if model_file:
            raise ModelFileError(f"{path}: not an srlib model file: neither safetensors nor a readable torch archive "
                                 f"({str(e).split(';')[0]})") from None
        raise ModelFileError(str(e)) from None


_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
"""State-dict key prefixes of wrappers (DistributedDataParallel, torch.compile), stripped when every key has one."""


def _build(name: str, kwargs: dict, state: dict, where: Path) -> nn.Module:
    """``ARCHITECTURES[name](**kwargs)`` with ``state`` loaded (strict), in eval mode; the caller's RNG is untouched."""
    try:
        with torch.random.fork_rng(devices=[]):
            model = build_arch(name, kwargs)
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{where}: cannot build {name}(**{kwargs}): {e}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{where}: the weights are not a state dict of tensors")
    expected = model.state_dict()
    for prefix in _WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state) and not any(k.startswith(prefix) for k in expected):
            state = {k[len(prefix):]: v for k, v in state.items()}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        problems = [f"{label} {keys[:4]}{' ...' if len(keys) > 4 else ''}" for label, keys in
                    (("missing", missing), ("unexpected", unexpected), ("of another shape", wrong)) if keys]
        raise ModelFileError(f"{where}: the weights do not fit {name}(**{kwargs}): tensors " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    return model.eval()


def _final_losses(path: Path) -> dict | None:
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    out: dict = {}
    for k, v in rows[-1].items():
        try:
            out[k] = int(v) if k == "step" else float(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


def _read_run(run_dir: str | os.PathLike) -> tuple[ModelInfo, dict]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is a file, not a run folder (pass an exported model with --checkpoint)" if run_dir.is_file() else \
            "no such run folder"
        raise ModelFileError(f"{run_dir}: {what}")
    spec_path = run_dir / RUN_FILE
    if not spec_path.is_file():
        found = sorted(p.name for p in run_dir.iterdir())
        raise ModelFileError(f"{spec_path}: missing; a run folder needs the run.json the trainer writes "
                             f"(architecture, sizes, scale); this folder has {found}")
    run = _read_json(spec_path)
    name, kwargs, scale = _spec_fields(run, spec_path)
    ckpt_path = run_dir / CHECKPOINT_FILE
    if not ckpt_path.is_file():
        raise ModelFileError(f"{ckpt_path}: missing; the run has no trained weights (was it trained?)")
    ckpt = _torch_load(ckpt_path, required=("model",))
    metrics_path = run_dir / METRICS_FILE
    step = ckpt.get("step")
    info = ModelInfo(source=run_dir, arch=name, arch_kwargs=kwargs, scale=scale, run=run,
                     metrics=_read_json(metrics_path) if metrics_path.is_file() else None,
                     final_losses=_final_losses(run_dir / LOSSES_FILE),
                     step=step if isinstance(step, int) else None)
    return info, ckpt.get("ema") or ckpt["model"]  # a run that keeps an EMA (ladder branches) is evaluated with it


def load_run(run_dir: str | os.PathLike) -> tuple[nn.Module, ModelInfo]:
    """The trained network of a run folder, in eval mode on the CPU, and what ``run.json`` says about it.

    Raises:
        ModelFileError: no such folder, no or unreadable ``run.json`` / ``checkpoint.pt``, an unknown architecture,
            weights that do not fit it. UnsafeCheckpointError: the checkpoint carries a pickle payload.
    """
    info, state = _read_run(run_dir)
    return _build(info.arch, info.arch_kwargs, state, info.source / CHECKPOINT_FILE), info


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with the little-endian u64 length of its JSON header, then ``{``."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < n <= path.stat().st_size - 8


def _read_export(path: Path) -> tuple[dict, dict]:
    """(metadata dict, state dict) of an export in either format."""
    if _is_safetensors(path):
        try:
            from safetensors import safe_open
        except ImportError:
            raise ModelFileError(f"{path}: a safetensors file, but the safetensors package is not installed "
                                 f"(pip install 'safetensors~=0.8')") from None
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta_text = (f.metadata() or {}).get(METADATA_KEY)
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        except Exception as e:  # safetensors raises its own SafetensorError (not importable by a stable name)
            raise ModelFileError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    else:
        obj = _torch_load(path, model_file=True)
        if not isinstance(obj, dict) or not isinstance(obj.get(METADATA_KEY), str) or "tensors" not in obj:
            raise ModelFileError(f"{path}: not an srlib model export (no '{METADATA_KEY}' description); for a "
                                 f"training checkpoint pass its run folder (--run), or export it with `srlib export`")
        meta_text, state = obj[METADATA_KEY], obj["tensors"]
    if meta_text is None:
        raise ModelFileError(f"{path}: a safetensors file without srlib's '{METADATA_KEY}' metadata (architecture, "
                             f"scale): not written by `srlib export`")
    try:
        meta = json.loads(meta_text)
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path}: the '{METADATA_KEY}' metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise ModelFileError(f"{path}: metadata format {meta.get('format') if isinstance(meta, dict) else meta!r} "
                             f"is not {EXPORT_FORMAT!r}")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{path}: written by a newer srlib (format version {meta['format_version']} > "
                             f"{FORMAT_VERSION}, srlib {meta.get('srlib_version')}); upgrade srlib")
    return meta, state


def load_export(path: str | os.PathLike) -> tuple[nn.Module, ModelInfo]:
    """The network of an exported model file (safetensors, or the torch fallback), in eval mode on the CPU.

    Raises:
        FileNotFoundError: no such file. ModelFileError: not an srlib export, unknown architecture, weights that do
            not fit it. UnsafeCheckpointError: a torch file carrying a pickle payload.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder; pass a run folder with --run, an exported file with --checkpoint")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    meta, state = _read_export(path)
    name, kwargs, scale = _spec_fields(meta, path)
    step = meta.get("step")
    info = ModelInfo(source=path, arch=name, arch_kwargs=kwargs, scale=scale, run=meta.get("run") or {},
                     metrics=meta.get("metrics"), final_losses=meta.get("final_losses"),
                     step=step if isinstance(step, int) else None, srlib_version=meta.get("srlib_version"))
    return _build(name, kwargs, state, path), info


def load_model(path: str | os.PathLike) -> tuple[nn.Module, ModelInfo]:
    """:func:`load_run` for a folder, :func:`load_export` for a file."""
    return load_run(path) if Path(path).is_dir() else load_export(path)


# ---------------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------------


def _safetensors_available() -> bool:
    from importlib.util import find_spec

    return find_spec("safetensors") is not None


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, fmt: str = "auto") -> ModelInfo:
    """Write the trained network of ``run_dir`` as a self-describing model file (atomically).

    Args:
        run_dir: a run folder (``run.json`` + ``checkpoint.pt``).
        out: the file to write (``.safetensors`` by convention; ``.pt`` for the torch fallback).
        fmt: ``"safetensors"``, ``"torch"`` (``torch.save`` of tensors + JSON, read with ``weights_only=True``) or
            ``"auto"`` (safetensors when installed).

    Returns:
        What the written file says (its ``source`` is ``out``). The weights are checked first: the run must load.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {FORMATS}")
    if fmt == "auto":
        fmt = "safetensors" if _safetensors_available() else "torch"
    info, state = _read_run(run_dir)
    _build(info.arch, info.arch_kwargs, state, info.source / CHECKPOINT_FILE)  # the export must load
    metadata = info.to_metadata()
    meta = json.dumps(metadata, sort_keys=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    out = Path(out)
    if out.is_dir():
        raise ModelFileError(f"{out}: is a folder; --out names the file to write")
    if fmt == "safetensors":
        try:
            from safetensors.torch import save
        except ImportError:
            raise ModelFileError("the safetensors package is not installed: pip install 'safetensors~=0.8', or "
                                 "export with format 'torch'") from None
        payload = save(tensors, metadata={METADATA_KEY: meta})
        with atomic_write(out) as f:
            f.write(payload)
    else:
        with atomic_write(out) as f:
            torch.save({METADATA_KEY: meta, "tensors": tensors}, f)
    return replace(info, source=out, srlib_version=metadata["srlib_version"])
