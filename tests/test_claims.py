"""Paired claims: the two-way bootstrap against hand-computable cases and its nominal coverage, the three-way verdict
rule case by case, orientation for lower-is-better metrics, the "did it learn" check, and the papers' claim rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from srlib import claims
from srlib.claims import Effect, paired_bootstrap, verdict
from srlib.methods import crl_sr
from srlib.recipes.crl_sr import VARIANTS


def _diff(values: np.ndarray) -> pd.DataFrame:
    """(S, U) array -> the long frame paired_bootstrap takes."""
    s, u = values.shape
    return pd.DataFrame({"seed": np.repeat(np.arange(s), u), "unit": np.tile([f"i{j}" for j in range(u)], s),
                         "diff": values.ravel()})


def test_constant_difference_has_a_point_interval():
    e = paired_bootstrap(_diff(np.full((3, 5), 0.25)))
    assert (e.mean, e.low, e.high, e.n_seeds, e.n_images) == (pytest.approx(0.25), pytest.approx(0.25),
                                                              pytest.approx(0.25), 3, 5)


def test_interval_lies_within_the_extreme_cells_and_is_deterministic():
    rng = np.random.default_rng(1)
    d = _diff(rng.normal(0.1, 0.2, (4, 30)))
    e = paired_bootstrap(d)
    assert d["diff"].min() < e.low < e.mean < e.high < d["diff"].max()
    assert paired_bootstrap(d) == e  # same input, same bytes
    assert paired_bootstrap(d, seed=1) != e


def test_units_missing_a_seed_are_dropped():
    d = _diff(np.ones((2, 3)))
    d = pd.concat([d, pd.DataFrame({"seed": [0], "unit": ["only-seed-0"], "diff": [100.0]})])
    assert paired_bootstrap(d).mean == pytest.approx(1.0) and paired_bootstrap(d).n_images == 3


def test_coverage_is_near_nominal_under_seed_and_image_noise():
    """Simulated experiments with a known effect (0.2), a training-seed effect (SD 0.1) and image noise (SD 0.3):
    the 95% interval covers the truth in about 95% of them (percentile intervals with 5 seeds run a little short); one
    seed's interval over images alone ignores the training spread and covers far less, which is checked too."""
    rng = np.random.default_rng(0)
    covered = covered_images_only = 0
    n = 200
    for k in range(n):
        values = 0.2 + rng.normal(0, 0.1, (5, 1)) + rng.normal(0, 0.3, (5, 40))
        e = paired_bootstrap(_diff(values), n_boot=400, seed=k)
        covered += e.low <= 0.2 <= e.high
        one = paired_bootstrap(_diff(values[:1]), n_boot=400, seed=k)  # one seed: images only
        covered_images_only += one.low <= 0.2 <= one.high
    assert 0.85 <= covered / n <= 1.0
    assert covered_images_only / n < covered / n


@pytest.mark.parametrize(("effect", "paper", "learned", "expected"), [
    (Effect(0.10, 0.05, 0.15, 3, 10), 0.08, True, "supported"),
    (Effect(-0.10, -0.15, -0.05, 3, 10), 0.08, True, "contradicted"),  # CI below 0
    (Effect(0.01, 0.005, 0.02, 3, 10), 0.08, True, "contradicted"),  # CI entirely below half the paper's 0.08
    (Effect(0.05, -0.02, 0.12, 3, 10), 0.08, True, "inconclusive"),  # CI covers 0
    (Effect(0.05, -0.02, 0.03, 3, 10), 0.08, True, "contradicted"),  # covers 0 but excludes half the paper's effect
    (Effect(0.10, 0.05, 0.15, 3, 10), float("nan"), True, "supported"),  # no paper value: sign rules only
    (Effect(0.10, 0.05, 0.15, 3, 10), 0.08, False, "inconclusive"),  # a model did not learn
    (Effect(0.10, 0.05, 0.15, 1, 10), 0.08, True, "inconclusive"),  # one seed
    (Effect(0.10, 0.05, 0.15, 3, 10), 0.08, None, "supported"),  # learning not checked
])
def test_verdict_rule(effect, paper, learned, expected):
    v, why = verdict(effect, paper, learned=learned)
    assert v == expected and why


