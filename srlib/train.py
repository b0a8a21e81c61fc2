"""One trainer for every method: seeded, deterministic, resumable.

* **Randomness.** Two ``torch.Generator`` streams, both seeded from ``TrainConfig.seed``. The *data generator*
  (``batch.generator``, seed :func:`rank_seed`) drives everything that makes a batch: patch positions and flips, the
  training degradation of every sample (:class:`DegradationSpace`), the noise, a method's extra samples. The *loss
  generator* (``batch.loss_generator``, seed :func:`loss_seed`, a distinct stream) drives whatever a loss samples
  (e.g. CRL-SR's M locations), so adding or removing a loss term that draws random numbers never changes the
  batches: the arms of an ablation with one seed see the same patches, degradations and noise at every step. Model
  weights are initialised under a forked, seeded global RNG (:func:`build_model`), so nothing touches global random
  state.
* **Checkpoints** (``<run_dir>/checkpoint.pt``) hold the model, the optimiser, the schedule, the step and both
  generators' states; they are written atomically (temporary file, then rename). A run that stops (``max_steps``,
  Ctrl-C, a crash) resumes from its last checkpoint and ends bit-identical to an uninterrupted run.
  A finished run is not retrained: calling :func:`train` again loads it.
* **Schedules and the budget ladder.** ``lr_halve_every`` gives the papers' step schedules. The
  warmup-stable-decay schedule (``warmup_steps``, ``decay_start``: linear warm-up, constant, then a linear cool-down
  to 0 at ``iterations``) lets one *trunk* run (no ``decay_start``) serve many budgets: it saves a copy of its
  checkpoint at each step of ``snapshots`` (``checkpoint-<step>.pt``), and a *branch* (``train(..., start_from=
  snapshot)``, same configuration but ``decay_start`` = the snapshot's step and a longer ``iterations``) resumes that
  state and cools down. Until its ``decay_start`` a branch is step for step the trunk, so its weights equal those of
  a run trained from scratch with its own configuration. With ``ema`` the trainer also keeps an exponential moving
  average of the weights (decay ``min(ema, (1 + t) / (10 + t))`` at step t, so short runs average over few steps),
  checkpoints it, and returns the model holding the averaged weights.
* **Logging.** One CSV row per iteration (``<run_dir>/losses.csv``: step, every loss term, total, lr, seconds) and
  a tqdm bar. A NaN or Inf loss term stops the run with a message naming the term; the last checkpoint is kept.

A method supplies ``loss_fn(model, batch) -> {name: weighted scalar term}``; the trainer sums the terms,
back-propagates and steps Adam. Terms whose name starts with ``_`` are diagnostics: logged, never optimised.
Images in a :class:`Batch` are in [0, 1].

A method with a second, adversarially trained network (PCL-SR's discriminator) passes a :class:`Critic`: every
iteration first takes one step of the critic on its own loss and Adam, then one step of the model (PCL-SR Fig. 1;
the official trainer's order). The critic, its optimiser state and its loss terms are checkpointed and logged with
the model's.

**Devices, precision, processes** (``TrainConfig.precision`` / ``world_size`` are part of a run's identity; the
device is not):

* ``device``: every tensor of a step lives there: patches are cropped on the CPU from the images in memory (or from
  a :mod:`srlib.streaming` loader), moved, then degraded on the device; random numbers are drawn on the CPU from
  the run's generator and moved, so a CUDA run sees the same patches, degradations and noise as a CPU run.
  CPU runs are bit-identical for the same seed. On CUDA, convolutions' backward passes use non-deterministic
  atomics unless ``torch.use_deterministic_algorithms(True)`` is set (and ``CUBLAS_WORKSPACE_CONFIG=:4096:8``):
  the same seed then gives the same batches and nearly, not exactly, the same weights.
* ``precision="bf16"``: the forward passes and losses run under ``torch.autocast`` in bfloat16 with float32 master
  weights, Adam state and gradients; the model is kept ``channels_last`` (oneDNN's and cuDNN's fast layout).
  Evaluation is always float32.
* ``world_size > 1``: one run trained by several processes started by ``torchrun``
  (:func:`srlib.distributed.init`): ``torch.nn.parallel.DistributedDataParallel`` all-reduces the gradients; each
  rank draws ``batch_size / world_size`` samples from its own generator (:func:`rank_seed`), so the global batch is
  the concatenation of the ranks' batches; each rank's loss generator is likewise its own stream (:func:`loss_seed`);
  rank 0 writes the checkpoint (with every rank's state of both generators) and the log (terms averaged over the
  ranks); every rank resumes from it.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from srlib.checkpoint import load_checkpoint, save_checkpoint
from srlib.data import PatchSampler
from srlib.degradation import Degradation, DegradationSpace, apply_batch
from srlib.fileio import atomic_write


@contextmanager
def flush_denormals():
    """Treat denormal floats as zero inside the block (restoring torch's default afterwards).

    Tiny activations and gradients become denormal during training and slow CPU convolutions by an order of magnitude
    (measured here: the small-profile RCAN step 1969 ms -> 117 ms). Flushing them changes results by less than the
    smallest normal float32 (1e-38) and is deterministic.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


PRECISIONS = ("fp32", "bf16")


class TrainingDiverged(FloatingPointError):
    """A loss term became NaN or Inf."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (saved in the checkpoint; a resume must match it).

    Attributes:
        scale: SR factor.
        iterations: optimisation steps.
        batch_size: patches per step.
        lr_patch: LR patch size (HR patches are ``lr_patch * scale``).
        lr: Adam learning rate (betas 0.9, 0.999; eps 1e-8, as in all three papers).
        lr_halve_every: halve the learning rate every this many steps (the papers' step schedules, scaled by the
            profile); None keeps it constant.
        degradations: the training degradation distribution (DASR's: isotropic widths, noise U[0, 25]).
        seed: seeds the generator and the weight initialisation.
        checkpoint_every: steps between checkpoints.
        grad_clip: clip the gradient norm to this value (None: no clipping).
        precision: ``"fp32"`` or ``"bf16"`` (autocast with float32 master weights; see the module docstring).
        world_size: processes training the run together (DDP under torchrun); ``batch_size`` is the global batch
            and must be a multiple of it.
        warmup_steps: linear learning-rate warm-up over this many steps (warmup-stable-decay; 0: none).
        decay_start: from this step the learning rate falls linearly to 0 at ``iterations`` (the cool-down of a
            warmup-stable-decay schedule); None: no cool-down. Not with ``lr_halve_every``.
        ema: decay of an exponential moving average of the weights, which the trained model holds at the end (None:
            the last weights).
        snapshots: steps at which a copy of the checkpoint is kept (``checkpoint-<step>.pt``): the states that the
            branches of a budget ladder start from (:func:`lr_factor`).
    """

    scale: int
    iterations: int
    batch_size: int
    lr_patch: int
    lr: float = 1e-4
    lr_halve_every: int | None = None
    degradations: DegradationSpace | None = None
    seed: int = 0
    checkpoint_every: int = 100
    grad_clip: float | None = None
    precision: str = "fp32"
    world_size: int = 1
    warmup_steps: int = 0
    decay_start: int | None = None
    ema: float | None = None
    snapshots: tuple[int, ...] = ()

    def __post_init__(self):
        for name in ("scale", "iterations", "batch_size", "lr_patch", "checkpoint_every", "world_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.batch_size % self.world_size:
            raise ValueError(f"TrainConfig.batch_size ({self.batch_size}) must be a multiple of world_size "
                             f"({self.world_size}): every process draws the same share of the batch")
        if self.degradations is not None and self.degradations.scale != self.scale:
            raise ValueError(f"degradations are for scale {self.degradations.scale}, training scale is {self.scale}")
        if self.decay_start is not None and not 0 <= self.decay_start < self.iterations:
            raise ValueError(f"TrainConfig.decay_start must lie in [0, iterations={self.iterations}), "
                             f"got {self.decay_start}")
        if self.lr_halve_every and (self.warmup_steps or self.decay_start is not None):
            raise ValueError("TrainConfig: lr_halve_every is a step schedule; warmup_steps / decay_start belong to "
                             "the warmup-stable-decay schedule: give one or the other")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ValueError(f"TrainConfig.ema must lie in (0, 1), got {self.ema}")
        if any(not 0 < s <= self.iterations for s in self.snapshots):
            raise ValueError(f"TrainConfig.snapshots must lie in [1, iterations={self.iterations}], "
                             f"got {self.snapshots}")

    @property
    def wsd(self) -> bool:
        """Whether the learning rate follows the warmup-stable-decay schedule (:func:`lr_factor`)."""
        return bool(self.warmup_steps) or self.decay_start is not None

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @property
    def local_batch_size(self) -> int:
        """Samples each process draws per step (``batch_size / world_size``)."""
        return self.batch_size // self.world_size


@dataclass
class Batch:
    """One training batch.

    Attributes:
        lr: (B, 3, p, p) LR patches in [0, 1].
        hr: (B, 3, p*s, p*s) HR patches in [0, 1].
        degradations: the B degradations used.
        generator: the run's *data* generator, which made the batch (batch constructors only; a loss must not draw
            from it, or adding that loss would change every later batch).
        extras: whatever else a method's batch constructor makes (e.g. PCL-SR's positives and negatives) and what
            the critic step computed that the model step reuses (e.g. the SR output).
        loss_generator: the run's *loss* generator (:func:`loss_seed`), the only source of randomness inside a loss
            (e.g. CRL-SR's M locations); :func:`train` sets it after the batch is made. A batch built outside the
            trainer (FLOP counts, benchmarks, diagnostics) gets a fresh generator seeded ``loss_seed(0, 0, 1)``:
            deterministic, and never the data generator.
    """

    lr: torch.Tensor
    hr: torch.Tensor
    degradations: list[Degradation]
    generator: torch.Generator = field(repr=False)
    extras: dict = field(default_factory=dict, repr=False)
    loss_generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(loss_seed(0, 0, 1)),
                                            repr=False)


@dataclass
class Critic:
    """A network trained alternately with the model, on its own loss and its own Adam (same betas and eps).

    Attributes:
        module: the critic network (built with :func:`build_model`).
        loss_fn: ``loss_fn(critic, model, batch) -> {term: scalar}``, summed like the model's terms (``_`` names are
            diagnostics). It must not back-propagate into the model (detach the model's output); it may store
            tensors in ``batch.extras`` for the model step.
        lr: the critic's learning rate (constant).
    """

    module: nn.Module
    loss_fn: Callable[[nn.Module, nn.Module, Batch], dict[str, torch.Tensor]]
    lr: float


def degraded_patches(sampler: PatchSampler, cfg: TrainConfig, g: torch.Generator) -> Batch:
    """Draw HR patches, degrade each with its own random degradation (bicubic only when ``cfg.degradations`` is
    None) and scale both to [0, 1]."""
    hr = sampler.sample(g)
    degs = cfg.degradations.sample_batch(len(hr), g) if cfg.degradations else [Degradation(cfg.scale)] * len(hr)
    lr = apply_batch(hr, degs, g)
    return Batch(lr / 255.0, hr / 255.0, degs, g)


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """The warmup-stable-decay multiplier of ``cfg.lr`` for the 0-based ``step``: ``(step + 1) / warmup_steps``
    during the warm-up, 1 while stable, ``(iterations - step) / (iterations - decay_start)`` in the cool-down (the
    last step runs at ``1 / cool-down length``). A branch at budget B (``decay_start = B``) is the trunk until step
    B."""
    f = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.decay_start is not None and step >= cfg.decay_start:
        f *= (cfg.iterations - step) / (cfg.iterations - cfg.decay_start)
    return f


BRANCH_FIELDS = ("iterations", "decay_start", "snapshots")
"""What a ladder branch's configuration may change from its trunk's (everything else is the same run)."""


def _check_branch(cfg: TrainConfig, state: dict, path: Path) -> None:
    """A branch may start from ``state`` (a trunk's snapshot at ``path``) only if the configurations agree on everything
    but :data:`BRANCH_FIELDS` and the snapshot is taken exactly where the branch's cool-down begins."""
    mine = {k: v for k, v in cfg.to_dict().items() if k not in BRANCH_FIELDS}
    theirs = {k: v for k, v in state["config"].items() if k not in BRANCH_FIELDS}
    if mine != theirs:
        raise ValueError(f"{path} is not a trunk of this branch: the configurations differ in "
                         f"{sorted(k for k in mine if mine[k] != theirs.get(k))}")
    if state["step"] != cfg.decay_start:
        raise ValueError(f"{path} holds step {state['step']}, the branch cools down from step {cfg.decay_start}")


def ema_decay(ema: float, step: int) -> float:
    """The averaging decay after optimisation step ``step`` (1-based): ``min(ema, (1 + step) / (10 + step))``."""
    return min(ema, (1 + step) / (10 + step))


@torch.no_grad()
def _update_ema(averaged: dict[str, torch.Tensor], model: nn.Module, step: int, ema: float) -> None:
    d = ema_decay(ema, step)
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            averaged[k].mul_(d).add_(v, alpha=1.0 - d)
        else:
            averaged[k].copy_(v)


def snapshot_path(run_dir: str | os.PathLike, step: int) -> Path:
    """Where a trunk keeps its checkpoint of ``step`` (``TrainConfig.snapshots``)."""
    return Path(run_dir) / f"checkpoint-{step}.pt"


def source_fingerprint(*modules) -> str:
    """sha256 over the source code of ``modules``: part of a run folder's name, so that a code change never silently
    reuses a model trained by older code."""
    h = hashlib.sha256()
    for mod in modules:
        h.update(inspect.getsource(mod).encode())
    return h.hexdigest()


def run_folder(runs: str | os.PathLike, name: str, spec: dict) -> Path:
    """``runs / f"{name}-{key}"`` where ``key`` hashes ``spec`` (everything that determines the run, JSON-able)."""
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return Path(runs) / f"{name}-{key[:10]}"


def build_model(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Build a model with weights initialised from ``seed`` without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


@dataclass
class TrainResult:
    model: nn.Module
    run_dir: Path
    steps_run: int
    seconds: float
    critic: nn.Module | None = None
    """``model`` holds the averaged weights when the run keeps an EMA (``TrainConfig.ema``)."""

    @property
    def losses_csv(self) -> Path:
        return self.run_dir / "losses.csv"


def rank_seed(seed: int, rank: int, world_size: int) -> int:
    """The seed of rank ``rank``'s generator: ``seed`` itself for a single process (so one-process runs are what
    they always were), else a distinct stream per rank derived from ``(seed, rank)``."""
    return seed if world_size == 1 else int.from_bytes(hashlib.sha256(f"{seed}/{rank}".encode()).digest()[:7], "big")


def loss_seed(seed: int, rank: int, world_size: int) -> int:
    """The seed of rank ``rank``'s loss generator: a stream distinct from the data generator's (:func:`rank_seed`),
    derived from ``(seed, rank)`` by sha256 for every world size (rank 0 of one process included)."""
    del world_size  # one rule for every world size: each rank's stream depends on (seed, rank) only
    return int.from_bytes(hashlib.sha256(f"loss/{seed}/{rank}".encode()).digest()[:7], "big")


def _world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, or (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _Objective(nn.Module):
    """``loss_fn(module, batch)`` as the forward of a module, so that DistributedDataParallel can wrap a whole step
    (the methods call ``forward_train`` and friends, not ``forward``). ``other`` is a network the loss reads but does
    not train (the critic's view of the SR model): held outside the module's parameters."""

    def __init__(self, module: nn.Module, loss_fn: Callable, other: nn.Module | None = None):
        super().__init__()
        self.module = module
        self.loss_fn = loss_fn
        self.__dict__["other"] = other

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.other is None:
            return self.loss_fn(self.module, batch)
        return self.loss_fn(self.module, self.other, batch)


def _wrap(objective: _Objective, device: torch.device, world_size: int) -> nn.Module:
    if world_size == 1:
        return objective
    return DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None,
                                   broadcast_buffers=False)


def _gather_generators(g: torch.Generator, world_size: int) -> list[torch.Tensor]:
    """Every rank's generator state (uint8 tensors, rank order): what a checkpoint stores to resume all of them."""
    state = g.get_state()
    if world_size == 1:
        return [state]
    states: list = [None] * world_size
    dist.all_gather_object(states, state)
    return states


def _average_gradients(module: nn.Module, world_size: int) -> None:
    """Average the critic's gradients over the processes (``torch.distributed.all_reduce``). The critic is not
    wrapped in DistributedDataParallel because the model's step also back-propagates through it (PCL-SR's L_CL),
    which would fire DDP's reduction hooks out of turn; its gradients are reduced once, after its own step."""
    if world_size == 1:
        return
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world_size)


def _save_checkpoint(path: Path, model, opt, sched, step: int, generators: list[torch.Tensor], cfg: TrainConfig,
                     critic: Critic | None = None, critic_opt=None,
                     loss_generators: list[torch.Tensor] | None = None, averaged: dict | None = None) -> None:
    state = {
        **({"ema": averaged} if averaged is not None else {}),
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict() if sched else None,
        "step": step,
        "generator": generators[0],
        "generators": generators,
        "loss_generators": loss_generators,
        "config": cfg.to_dict(),
        "critic": critic.module.state_dict() if critic else None,
        "critic_optimizer": critic_opt.state_dict() if critic else None,
    }
    save_checkpoint(path, state)


def _load_checkpoint(path: Path, device) -> dict:
    """The checkpoint at ``path``, verified and loaded without executing code (:func:`srlib.checkpoint.
    load_checkpoint`: a corrupt or unsafe file is a :class:`srlib.checkpoint.CheckpointError` naming it)."""
    return load_checkpoint(path, map_location=device, required=("model", "optimizer", "step", "generator", "config"))


def _truncate_log(path: Path, step: int) -> None:
    """Keep the header and the complete rows of steps <= ``step`` (rows written after the last checkpoint are redone;
    a row cut short by a killed process, e.g. ``1`` left of ``12,...``, is dropped however it parses)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keep = rows[:1] + [r for r in rows[1:] if len(r) == len(rows[0]) and r[0].isdigit() and int(r[0]) <= step]
    with atomic_write(path, binary=False) as f:
        csv.writer(f, lineterminator="\n").writerows(keep)


def _copy_log(trunk_log: Path, log_path: Path) -> None:
    """Start a branch's log with its trunk's rows (those after the branch point are dropped by the caller's
    truncation)."""
    if trunk_log.exists():
        with atomic_write(log_path, binary=False) as f:
            f.write(trunk_log.read_text())


def _mean_over_ranks(terms: dict[str, torch.Tensor], world_size: int) -> dict[str, torch.Tensor]:
    """The logged value of every term: its mean over the processes (the local value for one process)."""
    if world_size == 1 or not terms:
        return {k: v.detach() for k, v in terms.items()}
    flat = torch.stack([v.detach().float() for v in terms.values()])
    dist.all_reduce(flat)
    return dict(zip(terms, flat / world_size, strict=True))


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Batch], dict[str, torch.Tensor]],
    images,
    cfg: TrainConfig,
    run_dir: str | os.PathLike,
    make_batch: Callable[[PatchSampler, TrainConfig, torch.Generator], Batch] = degraded_patches,
    max_steps: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "train",
    critic: Critic | None = None,
    start_from: str | os.PathLike | None = None,
) -> TrainResult:
    """Train ``model`` (in place) or resume/load it from ``run_dir``.

    Args:
        model: built with :func:`build_model` from ``cfg.seed``; moved to ``device``.
        loss_fn: ``loss_fn(model, batch) -> {term: scalar}``; the terms are summed (weights applied inside), except
            diagnostics named ``_...``, which are only logged.
        images: training HR images, (3, H, W) uint8 or float 0..255 tensors (at least ``lr_patch * scale`` pixels),
            or a :class:`srlib.streaming.StreamingImages` (image files read by DataLoader workers).
        cfg: the run's configuration; a checkpoint made with another configuration is an error.
        run_dir: folder for ``checkpoint.pt``, ``losses.csv`` and ``config.json``.
        make_batch: batch constructor (methods with other batch layouts, e.g. pairs of patches, pass their own).
        max_steps: stop after this step (saving a checkpoint), to split a run; None runs to ``cfg.iterations``.
        device: where the step runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
        critic: a network stepped before the model in every iteration (:class:`Critic`); trained in place.
        start_from: a trunk's snapshot (:func:`snapshot_path`) this run branches from when ``run_dir`` holds no
            checkpoint yet: its configuration must equal ``cfg`` but for :data:`BRANCH_FIELDS`, its step must be
            ``cfg.decay_start``; the trunk's log rows up to there are copied.

    Returns:
        :class:`TrainResult` with the trained model and the number of steps run in this call.
    """
    from srlib.streaming import StreamingImages

    device = torch.device(device)
    rank, world_size = _world()
    if world_size != cfg.world_size:
        raise ValueError(f"the run is configured for world_size={cfg.world_size} but {world_size} process(es) run "
                         f"it; start it with `torchrun --nproc_per_node {cfg.world_size}` or change the spec")
    run_dir = Path(run_dir)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = run_dir / "checkpoint.pt", run_dir / "losses.csv"
    bf16 = cfg.precision == "bf16"
    model.to(device)
    if bf16:
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_halve_every, 0.5) if cfg.lr_halve_every else None
    critic_opt = None
    if critic:
        critic.module.to(device)
        if bf16:
            critic.module.to(memory_format=torch.channels_last)
        critic_opt = torch.optim.Adam(critic.module.parameters(), lr=critic.lr, betas=(0.9, 0.999), eps=1e-8)
    g = torch.Generator().manual_seed(rank_seed(cfg.seed, rank, world_size))
    loss_g = torch.Generator().manual_seed(loss_seed(cfg.seed, rank, world_size))
    patch = cfg.lr_patch * cfg.scale
    stream = images if isinstance(images, StreamingImages) else None
    sampler = None if stream else PatchSampler(list(images), patch, cfg.local_batch_size, device=device)
    start = 0
    averaged = {k: v.detach().clone() for k, v in model.state_dict().items()} if cfg.ema else None
    branching = not ckpt_path.exists() and start_from is not None
    if ckpt_path.exists() or branching:
        state = _load_checkpoint(Path(start_from) if branching else ckpt_path, device)
        if branching:
            _check_branch(cfg, state, Path(start_from))
            if rank == 0:
                _copy_log(Path(start_from).parent / "losses.csv", log_path)
                (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        elif state["config"] != cfg.to_dict():
            raise ValueError(f"{ckpt_path} was made with another configuration: {state['config']} != "
                             f"{cfg.to_dict()}; use another run_dir or delete it")
        if averaged is not None:
            averaged = {k: v.to(device) for k, v in state["ema"].items()}
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched:
            sched.load_state_dict(state["scheduler"])
        g.set_state(state.get("generators", [state["generator"]])[rank].cpu())
        if state.get("loss_generators") is not None:  # older checkpoints: the loss generator was never drawn from
            loss_g.set_state(state["loss_generators"][rank].cpu())
        if critic:
            critic.module.load_state_dict(state["critic"])
            critic_opt.load_state_dict(state["critic_optimizer"])
        start = state["step"]
        if rank == 0:
            _truncate_log(log_path, start)
    elif rank == 0:
        _truncate_log(log_path, 0)  # rows of a process killed before its first checkpoint are redone
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    stop = min(cfg.iterations, max_steps) if max_steps is not None else cfg.iterations
    last_checkpoint = start
    model.train()
    step_model = _wrap(_Objective(model, loss_fn), device, world_size)
    step_critic = _Objective(critic.module, critic.loss_fn, model) if critic else None
    if critic:
        critic.module.train()

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    tiles = stream.loader(patch, cfg.local_batch_size, rank_seed(cfg.seed, rank, world_size), start, stop) \
        if stream else None
    t0 = time.perf_counter()
    writer_file = open(log_path, "a", newline="") if rank == 0 else open(os.devnull, "w")  # noqa: SIM115
    with writer_file, flush_denormals():
        writer = csv.writer(writer_file, lineterminator="\n")
        header_written = rank != 0 or log_path.stat().st_size > 0
        bar = tqdm(range(start, stop), initial=start, total=cfg.iterations, desc=desc,
                   disable=not progress or rank != 0)
        for step in bar:
            if tiles is not None:
                sampler = PatchSampler(next(tiles), patch, cfg.local_batch_size, device=device)
            batch = make_batch(sampler, cfg, g)
            batch.loss_generator = loss_g
            batch.lr, batch.hr = batch.lr.to(device), batch.hr.to(device)
            critic_terms = {}
            if critic:
                with autocast():
                    critic_terms = _checked(step_critic(batch), step, ckpt_path, last_checkpoint)
                critic_opt.zero_grad(set_to_none=True)
                _optimised_sum(critic_terms).backward()
                _average_gradients(critic.module, world_size)
                critic_opt.step()
            with autocast():
                terms = _checked(step_model(batch), step, ckpt_path, last_checkpoint)
            total = _optimised_sum(terms)
            opt.zero_grad(set_to_none=True)
            total.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            if cfg.wsd:
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * lr_factor(cfg, step)
            lr_now = opt.param_groups[0]["lr"]
            opt.step()
            if sched:
                sched.step()
            if averaged is not None:
                _update_ema(averaged, model, step + 1, cfg.ema)
            logged = _mean_over_ranks({**critic_terms, **terms, "total": total}, world_size)
            total_logged = logged.pop("total")
            if not header_written:
                writer.writerow(["step", *logged, "total", "lr", "seconds"])
                header_written = True
            writer.writerow([step + 1, *(f"{v.item():.6g}" for v in logged.values()), f"{total_logged.item():.6g}",
                             f"{lr_now:.6g}", f"{time.perf_counter() - t0:.3f}"])
            if (step + 1) % 10 == 0:
                bar.set_postfix({k: f"{v.item():.4f}" for k, v in logged.items()}, refresh=False)
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == stop or step + 1 in cfg.snapshots:
                writer_file.flush()
                generators = _gather_generators(g, world_size)
                loss_generators = _gather_generators(loss_g, world_size)
                if rank == 0:
                    for path in (ckpt_path, *([snapshot_path(run_dir, step + 1)] if step + 1 in cfg.snapshots
                                              else [])):
                        _save_checkpoint(path, model, opt, sched, step + 1, generators, cfg, critic, critic_opt,
                                         loss_generators, averaged)
                if world_size > 1:
                    dist.barrier()
                last_checkpoint = step + 1
        bar.close()
    model.eval()
    if averaged is not None and stop == cfg.iterations:
        model.load_state_dict(averaged)
    if critic:
        critic.module.eval()
    return TrainResult(model, run_dir, max(0, stop - start), time.perf_counter() - t0,
                       critic.module if critic else None)


def _checked(terms: dict[str, torch.Tensor], step: int, ckpt_path: Path, last_checkpoint: int) -> dict:
    """``terms`` unchanged; :class:`TrainingDiverged` naming the first NaN/Inf term."""
    for name, value in terms.items():
        if not torch.isfinite(value):
            raise TrainingDiverged(f"loss term {name!r} became {value.item()} at step {step + 1}; the last "
                                   f"checkpoint ({ckpt_path}) holds step {last_checkpoint}")
    return terms


def _optimised_sum(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of the terms that are optimised (names not starting with ``_``)."""
    return sum(v for k, v in terms.items() if not k.startswith("_"))


def load_losses(run_dir: str | os.PathLike):
    """The per-iteration loss log of a run as a DataFrame."""
    import pandas as pd

    return pd.read_csv(Path(run_dir) / "losses.csv")
