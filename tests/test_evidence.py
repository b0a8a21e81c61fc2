"""Claims against compute (issue 10, Build 3): the claims table, its compute axis, the encoder gate, the figure and
the README's findings.

Independent truths: the gate's threshold by hand; claim rows written by hand into a profile's claim tables and read
back under their stable ids; FLOPs that grow with the rung; the committed ``results/claims.csv`` and the README's
findings block recomputed from the committed per-profile ``claims.csv`` files (a stale summary fails here).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import srlib.evidence as ev
from srlib import profiles
from srlib.methods import blind_sr

ROOT = Path(__file__).resolve().parents[1]
CLAIM_COLS = dict(effect=0.1, ci_low=0.05, ci_high=0.15, n_seeds=3, n_images=14, paper_effect=0.2,
                  verdict="supported", why="the CI lies above 0")


def test_encoder_gate_is_half_way_from_chance_to_perfect():
    assert blind_sr.encoder_gate(5 / 9, 1 / 9) and not blind_sr.encoder_gate(0.55, 1 / 9)
    assert blind_sr.encoder_gate(0.75, 0.5) and not blind_sr.encoder_gate(0.74, 0.5)


def _hand_set_accuracies(monkeypatch, accuracy: dict) -> None:
    """Stand-in encoders for gate_claims: a model is its name, its accuracy ``accuracy[name]``, chance 1/9."""
    monkeypatch.setattr(blind_sr, "heldout_images", lambda profile, data_root=None: {})
    monkeypatch.setattr(blind_sr, "encoder_accuracy",
                        lambda model, hr, scale, lr_patch: SimpleNamespace(accuracy=accuracy[model], chance=1 / 9))


def test_the_encoder_gate_reads_blind_claims_in_every_profile(monkeypatch):
    """Notebook 04's D1 / D0 rows (the claims of a profile without a ladder) are gated like a ladder rung's: a row whose
    worst encoder stays below half-way from chance to perfect becomes inconclusive and names that encoder; a row
    whose encoders pass keeps its verdict. Stand-in models with hand-set accuracies (DASR 0.9, CDSR 0.2, chance
    1/9: gate 5/9)."""
    accuracy = {"DASR": 0.9, "CDSR": 0.2}
    _hand_set_accuracies(monkeypatch, accuracy)
    models = {("DASR", 4, 0): "DASR", ("DASR", 4, 1): "DASR", ("CDSR", 4, 0): "CDSR", (blind_sr.NONBLIND, 4, 0): "-"}
    claims = pd.DataFrame([{"claim_id": c, "better": better, "worse": worse, "dataset": "all", **CLAIM_COLS,
                            "verdict": "contradicted", "why": "the CI lies below 0"}
                           for c, better, worse in (("D1", "CDSR", "DASR"), ("D0 DASR", "DASR", blind_sr.NONBLIND),
                                                    ("D0 CDSR", "CDSR", blind_sr.NONBLIND))])
    out = blind_sr.gate_claims(claims, models, profiles.PROFILES["medium"]).set_index("claim_id")
    assert list(out.verdict) == ["inconclusive", "contradicted", "inconclusive"]
    assert out.loc["D1", "why"].startswith("the degradation encoder of 'CDSR' does not separate kernels: "
                                           "content-controlled accuracy 0.20 (chance 0.11, gate 0.56)")
    assert out.loc["D0 DASR", "why"] == "the CI lies below 0"
    assert out.encoder_acc.tolist() == [0.2, 0.9, 0.2] and out.encoder_chance.tolist() == [1 / 9] * 3


def test_the_encoder_swap_claims_are_gated_by_both_encoders_they_compare(monkeypatch):
    """D3 (swap vs DASR) and D4 (CDSR vs swap) are read only where both of their models' encoders pass the gate:
    hand-set accuracies DASR 0.9, swap 0.8, CDSR 0.2 (gate 5/9): D3 keeps its verdict, D4 names CDSR's encoder."""
    accuracy = {"DASR": 0.9, blind_sr.SWAP: 0.8, "CDSR": 0.2}
    _hand_set_accuracies(monkeypatch, accuracy)
    models = {(n, 4, 0): n for n in accuracy}
    claims = pd.DataFrame([{"claim_id": c, "better": better, "worse": worse, "dataset": "all", **CLAIM_COLS,
                            "verdict": "contradicted", "why": "the CI lies below 0"}
                           for c, (better, worse) in blind_sr.SWAP_CLAIMS.items()])
    out = blind_sr.gate_claims(claims, models, profiles.PROFILES["medium"]).set_index("claim_id")
    assert list(out.verdict) == ["contradicted", "inconclusive"]
    assert out.loc["D4", "why"].startswith("the degradation encoder of 'CDSR' does not separate kernels")
    assert out.encoder_acc.tolist() == [0.8, 0.2]


