"""Claim C1 (CDE helps: CRL-SR d > a) on the ``large`` ladder at the weight the loss-weight pilot chose (issue 10).

    SRLIB_DATA=<standard sets> python benchmarks/c1_weight_ladder.py [--weights 0.001 0.01] [--seeds 0 1 2]

Design (fixed before the first run): ``benchmarks/weight_pilot.py`` found, on validation images at ``medium``'s
budget, that CDE helps at lambda_cde = 0.001 and hurts at the recipes' 0.01. This reads C1 at each weight exactly
as notebook 07 reads it for ``large`` (:func:`srlib.evidence.crl_rung`: Set14 x4 under CRL-SR Table 1's spatially
variant ramp, paired by seed and image, the two-way bootstrap CI, the three-way verdict against the paper's +0.46
dB, bicubic as the learned check), on the ``large`` ladder (100 / 400 / 1,600 steps, 3 seeds, bf16, EMA weights):
variant d is laddered with the weight changed; variant a (L1 only: the weight does not enter its loss) is the
``large`` profile's own ladder, reused, so the pairs share seeds, initial weights and batches. The default weight's
rows reproduce ``results/large/claims.csv`` (a check that nothing else changed). A sensitivity reading, not the
committed claim: the recipes keep lambda_cde = 0.01 until every profile is retrained at the pilot's choice.

Writes ``benchmarks/results/c1_weight_ladder.csv`` (one row per weight and rung) and prints it.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pandas as pd

from srlib import data, profiles
from srlib.evidence import claim_flops, crl_rung
from srlib.recipes import all_runs
from srlib.recipes.crl_sr import variant_run
from srlib.runs import Results, ladder, train_all

OUT = Path(__file__).parent / "results" / "c1_weight_ladder.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", nargs="+", type=float, default=[0.001, 0.01])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if data.data_root() is None:
        raise SystemExit("c1_weight_ladder: trains on T91 + BSD200 as `large` does: set SRLIB_DATA")
    large = profiles.PROFILES["large"]
    runs, specs = profiles.runs_dir(large), all_runs(large)
    baseline = train_all([b for s in args.seeds for b in ladder(variant_run("a", large, 4, s), large.ladder)], runs)
    rows = []
    for weight in args.weights:
        prof = replace(large, crl=replace(large.crl, lambda_cde=weight))
        cde = train_all([b for s in args.seeds for b in ladder(variant_run("d", prof, 4, s), prof.ladder)], runs)
        for budget in large.ladder:
            rung = f"b{budget}"
            both = Results({**baseline.where(rung=rung), **cde.where(rung=rung)})
            steps, flops = claim_flops(specs, "C1", rung)
            rows += [{"lambda_cde": weight, "default": weight == large.crl.lambda_cde, "rung": f"large/{rung}",
                      "steps": steps, "train_flops": flops, **r}
                     for r in crl_rung(prof, both) if r["claim_id"] == "C1"]
    table = pd.DataFrame(rows).round(6)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table[["lambda_cde", "rung", "effect", "ci_low", "ci_high", "n_seeds", "n_images", "paper_effect",
                     "verdict", "why"]].to_string(index=False))


if __name__ == "__main__":
    main()
