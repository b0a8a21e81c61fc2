"""The ``srlib`` command: degrade HR images, score SR images, upscale, reproduce the tables.

    srlib degrade Set5/HR --out lr --scale 4 [--sigma 1.2 | --aniso 2,0.2,0 | --preset NAME] [--noise 15] [--seed 0]
    srlib metrics --hr Set5/HR --sr sr --scale 4 [--crop-border 4] [--lpips] [--niqe] [--json]
    srlib upscale lr --scale 4 --model bicubic --out sr
    srlib reproduce --profile small

Errors (unreadable file, bad parameter, unmatched images) print one line naming the file and the problem and exit
with status 2; files already written stay as they are (every PNG is written atomically).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from srlib import data as sdata
from srlib import degradation as D
from srlib.fileio import atomic_write
from srlib.imgutil import img2tensor, modcrop, tensor2img


class CLIError(Exception):
    """A user error: reported as one line, exit status 2."""


def _inputs(items: list[str]) -> list[Path]:
    """Image files given directly or found in the given folders, sorted by stem within a folder."""
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in sdata.IMAGE_EXTENSIONS)
            if not found:
                raise CLIError(f"{p}: no images ({', '.join(sdata.IMAGE_EXTENSIONS)}) in this folder")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise CLIError(f"{p}: no such file or folder")
    stems = [f.stem for f in files]
    dups = sorted({s for s in stems if stems.count(s) > 1})
    if dups:
        raise CLIError(f"several inputs share the names {dups}: outputs would overwrite each other")
    return files


def _floats(text: str, n: int, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise CLIError(f"{what}: expected {n} comma-separated numbers, got {text!r}") from None
    if len(vals) != n:
        raise CLIError(f"{what}: expected {n} comma-separated numbers, got {text!r}")
    return vals


def _degradations(args) -> list[D.Degradation]:
    if args.preset:
        if args.noise:
            raise CLIError("--noise cannot be combined with --preset (presets fix their noise levels)")
        return D.with_resize(D.preset(args.preset, args.scale), args.resize)
    kernel = None
    if args.sigma is not None:
        if not args.sigma > 0:
            raise CLIError(f"--sigma must be > 0 (omit it for bicubic only), got {args.sigma}")
        kernel = D.IsoGaussian(args.sigma)
    elif args.aniso is not None:
        kernel = D.AnisoGaussian(*_floats(args.aniso, 3, "--aniso L1,L2,THETA_DEG"))
    return [D.Degradation(args.scale, kernel, args.noise, resize=args.resize)]


def cmd_degrade(args) -> int:
    files = _inputs(args.inputs)
    degs = _degradations(args)
    out_root = Path(args.out)
    for deg in degs:
        out = out_root / deg.name if len(degs) > 1 else out_root
        out.mkdir(parents=True, exist_ok=True)
        records = []
        for f in files:
            hr = modcrop(sdata.load_image(f), deg.scale)
            g = torch.Generator().manual_seed(sdata.image_seed(args.seed, f.stem))
            try:
                lr = tensor2img(deg.apply(img2tensor(hr)[None], g)[0])
            except D.DegradationError as e:
                raise CLIError(f"{f}: {e}") from None
            dst = out / f"{f.stem}.png"
            sdata.save_image(dst, lr)
            records.append({"input": str(f), "output": dst.name, "hr_shape": list(hr.shape), "lr_shape": list(lr.shape),
                            "image_seed": sdata.image_seed(args.seed, f.stem), "lr_sha256": sdata.file_sha256(dst)})
        manifest = {"degradation": deg.to_dict(), "name": deg.name, "seed": args.seed, "images": records}
        with atomic_write(out / "manifest.json", binary=False) as f:
            f.write(json.dumps(manifest, indent=2) + "\n")
        print(f"{deg.name}: {len(records)} LR images -> {out}")
    return 0


def _pairs(hr_dir: str, sr_dir: str) -> list[tuple[Path, Path]]:
    hr = {f.stem: f for f in _inputs([hr_dir])}
    sr = {f.stem: f for f in _inputs([sr_dir])}
    missing = sorted(set(hr) ^ set(sr))
    if missing:
        raise CLIError(f"images without a partner (paired by file stem) between {hr_dir} and {sr_dir}: {missing}")
    return [(hr[s], sr[s]) for s in sorted(hr)]


def cmd_metrics(args) -> int:
    from srlib import metrics

    border = args.scale if args.crop_border is None else args.crop_border
    if border < 0:
        raise CLIError(f"--crop-border must be >= 0, got {border}")
    lpips = metrics.LPIPS(net=args.lpips_net) if args.lpips else None
    rows = []
    for hr_path, sr_path in _pairs(args.hr, args.sr):
        hr = modcrop(sdata.load_image(hr_path), args.scale)
        sr = sdata.load_image(sr_path)
        if sr.shape != hr.shape:
            raise CLIError(f"{sr_path}: shape {sr.shape} differs from HR {hr_path} cropped to a multiple of "
                           f"{args.scale}: {hr.shape}")
        gray = sdata.is_grayscale_file(hr_path)
        row = {"name": hr_path.stem, "psnr_y": metrics.psnr_y(hr, sr, border, gray=gray),
               "ssim_y": metrics.ssim_y(hr, sr, border, gray=gray), "psnr_rgb": metrics.psnr_rgb(hr, sr, border)}
        if lpips is not None:
            row["lpips"] = lpips(hr, sr)
        if args.niqe:
            row["niqe"] = metrics.niqe(sr, crop_border=border)
        rows.append(row)
    keys = [k for k in rows[0] if k != "name"]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    if args.json:
        print(json.dumps({"images": rows, "mean": mean, "scale": args.scale, "crop_border": border}, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows + [{"name": "mean"}])
    print(f"{'image':{width}s} " + " ".join(f"{k:>9s}" for k in keys))
    for r in rows + [{"name": "mean", **mean}]:
        print(f"{r['name']:{width}s} " + " ".join(f"{r[k]:9.4f}" for k in keys))
    return 0


def cmd_upscale(args) -> int:
    from srlib.evaluate import bicubic_upscaler

    models = {"bicubic": bicubic_upscaler}
    upscaler = models[args.model](args.scale)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = _inputs(args.inputs)
    for f in files:
        lr = sdata.load_image(f)
        sr = tensor2img(upscaler(img2tensor(lr)[None])[0])
        sdata.save_image(out / f"{f.stem}.png", sr)
    print(f"{args.model} x{args.scale}: {len(files)} SR images -> {out}")
    return 0


def cmd_reproduce(args) -> int:
    from srlib import pipeline

    argv = [*(["--profile", args.profile] if args.profile else []), *(["--only", *args.only] if args.only else [])]
    return pipeline.main(argv + (["--data-root", args.data_root] if args.data_root else []))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srlib", description="Contrastive-learning SR companion: tools and pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("degrade", help="degrade HR images into LR PNGs (+ manifest.json)")
    p.add_argument("inputs", nargs="+", help="HR image files or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--scale", type=int, required=True, help="integer downsampling factor")
    kernel = p.add_mutually_exclusive_group()
    kernel.add_argument("--sigma", type=float, help="isotropic Gaussian blur width (standard deviation, > 0)")
    kernel.add_argument("--aniso", help="anisotropic blur L1,L2,THETA_DEG (standard deviations, degrees)")
    kernel.add_argument("--preset", choices=sorted(D.PRESETS), help="a named test setting (one subfolder each)")
    p.add_argument("--noise", type=float, default=0.0, help="Gaussian noise level on the 0..255 scale")
    p.add_argument("--seed", type=int, default=0, help="noise seed (per image: derived from seed and file stem)")
    p.add_argument("--resize", choices=D.RESIZE_MODES, default="matlab", help="downsampler (default: MATLAB bicubic)")
    p.set_defaults(func=cmd_degrade)

    p = sub.add_parser("metrics", help="PSNR/SSIM (Y), RGB PSNR, LPIPS, NIQE of SR images against HR")
    p.add_argument("--hr", required=True, help="folder of HR images")
    p.add_argument("--sr", required=True, help="folder of SR images (paired with HR by file stem)")
    p.add_argument("--scale", type=int, required=True, help="HR is cropped to a multiple of it")
    p.add_argument("--crop-border", type=int, default=None, help="pixels shaved from each border (default: scale)")
    p.add_argument("--lpips", action="store_true", help="also LPIPS (real ImageNet backbone, offline)")
    p.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex")
    p.add_argument("--niqe", action="store_true", help="also NIQE of the SR image (MATLAB pristine model)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("upscale", help="upscale LR images")
    p.add_argument("inputs", nargs="+", help="LR image files or folders")
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--model", choices=("bicubic",), default="bicubic", help="bicubic = MATLAB-exact imresize")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser("reproduce", help="run every notebook with papermill and write results/<profile>/")
    p.add_argument("--profile", default=None)
    p.add_argument("--only", nargs="*")
    p.add_argument("--data-root", default=None)
    p.set_defaults(func=cmd_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scale = getattr(args, "scale", None)  # the subcommands that take --scale require it
    if scale is not None and scale < 1:
        print(f"srlib {args.command}: error: --scale must be >= 1, got {scale}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (CLIError, D.DegradationError, sdata.ImageReadError, FileNotFoundError, ValueError) as e:
        print(f"srlib {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