def test_profile_claims_reads_every_claim_table_under_its_stable_id(tmp_path):
    t = tmp_path / "tables"
    t.mkdir()
    pd.DataFrame([{"claim_id": c, "claim": "x", **CLAIM_COLS} for c in ("C1", "C2", "C3", "C4")]).to_csv(
        t / "crl_table1_claims.csv", index=False)
    pd.DataFrame([{"claim_id": "C6", "claim": "x", "scope": "Table 3: Set5 x4, 3 settings", **CLAIM_COLS}]).to_csv(
        t / "crl_dasr_claims.csv", index=False)
    pd.DataFrame([{"claim_id": "D2", "claim": "x", "scope": "Set5 x4 cdsr-aniso9", **CLAIM_COLS}]).to_csv(
        t / "cdsr_table1_claim.csv", index=False)
    pd.DataFrame([{"claim_id": "D1", "dataset": "Set5", "scale": 4, "setting": "cdsr-aniso9", **CLAIM_COLS},
                  {"claim_id": "D1", "dataset": "all", "scale": "all", "setting": "all", **CLAIM_COLS},
                  {"claim_id": "D0 DASR", "dataset": "all", "scale": "all", "setting": "all", **CLAIM_COLS},
                  {"claim_id": "D0 CDSR", "dataset": "all", "scale": "all", "setting": "all", **CLAIM_COLS},
                  {"claim_id": "D3", "dataset": "all", "scale": "all", "setting": "all", **CLAIM_COLS}]).to_csv(
        t / "cdsr_table2_claim.csv", index=False)
    pd.DataFrame([{"better": "EDSR-S +PCL", "worse": "EDSR-S +L1 control", "dataset": "Set5", "metric": "psnr",
                   **CLAIM_COLS},
                  {"better": "EDSR-S +PCL", "worse": "EDSR-S", "dataset": "Set5", "metric": "lpips", **CLAIM_COLS},
                  {"better": "EDSR-S +PCL as released", "worse": "EDSR-S +L1 control", "dataset": "Set5",
                   "metric": "psnr", **CLAIM_COLS}]).to_csv(t / "pcl_gains.csv", index=False)
    pd.DataFrame([{"better": "6: L1 + PCL (Haar, Gen)", "worse": "4: L1 + PCL (RGB, Gen)", "dataset": "Set5",
                   "metric": "psnr", **CLAIM_COLS},
                  {"better": "6: L1 + PCL (Haar, Gen)", "worse": "1: L1", "dataset": "Set5", "metric": "psnr",
                   **CLAIM_COLS}]).to_csv(t / "pcl_table4_gains.csv", index=False)
    frame = ev.profile_claims(profiles.resolve("smoke"), t)
    assert list(frame.columns) == list(ev.COLUMNS)
    assert sorted(frame.claim_id) == ["C1", "C2", "C3", "C4", "C6", "D0", "D1", "D1", "D2", "D3", "P2", "P4", "P6"]
    assert frame.scope[frame.claim_id == "C6"].item() == "Table 3: Set5 x4, 3 settings"
    assert set(frame.scope[frame.claim_id == "D1"]) == {"all", "Set5 x4 cdsr-aniso9"}
    assert frame.scope[frame.claim_id == "P4"].item() == "RCAN Set5 (6 vs 4)"
    assert (frame.train_flops > 0).all() and (frame.rung == "smoke").all()
    assert frame.claim[frame.claim_id == "C1"].item() == ev.CLAIMS["C1"].text
    # the headline keeps D1's pooled row only
    assert ev.headline(frame).claim_id.tolist().count("D1") == 1


def test_flops_grow_with_the_rung_and_count_the_parent():
    prof = replace(profiles.resolve("smoke"), ladder=(10, 40))
    from srlib.flops import run_flops, step_flops
    from srlib.recipes import all_runs

    specs = all_runs(prof)
    for cid in ("C1", "P6", "D1"):
        (s10, f10), (s40, f40) = (ev.claim_flops(specs, cid, f"b{b}") for b in (10, 40))
        claimed = next(s for s in specs if s.id.method == ev.CLAIMS[cid].method)
        assert (s10, s40) == (11, 44) and f40 - f10 == pytest.approx(33 * step_flops(claimed))
    pcl = next(s for s in specs if s.id.method == "pcl-pcl-haar-gen" and s.id.rung == "b10")

    assert ev.training_flops(pcl) == pytest.approx(run_flops(pcl) + run_flops(pcl.parent))
    assert all(math.isnan(v) for v in ev.claim_flops([s for s in specs if s.id.method != "crl-f"], "C5", "b40"))


