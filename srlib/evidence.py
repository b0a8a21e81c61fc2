"""Every paper claim against training compute: one table (``claims.csv``) with a row per claim, rung and scope, and
one figure per claim. Notebook 07 writes ``results/<profile>/claims.csv``; ``python -m srlib.evidence --readme
README.md`` gathers them into ``results/claims.csv`` and ``results/claims_vs_compute.png`` and rewrites the README's
findings.

A **rung** is a training budget at which a claim was read: a whole profile (``small``: every run on its own schedule)
or a branch of a budget ladder (``large/b400``: the claim's arms cooled down after 400 stable steps of one
warmup-stable-decay trajectory per arm and seed, :func:`srlib.runs.ladder`). Its compute, ``train_flops``, is the
training FLOPs of one seed of the claimed model, its parent stages included (:mod:`srlib.flops`). Effects, CIs and
verdicts are :func:`srlib.claims.claim_row`'s; a blind claim is also gated by its degradation encoders
(:func:`srlib.methods.blind_sr.gate_claims`, in every profile; fixed before any run was read).

Columns of ``claims.csv`` (:data:`COLUMNS`): ``claim_id, paper, claim, profile, rung, steps, train_flops, scope,
metric, effect, ci_low, ci_high, n_seeds, n_images, paper_effect, verdict, why, encoder_acc, encoder_chance``; an
effect is oriented (positive = the claimed direction), ``scope`` names what it pools (a test set, a table cell, or
``all``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from srlib.claims import claim_row
from srlib.recipes.blind_sr import SWAP_METHOD

__all__ = ["CLAIMS", "COLUMNS", "Claim", "collect", "ladder_claims", "plot_claims",
           "profile_claims", "write_summary"]


@dataclass(frozen=True)
class Claim:
    """One paper claim with a stable id.

    Attributes:
        paper: whose claim (``"ours"`` for the controls this companion adds).
        text: the claim in words, with the paper's table.
        method: the :attr:`srlib.runs.RunId.method` of the claimed model (whose training FLOPs place the claim on
            the compute axis); None where no rung measures the claim yet.
    """

    paper: str
    text: str
    method: str | None


CLAIMS = {
    "C1": Claim("CRL-SR", "CDE helps: variant d beats the baseline a (Table 1)", "crl-d"),
    "C2": Claim("CRL-SR", "CFR helps: variant b beats a (Table 1)", "crl-b"),
    "C3": Claim("CRL-SR", "the conditional CFR loss beats InfoNCE: b beats c (Table 1)", "crl-b"),
    "C4": Claim("CRL-SR", "the full model f beats every other variant (Table 1)", "crl-f"),
    "C5": Claim("CRL-SR", "CRL-SR beats DASR under spatially variant blur + noise (Table 2)", "crl-f"),
    "C6": Claim("CRL-SR", "CRL-SR beats DASR on unseen widths and noise (Table 3)", "crl-f"),
    "C7": Claim("CRL-SR", "CRL-SR beats DASR on anisotropic kernels (Table 4)", "crl-f"),
    "P1": Claim("PCL-SR", "+PCL fine-tuning beats the base network in PSNR (Table 2)", "pcl-pcl-haar-gen"),
    "P2": Claim("PCL-SR", "+PCL improves LPIPS over the base network (Table 3)", "pcl-pcl-haar-gen"),
    "P3": Claim("PCL-SR", "generated hard negatives beat LR-only and in-batch negatives (Table 4)", "pcl-pcl-haar-gen"),
    "P4": Claim("PCL-SR", "Haar high-frequency input beats RGB (Table 4)", "pcl-pcl-haar-gen"),
    "P6": Claim("ours", "+PCL beats the L1 control of the same fine-tuning (PSNR)", "pcl-pcl-haar-gen"),
    "D0": Claim("ours", "DASR beats its non-blind same-trunk control (constant embedding)", "dasr"),
    "D1": Claim("CDSR", "CDSR beats DASR on anisotropic kernels (Table 2)", "cdsr"),
    "D2": Claim("CDSR", "the C&D positive gives the best PSNR (Table 1; its other half, the D positive the best "
                        "accuracy, is a per-model number, not a paired claim)", "dasr"),
    "D3": Claim("ours", "CDSR's encoder (LPE + CSC) beats DASR's in DASR's trunk: the encoder swap (Table 2's kernels)",
                SWAP_METHOD),
    "D4": Claim("ours", "CDSR's trunk beats DASR's, both fed by CDSR's encoder: the encoder swap (Table 2's kernels)",
                "cdsr"),
}
"""The claims of the companion by stable id (C: CRL-SR, P: PCL-SR, D: CDSR / DASR)."""

COLUMNS = ("claim_id", "paper", "claim", "profile", "rung", "steps", "train_flops", "scope", "metric", "effect",
           "ci_low", "ci_high", "n_seeds", "n_images", "paper_effect", "verdict", "why", "encoder_acc",
           "encoder_chance")

CRL_SCOPE = "Set14 crl-sv"
"""What CRL-SR Table 1's claims pool (:func:`srlib.methods.crl_sr.ablation_setting`)."""
BLIND_CLAIMS = ("D1", "D0 DASR", "D3", "D4")
"""The rows of :func:`srlib.methods.blind_sr.cdsr_vs_dasr` that are claims (D0 CDSR, CDSR against the control, is not
one of the papers' or ours)."""


