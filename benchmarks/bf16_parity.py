"""bf16 parity check: the same run trained in fp32 and in bf16 (autocast, fp32 master weights) ends within 0.05 dB.

    python benchmarks/bf16_parity.py [--profile small] [--runs 'pcl-sr-pcl-base-EDSR-S-*'] [--sets Set5 Set14]

Trains (or loads) the selected runs of the profile in both precisions in the profile's runs folder, evaluates each
in float32 on the test sets at x4 bicubic (PSNR on Y, as every table) and prints the per-set means and differences.
Needs the standard sets under $SRLIB_DATA (else the embedded test set stands in).
"""

from __future__ import annotations

import argparse
import json

from srlib import evaluate, profiles
from srlib.degradation import Degradation
from srlib.runs import train_all
from srlib.train_command import selected_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="small")
    parser.add_argument("--runs", default="pcl-sr-pcl-base-EDSR-S-*")
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    args = parser.parse_args()
    prof = profiles.resolve(args.profile)
    sets = evaluate.evaluation_sets(prof, None, tuple(args.sets))
    rows = {}
    for precision in ("fp32", "bf16"):
        (spec,) = selected_runs(prof.name, only=[args.runs], precision=precision)
        (result,) = train_all([spec], profiles.runs_dir(prof), progress=False).values()
        m = evaluate.measure({precision: {0: evaluate.model_upscaler(result.model)}}, sets,
                             [Degradation(spec.config.scale)], desc=precision)
        psnr = m[m.metric == "psnr"].groupby("dataset").value.mean()
        rows[precision] = psnr.to_dict()
        print(precision, result.run_dir.name, {k: round(v, 4) for k, v in rows[precision].items()}, flush=True)
    diff = {k: round(rows["bf16"][k] - rows["fp32"][k], 4) for k in rows["fp32"]}
    print(json.dumps({"profile": prof.name, "run": args.runs, "psnr": rows, "bf16_minus_fp32": diff,
                      "within_0.05_dB": all(abs(v) <= 0.05 for v in diff.values())}, indent=1))


if __name__ == "__main__":
    main()