def _claims(profile, rung, flops, effect, verdict="inconclusive"):
    return {**CLAIM_COLS, "claim_id": "C1", "paper": "CRL-SR", "claim": ev.CLAIMS["C1"].text, "profile": profile,
            "rung": rung, "steps": 100, "train_flops": flops, "scope": "Set14 crl-sv", "metric": "psnr",
            "effect": effect, "ci_low": effect - 0.05, "ci_high": effect + 0.05, "verdict": verdict,
            "why": "the CI covers 0"}


def test_summary_collects_profiles_draws_and_rewrites_the_readme(tmp_path):
    for prof, rows in {"small": [_claims("small", "small", 3e12, -0.1)],
                       "large": [_claims("large", "large/b1600", 5e13, 0.2, "supported"),
                                 _claims("large", "large/b100", 3e12 / 2, -0.3)]}.items():
        (tmp_path / prof).mkdir()
        pd.DataFrame(rows).to_csv(tmp_path / prof / "claims.csv", index=False)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{ev.README_START}\nold findings\n{ev.README_END}\nafter\n")
    frame = ev.write_summary(tmp_path, readme)
    assert frame.rung.tolist() == ["large/b100", "small", "large/b1600"]  # ordered by compute
    assert pd.read_csv(tmp_path / "claims.csv").rung.tolist() == frame.rung.tolist()
    assert (tmp_path / "claims_vs_compute.png").stat().st_size > 10_000
    assert (tmp_path / "figures" / "claim_C1.png").exists()
    text = readme.read_text()
    assert "old findings" not in text and text.startswith("intro\n") and text.endswith("after\n")
    assert "| C1 | large/b1600 |" in text and "**supported**" in text and "Not measured at any rung yet: C2" in text
    readme.write_text("no block")
    with pytest.raises(ValueError, match="claims:start"):
        ev.write_summary(tmp_path, readme)


def test_committed_summary_and_readme_findings_are_current():
    """``results/claims.csv`` and the README's findings block are what ``python -m srlib.evidence --readme README.md``
    makes from the committed per-profile ``claims.csv`` files (rerun it after a profile's notebook 07)."""
    frame = ev.collect(ROOT / "results")
    assert len(frame), "no results/<profile>/claims.csv is committed"
    committed = pd.read_csv(ROOT / "results" / "claims.csv", dtype={"scope": str})
    pd.testing.assert_frame_equal(committed.reset_index(drop=True), frame.reset_index(drop=True),
                                  check_dtype=False, rtol=1e-5)
    block = (ROOT / "README.md").read_text().split(ev.README_START, 1)[1].split(ev.README_END, 1)[0]
    assert block == "\n" + ev.markdown(frame)


def test_ladder_claims_read_every_rung_of_a_trained_ladder(tmp_path):
    """End to end on a tiny ladder (smoke sizes, budgets 10 and 20, one seed): every paper's claims at both rungs,
    FLOPs growing with the rung, each blind row carrying its encoder's accuracy and gated by it."""
    from srlib.recipes import PAPERS
    from srlib.runs import train_all

    prof = replace(profiles.resolve("smoke"), ladder=(10, 20))
    trained = {p: train_all(r.runs(prof), tmp_path, progress=False) for p, r in PAPERS.items()}
    bases = train_all([s.parent for s in PAPERS["pcl-sr"].runs(prof)], tmp_path, progress=False)
    frame = ev.ladder_claims(prof, crl=trained["crl-sr"], pcl=trained["pcl-sr"], pcl_bases=bases,
                             blind=trained["blind"])
    head = ev.headline(frame)
    assert set(head.claim_id) == {"C1", "C2", "C3", "C4", "P1", "P2", "P6", "D0", "D1", "D3", "D4"}
    assert set(frame.rung) == {"smoke/b10", "smoke/b20"}
    for cid, rows in head.groupby("claim_id"):
        assert rows.sort_values("steps").train_flops.is_monotonic_increasing, cid
    blind = frame[frame.claim_id.isin(["D0", "D1", "D3", "D4"])]
    assert blind.encoder_acc.between(0, 1).all() and blind.encoder_chance.between(0.05, 0.2).all()
    gated = blind[~blind.apply(lambda r: blind_sr.encoder_gate(r.encoder_acc, r.encoder_chance), axis=1)]
    assert (gated.verdict == "inconclusive").all() and gated.why.str.contains("does not separate kernels").all()
    assert frame.verdict.isin(["supported", "contradicted", "inconclusive"]).all()
