"""Training-step throughput of each method on this machine, in float32 and bfloat16 (prints figures; asserts nothing).

    python benchmarks/bench_training.py [--sizes small paper] [--device cpu|cuda] [--precision fp32 bf16]
                                        [--repeats N] [--methods ...] [--variants trainer ...] [--profile-ops N]

Each step is built from the recipes' own run specs (:mod:`srlib.recipes`): the network (``RunSpec.build``), its
loss and critic (``RunSpec.objective``) and a batch from its batch constructor (``RunSpec.make_batch``, on random
images, made once: degradation is excluded, see bench_degradation.py). A step is what :func:`srlib.train.train` does
in one iteration: the critic's step first (PCL-SR's discriminator), then the model's: forward and loss, backward,
Adam, with denormals flushed. ``--precision bf16`` is the trainer's bf16 step: forward and loss under
``torch.autocast(dtype=torch.bfloat16)``, float32 master weights, gradients and Adam state, the networks in
``channels_last``.

For each method, size and precision it prints the best step time of ``--repeats`` (after one warm-up step), the FLOPs
of forward + backward counted by ``torch.utils.flop_counter`` (convolutions and matrix products, the direct-convolution
count; counted once per method and size on an eager step), the achieved GFLOP/s, and that as a share of BOTH matmul
peaks measured in this process just before (float32 and bfloat16, :func:`common.matmul_peaks`), and how many cores
other processes kept busy while the step was timed (the machine is shared). oneDNN may compute 3x3 convolutions
with fewer FLOPs (Winograd), so a share above 100% is possible.

``--variants`` measures what might pay off on top of the trainer's step (each against the same precision's
``trainer`` row): ``channels_last`` (networks and inputs in channels_last, also in float32), ``foreach`` /
``fused`` (``torch.optim.Adam(foreach=True)`` / ``Adam(fused=True)``), ``compile`` / ``compile-max`` (the loss
functions, forward + loss, through ``torch.compile`` with mode ``default`` / ``max-autotune-no-cudagraphs``; the
compile time, the first steps' excess over a compiled step, is printed separately), ``1-thread``
(``torch.set_num_threads(1)``) and ``best`` (channels_last + fused Adam). ``--profile-ops N`` prints the N
operators with the most self time of one step (``torch.profiler``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from common import CpuLoad, machine_state, quiet_matmul_peaks, timed, wait_quiet
from torch.utils.flop_counter import FlopCounterMode

from srlib.data import PatchSampler
from srlib.profiles import PROFILES, Profile
from srlib.recipes import blind_sr, crl_sr, pcl_sr
from srlib.runs import RunSpec
from srlib.train import Batch, flush_denormals

SCALE = 4

METHODS: dict[str, tuple[str, Callable[[Profile], RunSpec]]] = {
    "crl-a": ("CRL-SR (a) baseline, L1", lambda p: crl_sr.variant_run("a", p, SCALE, 0)),
    "crl-f": ("CRL-SR (f) CDE + CFR", lambda p: crl_sr.variant_run("f", p, SCALE, 0)),
    "rcan": ("RCAN, L1", lambda p: crl_sr.rcan_run(p, SCALE, 0)),
    "edsr": ("EDSR-S, L1 (PCL base)", lambda p: pcl_sr.base_run("EDSR-S", p, 0)),
    "pcl-edsr": ("EDSR-S PCL iteration (D + SR w/ L_CL)", lambda p: pcl_sr.arm_run(pcl_sr.ARMS["pcl"], "EDSR-S", p, 0)),
    "pcl-rcan": ("RCAN PCL iteration (D + SR w/ L_CL)", lambda p: pcl_sr.arm_run(pcl_sr.ARMS["pcl"], "RCAN", p, 0)),
    "dasr": ("DASR joint (L1 + MoCo)", lambda p: blind_sr.dasr_run(p, SCALE, 0)),
    "cdsr": ("CDSR joint (L1 + MoCo)", lambda p: blind_sr.cdsr_run(p, SCALE, 0)),
}
"""Method steps: (label, the run spec at a profile's sizes)."""

DEFAULT_METHODS = ("crl-a", "crl-f", "rcan", "edsr", "pcl-edsr", "dasr", "cdsr")


@dataclass(frozen=True)
class StepOptions:
    """How a step is run.

    Attributes:
        precision: ``"fp32"`` or ``"bf16"`` (autocast around forward + loss, float32 master weights).
        channels_last: networks in channels_last (the trainer does this for bf16 only).
        inputs_channels_last: the batch's 4-D images in channels_last too (the trainer leaves them contiguous).
        adam: ``"default"`` (torch's choice: the for-loop implementation on a CPU), ``"foreach"`` or ``"fused"``.
        compile: None, or a ``torch.compile`` mode for the loss functions (forward + loss; backward via AOTAutograd).
        threads: intra-op threads (None: torch's default).
    """

    precision: str
    channels_last: bool
    inputs_channels_last: bool = False
    adam: str = "default"
    compile: str | None = None
    threads: int | None = None


def trainer_options(precision: str) -> StepOptions:
    """The step :func:`srlib.train.train` runs at ``precision``."""
    return StepOptions(precision=precision, channels_last=precision == "bf16")


VARIANTS: dict[str, Callable[[StepOptions], StepOptions]] = {
    "trainer": lambda o: o,
    "channels_last": lambda o: replace(o, channels_last=True, inputs_channels_last=True),
    "foreach": lambda o: replace(o, adam="foreach"),
    "fused": lambda o: replace(o, adam="fused"),
    "compile": lambda o: replace(o, compile="default"),
    "compile-max": lambda o: replace(o, compile="max-autotune-no-cudagraphs"),
    "1-thread": lambda o: replace(o, threads=1),
    "best": lambda o: replace(o, channels_last=True, inputs_channels_last=True, adam="fused"),
}
"""Step variants on top of the trainer's step at each precision."""

ADAM_KWARGS = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def sized_spec(method: str, size: str, paper_batch: int) -> RunSpec:
    """The run spec of ``method`` at profile ``size`` (the paper sizes at batch ``paper_batch``)."""
    spec = METHODS[method][1](PROFILES[size])
    return spec.with_(batch_size=paper_batch) if size == "paper" else spec


def _optimised_sum(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(v for k, v in terms.items() if not k.startswith("_"))


def _to_cl(x):
    return x.contiguous(memory_format=torch.channels_last) if isinstance(x, torch.Tensor) and x.dim() == 4 else x


@dataclass
class Step:
    """One training step of a run spec, ready to call; ``params`` counts the trained parameters (model + critic)."""

    run: Callable[[], None]
    params: int
    shape: str


def make_step(spec: RunSpec, opts: StepOptions, device: torch.device) -> Step:
    """The trainer's iteration for ``spec`` under ``opts`` on ``device``: critic step (if any), then model step."""
    cfg = spec.config
    model = spec.build().to(device)
    for name in spec.freeze:
        getattr(model, name).requires_grad_(False)
    loss_fn, critic = spec.objective()
    if opts.channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    adam = ADAM_KWARGS[opts.adam]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, **adam)
    n_params = sum(p.numel() for p in params)
    critic_opt = critic_loss = None
    if critic is not None:
        critic.module.to(device).train()
        if opts.channels_last:
            critic.module.to(memory_format=torch.channels_last)
        critic_opt = torch.optim.Adam(critic.module.parameters(), lr=critic.lr, betas=(0.9, 0.999), eps=1e-8, **adam)
        n_params += sum(p.numel() for p in critic.module.parameters())

        def critic_loss(b):
            return critic.loss_fn(critic.module, model, b)

    def model_loss(b):
        return loss_fn(model, b)

    if opts.compile and critic is None:
        model_loss = torch.compile(model_loss, mode=opts.compile)
    elif opts.compile:  # the critic's loss makes the SR output the model's loss reuses: compile the two networks
        model.compile(mode=opts.compile)
        critic.module.compile(mode=opts.compile)

    g = torch.Generator().manual_seed(0)
    side = 2 * cfg.lr_patch * cfg.scale
    images = [torch.randint(0, 256, (3, side, side), generator=g, dtype=torch.uint8) for _ in range(8)]
    sampler = PatchSampler(images, cfg.lr_patch * cfg.scale, cfg.batch_size, device=device)
    batch = spec.make_batch(sampler, cfg, g)
    lr, hr = batch.lr.to(device), batch.hr.to(device)
    extras = dict(batch.extras)
    if opts.inputs_channels_last:
        lr, hr = _to_cl(lr), _to_cl(hr)
        extras = {k: _to_cl(v) for k, v in extras.items()}
    bf16 = opts.precision == "bf16"

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def run():
        b = Batch(lr, hr, batch.degradations, g, dict(extras))  # fresh extras: the critic stores the SR output there
        if critic is not None:
            with autocast():
                critic_terms = critic_loss(b)
            critic_opt.zero_grad(set_to_none=True)
            _optimised_sum(critic_terms).backward()
            critic_opt.step()
        with autocast():
            terms = model_loss(b)
        total = _optimised_sum(terms)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    shape = f"batch {cfg.batch_size}x{cfg.lr_patch}^2"
    return Step(run, n_params, shape)


@dataclass
class Timing:
    best: float  # seconds
    first: float  # the first (warm-up / compiling) call, seconds
    others: float  # cores other processes kept busy during the best call
    quiet: int  # timed calls during which other processes used < MAX_OTHERS cores
    calls: int  # timed calls in all


MAX_OTHERS = 0.3
"""A timed call counts as quiet when other processes kept fewer cores than this busy during it. (On a loaded
machine oneDNN's OpenMP threads wait for each other at every operator's barrier: a step can take 10-100x longer.)"""


def time_step(step: Step, repeats: int, threads: int | None, quiet_timeout: float = 0.0,
              min_time: float = 1.0) -> Timing:
    """First call (warm-up; compilation), then timed calls with denormals flushed (as the trainer): the best of
    ``repeats`` quiet calls (see :data:`MAX_OTHERS`; more for short steps: as many as fill ``min_time`` seconds, at
    most 50), waiting and retrying for up to ``quiet_timeout`` seconds to get them; without enough quiet calls by
    then, the best of all calls (the table shows the load)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    samples: list[tuple[float, float]] = []
    deadline = time.perf_counter() + quiet_timeout
    try:
        with flush_denormals():
            first = timed(step.run)
            target = repeats
            while True:
                if quiet_timeout > 0 and samples and samples[-1][1] >= MAX_OTHERS:
                    wait_quiet(MAX_OTHERS, timeout=max(0.0, deadline - time.perf_counter()))
                with CpuLoad() as load:
                    t = timed(step.run)
                samples.append((t, load.others))
                target = max(target, min(50, math.ceil(min_time / max(t, 1e-3))))
                quiet = [s for s in samples if s[1] < MAX_OTHERS]
                if len(quiet) >= target or (len(samples) >= target and time.perf_counter() >= deadline):
                    break
    finally:
        torch.set_num_threads(before)
    best = min(quiet or samples)
    return Timing(best[0], first, best[1], len(quiet), len(samples))


def count_flops(step: Step) -> float:
    """FLOPs of one step (forward + backward, critic included) by ``FlopCounterMode`` on an eager step."""
    with flush_denormals(), FlopCounterMode(display=False) as counter:
        step.run()
    return float(counter.get_total_flops())


def profile_ops(step: Step, n: int) -> str:
    """The ``n`` operators with the most self CPU time (and CUDA time on a GPU) over one step."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with flush_denormals(), profile(activities=acts) as prof:
        step.run()
    key = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=n, max_name_column_width=48)


