"""Training-step throughput of each method on this machine (prints figures; asserts nothing).

    python benchmarks/bench_training.py [--sizes small paper] [--repeats 3]

For each method and profile size: the time of one optimisation step (forward, backward, Adam) on a random batch of
the profile's shape, the FLOPs of forward + backward counted by ``torch.utils.flop_counter`` (convolutions and
matrix products), the achieved GFLOP/s, and that as a share of the float32 matmul peak measured here first.
FLOPs are those of direct convolution; oneDNN may compute 3x3 convolutions with fewer (Winograd), so an effective
figure above 100% of the matmul peak is possible.
Degradation of the batch is excluded (see bench_degradation.py); each figure is the best of ``--repeats`` steps
after one warm-up step.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

import torch
from common import matmul_peak, timed
from torch.utils.flop_counter import FlopCounterMode

from srlib import pcl
from srlib.archs.crl_sr import CRLSR
from srlib.archs.pcl_embed import PCLDiscriminator
from srlib.archs.rcan import RCAN
from srlib.methods import blind_sr, pcl_sr
from srlib.methods import crl_sr as crl
from srlib.profiles import PROFILES
from srlib.train import Batch, flush_denormals


def crl_step(variant: str, sizes, scale: int = 4):
    """One CRL-SR variant's training step at the given sizes: returns (step function, test-time parameter count)."""
    v = crl.VARIANTS[variant]
    model = CRLSR(scale, sizes.n_feats, sizes.n_blocks, sizes.n_detail_blocks, sizes.proj_dim, cde=v.cde,
                  cfr=v.cfr is not None, n_blocks_f=sizes.n_blocks_f)
    loss_fn = crl.crl_loss(v, sizes.m_locations, sizes.lambda_cde, sizes.lambda_c, sizes.lambda_hr)
    return _step(model, loss_fn, sizes, scale), sum(p.numel() for p in model.sr_parameters())


def rcan_step(sizes, scale: int = 4):
    model = RCAN(scale, sizes.n_feats, sizes.rcan_groups, sizes.rcan_blocks, reduction=8)
    return _step(model, crl.l1_loss, sizes, scale), sum(p.numel() for p in model.parameters())


