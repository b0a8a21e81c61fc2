"""Loss-weight pilot (issue 10, review item 4): do the contrastive terms' weights sit where a term can act, or are
they inert or destructive at our budgets?

    SRLIB_DATA=<standard sets> python benchmarks/weight_pilot.py [--seeds 0] [--only crl-cde crl-cfr pcl-alpha]

Design (fixed before the first run): the ``medium`` profile's runs (CRL-SR 800 steps, PCL-SR EDSR-S 800 pretraining
+ 400 fine-tuning steps, bf16), one contrastive weight changed at a time, everything else (seed, initial weights,
batches, the loss generator's locations) shared with the reference arm, so each weight's effect is paired with the
arm without the term:

* ``crl-cde``: CRL-SR variant d (L1 + lambda_cde CDE) for lambda_cde in 0.001, 0.01 (the default), 0.1, 1; reference
  variant a (L1). Second stage, added after the first had picked the grid's lowest weight (not part of the
  pre-registered design; an optimum at the grid's edge says nothing about the weights beyond it): 0.0001, 0.0003.
* ``crl-cfr``: CRL-SR variant b (L1 + lambda_c L_cond + L_HR) for lambda_c in 0.001, 0.01 (the default), 0.1, 1;
  reference variant a.
* ``pcl-alpha``: PCL-SR's +PCL arm on EDSR-S for alpha in 0.1, 1 (the default, the paper's Eq. 11), 10; reference
  the L1 control of the same fine-tuning.

Validation data that is no test set and no training image: the embedded test images (five colour photographs from
the scikit-image wheel, :data:`srlib.data.EMBEDDED_TEST`; the standard training set is T91 + BSD200, the test sets
Set5 / Set14 / B100). CRL-SR arms are read under CRL-SR Table 1's protocol (the spatially variant ramp,
:func:`srlib.methods.crl_sr.ablation_setting`), PCL-SR arms under bicubic x4. Measure: PSNR (Y) of the arm minus the
reference's, paired by image and seed, with the claims' paired bootstrap CI (:func:`srlib.claims.claim_row`).

Rule: per term, the weight with the largest validation effect is the pilot's choice; when no weight's CI lies above
0, the term helps at no weight at this budget and the default is kept (a weight chosen by validation PSNR alone
would then be the one nearest to switching the term off). One seed and five images can see effects of a few tenths
of a dB, not the papers' 0.01-0.5 dB: the pilot finds gross mis-weighting (inert or destructive terms), not the
optimum. Runs go to the ``medium`` profile's runs folder: the default weights' arms are ``medium``'s own runs
(trained by ``srlib train --profile medium``, reused here); the others are trained once and then reused.

Writes ``benchmarks/results/weight_pilot.csv`` (one row per term, weight and seed set) and prints it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from common import update_csv

from srlib import data, profiles
from srlib.claims import claim_row
from srlib.degradation import Degradation
from srlib.evaluate import bicubic_upscaler, measure, model_upscalers
from srlib.methods.crl_sr import ablation_setting
from srlib.recipes import crl_sr, pcl_sr
from srlib.runs import train_all

OUT = Path(__file__).parent / "results" / "weight_pilot.csv"


def _crl_arm(arm: str, profile, seed: int):
    return crl_sr.variant_run(arm, profile, 4, seed)


def _pcl_arm(arm: str, profile, seed: int):
    return pcl_sr.arm_run(pcl_sr.ARMS[arm], "EDSR-S", profile, seed)


@dataclass(frozen=True)
class Term:
    """One loss weight of the pilot: the profile's sizes it is a field of, the grid, the default, the two arms, how an
    arm's run is built (``build(arm, profile, seed)``) and the validation degradation (``degradation(profile)``)."""

    sizes: str  # "crl" | "pcl": the Profile attribute holding ``field``
    field: str
    weights: tuple[float, ...]
    default: float
    arm: str  # the arm whose weight changes
    reference: str  # the arm without the term
    build: Callable
    degradation: Callable

    def profile(self, base, weight: float):
        return replace(base, **{self.sizes: replace(getattr(base, self.sizes), **{self.field: weight})})


def _crl_setting(profile):
    return ablation_setting(profile)[1][0]


TERMS = {
    "crl-cde": Term("crl", "lambda_cde", (0.0001, 0.0003, 0.001, 0.01, 0.1, 1.0), 0.01, "d", "a", _crl_arm,
                    _crl_setting),
    "crl-cfr": Term("crl", "lambda_c", (0.001, 0.01, 0.1, 1.0), 0.01, "b", "a", _crl_arm, _crl_setting),
    "pcl-alpha": Term("pcl", "alpha", (0.1, 1.0, 10.0), 1.0, "pcl", "control", _pcl_arm, lambda _: Degradation(4)),
}


def pilot(name: str, term: Term, seeds: tuple[int, ...], val) -> pd.DataFrame:
    """Train (or reuse) every arm of one term and measure each weight against the reference on ``val``."""
    base = profiles.PROFILES["medium"]
    specs = {("reference", s): term.build(term.reference, base, s) for s in seeds}
    specs |= {(str(w), s): term.build(term.arm, term.profile(base, w), s) for w in term.weights for s in seeds}
    models = {}
    for key, spec in specs.items():  # one at a time: the arms of all weights share a RunId (the weight is in sizes)
        models[key] = train_all([spec], profiles.runs_dir(base), progress=True)[spec.id].model
    deg = term.degradation(base)
    methods = {"Bicubic": {seeds[0]: bicubic_upscaler(4)}, **model_upscalers(models)}
    measured = measure(methods, [val], [deg], desc=f"pilot {name}")
    rows = [{"term": name, "field": term.field, "weight": w, "default": w == term.default, "arm": term.arm,
             "reference": term.reference, "setting": deg.setting, "seeds": " ".join(map(str, seeds)),
             **claim_row(measured, str(w), "reference", "psnr")} for w in term.weights]
    return pd.DataFrame(rows).drop(columns=["paper_effect"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--only", nargs="+", choices=list(TERMS), default=list(TERMS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if data.data_root() is None:
        raise SystemExit("weight_pilot: trains on T91 + BSD200 as medium does: set SRLIB_DATA to the standard sets")
    val = data.embedded_set("test")
    table = pd.concat([pilot(n, TERMS[n], tuple(args.seeds), val) for n in args.only]).round(4)
    table = update_csv(args.out, table, ["term", "seeds", "weight"])  # a rerun replaces its own rows
    with pd.option_context("display.width", 200):
        print(table.to_string(index=False))
    for (name, seeds), rows in table.groupby(["term", "seeds"]):
        best = rows.loc[rows["effect"].idxmax()]
        helps = (rows["ci_low"] > 0).any()
        print(f"{name}, seeds {seeds}: best weight {best['weight']:g} ({best['effect']:+.3f} dB); "
              + ("a weight helps (CI above 0)" if helps else "no weight's CI lies above 0: the default is kept"))


if __name__ == "__main__":
    main()