def test_a_positive_mean_is_not_a_supported_claim():
    """The old rule ("holds" = mean > 0) called this claim true; the CI covers 0, so it is inconclusive."""
    rng = np.random.default_rng(3)
    values = 0.02 + rng.normal(0, 0.3, (3, 20))
    e = paired_bootstrap(_diff(values))
    assert e.mean > 0 and e.low < 0 and verdict(e, 0.05)[0] == "inconclusive"


def _measured(values: dict[str, float], metric: str = "psnr", seeds=(0, 1, 2), images=("a", "b", "c")) -> pd.DataFrame:
    """Tidy per-image measurements: method -> value, plus a small per-(seed, image) wobble shared by all methods."""
    return pd.DataFrame([{"method": m, "dataset": "Set14", "scale": 4, "setting": "s", "metric": metric, "seed": s,
                          "image": i, "value": v + 0.01 * s + 0.001 * k}
                         for m, v in values.items() for s in seeds for k, i in enumerate(images)])


def test_lower_is_better_metrics_are_oriented():
    m = _measured({"new": 0.20, "old": 0.25}, metric="lpips")
    row = claims.claim_row(m, "new", "old", "lpips", paper_effect=-0.03)
    assert row["effect"] == pytest.approx(0.05) and row["paper_effect"] == pytest.approx(0.03)
    assert row["verdict"] == "supported"


def test_a_claim_between_models_below_bicubic_is_inconclusive():
    m = pd.concat([_measured({"good": 30.0, "worse": 29.0}), _measured({"Bicubic": 29.5}, seeds=(0,))])
    assert claims.beats_baseline(m, ("good",)) is True
    assert claims.beats_baseline(m, ("good", "worse")) is False
    assert claims.beats_baseline(m, ("absent",)) is None
    row = claims.claim_row(m, "good", "worse", "psnr", 0.5)  # its own learned check: "worse" is below bicubic
    assert row["effect"] == pytest.approx(1.0) and row["ci_low"] > 0 and row["verdict"] == "inconclusive"


def test_crl_ablation_claims_rows():
    label = {k: v.label for k, v in VARIANTS.items()}
    m = pd.concat([_measured({label["a"]: 24.0, label["b"]: 24.3, label["c"]: 24.1, label["d"]: 24.2,
                              label["e"]: 24.25, label["f"]: 24.5}),
                   _measured({"Bicubic": 23.0}, seeds=(0,))])
    out = crl_sr.ablation_claims(m).set_index("claim_id")
    assert list(out.index) == ["C1", "C2", "C3", "C4"]
    assert out.loc["C1", "effect"] == pytest.approx(0.2) and out.loc["C3", "effect"] == pytest.approx(0.2)
    assert out.loc["C4", "effect"] == pytest.approx(0.2)  # f - b, the best other variant
    assert label["b"] in out.loc["C4", "claim"]
    # paper: d - a = 24.08 - 23.62 = 0.46, b - a = 0.49, b - c = 0.24, f - e (best other) = 0.17 dB
    assert out.paper_effect.tolist() == pytest.approx([0.46, 0.49, 0.24, 0.17])
    # every difference here is exact (CI = a point): C1's 0.2 dB lies below half the paper's 0.46, the rest above
    assert out.verdict.tolist() == ["contradicted", "supported", "supported", "supported"]
    # a variant that was not measured (c in the `large` profile) leaves its claim out; the others are unchanged
    without_c = crl_sr.ablation_claims(m[m.method != label["c"]]).set_index("claim_id")
    assert list(without_c.index) == ["C1", "C2", "C4"]
    assert without_c.effect.tolist() == out.loc[["C1", "C2", "C4"], "effect"].tolist()


