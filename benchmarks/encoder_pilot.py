"""Encoder pilot (issue 10): how many encoder-only warm-up steps does DASR's degradation encoder need, at the
``large`` profile's sizes, before it separates CDSR's kernels well above chance?

    SRLIB_DATA=<standard sets> python benchmarks/encoder_pilot.py [--steps 400 1600 6400] [--seed 0]

Design (fixed before the first run): DASR's first stage as the ``large`` profile trains it (CDSR's anisotropic
protocol at x4, contrastive loss only, the SR network frozen, MoCo momentum scaled to the stage,
:func:`srlib.recipes.blind_sr.dasr_run`), with only ``warmup_iterations`` changed, one run per length. Each encoder
is read by the gate's own measure (:func:`~srlib.methods.blind_sr.encoder_accuracy`: content-controlled accuracy over
the 9 noise-free test kernels, 2 patches per image and kernel, neighbours from other images) on *validation*
images, not a test set: the first ``--images`` images of BSD200 (training images; the measure's neighbours come
from other images, so knowing an image's content cannot raise it). Rule: the shortest length whose accuracy reaches
the gate (:func:`~srlib.methods.blind_sr.encoder_gate`) is the warm-up a blind claim needs at this size; none
reaching it is the finding. The runs live in the ``large`` profile's runs folder (resumable; one per length and seed).
``--positive D`` trains the same stage with CDSR Table 1's degradation-only positive (another image, the same
degradation), whose contrastive task cannot be solved by content: the control that says whether the encoder can
learn kernels at all here. ``--reference`` measures instead a hand-made, untrained spectral code
(:func:`spectrum_accuracy`) with the same measure: what a content-normalised blur cue reaches on patches of that
size. ``--supervised`` (added after the contrastive arms above had all stayed at chance; design fixed before it
ran) is the capacity control: the same encoder, sizes, training distribution, steps and learning-rate schedule,
but trained to regress each patch's kernel (:func:`supervised_encoder`), so it is *told* the kernel. Rule: if it
reaches the gate, the patches carry the kernel and this encoder can hold it, and what fails is the contrastive
objective; if it does not, the gate cannot be met at this patch size within these steps even by a told encoder.
(Measured: it does not at 6,400 steps, but it rises well above chance, where the contrastive arms do not; it passes
after 25,600 noise-free steps, 0.63, and after 102,400 with the protocol's noise, 0.58, where MoCo at 25,600 noise-free
steps stays at chance with either positive, 0.12 C&D and 0.09 D, and with D in batches of 32, 0.12 after 6,400.)
``--scale 2`` (added last, before its runs) asks every arm the same question at x2, CDSR Table 2's other scale, whose
kernels are narrower in HR pixels but cover more of each LR pixel's neighbourhood: the test kernels and training
distribution are CDSR's at x2, the LR patch stays ``--lr-patch`` (the HR patch halves). Rule as above, per scale.
(Measured at 24 px: x2 is no easier: spectrum 0.19 (x4 0.25), supervised 0.12 / 0.33 at 1,600 / 6,400 steps (x4
0.18 / 0.35), MoCo with the D positive 0.06 at 1,600 (x4 0.16).)

Prints one line per length and adds its rows to ``benchmarks/results/encoder_pilot.csv`` (one row per positive,
noise, patch, batch, length and seed). ``moco_top1``: the mean over the stage's last tenth of the fraction of queries
whose positive key beat all 256 queued negatives (how well the encoder solves its own contrastive task);
``train_s``: the run's training time in its log.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import update_csv

from srlib import data, profiles
from srlib.methods.blind_sr import GATE, encoder_accuracy, encoder_gate
from srlib.recipes.blind_sr import POSITIVES, dasr_run
from srlib.runs import load_training_images, train_all

OUT = Path(__file__).parent / "results" / "encoder_pilot.csv"
KEY = ["encoder", "scale", "positive", "noise", "lr_patch", "batch_size", "seed", "warmup_steps"]  # one row per arm


def _measured(acc) -> dict:
    return {"accuracy": round(acc.accuracy, 4), "chance": round(acc.chance, 4),
            "gate": round(acc.chance + GATE * (1 - acc.chance), 4), "n_patches": acc.n,
            "passes": encoder_gate(acc.accuracy, acc.chance)}


def spectrum_accuracy(hr_images: dict, lr_patch: int, scale: int = 4, bins: int = 8, seed: int = 0):
    """The gate's measure applied to a hand-made, untrained code: per LR patch (gray, mean removed) the log power in
    ``bins`` radial frequency bands, less its mean over the bands (the spectrum's shape, not its level). What a
    content-normalised blur cue alone reaches on patches of this size: a reference for the trained encoders."""
    from srlib import embeddings as E
    from srlib.methods.blind_sr import kernel_test_patches

    lr, degs, names = kernel_test_patches(hr_images, scale, lr_patch, 2, seed)
    gray = lr.mean(1)
    power = torch.fft.fft2(gray - gray.mean((1, 2), keepdim=True)).abs() ** 2
    f = torch.fft.fftfreq(lr_patch).abs()
    radius = (f[:, None] ** 2 + f[None, :] ** 2).sqrt()
    edges = torch.linspace(0.0, float(radius.max()) + 1e-6, bins + 1)
    bands = torch.stack([power[:, (radius >= edges[i]) & (radius < edges[i + 1])].sum(1) for i in range(bins)], 1)
    code = torch.log(bands + 1e-8)
    code = code - code.mean(1, keepdim=True)
    return E.content_controlled_accuracy(code - code.mean(0), [str(d) for d in degs], names)


class KernelRegressor(torch.nn.Module):
    """DASR's degradation encoder with a linear head predicting the kernel's covariance (the capacity control).
    ``embed`` gives ``fea`` like a DASR's, so the gate's measure reads it unchanged."""

    def __init__(self, enc_feats: int):
        super().__init__()
        from srlib.archs.dasr import DegradationEncoder

        self.encoder = DegradationEncoder(enc_feats)
        self.head = torch.nn.Linear(self.encoder.out_dim, 3)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(lr)[0])

    def embed(self, lr: torch.Tensor) -> dict:
        return {"fea": self.encoder(lr)[0]}


def kernel_target(degradations) -> torch.Tensor:
    """(B, 3): the HR kernel covariance (sxx, syy, sxy) / 10 of CDSR-convention anisotropic kernels (l1, l2 are
    variances; theta in degrees): a smooth target that is the same for every description of one kernel."""
    rows = []
    for d in degradations:
        k = d.kernel
        c, s = math.cos(math.radians(k.theta)), math.sin(math.radians(k.theta))
        rows.append([k.l1 * c * c + k.l2 * s * s, k.l1 * s * s + k.l2 * c * c, (k.l1 - k.l2) * c * s])
    return torch.tensor(rows) / 10.0


def supervised_encoder(train_images: list, sizes, steps: int, noise: float, seed: int, scale: int = 4):
    """Train :class:`KernelRegressor` (MSE on :func:`kernel_target`) on ``large``'s training distribution: CDSR's
    protocol at ``scale`` with noise U[0, ``noise``], batches drawn as the trainer draws them
    (:class:`srlib.data.PatchSampler` + :func:`srlib.train.degraded_patches`: ``sizes.batch_size`` LR patches of
    ``sizes.lr_patch``, each under its own degradation), Adam at ``sizes.warmup_lr`` halved at 60% of the steps
    (DASR's warm-up schedule). Returns (model, last-tenth MSE)."""
    from srlib.data import PatchSampler
    from srlib.recipes.blind_sr import training_space
    from srlib.train import TrainConfig, build_model, degraded_patches

    cfg = TrainConfig(scale=scale, iterations=steps, batch_size=sizes.batch_size, lr_patch=sizes.lr_patch,
                      lr=sizes.warmup_lr, lr_halve_every=math.ceil(0.6 * steps),
                      degradations=training_space("cdsr", scale, noise), seed=seed)
    sampler = PatchSampler(train_images, scale * cfg.lr_patch, cfg.batch_size)
    model = build_model(lambda: KernelRegressor(sizes.enc_feats), seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_halve_every, 0.5)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        batch = degraded_patches(sampler, cfg, g)
        loss = torch.nn.functional.mse_loss(model(batch.lr), kernel_target(batch.degradations))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return model, float(np.mean(losses[-max(1, steps // 10):]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", nargs="+", type=int, default=[400, 1600, 6400])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--positive", default="C&D", choices=list(POSITIVES),
                        help="the positive key (C&D: DASR's; D: CDSR Table 1's degradation-only control)")
    parser.add_argument("--noise", type=float, default=15.0,
                        help="largest training noise level (large's: 15, CDSR's protocol; 0: noise-free training)")
    parser.add_argument("--lr-patch", type=int, help="LR patch side of training and measure (default: large's, 24)")
    parser.add_argument("--batch-size", type=int, help="images per step (default: large's, 8)")
    parser.add_argument("--reference", action="store_true",
                        help="measure only the hand-made spectral code (spectrum_accuracy) at --lr-patch")
    parser.add_argument("--supervised", action="store_true",
                        help="the capacity control: the encoder trained to regress the kernel (supervised_encoder)")
    parser.add_argument("--scale", type=int, default=4, choices=[2, 4],
                        help="CDSR's protocol and test kernels at this scale (large's: 4; 2: CDSR Table 2's x2)")
    parser.add_argument("--images", type=int, default=12, help="validation images (the first of BSD200)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    large = profiles.PROFILES["large"]
    if data.data_root() is None:
        raise SystemExit("encoder_pilot: needs BSD200 under $SRLIB_DATA (the validation images)")
    bsd = data.open_set("BSD200")
    val = {f"BSD200/{r.stem}": r.image for r in list(bsd)[: args.images]}
    sizes = replace(large.blind, lr_patch=args.lr_patch or large.blind.lr_patch,
                    batch_size=args.batch_size or large.blind.batch_size)
    rows = []
    if args.reference:
        acc = spectrum_accuracy(val, sizes.lr_patch, args.scale)
        args.steps = []
        rows.append({"encoder": "spectrum", "scale": args.scale, "positive": "-", "noise": 0.0,
                     "lr_patch": sizes.lr_patch, "batch_size": 0, "seed": 0, "warmup_steps": 0, **_measured(acc)})
        print(rows[-1], flush=True)
    if args.supervised:
        # the MoCo arms' training images, loaded as the trainer loads them (sets and minimum size of the run's data)
        _, train = load_training_images(dasr_run(replace(large, blind=sizes), args.scale, args.seed, protocol="cdsr",
                                                 noise=args.noise).data)
        for steps in args.steps:
            t0 = time.perf_counter()
            model, mse = supervised_encoder(train, sizes, steps, args.noise, args.seed, args.scale)
            acc = encoder_accuracy(model, val, args.scale, sizes.lr_patch)
            rows.append({"encoder": "supervised (kernel regression)", "scale": args.scale, "positive": "-",
                         "noise": args.noise, "lr_patch": sizes.lr_patch, "batch_size": sizes.batch_size,
                         "seed": args.seed, "warmup_steps": steps, **_measured(acc), "train_mse": round(mse, 5),
                         "train_s": round(time.perf_counter() - t0, 1)})
            print(rows[-1], flush=True)
        args.steps = []
    for steps in args.steps:
        prof = replace(large, blind=replace(sizes, warmup_iterations=steps))
        warmup = dasr_run(prof, args.scale, args.seed, protocol="cdsr", positive=args.positive,
                          noise=args.noise).parent
        result = train_all([warmup], profiles.runs_dir(prof), progress=False)[warmup.id]
        log = pd.read_csv(result.losses_csv)
        tail = log.tail(max(1, len(log) // 10))  # the last tenth of the stage
        acc = encoder_accuracy(result.model, val, args.scale, prof.blind.lr_patch)
        rows.append({"encoder": "DASR warm-up", "scale": args.scale, "positive": args.positive, "noise": args.noise,
                     "lr_patch": sizes.lr_patch, "batch_size": sizes.batch_size, "seed": args.seed,
                     "warmup_steps": steps, **_measured(acc), "momentum": warmup.arch_kwargs["momentum"],
                     "moco_top1": round(float(tail["_top1"].mean()), 3),
                     "train_s": round(float(log["seconds"].iloc[-1]), 1)})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    update_csv(args.out, table, KEY)  # keeps the other arms' rows; a rerun replaces its own
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