def _step(model, loss_fn, sizes, scale):
    g = torch.Generator().manual_seed(0)
    lr = torch.rand(sizes.batch_size, 3, sizes.lr_patch, sizes.lr_patch, generator=g)
    hr = torch.rand(sizes.batch_size, 3, sizes.lr_patch * scale, sizes.lr_patch * scale, generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        terms = loss_fn(model, Batch(lr, hr, [], g))
        total = sum(v for k, v in terms.items() if not k.startswith("_"))
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    return step


def blind_step(factory, sizes, scale: int = 4):
    """One joint DASR / CDSR step (L1 + MoCo InfoNCE: query and key encoders, queue update, SR network) at the given
    sizes: returns (step function, trainable parameter count)."""
    model = factory(scale, sizes)()
    g = torch.Generator().manual_seed(0)
    lr = torch.rand(sizes.batch_size, 3, sizes.lr_patch, sizes.lr_patch, generator=g)
    hr = torch.rand(sizes.batch_size, 3, sizes.lr_patch * scale, sizes.lr_patch * scale, generator=g)
    key = torch.rand(lr.shape, generator=g)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        terms = blind_sr.joint_loss(model, Batch(lr, hr, [], g, {"lr_key": key}))
        opt.zero_grad(set_to_none=True)
        sum(v for k, v in terms.items() if not k.startswith("_")).backward()
        opt.step()

    return step, sum(p.numel() for p in model.parameters() if p.requires_grad)


def pcl_steps(network: str, sizes):
    """PCL-SR fine-tuning of ``network`` at the given sizes: the L1-only SR step, the discriminator step (including
    the SR forward under no_grad that makes its fake), the SR step with L_CL, and one whole PCL iteration
    (discriminator step, then SR step, sharing one SR forward as the trainer does). Returns ``{name: (step function,
    parameter count)}``."""
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(sizes.batch_size, 3, sizes.lr_patch * 4, sizes.lr_patch * 4, generator=g)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    extras = {"pos": pcl.positives(hr, g, sizes.n_sharp),
              "neg": pcl.negatives(hr, pcl.upsample_lr(lr, hr.shape[-2:]), g, sizes.n_blur)}
    model = pcl_sr.network_factory(network, sizes)()
    disc = PCLDiscriminator(9, sizes.taps, base_channels=sizes.d_channels)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    d_opt = torch.optim.Adam(disc.parameters(), lr=1e-4)
    d_loss = pcl_sr.discriminator_loss(haar=True)
    n_sr, n_d = (sum(p.numel() for p in m.parameters()) for m in (model, disc))

    def batch():
        return Batch(lr, hr, [], g, dict(extras))

    def sr_step(arm, b=None):
        terms = pcl_sr.sr_loss(arm, sizes.alpha, disc)(model, b or batch())
        opt.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        opt.step()

    def d_step(b=None):
        if b is None:
            b = batch()
            with torch.no_grad():
                b.extras["sr"] = model(lr)
        loss = d_loss(disc, model, b)["d"]
        d_opt.zero_grad(set_to_none=True)
        loss.backward()
        d_opt.step()

    def iteration():
        b = batch()
        d_step(b)
        sr_step(pcl_sr.ARMS["pcl"], b)

    return {"SR step, L1 only": (lambda: sr_step(pcl_sr.ARMS["control"]), n_sr),
            "discriminator step": (d_step, n_d),
            "SR step, L1 + L_CL": (lambda: sr_step(pcl_sr.ARMS["pcl"]), n_sr),
            "PCL iteration (D step + SR step)": (iteration, n_sr + n_d)}


def report(name: str, step, n_params: int, peak: float, repeats: int) -> None:
    with flush_denormals():  # as the trainer does
        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
        best = min(timed(step) for _ in range(repeats))
    gflops = flops / best / 1e9
    print(f"{name:72s} {n_params / 1e6:7.3f} M {best * 1e3:9.1f} ms {flops / 1e9:9.2f} GFLOP "
          f"{gflops:7.1f} GFLOP/s {100 * gflops / peak:5.1f}%")
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["small", "paper"], choices=sorted(PROFILES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--paper-batch", type=int, default=4,
                    help="batch for the paper sizes (the papers use 32; on 2 CPU cores one such step takes minutes)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    peak = matmul_peak()
    print(f"measured matmul peak (float32, best of 1024/2048/3072 cubed): {peak:.1f} GFLOP/s\n")
    print(f"{'step (x4)':72s} {'params':>9s} {'time':>12s} {'fwd+bwd':>15s} {'achieved':>15s} {'of peak':>6s}")
    for size in args.sizes:
        s = PROFILES[size].crl
        if size == "paper":
            s = replace(s, batch_size=args.paper_batch)
        shape = f"batch {s.batch_size}x{s.lr_patch}^2"
        report(f"[{size}] RCAN baseline, L1 ({shape})", *rcan_step(s), peak, args.repeats)
        report(f"[{size}] CRL-SR (a) baseline, L1 ({shape})", *crl_step("a", s), peak, args.repeats)
        report(f"[{size}] CRL-SR (d) CDE ({shape})", *crl_step("d", s), peak, args.repeats)
        report(f"[{size}] CRL-SR (f) CDE + CFR ({shape})", *crl_step("f", s), peak, args.repeats)
        b = PROFILES[size].blind
        if size == "paper":
            b = replace(b, batch_size=args.paper_batch)
        shape = f"batch {b.batch_size}x{b.lr_patch}^2, queue {b.queue_size}"
        report(f"[{size}] DASR joint step ({shape})", *blind_step(blind_sr.dasr_factory, b), peak, args.repeats)
        report(f"[{size}] CDSR joint step ({shape})", *blind_step(blind_sr.cdsr_factory, b), peak, args.repeats)
        p = PROFILES[size].pcl
        if size == "paper":
            p = replace(p, batch_size=args.paper_batch)
        for network in pcl_sr.NETWORKS:
            shape = f"batch {p.batch_size}x{p.lr_patch}^2, D width {p.d_channels}"
            times = {name: report(f"[{size}] {network} PCL: {name} ({shape})", step, n, peak, args.repeats)
                     for name, (step, n) in pcl_steps(network, p).items()}
            print(f"[{size}] {network} PCL overhead: one PCL iteration = "
                  f"{times['PCL iteration (D step + SR step)'] / times['SR step, L1 only']:.2f} x an L1 step")


if __name__ == "__main__":
    main()
