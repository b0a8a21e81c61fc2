"""``srlib train``: train every run of a profile outside the notebooks, then let the notebooks evaluate what exists.

    srlib train --profile small                      # every run of every paper (finished runs are skipped)
    srlib train --profile medium --paper pcl-sr      # one paper's runs
    srlib train --profile small --only 'crl-sr-crl-f-*' --precision bf16 --device cuda
    srlib train --profile paper --list               # every run with its FLOPs and time on one GPU
    torchrun --nproc_per_node 4 -m srlib train --profile gpu --paper blind   # each run on 4 GPUs (DDP)

A run is selected by its folder name (:attr:`srlib.runs.RunId.slug`, e.g. ``crl-sr-crl-f-CRLSR-x4-s0``) matched
against ``--only`` (shell-style globs); runs it needs first (DASR's warm-up, PCL's pretrained base) are trained
too. Each run shows a progress bar; at the end a summary table gives every run's steps, wall time, steps/s, achieved
GFLOP/s (from :mod:`srlib.flops`), peak memory and final losses. ``--precision`` and the number of processes change
the runs (a bf16 or a 4-GPU run is a different run with its own folder); ``--device`` does not.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time

import pandas as pd
import torch

from srlib import distributed, profiles, recipes
from srlib.checkpoint import CheckpointError
from srlib.fileio import WriteError
from srlib.flops import GPU_TFLOPS, run_flops, step_flops
from srlib.locks import LockTimeout, run_lock
from srlib.runs import RunSpec, TrainingImages, ordered, train_all
from srlib.session import resolve_device
from srlib.train import PRECISIONS, TrainResult


def selected_runs(profile, papers=None, only=None, precision: str | None = None,
                  world_size: int = 1) -> list[RunSpec]:
    """The runs ``srlib train`` trains: the profile's runs of ``papers`` whose slug matches one of the ``only``
    globs (default: the profile's ``train_only``), with the precision and world size applied. ``profile``: a name or
    a :class:`srlib.profiles.Profile`."""
    unique = recipes.selected(profiles.resolve(profile), papers, only)
    changes = {"world_size": world_size, **({"precision": precision} if precision else {})}
    return [s.with_(**changes) for s in unique]


def _peak_memory(device: torch.device) -> float:
    """Peak memory of this process in GiB: CUDA's allocator peak on a GPU, the resident set size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _final_losses(result: TrainResult) -> str:
    log = result.losses_csv
    if not log.exists():
        return ""
    frame = pd.read_csv(log)
    last = frame.drop(columns=["step", "lr", "seconds"], errors="ignore").tail(max(1, len(frame) // 10)).mean()
    return " ".join(f"{k}={v:.4g}" for k, v in last.items() if not k.startswith("_"))


def restart(specs: list[RunSpec], runs, data_root=None) -> None:
    """Delete the folders of ``specs`` (not of their parents), each under its run lock."""
    images = TrainingImages(data_root)
    for spec in specs:
        label, imgs = images(spec.data)
        folder = spec.folder(runs, getattr(imgs, "label", label))
        with run_lock(folder):
            if folder.exists():
                shutil.rmtree(folder)
                print(f"--restart: removed {folder}", flush=True)


def listing(specs: list[RunSpec], tflops: float = GPU_TFLOPS) -> pd.DataFrame:
    """Every run (and the runs it needs) with its step FLOPs, total FLOPs and the time at ``tflops`` TFLOP/s."""
    rows = []
    for s in ordered(specs):
        step = step_flops(s)
        rows.append({"run": s.id.slug, "iterations": s.config.iterations, "batch": s.config.batch_size,
                     "precision": s.config.precision, "GFLOP/step": round(step / 1e9, 1),
                     "PFLOP": float(f"{run_flops(s) / 1e15:.3g}"),
                     f"hours at {tflops:g} TFLOP/s": float(f"{run_flops(s) / (tflops * 1e12) / 3600:.3g}")})
    return pd.DataFrame(rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``srlib train``."""
    parser.add_argument("--profile", default=None, help=f"one of {sorted(profiles.PROFILES)} (default: "
                                                        "$SRLIB_PROFILE or small)")
    parser.add_argument("--paper", action="append", choices=list(recipes.PAPERS),
                        help="train only this paper's runs (repeatable; default: all)")
    parser.add_argument("--only", action="append", help="train only runs whose folder name matches this glob "
                                                        "(repeatable), e.g. 'crl-sr-crl-f-*'")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda | cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default=None, help="default: the profile's")
    parser.add_argument("--list", action="store_true", help="list the runs with FLOP and GPU-time estimates")
    parser.add_argument("--tflops", type=float, default=GPU_TFLOPS,
                        help=f"sustained TFLOP/s of the time estimates (default {GPU_TFLOPS:g})")
    parser.add_argument("--data-root", default=None, help="folder with <Set>/HR/*.png (default: $SRLIB_DATA)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--restart", action="store_true",
                        help="discard the selected runs' folders (checkpoint, log) and train them from scratch "
                             "(e.g. after a corrupt checkpoint); runs they start from are kept")


def run(args: argparse.Namespace) -> int:
    """Train (or list) the selected runs; 0 on success, 2 when nothing matches."""
    prof = profiles.resolve(args.profile)
    specs = selected_runs(prof.name, args.paper, args.only, args.precision, distributed.world_size())
    if not specs:
        print(f"no run of profile {prof.name} matches {args.only}", file=sys.stderr)
        return 2
    if args.list:
        table = listing(specs, args.tflops)
        with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 60):
            print(table.to_string(index=False))
        total = table["PFLOP"].sum()
        print(f"{len(table)} runs, {total:.3g} PFLOP in all: {total * 1e15 / (args.tflops * 1e12) / 3600:.1f} h "
              f"on one GPU at {args.tflops:g} TFLOP/s (measure yours: srlib train --profile gpu-check)")
        return 0
    device = distributed.init(resolve_device(args.device))
    rows = []

    def done(spec: RunSpec, result: TrainResult, seconds: float) -> None:
        steps = result.steps_run
        flops = step_flops(spec) / spec.config.world_size if steps else 0.0
        rows.append({"run": spec.id.slug, "steps run": steps, "of": spec.config.iterations,
                     "wall s": round(seconds, 1), "steps/s": round(steps / seconds, 2) if steps else None,
                     "GFLOP/s": round(flops * steps / seconds / 1e9, 1) if steps else None,
                     "peak GiB": round(_peak_memory(device), 2), "final losses": _final_losses(result)})
        print(f"{spec.id.slug}: {'trained ' + str(steps) + ' steps' if steps else 'finished before, loaded'} "
              f"({result.run_dir})", flush=True)

    t0 = time.perf_counter()
    runs = profiles.runs_dir(prof)
    try:
        if args.restart:
            restart(specs, runs, args.data_root)
        train_all(specs, runs, args.data_root, device, progress=not args.quiet, on_done=done)
    except (CheckpointError, WriteError, LockTimeout) as e:
        print(f"srlib train: error: {e}", file=sys.stderr)
        return 2
    if distributed.rank() == 0:
        print(f"\nprofile {prof.name}, device {device}, {distributed.world_size()} process(es), runs in {runs}; "
              f"{time.perf_counter() - t0:.1f} s")
        with pd.option_context("display.max_rows", None, "display.width", 250, "display.max_colwidth", 90):
            print(pd.DataFrame(rows).to_string(index=False))
        trained = sum(r["steps run"] > 0 for r in rows)
        print(json.dumps({"runs": len(rows), "trained": trained, "loaded": len(rows) - trained}))
    distributed.close()
    distributed.exit_process(0)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="srlib train", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
