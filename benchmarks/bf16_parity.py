"""bf16 parity check: the same runs trained in fp32 and in bf16 (autocast, fp32 master weights), paired by seed.

    python benchmarks/bf16_parity.py [--profile small] [--runs 'pcl-sr-pcl-base-EDSR-S-*'] [--seeds 0 1 2]
    python benchmarks/bf16_parity.py --profile large --runs 'pcl-sr-pcl-l1-EDSR-S-x4-s{seed}-finetune-b1600' \
        --seeds 0 --sets Set5 Set14 B100

A ``{seed}`` in ``--runs`` selects each seed's own run of the profile (ladder branches, runs whose training seed is
not the id's seed); without it the one selected run is re-seeded.
Trains (or loads) the selected run of the profile for each seed in both precisions (in the profile's runs folder),
evaluates each in float32 on Set5 and Set14 at x4 bicubic (PSNR on Y, as every table) and prints, per set, the mean
and sample standard deviation over seeds of bf16 - fp32. The rule (DESIGN.md): bf16 may become a profile's precision
where the mean difference is within 0.05 dB on both sets. Two fp32 runs whose arithmetic differs only in the order of
floating-point operations already drift apart by a few 0.01 dB over a short run, so one seed cannot decide it; the
standard deviation over seeds says how much of the difference is that drift.
Needs the standard sets under $SRLIB_DATA (else the embedded test set stands in).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import pandas as pd

from srlib import evaluate, profiles
from srlib.degradation import Degradation
from srlib.runs import train_all
from srlib.train_command import selected_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="small")
    parser.add_argument("--runs", default="pcl-sr-pcl-base-EDSR-S-*")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    args = parser.parse_args()
    prof = profiles.resolve(args.profile)
    sets = evaluate.evaluation_sets(prof, None, tuple(args.sets))
    rows = []
    for precision in ("fp32", "bf16"):
        for seed in args.seeds:
            (spec,) = selected_runs(prof.name, only=[args.runs.format(seed=seed)], precision=precision)
            seeded = spec if "{seed}" in args.runs else \
                replace(spec, id=replace(spec.id, seed=seed), config=replace(spec.config, seed=seed))
            (result,) = train_all([seeded], profiles.runs_dir(prof), progress=False).values()
            m = evaluate.measure({precision: {seed: evaluate.model_upscaler(result.model)}}, sets,
                                 [Degradation(seeded.config.scale)], desc=f"{precision} s{seed}")
            for dataset, v in m[m.metric == "psnr"].groupby("dataset").value.mean().items():
                rows.append({"precision": precision, "seed": seed, "dataset": dataset, "psnr": v})
                print(precision, seed, dataset, round(v, 4), result.run_dir.name, flush=True)
    frame = pd.DataFrame(rows).pivot_table(index=["dataset", "seed"], columns="precision", values="psnr")
    diff = (frame["bf16"] - frame["fp32"]).groupby("dataset").agg(["mean", "std", "count"])
    print(frame.round(4).to_string())
    print(json.dumps({"profile": prof.name, "run": args.runs, "bf16_minus_fp32": diff.round(4).to_dict("index"),
                      "within_0.05_dB": bool((diff["mean"].abs() <= 0.05).all())}, indent=1))


if __name__ == "__main__":
    main()
