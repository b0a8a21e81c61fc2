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
                     loss_generators: list[torch.Tensor] | None = None) -> None:
    state = {
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
    if ckpt_path.exists():
        state = _load_checkpoint(ckpt_path, device)
        if state["config"] != cfg.to_dict():
            raise ValueError(f"{ckpt_path} was made with another configuration: {state['config']} != "
                             f"{cfg.to_dict()}; use another run_dir or delete it")
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
            lr_now = opt.param_groups[0]["lr"]
            opt.step()
            if sched:
                sched.step()
            logged = _mean_over_ranks({**critic_terms, **terms, "total": total}, world_size)
            total_logged = logged.pop("total")
            if not header_written:
                writer.writerow(["step", *logged, "total", "lr", "seconds"])
                header_written = True
            writer.writerow([step + 1, *(f"{v.item():.6g}" for v in logged.values()), f"{total_logged.item():.6g}",
                             f"{lr_now:.6g}", f"{time.perf_counter() - t0:.3f}"])
            if (step + 1) % 10 == 0:
                bar.set_postfix({k: f"{v.item():.4f}" for k, v in logged.items()}, refresh=False)
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == stop:
                writer_file.flush()
                generators = _gather_generators(g, world_size)
                loss_generators = _gather_generators(loss_g, world_size)
                if rank == 0:
                    _save_checkpoint(ckpt_path, model, opt, sched, step + 1, generators, cfg, critic, critic_opt,
                                     loss_generators)
                if world_size > 1:
                    dist.barrier()
                last_checkpoint = step + 1
        bar.close()
    model.eval()
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
