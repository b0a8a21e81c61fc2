"""Throughput of the degradation model on this machine (prints figures; asserts nothing).

    python benchmarks/bench_degradation.py [--batch 32] [--patch 192] [--repeats 5]

1. Training-style batches: random iso blur + MATLAB bicubic x4 (float) + noise on a (B, 3, P, P) batch,
   via ``apply_batch`` -> images/s, and the achieved GFLOP/s of the blur convolution.
2. Test-set generation: MATLAB-exact bicubic x4 (uint8 semantics) of every Set14 image -> MP/s of HR input
   (needs $SRLIB_DATA; falls back to the embedded test set).
"""

import argparse
import os

import torch
from common import best_time, matmul_peak

from srlib import data
from srlib.degradation import Degradation, DegradationSpace, apply_batch
from srlib.imgutil import img2tensor, modcrop


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--patch", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    peak = matmul_peak()
    print(f"measured matmul peak (float32): {peak:.1f} GFLOP/s")

    g = torch.Generator().manual_seed(0)
    hr = torch.rand(args.batch, 3, args.patch, args.patch, generator=g) * 255
    degs = DegradationSpace(4, kernel="iso", noise_range=(0, 25)).sample_batch(args.batch, g)
    t = best_time(lambda: apply_batch(hr, degs, torch.Generator().manual_seed(1)), args.repeats)
    blur_flops = 2 * args.batch * 3 * args.patch**2 * 21 * 21
    print(f"training batch {args.batch}x3x{args.patch}x{args.patch}, blur+bicubic x4+noise: "
          f"{t * 1e3:.1f} ms, {args.batch / t:.1f} images/s, "
          f"blur conv {blur_flops / t / 1e9:.1f} GFLOP/s ({100 * blur_flops / t / 1e9 / peak:.0f}% of peak)")

    root = data.data_root()
    image_set = data.open_set("Set14", root) if data.available_sets(["Set14"], root) else data.embedded_set("test")
    hrs = [img2tensor(modcrop(r.image, 4))[None] for r in image_set]
    pixels = sum(h.shape[-1] * h.shape[-2] for h in hrs)
    t = best_time(lambda: [Degradation(4).apply(h) for h in hrs], args.repeats)
    print(f"MATLAB-exact bicubic x4 on {image_set.name} ({len(hrs)} images, {pixels / 1e6:.2f} MP): "
          f"{t:.3f} s, {pixels / 1e6 / t:.1f} MP/s")


if __name__ == "__main__":
    main()