def test_crl_dasr_claims_pool_each_table_and_take_the_papers_difference_on_the_same_cells():
    """C6 (Table 3) on two of its Set5 x4 cells: the effect is CRL-SR - DASR over every (seed, image, cell); the
    paper's is read by hand from CRL-SR Table 3 (iso4-n90: 21.90 - 21.73 = 0.17; iso6-n100: 21.10 - 20.78 = 0.32;
    mean 0.245). A table without a DASR model gives no claim."""
    cells = [_measured({"CRL-SR": 21.0, "DASR": 20.9, "Bicubic": 20.0}).assign(dataset="Set5", setting=s)
             for s in ("iso4-n90", "iso6-n100")]
    m = pd.concat(cells, ignore_index=True)
    out = crl_sr.dasr_claims({"Table 3": m, "Table 4": m[m.method != "DASR"], "Table 2": None})
    assert out.claim_id.tolist() == ["C6"]
    row = out.iloc[0]
    assert row.effect == pytest.approx(0.1) and row.n_seeds == 3 and row.n_images == 6
    assert row.paper_effect == pytest.approx(0.245)
    assert row.verdict == "contradicted"  # an exact 0.1 lies entirely below half the paper's 0.245
    assert row.scope == "Table 3: Set5 x4, 2 settings"


def test_cdsr_positive_claim_against_the_best_other_positive():
    """D2's PSNR half on Set5 and Set14: C&D - D (the best other positive of ours) over every (seed, image, set); the
    paper's by hand from CDSR Table 1: Set5 31.45 - max(31.36, 31.32) = 0.09, Set14 28.12 - max(28.03, 28.06) = 0.06,
    mean 0.075."""
    from srlib.methods import blind_sr

    m = pd.concat([_measured({"C&D": 31.0, "D": 30.9, "C": 30.8, "Bicubic": 30.0}).assign(dataset=d)
                   for d in ("Set5", "Set14")], ignore_index=True)
    row = blind_sr.positive_claim(m).iloc[0]
    assert row.claim_id == "D2" and "(D)" in row.claim
    assert row.effect == pytest.approx(0.1) and row.n_images == 6
    assert row.paper_effect == pytest.approx(0.075) and row.verdict == "supported"
    assert blind_sr.positive_claim(m[m.method.isin(["C&D", "Bicubic"])]).empty


def test_pcl_gains_and_their_figure():
    from srlib import viz
    from srlib.methods import pcl_sr

    m = pd.concat([_measured({"EDSR-S": 30.0, "EDSR-S +PCL": 30.1}), _measured({"Bicubic": 28.0}, seeds=(0,)),
                   _measured({"EDSR-S": 0.30, "EDSR-S +PCL": 0.28}, metric="lpips")])
    gains = pcl_sr.paired_gains(m, [("EDSR-S +PCL", "EDSR-S")], {("EDSR-S +PCL", "EDSR-S"): ("EDSR-S +PCL", "EDSR-S")})
    by = gains.set_index("metric")
    assert by.loc["psnr", "effect"] == pytest.approx(0.1) and by.loc["lpips", "effect"] == pytest.approx(0.02)
    assert by.loc["psnr", "verdict"] == "supported"
    fig = viz.plot_gains(gains, ["psnr", "lpips"])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("s") == 2  # each bar carries its verdict's initial


def test_table4_pairs_hold_the_table4_claims():
    """PCL Table 4's comparisons include those of claims P3 (6 vs 3 and 5) and P4 (6 vs 4), which srlib.evidence
    reads from the gains table, besides every configuration against config 1."""
    from srlib import evidence
    from srlib.methods import pcl_sr

    pairs = pcl_sr.table4_pairs(("EDSR-S", "RCAN"))
    claims_read = {evidence.PCL_CLAIM_PAIRS.get((evidence._pcl_short(b), evidence._pcl_short(w), "psnr"))
                   for b, w in pairs}
    assert {"P3", "P4"} <= claims_read
    assert ("EDSR-S 6: L1 + PCL (Haar, Gen)", "EDSR-S 1: L1") in pairs and len(pairs) == len(set(pairs))
    assert all(any(b == arm.label for b, _ in pairs) for key, arm in pcl_sr.TABLE4.items() if key != "1")