HEADER = ("| size | method | shape | prec | variant | params (M) | step (ms) | first (ms) | GFLOP | GFLOP/s "
          "| % fp32 peak | % bf16 peak | others' load (cores) | quiet calls |")


def row(size, label, shape, opts_name, precision, n_params, t: Timing, flops, peaks) -> str:
    gflops = flops / t.best / 1e9
    return (f"| {size} | {label} | {shape} | {precision} | {opts_name} | {n_params / 1e6:.3f} | {t.best * 1e3:.1f} "
            f"| {t.first * 1e3:.0f} | {flops / 1e9:.2f} | {gflops:.1f} | {100 * gflops / peaks['fp32']:.0f}% "
            f"| {100 * gflops / peaks['bf16']:.0f}% | {t.others:.2f} | {t.quiet}/{t.calls} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["small", "paper"], choices=sorted(PROFILES))
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=sorted(METHODS))
    ap.add_argument("--variants", nargs="+", default=["trainer"], choices=list(VARIANTS))
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per step (at least; see --min-time)")
    ap.add_argument("--min-time", type=float, default=1.0,
                    help="time short steps for about this many seconds (more calls than --repeats; at most 50)")
    ap.add_argument("--paper-batch", type=int, default=4,
                    help="batch for the paper sizes (the papers use 16-32; on 2 CPU cores one such step takes seconds)")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="wait and retry up to this long per step for --repeats calls during which other processes "
                         "used < 0.3 cores (the machine is shared); the table reports the load either way")
    ap.add_argument("--profile-ops", type=int, default=0, metavar="N",
                    help="also print the N operators with the most self time of each step (torch.profiler)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if any(VARIANTS[v](trainer_options("fp32")).compile for v in args.variants) and \
            "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        # a cold cache: the printed first step includes the whole compilation, as in a run's first step
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-inductor-")
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_training.py: --device cuda but torch sees no CUDA device")

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, device {device}")
    print(f"command: {' '.join(sys.argv)}")
    print(f"before: {machine_state()}", flush=True)
    peaks, others = quiet_matmul_peaks(device, MAX_OTHERS, args.wait_quiet)
    print(f"matmul peaks (best of 1024/2048/3072 cubed): fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 {peaks['bf16']:.1f} "
          f"GFLOP/s (others' load {others:.2f} cores)\n", flush=True)
    print(HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1), flush=True)
    flops: dict[tuple[str, str], float] = {}
    t_start = time.perf_counter()
    for size in args.sizes:
        for method in args.methods:
            spec = sized_spec(method, size, args.paper_batch)
            label = METHODS[method][0]
            for precision in args.precision:
                for variant in args.variants:
                    opts = VARIANTS[variant](trainer_options(precision))
                    try:
                        step = make_step(spec, opts, device)
                        if (method, size) not in flops:
                            flops[method, size] = count_flops(step) if not opts.compile else \
                                count_flops(make_step(spec, trainer_options(precision), device))
                        t = time_step(step, args.repeats, opts.threads, args.wait_quiet, args.min_time)
                    except Exception as e:  # a variant that does not run (e.g. compile) is reported, not fatal
                        print(f"| {size} | {label} | | {precision} | {variant} | failed: {type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]} |", flush=True)
                        continue
                    print(row(size, label, step.shape, variant, precision, step.params, t, flops[method, size],
                              peaks), flush=True)
                    if args.profile_ops:
                        print(f"\ntop operators, {size} {label} {precision} {variant}:\n"
                              f"{profile_ops(step, args.profile_ops)}\n", flush=True)
    after, others = quiet_matmul_peaks(device, MAX_OTHERS, args.wait_quiet)
    print(f"\nafter ({time.perf_counter() - t_start:.0f} s): {machine_state()}; matmul peaks again: fp32 "
          f"{after['fp32']:.1f}, bf16 {after['bf16']:.1f} GFLOP/s (others' load {others:.2f} cores)")


if __name__ == "__main__":
    main()
