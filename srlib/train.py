"""One trainer for every method: seeded, deterministic, resumable.

* **Randomness.** A single ``torch.Generator`` (seeded from ``TrainConfig.seed``) drives everything drawn during
  training: patch positions and flips, the training degradation of every sample (:class:`DegradationSpace`), the
  noise, and whatever the loss samples (e.g. CRL-SR's M locations, via ``batch.generator``). Model weights are
  initialised under a forked, seeded global RNG (:func:`build_model`), so nothing touches global random state.
* **Checkpoints** (``<run_dir>/checkpoint.pt``) hold the model, the optimiser, the schedule, the step and the
  generator state; they are written atomically (temporary file, then rename). A run that stops (``max_steps``,
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
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import json
import os
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

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

    def __post_init__(self):
        for name in ("scale", "iterations", "batch_size", "lr_patch", "checkpoint_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.degradations is not None and self.degradations.scale != self.scale:
            raise ValueError(f"degradations are for scale {self.degradations.scale}, training scale is {self.scale}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


@dataclass
class Batch:
    """One training batch. ``lr`` (B, 3, p, p) and ``hr`` (B, 3, p*s, p*s) in [0, 1]; ``degradations`` the B
    degradations used; ``generator`` the run's generator, for randomness inside the loss; ``extras`` whatever else a
    method's batch constructor makes (e.g. PCL-SR's positives and negatives) and what the critic step computed that
    the model step reuses (e.g. the SR output)."""

    lr: torch.Tensor
    hr: torch.Tensor
    degradations: list[Degradation]
    generator: torch.Generator = field(repr=False)
    extras: dict = field(default_factory=dict, repr=False)


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


def _save_checkpoint(path: Path, model, opt, sched, step: int, g: torch.Generator, cfg: TrainConfig,
                     critic: Critic | None = None, critic_opt=None) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict() if sched else None,
        "step": step,
        "generator": g.get_state(),
        "config": cfg.to_dict(),
        "critic": critic.module.state_dict() if critic else None,
        "critic_optimizer": critic_opt.state_dict() if critic else None,
    }
    with atomic_write(path) as f:
        torch.save(state, f)


def _truncate_log(path: Path, step: int) -> None:
    """Keep the header and the rows of steps <= ``step`` (rows written after the last checkpoint are redone)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keep = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= step]
    with atomic_write(path, binary=False) as f:
        csv.writer(f, lineterminator="\n").writerows(keep)


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Batch], dict[str, torch.Tensor]],
    images: Sequence[torch.Tensor],
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
        images: training HR images, (3, H, W) uint8 or float 0..255 tensors (at least ``lr_patch * scale`` pixels).
        cfg: the run's configuration; a checkpoint made with another configuration is an error.
        run_dir: folder for ``checkpoint.pt``, ``losses.csv`` and ``config.json``.
        make_batch: batch constructor (methods with other batch layouts, e.g. pairs of patches, pass their own).
        max_steps: stop after this step (saving a checkpoint), to split a run; None runs to ``cfg.iterations``.
        critic: a network stepped before the model in every iteration (:class:`Critic`); trained in place.

    Returns:
        :class:`TrainResult` with the trained model and the number of steps run in this call.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = run_dir / "checkpoint.pt", run_dir / "losses.csv"
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_halve_every, 0.5) if cfg.lr_halve_every else None
    critic_opt = None
    if critic:
        critic.module.to(device)
        critic_opt = torch.optim.Adam(critic.module.parameters(), lr=critic.lr, betas=(0.9, 0.999), eps=1e-8)
    g = torch.Generator().manual_seed(cfg.seed)
    sampler = PatchSampler(list(images), cfg.lr_patch * cfg.scale, cfg.batch_size)
    start = 0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if state["config"] != cfg.to_dict():
            raise ValueError(f"{ckpt_path} was made with another configuration: {state['config']} != "
                             f"{cfg.to_dict()}; use another run_dir or delete it")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched:
            sched.load_state_dict(state["scheduler"])
        g.set_state(state["generator"])
        if critic:
            critic.module.load_state_dict(state["critic"])
            critic_opt.load_state_dict(state["critic_optimizer"])
        start = state["step"]
        _truncate_log(log_path, start)
    else:
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    stop = min(cfg.iterations, max_steps) if max_steps is not None else cfg.iterations
    last_checkpoint = start
    model.train()
    if critic:
        critic.module.train()
    t0 = time.perf_counter()
    with open(log_path, "a", newline="") as writer_file, flush_denormals():
        writer = csv.writer(writer_file, lineterminator="\n")
        header_written = log_path.stat().st_size > 0
        bar = tqdm(range(start, stop), initial=start, total=cfg.iterations, desc=desc, disable=not progress)
        for step in bar:
            batch = make_batch(sampler, cfg, g)
            batch.lr, batch.hr = batch.lr.to(device), batch.hr.to(device)
            critic_terms = {}
            if critic:
                critic_terms = _checked(critic.loss_fn(critic.module, model, batch), step, ckpt_path, last_checkpoint)
                critic_opt.zero_grad(set_to_none=True)
                _optimised_sum(critic_terms).backward()
                critic_opt.step()
            terms = _checked(loss_fn(model, batch), step, ckpt_path, last_checkpoint)
            total = _optimised_sum(terms)
            opt.zero_grad(set_to_none=True)
            total.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            lr_now = opt.param_groups[0]["lr"]
            opt.step()
            if sched:
                sched.step()
            logged = {**critic_terms, **terms}
            if not header_written:
                writer.writerow(["step", *logged, "total", "lr", "seconds"])
                header_written = True
            writer.writerow([step + 1, *(f"{v.item():.6g}" for v in logged.values()), f"{total.item():.6g}",
                             f"{lr_now:.6g}", f"{time.perf_counter() - t0:.3f}"])
            if (step + 1) % 10 == 0:
                bar.set_postfix({k: f"{v.item():.4f}" for k, v in logged.items()}, refresh=False)
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == stop:
                writer_file.flush()
                _save_checkpoint(ckpt_path, model, opt, sched, step + 1, g, cfg, critic, critic_opt)
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


def model_upscaler(model: nn.Module, device: str | torch.device = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """Wrap a [0, 1] model as an evaluation upscaler on the 0..255 scale (see :mod:`srlib.evaluate`)."""

    def upscale(lr: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), flush_denormals():
            return model(lr.to(device) / 255.0).clamp(0, 1).cpu() * 255.0

    model.eval()
    return upscale


def model_upscalers(models: dict[tuple[str, int], nn.Module]) -> dict[str, dict[int, Callable]]:
    """``{(method, seed): model}`` -> ``{method: {seed: upscaler}}`` (:func:`model_upscaler`), the shape that
    :func:`srlib.evaluate.measure` takes."""
    methods: dict = {}
    for (name, seed), model in models.items():
        methods.setdefault(name, {})[seed] = model_upscaler(model)
    return methods