def _cell_scope(row: dict) -> str:
    """The scope of a CDSR Table 2 claim row: ``all`` for the pooled row, else ``"<set> x<scale> <setting>"``."""
    return "all" if row["dataset"] == "all" else f"{row['dataset']} x{row['scale']} {row['setting']}"


def measured_ids(frame: pd.DataFrame) -> list[str]:
    """The claim ids that ``frame`` holds rows of, in :data:`CLAIMS` order."""
    return [c for c in CLAIMS if c in set(frame.claim_id)]


def _frame(rows: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in out:
            out[c] = np.nan
    out["paper"] = out.claim_id.map(lambda c: CLAIMS[c].paper)
    out["claim"] = out.claim_id.map(lambda c: CLAIMS[c].text)
    return out[list(COLUMNS)]


# ---------------------------------------------------------------------------------------------------------------------
# Compute of a rung
# ---------------------------------------------------------------------------------------------------------------------

def training_flops(spec) -> float:
    """Training FLOPs behind the model of ``spec``: its own steps and those of every parent stage (a ladder branch
    counts the trunk's steps it continues: its ``iterations`` start at step 0)."""
    from srlib.flops import run_flops

    total = 0.0
    while spec is not None:
        total += run_flops(spec)
        spec = spec.parent
    return total


def claim_flops(specs, claim_id: str, rung: str = "", network: str | None = None) -> tuple[float, float]:
    """(steps of the claimed model's own stage, its training FLOPs with its parents') for one seed of claim
    ``claim_id``'s model among ``specs`` (the lowest seed; ``network`` where a claim is read on several); NaN where
    the claim's model is not among them."""
    method = CLAIMS[claim_id].method
    found = [s for s in specs if s.id.method == method and s.id.rung == rung
             and (network is None or s.id.network == network)]
    if not found:
        return math.nan, math.nan
    spec = min(found, key=lambda s: s.id.seed)
    return float(spec.config.iterations), training_flops(spec)


# ---------------------------------------------------------------------------------------------------------------------
# Claims of a profile whose runs have their own schedules (read from the notebooks' claim tables)
# ---------------------------------------------------------------------------------------------------------------------

PCL_CLAIM_PAIRS = {("+PCL", "base", "psnr"): "P1", ("+PCL", "base", "lpips"): "P2", ("+PCL", "control", "psnr"): "P6",
                   ("6", "3", "psnr"): "P3", ("6", "5", "psnr"): "P3", ("6", "4", "psnr"): "P4"}
"""PCL-SR claims among the paired gains: (better, worse, metric) in the short names of :func:`_pcl_short` -> id."""


def _pcl_short(row: str) -> str:
    """``"EDSR-S +PCL"`` -> ``+PCL``, ``"EDSR-S +L1 control"`` -> ``control``, ``"EDSR-S"`` -> ``base``, Table 4's
    ``"6: L1 + PCL (Haar, Gen)"`` -> ``6``."""
    if ":" in row and row.split(":")[0].split()[-1].isdigit():
        return row.split(":")[0].split()[-1]
    if row.endswith("+PCL"):
        return "+PCL"
    if row.endswith("+L1 control"):
        return "control"
    return "base" if " " not in row else row


def profile_claims(profile, tables: str | os.PathLike) -> pd.DataFrame:
    """The claims that the notebooks of a profile wrote (``crl_table1_claims.csv``, ``crl_dasr_claims.csv``,
    ``cdsr_table1_claim.csv``, ``cdsr_table2_claim.csv``, ``pcl_gains.csv``, ``pcl_table4_gains.csv`` under
    ``tables``), one rung (the profile), in :data:`COLUMNS`."""
    from srlib.recipes import all_runs

    tables = Path(tables)
    rows = []
    if (tables / "crl_table1_claims.csv").exists():
        for r in pd.read_csv(tables / "crl_table1_claims.csv").to_dict("records"):
            rows.append({**r, "scope": CRL_SCOPE, "metric": "psnr"})
    for name in ("crl_dasr_claims.csv", "cdsr_table1_claim.csv"):
        if (tables / name).exists():
            rows += [{**r, "metric": "psnr"} for r in pd.read_csv(tables / name).to_dict("records")]
    if (tables / "cdsr_table2_claim.csv").exists():
        for r in pd.read_csv(tables / "cdsr_table2_claim.csv", dtype={"scale": str}).to_dict("records"):
            if r["claim_id"] in BLIND_CLAIMS:
                rows.append({**r, "claim_id": r["claim_id"].split()[0], "scope": _cell_scope(r), "metric": "psnr"})
    for name in ("pcl_gains.csv", "pcl_table4_gains.csv"):
        if (tables / name).exists():
            for r in pd.read_csv(tables / name).to_dict("records"):
                key = (_pcl_short(r["better"]), _pcl_short(r["worse"]), r["metric"])
                if key in PCL_CLAIM_PAIRS:
                    network = r["better"].split()[0] if not r["better"][0].isdigit() else "RCAN"
                    rows.append({**r, "claim_id": PCL_CLAIM_PAIRS[key], "network": network,
                                 "scope": f"{network} {r['dataset']} ({_pcl_short(r['better'])} vs "
                                          f"{_pcl_short(r['worse'])})"})
    if not rows:
        return _frame([])
    specs = all_runs(profile)
    for r in rows:
        r["profile"], r["rung"] = profile.name, profile.name
        r["steps"], r["train_flops"] = claim_flops(specs, r["claim_id"], network=r.pop("network", None))
    return _frame(rows)


# ---------------------------------------------------------------------------------------------------------------------
# Claims of a ladder profile (notebook 07 trains and measures them)
# ---------------------------------------------------------------------------------------------------------------------

def crl_rung(profile, results, data_root=None, cache=None) -> list[dict]:
    """C1-C4 measured on the CRL-SR ladder branches ``results`` of one rung (:func:`srlib.methods.crl_sr.
    evaluate_ablation`: Set14 x4 under the spatially variant ramp, with bicubic for the learned check)."""
    from srlib.methods import crl_sr

    models = {(k.method.removeprefix("crl-"), k.seed): r.model for k, r in results.items()}
    _, claims = crl_sr.evaluate_ablation(profile, models, data_root, cache)
    return [{**r, "scope": CRL_SCOPE, "metric": "psnr"} for r in claims.to_dict("records")]


def pcl_rung(profile, results, bases, data_root=None, cache=None) -> list[dict]:
    """P1, P2 and P6 on one rung of the PCL-SR ladder: the +PCL and L1-control branches ``results`` and their common
    pretrained ``bases`` (``{RunId: TrainResult}``), on every test set of the profile x4 (PSNR and LPIPS, paired by
    seed and image, pooled over the sets: ``scope`` all), rows named as in PCL Tables 2-3
    (:func:`srlib.methods.pcl_sr.row_results`)."""
    from srlib.degradation import Degradation
    from srlib.evaluate import bicubic_upscaler, evaluation_sets, measure, model_upscalers
    from srlib.methods import pcl_sr
    from srlib.metrics import LPIPS
    from srlib.reference import load_reference

    network = profile.pcl.networks[0]
    rows = pcl_sr.row_results({**results, **bases})
    methods = {"Bicubic": {profile.seeds[0]: bicubic_upscaler(pcl_sr.SCALE)},
               **model_upscalers({k: r.model for k, r in rows.items()})}
    measured = measure(methods, evaluation_sets(profile, data_root), [Degradation(pcl_sr.SCALE)], cache=cache,
                       desc="PCL-SR claims", extra_metrics={"lpips": LPIPS("alex")})
    ref = load_reference("PCL-SR", "Table 2").pipe(lambda t: t[t.dataset.isin(set(measured.dataset))])
    ref3 = load_reference("PCL-SR", "Table 3").pipe(lambda t: t[t.dataset.isin(set(measured.dataset))])

    def paper(table, metric):  # the paper's +PCL - base, mean over the test sets we measure (NaN: none of them)
        cell = table[table.metric == metric].pivot_table(index="dataset", columns="method", values="value")
        if not {f"{network} +PCL", network} <= set(cell.columns):
            return math.nan
        return float((cell[f"{network} +PCL"] - cell[network]).mean())

    (vs_control, vs_base, *_), _ = pcl_sr.claim_pairs(network)  # (+PCL, control), (+PCL, base), ...
    return [{"claim_id": cid, "scope": "all", "metric": metric, **claim_row(measured, *pair, metric, p)}
            for cid, pair, metric, p in (("P1", vs_base, "psnr", paper(ref, "psnr")),
                                         ("P2", vs_base, "lpips", paper(ref3, "lpips")),
                                         ("P6", vs_control, "psnr", None))]


def blind_rung(profile, results, data_root=None, cache=None) -> list[dict]:
    """D1 (per CDSR Table 2 cell and pooled), D0, D3 and D4 on one rung of the blind ladder, each gated by the
    encoders of its blind models (:func:`srlib.methods.blind_sr.gate_claims`)."""
    from srlib.methods import blind_sr

    models = blind_sr.table_models(blind_sr.by_name(results), "cdsr2")
    _, measured = blind_sr.evaluate_cdsr_table2(profile, models, data_root, cache, return_measurements=True)
    claims = blind_sr.gate_claims(blind_sr.cdsr_vs_dasr(measured), models, profile, data_root)
    return [{**r, "claim_id": r["claim_id"].split()[0], "metric": "psnr", "scope": _cell_scope(r)}
            for r in claims.to_dict("records") if r["claim_id"] in BLIND_CLAIMS]


def ladder_claims(profile, crl=None, pcl=None, pcl_bases=None, blind=None, data_root=None, cache=None
                  ) -> pd.DataFrame:
    """Every claim of a ladder profile at every rung, in :data:`COLUMNS`.

    Args:
        crl, pcl, blind: the trained ladder branches of each paper (:class:`srlib.runs.Results`; None: skipped).
        pcl_bases: the pretrained bases of the PCL-SR branches (their parents: ``Session.parents("pcl-sr")``).
    """
    from srlib.recipes import all_runs

    specs = all_runs(profile)
    rows = []
    for budget in profile.ladder:
        rung = f"b{budget}"
        part = []
        if crl is not None:
            part += crl_rung(profile, crl.where(rung=rung), data_root, cache)
        if pcl is not None:
            part += pcl_rung(profile, pcl.where(rung=rung), pcl_bases, data_root, cache)
        if blind is not None:
            part += blind_rung(profile, blind.where(rung=rung), data_root, cache)
        for r in part:
            steps, flops = claim_flops(specs, r["claim_id"], rung)
            rows.append({**r, "profile": profile.name, "rung": f"{profile.name}/{rung}", "steps": steps,
                         "train_flops": flops})
    return _frame(rows)


# ---------------------------------------------------------------------------------------------------------------------
# All profiles together
# ---------------------------------------------------------------------------------------------------------------------

EVIDENCE_PROFILES = ("small", "medium", "large", "gpu", "paper")
"""Profiles whose claims the summary gathers (``smoke`` only shows that the pipeline runs)."""


def collect(results_root: str | os.PathLike) -> pd.DataFrame:
    """Every profile's ``claims.csv`` under ``results_root`` (``<profile>/claims.csv``, profiles of
    :data:`EVIDENCE_PROFILES`) in one frame, ordered by claim and compute."""
    paths = [Path(results_root) / p / "claims.csv" for p in EVIDENCE_PROFILES]
    parts = [pd.read_csv(p, dtype={"scope": str}) for p in paths if p.is_file()]
    if not parts:
        return _frame([])
    out = pd.concat(parts, ignore_index=True)
    order = {c: i for i, c in enumerate(CLAIMS)}
    return out.sort_values(["claim_id", "train_flops", "scope"], key=lambda s: s.map(order) if s.name == "claim_id"
                           else s, kind="stable").reset_index(drop=True)


def headline(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per claim and rung: the pooled scope (``all``) where there is one, else every scope."""
    keep = frame.groupby(["claim_id", "rung"])["scope"].transform(lambda s: (s == "all") if (s == "all").any()
                                                                  else pd.Series(True, index=s.index))
    return frame[keep.astype(bool)]


MARKERS = {"supported": "o", "contradicted": "v", "inconclusive": "s"}
COLOURS = {"supported": "tab:green", "contradicted": "tab:red", "inconclusive": "tab:grey"}


def plot_claim(frame: pd.DataFrame, claim_id: str, ax=None):
    """One claim's paired effect with its 95% CI against training FLOPs (log axis): a point per rung and scope,
    coloured by verdict (o supported, v contradicted, s inconclusive; the verdict's initial beside it), the paper's
    effect as a dashed line and 0 as a solid one."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from srlib.viz import _wrap as wrap

    rows = headline(frame[frame.claim_id == claim_id]).dropna(subset=["train_flops", "effect"])
    if ax is None:
        _, ax = plt.subplots(figsize=(4.8, 3.4), layout="constrained")
    ax.axhline(0.0, color="black", lw=0.8)
    paper = rows.paper_effect.dropna()
    if len(paper):
        ax.axhline(float(paper.mean()), color="tab:blue", ls="--", lw=1.0, label="paper")
    scopes = sorted(rows.scope.unique())
    for _, r in rows.iterrows():
        x = r.train_flops * (1.0 + 0.06 * (scopes.index(r.scope) - (len(scopes) - 1) / 2))
        ax.errorbar([x], [r.effect], yerr=[[r.effect - r.ci_low], [r.ci_high - r.effect]], fmt=MARKERS[r.verdict],
                    color=COLOURS[r.verdict], ms=5, capsize=2, lw=1)
        ax.annotate(r.verdict[0].upper(), (x, r.ci_high), textcoords="offset points", xytext=(0, 2), ha="center",
                    fontsize=8, color=COLOURS[r.verdict])
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels of a narrow range overlap
    ax.margins(x=0.2, y=0.15)
    ax.set_xlabel("training FLOPs of one seed")
    ax.set_ylabel(f"effect ({rows.metric.iloc[0] if len(rows) else ''})")
    c = CLAIMS[claim_id]
    ax.set_title(f"{claim_id} ({c.paper}): {wrap(c.text, 44)}", fontsize=9)
    for (rung, flops) in rows.groupby("rung").train_flops.min().items():  # rung names along the bottom edge
        ax.annotate(rung, (flops, 0.02), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                    rotation=90, fontsize=7, color="0.35")
    return ax


def plot_claims(frame: pd.DataFrame, claim_ids=None):
    """:func:`plot_claim` for every claim of ``frame`` (or ``claim_ids``) in one grid figure."""
    import matplotlib.pyplot as plt

    ids = measured_ids(frame) if claim_ids is None else list(claim_ids)
    cols = min(3, max(1, len(ids)))
    rows = max(1, math.ceil(len(ids) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 3.8 * rows), layout="constrained", squeeze=False)
    for ax, cid in zip(axes.flat, ids, strict=False):
        plot_claim(frame, cid, ax)
    for ax in list(axes.flat)[len(ids):]:
        ax.set_visible(False)
    return fig


def markdown(frame: pd.DataFrame) -> str:
    """The findings table of the README: per claim, the verdict and effect [CI] at each rung (pooled scope, or each
    scope), and the claims no rung measures."""
    lines = ["| claim | rung | steps | train FLOPs | scope | effect [95% CI] | paper | verdict |",
             "|---|---|---:|---:|---|---|---:|---|"]
    for _, r in headline(frame).iterrows():
        paper = "" if pd.isna(r.paper_effect) else f"{r.paper_effect:+.3f}"
        lines.append(f"| {r.claim_id} | {r.rung} | {r.steps:.0f} | {r.train_flops:.2g} | {r.scope} | "
                     f"{r.effect:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] {r.metric} | {paper} | **{r.verdict}**"
                     f"{'' if r.verdict == 'supported' else ': ' + str(r.why)} |")
    missing = [c for c in CLAIMS if c not in measured_ids(frame)]
    if missing:
        lines += ["", "Not measured at any rung yet: " + "; ".join(f"{c} ({CLAIMS[c].paper}: {CLAIMS[c].text})"
                                                                  for c in missing) + "."]
    return "\n".join(lines) + "\n"


README_START, README_END = "<!-- claims:start -->", "<!-- claims:end -->"


def write_summary(results_root: str | os.PathLike, readme: str | os.PathLike | None = None) -> pd.DataFrame:
    """Collect every profile's claims (:func:`collect`) into ``<results_root>/claims.csv``, draw
    ``<results_root>/claims_vs_compute.png`` (every claim) and ``figures/claim_<id>.png`` (one per claim), and, with
    ``readme``, rewrite the README's findings table between :data:`README_START` and :data:`README_END`."""
    import matplotlib.pyplot as plt

    from srlib.viz import save_figure

    root = Path(results_root)
    frame = collect(root)
    frame.to_csv(root / "claims.csv", index=False, float_format="%.6g")
    if len(frame):
        fig = plot_claims(frame)
        save_figure(fig, root / "claims_vs_compute.png")
        plt.close(fig)
        for cid in measured_ids(frame):
            fig = plot_claim(frame, cid).figure
            save_figure(fig, root / "figures" / f"claim_{cid}.png")
            plt.close(fig)
    if readme is not None:
        path = Path(readme)
        text = path.read_text()
        if README_START not in text or README_END not in text:
            raise ValueError(f"{path} has no {README_START} ... {README_END} block to rewrite")
        head, rest = text.split(README_START, 1)
        tail = rest.split(README_END, 1)[1]
        path.write_text(f"{head}{README_START}\n{markdown(frame)}{README_END}{tail}")
    return frame


def main(argv: list[str] | None = None) -> int:
    """``python -m srlib.evidence [--results results] [--readme README.md]``: :func:`write_summary`."""
    import argparse

    import matplotlib

    matplotlib.use("Agg")
    parser = argparse.ArgumentParser(prog="python -m srlib.evidence", description=write_summary.__doc__)
    parser.add_argument("--results", default="results", help="the results folder holding <profile>/claims.csv")
    parser.add_argument("--readme", default=None, help="README whose findings block to rewrite")
    args = parser.parse_args(argv)
    frame = write_summary(args.results, args.readme)
    print(f"{len(frame)} claim rows from {frame.profile.nunique() if len(frame) else 0} profile(s) -> "
          f"{Path(args.results) / 'claims.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
