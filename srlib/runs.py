"""Training runs as data: what a run is (:class:`RunSpec`), where it lives, and one function that trains, resumes or
loads a whole set of them in dependency order (:func:`train_all`).

Each paper's recipe module (:mod:`srlib.recipes`) lists its runs for a profile, ``runs(profile) -> list[RunSpec]``;
notebooks, ``srlib train`` and the tests ask for those runs and get ``{RunId: TrainResult}`` back. What a run
measures afterwards (tables, claims, figures: :mod:`srlib.methods`) is not part of it, so editing analysis code never
retrains a model.

**A run's folder** is ``<runs>/<RunId.slug>-<key>``, where ``key`` hashes everything that determines the trained
weights (:meth:`RunSpec.identity`): the run id, the architecture and its sizes, the recipe's description of its loss
and batches, the :class:`srlib.train.TrainConfig` (schedule, precision, world size), the parent run it starts from,
the training data's label and the *training-code fingerprint*: the source of the modules that shape training (the
recipe, architectures, losses, trainer, degradation, sampler; :attr:`RunSpec.code`). Besides the trainer's
``checkpoint.pt``, ``losses.csv`` and ``config.json``, it holds ``run.json``: the identity in readable form, from
which :func:`srlib.archs.build_arch` rebuilds the network (``srlib export``, ``srlib upscale``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import inspect
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from srlib.archs import build_arch
from srlib.locks import run_lock
from srlib.train import Critic, TrainConfig, TrainResult, build_model, degraded_patches, snapshot_path, train

RUN_FILE = "run.json"

TRAINING_CODE = ("srlib.runs", "srlib.train", "srlib.data", "srlib.degradation", "srlib.streaming", "srlib.archs",
                 "srlib.archs.common", "srlib.losses")
"""Modules whose source shapes every run; a recipe adds its own (architectures, losses, itself)."""


@dataclass(frozen=True, order=True)
class RunId:
    """The name of a run.

    Attributes:
        paper: ``"crl-sr"``, ``"pcl-sr"`` or ``"blind"`` (DASR / CDSR).
        method: what is trained, e.g. ``"crl-f"``, ``"rcan"``, ``"dasr"``, ``"cdsr"``, ``"pcl-base"``, ``"pcl-pcl"``.
        network: the network's name (``"CRLSR"``, ``"RCAN"``, ``"EDSR-S"``, ``"DASR"``, ...).
        scale: SR factor.
        seed: training seed.
        stage: ``"train"`` (a single-stage run), ``"warmup"`` / ``"joint"`` (DASR), ``"pretrain"`` / ``"finetune"``
            (PCL-SR).
        arm: further distinctions of the recipe (training protocol and positive of a blind run, PCL arm details).
        rung: ``""`` for a run of its own schedule; in a budget ladder (:func:`ladder`) ``"trunk"`` for the
            constant-rate run the branches start from and ``"b<steps>"`` for the branch that cools down after
            ``<steps>`` steps of it.
    """

    paper: str
    method: str
    network: str
    scale: int
    seed: int
    stage: str = "train"
    arm: str = ""
    rung: str = ""

    @property
    def slug(self) -> str:
        """Readable folder prefix, e.g. ``crl-sr-crl-f-CRLSR-x4-s0``, ``blind-dasr-DASR-cdsr-n15-cd-x4-s0-joint``."""
        parts = [self.paper, self.method, self.network, *([self.arm] if self.arm else []), f"x{self.scale}",
                 f"s{self.seed}"]
        return "-".join([*parts, *([self.stage] if self.stage != "train" else []), *([self.rung] if self.rung else [])])

    @property
    def budget(self) -> int | None:
        """The stable-phase steps of a ladder branch (``rung="b1000"`` -> 1000); None otherwise."""
        return int(self.rung[1:]) if self.rung.startswith("b") else None

    def matches(self, **fields) -> bool:
        """Whether every given field equals (or, for a tuple/list/set, is among) the given value(s)."""
        return all(getattr(self, k) in v if isinstance(v, tuple | list | set | frozenset) else getattr(self, k) == v
                   for k, v in fields.items())


@dataclass(frozen=True)
class TrainData:
    """Where a run's training images come from: the profile's ``train_sets`` under the data root (else the embedded
    training set), images with both sides at least ``min_size`` (the HR patch)."""

    sets: tuple[str, ...]
    min_size: int


Objective = Callable[[], tuple[Callable, Critic | None]]
"""Builds a run's loss (``loss_fn(model, batch) -> {term: scalar}``) and its critic (or None) when it trains."""


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one training run.

    Attributes:
        id: the run's name.
        arch: architecture (a key of :data:`srlib.archs.ARCHITECTURES`); arch_kwargs: its constructor arguments.
        config: the trainer's configuration (scale, schedule, batch, seed, precision, world size).
        recipe: JSON-able description of the loss and the batches (what :attr:`objective` and :attr:`make_batch`
            build); part of the identity.
        objective: builds ``(loss_fn, critic)`` (not part of the identity: :attr:`recipe` and :attr:`code` are).
        make_batch: the batch constructor (:func:`srlib.train.degraded_patches` or the recipe's own).
        data: the training images.
        parent: the run whose final weights this one starts from (DASR's encoder warm-up, PCL's base), or None.
        freeze: sub-modules (attribute names of the network) not trained in this run (DASR warm-up: ``sr_net``).
        branch_of: the ladder trunk whose snapshot at ``config.decay_start`` this run continues (:func:`ladder`).
        code: modules whose source is the training-code fingerprint (:data:`TRAINING_CODE` is always added).
        desc: progress-bar label.
    """

    id: RunId
    arch: str
    arch_kwargs: dict
    config: TrainConfig
    recipe: dict
    objective: Objective = field(repr=False, compare=False)
    data: TrainData
    make_batch: Callable = field(default=degraded_patches, repr=False, compare=False)
    parent: RunSpec | None = field(default=None, repr=False)
    freeze: tuple[str, ...] = ()
    branch_of: RunSpec | None = field(default=None, repr=False)
    code: tuple[str, ...] = ()
    desc: str = ""

    def build(self) -> nn.Module:
        """The network with weights initialised from the run id's seed (:func:`srlib.train.build_model`; a run with a
        parent then loads the parent's weights)."""
        return build_model(lambda: build_arch(self.arch, self.arch_kwargs), self.id.seed)

    def fingerprint(self) -> str:
        """sha256 of the source of the training code (:data:`TRAINING_CODE` + :attr:`code`)."""
        return code_fingerprint(self.code)

    def identity(self, data_label: str) -> dict:
        """What the run folder's key hashes (JSON-able); ``data_label`` names the images actually loaded."""
        return {
            "id": asdict(self.id),
            "arch": {"name": self.arch, "kwargs": self.arch_kwargs},
            "train": self.config.to_dict(),
            "recipe": self.recipe,
            "freeze": list(self.freeze),
            "data": data_label,
            "fingerprint": self.fingerprint(),
            "parent": self.parent.identity(data_label) if self.parent else None,
            **({"branch_of": self.branch_of.identity(data_label)} if self.branch_of else {}),
        }

    def folder(self, runs: str | os.PathLike, data_label: str) -> Path:
        key = hashlib.sha256(json.dumps(self.identity(data_label), sort_keys=True).encode()).hexdigest()
        return Path(runs) / f"{self.id.slug}-{key[:10]}"

    def with_(self, **changes) -> RunSpec:
        """A copy with fields of :attr:`config` (``precision``, ``world_size``, ``iterations``, ...) replaced, in this
        run and its parents (a bf16 run starts from a bf16 warm-up)."""
        parent = self.parent.with_(**changes) if self.parent else None
        trunk = self.branch_of.with_(**changes) if self.branch_of else None
        return replace(self, config=replace(self.config, **changes), parent=parent, branch_of=trunk)


LADDER_COOLDOWN = 0.1
"""A branch's cool-down, as a share of its budget (:func:`ladder`)."""
LADDER_EMA = 0.999
"""EMA decay of ladder runs (short runs average over fewer steps: :func:`srlib.train.ema_decay`)."""


def ladder(spec: RunSpec, budgets: Sequence[int], cooldown: float = LADDER_COOLDOWN,
           ema: float = LADDER_EMA) -> list[RunSpec]:
    """A budget ladder of ``spec`` from one trajectory: the branches (one per budget, ``rung="b<budget>"``).

    The trunk (``rung="trunk"``, trained first by :func:`train_one`) runs ``spec``'s batches, loss and peak learning
    rate under a warmup-stable-decay schedule (warm-up over a tenth of the smallest budget, then constant, no
    cool-down; :func:`srlib.train.lr_factor`) for ``max(budgets)`` steps and keeps a snapshot at every budget. Branch
    B starts from the snapshot at B and cools down linearly to 0 over ``ceil(cooldown * B)`` steps; all keep an EMA
    of the weights (``ema``), which the trained branch holds. The arms of a claim laddered with the same budgets see
    the same batches at every step (one data generator per seed), so each rung is a paired comparison.
    """
    budgets = sorted(set(budgets))
    if not budgets or budgets[0] < 10:
        raise ValueError(f"ladder budgets must be at least 10 steps, got {budgets}")
    cfg = replace(spec.config, iterations=budgets[-1], lr_halve_every=None, warmup_steps=max(1, budgets[0] // 10),
                  decay_start=None, ema=ema, snapshots=tuple(budgets),
                  checkpoint_every=min(spec.config.checkpoint_every, budgets[0]))
    trunk = replace(spec, id=replace(spec.id, rung="trunk"), config=cfg, desc=f"{spec.desc or spec.id.slug} trunk")
    return [replace(spec, id=replace(spec.id, rung=f"b{b}"), branch_of=trunk,
                    config=replace(cfg, iterations=b + math.ceil(cooldown * b), decay_start=b, snapshots=()),
                    desc=f"{spec.desc or spec.id.slug} @{b}")
            for b in budgets]


def code_fingerprint(modules: Iterable[str] = ()) -> str:
    """sha256 over the source of :data:`TRAINING_CODE` and ``modules`` (importable names), in sorted order."""
    h = hashlib.sha256()
    for name in sorted(set(TRAINING_CODE) | set(modules)):
        h.update(name.encode())
        h.update(inspect.getsource(importlib.import_module(name)).encode())
    return h.hexdigest()


def select(specs: Iterable[RunSpec], **fields) -> list[RunSpec]:
    """The specs whose :class:`RunId` matches ``fields`` (see :meth:`RunId.matches`)."""
    return [s for s in specs if s.id.matches(**fields)]


def matching(specs: Iterable[RunSpec], pattern: str | None) -> list[RunSpec]:
    """The specs whose :attr:`RunId.slug` matches the shell-style ``pattern`` (all when None)."""
    return [s for s in specs if pattern is None or fnmatch.fnmatch(s.id.slug, pattern)]


def ordered(specs: Iterable[RunSpec]) -> list[RunSpec]:
    """``specs`` and every parent and ladder trunk they need, those first, each once (by identity)."""
    out: list[RunSpec] = []
    seen: set[str] = set()

    def visit(spec: RunSpec) -> None:
        for before in (spec.parent, spec.branch_of):
            if before is not None:
                visit(before)
        key = json.dumps(spec.identity(""), sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(spec)

    for s in specs:
        visit(s)
    return out


class Results(dict):
    """``{RunId: TrainResult}`` with lookups by field: ``results.one(method="crl-f", seed=0)``."""

    def where(self, **fields) -> Results:
        return Results({k: v for k, v in self.items() if k.matches(**fields)})

    def one(self, **fields) -> TrainResult:
        found = self.where(**fields)
        if len(found) != 1:
            raise KeyError(f"{len(found)} runs match {fields}: {sorted(k.slug for k in found)}")
        return next(iter(found.values()))

    def models(self, key: Callable[[RunId], object], **fields) -> dict:
        """``{key(run id): trained model}`` of the runs matching ``fields``."""
        return {key(k): v.model for k, v in self.where(**fields).items()}


class TrainingImages:
    """Loads each (sets, min size) once: ``images(data) -> (label, images)``. ``override`` (a list of images) stands in
    for every run (tests)."""

    def __init__(self, data_root: str | os.PathLike | None = None, override: Sequence[torch.Tensor] | None = None):
        self.data_root, self.override, self._cache = data_root, override, {}

    def __call__(self, data: TrainData):
        if self.override is not None:
            return "given images", self.override
        if data not in self._cache:
            self._cache[data] = load_training_images(data, self.data_root)
        return self._cache[data]


def load_training_images(data: TrainData, data_root: str | os.PathLike | None = None):
    """The training HR images of ``data`` as (3, H, W) uint8 tensors: its ``sets`` found under the data root, else the
    embedded training set; images with a side below ``data.min_size`` are skipped. A set whose folder holds more than
    :data:`STREAM_ABOVE` images is streamed from disk (:class:`srlib.streaming.StreamingImages`) instead.

    Returns:
        (label naming the sets and how many images were kept, list of images or a StreamingImages)
    """
    from srlib import data as sdata
    from srlib.streaming import StreamingImages

    names = sdata.available_sets([n for n in data.sets if not n.startswith("embedded")], data_root)
    names = names or ["embedded-train"]
    if len(names) == 1 and not names[0].startswith("embedded"):
        folder = sdata.data_root(data_root) / names[0] / "HR"
        if len(list(folder.iterdir())) > STREAM_ABOVE:
            streamed = StreamingImages.from_folder(folder, label=f"{names[0]} (streamed)")
            return streamed.label, streamed
    images = [t.to(torch.uint8) for n in names for t in sdata.open_set(n, data_root).tensors()]
    kept = [t for t in images if min(t.shape[-2:]) >= data.min_size]
    if not kept:
        raise ValueError(f"no training image of {'+'.join(names)} has both sides >= {data.min_size} pixels")
    return f"{'+'.join(names)} ({len(kept)} of {len(images)} images >= {data.min_size} px)", kept


STREAM_ABOVE = 1000
"""Training sets with more images than this are streamed from disk rather than decoded into memory (DF2K: 3,450)."""


def train_one(spec: RunSpec, runs: str | os.PathLike, images: TrainingImages, device="cpu", progress: bool = True,
              max_steps: int | None = None, done: dict | None = None, wait: bool = True) -> TrainResult | None:
    """Train, resume or load one run (its parent first), writing ``run.json`` into its folder.

    The run folder is locked while this process writes it (:func:`srlib.locks.run_lock`; under torchrun rank 0
    holds the lock and the other ranks wait for it at their first collective): with ``wait=False`` a run that
    another process is training is skipped (returns None), with ``wait=True`` this process waits and then resumes or
    loads what the other one left.
    """
    from srlib.distributed import rank

    done = {} if done is None else done
    label, imgs = images(spec.data)
    label = getattr(imgs, "label", label)
    folder = spec.folder(runs, label)
    if folder in done:
        return done[folder]
    parent = None
    if spec.parent is not None:
        parent = train_one(spec.parent, runs, images, device, progress, None, done)
    if spec.branch_of is not None:
        train_one(spec.branch_of, runs, images, device, progress, None, done)
    with run_lock(folder, wait=wait) if rank() == 0 else nullcontext(True) as held:
        if not held:
            return None
        return _train_locked(spec, folder, label, imgs, parent, device, progress, max_steps, done)


def _train_locked(spec, folder, label, imgs, parent, device, progress, max_steps, done) -> TrainResult:
    model = spec.build()
    if parent is not None:
        model.load_state_dict(parent.model.state_dict())
    for name in spec.freeze:
        getattr(model, name).requires_grad_(False)
    loss_fn, critic = spec.objective()
    _write_run_file(folder, spec, label)
    start_from = None
    if spec.branch_of is not None:
        start_from = snapshot_path(spec.branch_of.folder(folder.parent, label), spec.config.decay_start)
    result = train(model, loss_fn, imgs, spec.config, folder, make_batch=spec.make_batch, max_steps=max_steps,
                   device=device, progress=progress, desc=spec.desc or spec.id.slug, critic=critic,
                   start_from=start_from)
    for name in spec.freeze:
        getattr(model, name).requires_grad_(True)
    if max_steps is None:
        done[folder] = result
    return result


def _write_run_file(folder: Path, spec: RunSpec, label: str) -> None:
    from srlib.fileio import atomic_write

    if int(os.environ.get("RANK", "0")) != 0:
        return
    folder.mkdir(parents=True, exist_ok=True)
    info = {**spec.identity(label), "scale": spec.config.scale, "precision": spec.config.precision,
            "world_size": spec.config.world_size, "parent_folder": spec.parent.folder(folder.parent, label).name
            if spec.parent else None}
    path = folder / RUN_FILE
    text = json.dumps(info, indent=2, sort_keys=True) + "\n"
    if not path.exists() or path.read_text() != text:
        with atomic_write(path, binary=False) as f:
            f.write(text)


def train_all(specs: Iterable[RunSpec], runs: str | os.PathLike, data_root: str | os.PathLike | None = None,
              device: str | torch.device = "cpu", progress: bool = True, images: Sequence | None = None,
              on_done: Callable[[RunSpec, TrainResult], None] | None = None) -> Results:
    """Train, resume or load every run of ``specs`` (and the parents they start from) in dependency order.

    Args:
        runs: the runs folder (:func:`srlib.profiles.runs_dir`).
        data_root: where the standard training sets are (None: ``$SRLIB_DATA``, else the embedded images).
        device: where training steps run; finished runs load onto the CPU either way (evaluation is on the CPU).
        images: training images for every run (tests), instead of the specs' :class:`TrainData`.
        on_done: called after each requested run with its spec and result (``srlib train``'s summary).

    Returns:
        :class:`Results` ``{RunId: TrainResult}`` of the requested specs (parents are trained, not returned).
    """
    specs = list(specs)
    loader = TrainingImages(data_root, images)
    done: dict = {}
    out = Results()
    todo = ordered(specs)
    for wait in (False, True):  # first the runs nobody else is training, then wait for the others
        busy = []
        for spec in todo:
            t0 = time.perf_counter()
            result = train_one(spec, runs, loader, device, progress, None, done, wait=wait)
            if result is None:
                busy.append(spec)
                continue
            result.model.to("cpu")
            if result.critic is not None:
                result.critic.to("cpu")
            if on_done is not None:
                on_done(spec, result, time.perf_counter() - t0)
            out[spec.id] = result
        todo = busy
    requested = {s.id for s in specs}
    return Results({k: out[k] for k in (s.id for s in specs) if k in requested})


def run_info(run_dir: str | os.PathLike) -> dict:
    """The ``run.json`` of a run folder."""
    path = Path(run_dir) / RUN_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a run folder of srlib (no {RUN_FILE}); train it with `srlib train`")
    return json.loads(path.read_text())
