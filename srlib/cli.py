"""The ``srlib`` command: degrade HR images, score SR images, upscale, reproduce the tables.

    srlib degrade Set5/HR --out lr --scale 4 [--sigma 1.2 | --aniso 2,0.2,0 | --preset NAME] [--noise 15] [--seed 0]
    srlib metrics --hr Set5/HR --sr sr --scale 4 [--crop-border 4] [--lpips] [--niqe] [--json]
    srlib upscale lr --scale 4 --model bicubic --out sr
    srlib upscale photo.png --scale 4 --run .runs/small/dasr-... --out sr [--model dasr] [--device auto]
                  [--tile 256] [--tile-overlap auto] [--embedding print|save]
    srlib upscale photo.png --scale 4 --checkpoint dasr.safetensors --out sr
    srlib export .runs/small/dasr-... --out dasr.safetensors
    srlib reproduce --profile small

Subcommands are the entries of :data:`COMMANDS` (name -> arguments + function); adding one is one entry.

Errors (unreadable file, bad parameter, unmatched images) print one line naming the file and the problem and exit
with status 2; files already written stay as they are (every PNG is written atomically).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
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


def _check_readable(files: list[Path]) -> None:
    """Every input is an image Pillow can identify (header only), before any model work."""
    from PIL import Image, UnidentifiedImageError

    for f in files:
        try:
            with Image.open(f) as im:
                im.size  # noqa: B018 (reading the header is the check)
        except (UnidentifiedImageError, OSError) as e:
            raise sdata.ImageReadError(f"{f}: not a readable image file ({type(e).__name__}: {e})") from None


def _overlap(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise CLIError(f"--tile-overlap: expected 'auto' or an integer >= 0, got {text!r}") from None
    if value < 0:
        raise CLIError(f"--tile-overlap must be >= 0, got {value}")
    return value


def _bicubic(args, files: list[Path], out: Path) -> int:
    from srlib.evaluate import bicubic_upscaler

    if args.embedding:
        raise CLIError("--embedding needs a blind model (DASR, CDSR) from --run or --checkpoint")
    upscaler = bicubic_upscaler(args.scale)
    for f in files:
        lr = sdata.load_image(f)
        sr = tensor2img(upscaler(img2tensor(lr)[None])[0])
        sdata.save_image(out / f"{f.stem}.png", sr)
    print(f"bicubic x{args.scale}: {len(files)} SR images -> {out}")
    return 0


def _write_embedding(out: Path, stem: str, emb, info) -> None:
    record = {"image": stem, "model": info.describe(), "source": str(info.source), **emb.to_dict()}
    with atomic_write(out / f"{stem}.embedding.json", binary=False) as f:
        f.write(json.dumps(record) + "\n")
    with atomic_write(out / f"{stem}.embedding.npy") as f:
        np.save(f, emb.vector[0].numpy().astype(np.float32))


def cmd_upscale(args) -> int:
    from srlib import export, inference

    source = args.run or args.checkpoint
    if args.model == "bicubic" and source:
        raise CLIError("--model bicubic takes no --run/--checkpoint (leave --model out to use the trained model)")
    if not source and args.model not in (None, "bicubic"):
        raise CLIError(f"--model {args.model} needs its trained weights: --run RUN_DIR (a training run folder) or "
                       f"--checkpoint FILE (made by `srlib export`)")
    if args.tile < 0:
        raise CLIError(f"--tile must be >= 0 (0: the whole image at once), got {args.tile}")
    spec = inference.TileSpec(tile=args.tile, overlap=_overlap(args.tile_overlap), global_stats=args.global_stats,
                              embed_crop=args.embed_crop)
    files = _inputs(args.inputs)
    _check_readable(files)
    out = Path(args.out)
    if not source:
        out.mkdir(parents=True, exist_ok=True)
        return _bicubic(args, files, out)

    model, info = export.load_run(args.run) if args.run else export.load_export(args.checkpoint)
    if args.model is not None and not info.matches(args.model):
        raise CLIError(f"--model {args.model} does not match {source}: it holds {info.describe()}; --model accepts "
                       f"{', '.join(sorted(info.names()))} (or leave --model out: the run determines the network)")
    if info.scale != args.scale:
        raise CLIError(f"--scale {args.scale} does not match {source}: {info.describe()} is trained for "
                       f"x{info.scale}")
    blind = inference.is_blind(model)
    if args.embedding and not blind:
        raise CLIError(f"--embedding: {info.describe()} is not a blind model (only DASR and CDSR embed the "
                       f"degradation)")
    if info.id.get("stage") == "warmup":
        print(f"srlib upscale: note: {source} is an encoder warm-up stage; its SR network is not trained yet",
              file=sys.stderr)
    device = inference.resolve_device(args.device)
    model.to(device)
    margin = inference.receptive_radius(model) if spec.overlap is None else spec.overlap
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        img = sdata.load_image(f)
        lr = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float().div_(255.0)
        emb = inference.degradation_embedding(model, lr, spec.embed_crop, device) if blind else None
        if emb is not None and emb.cropped:
            print(f"srlib upscale: {f}: {img.shape[1]}x{img.shape[0]} pixels: the degradation embedding is computed "
                  f"from the centre {spec.embed_crop}x{spec.embed_crop} crop (--embed-crop)", file=sys.stderr)
        sr = inference.upscale_image(model, img, spec, device=device, embedding=emb, progress=not args.no_progress,
                                     desc=f.stem)
        sdata.save_image(out / f"{f.stem}.png", sr)
        if emb is not None and args.embedding == "print":
            print(json.dumps({"image": f.stem, **emb.to_dict()}))
        elif emb is not None and args.embedding == "save":
            _write_embedding(out, f.stem, emb, info)
    seams = "exact" if margin >= inference.receptive_radius(model) else "approximate: below the receptive field"
    sites = inference.pooling_sites(model)
    pooled = f", {sites} whole-image means: {spec.global_stats}" if sites else ""
    tiling = "whole images" if not spec.tile else f"tiles of {spec.tile} px + {margin} px margin ({seams}{pooled})"
    print(f"{info.describe()} on {device}: {len(files)} SR images -> {out} ({tiling})")
    return 0


def cmd_export(args) -> int:
    from srlib import export

    info = export.export_run(args.run, args.out, fmt=args.format)
    print(f"{info.describe()} -> {info.source} ({info.source.stat().st_size:,} bytes)")
    return 0


def cmd_reproduce(args) -> int:
    from srlib import pipeline

    argv = [*(["--profile", args.profile] if args.profile else []), *(["--only", *args.only] if args.only else [])]
    argv += ["--force"] if args.force or args.only else ["--stale"]  # only what `srlib status` finds stale
    return pipeline.main(argv + (["--data-root", args.data_root] if args.data_root else []))


def _degrade_arguments(p: argparse.ArgumentParser) -> None:
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


def _metrics_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hr", required=True, help="folder of HR images")
    p.add_argument("--sr", required=True, help="folder of SR images (paired with HR by file stem)")
    p.add_argument("--scale", type=int, required=True, help="HR is cropped to a multiple of it")
    p.add_argument("--crop-border", type=int, default=None, help="pixels shaved from each border (default: scale)")
    p.add_argument("--lpips", action="store_true", help="also LPIPS (real ImageNet backbone, offline)")
    p.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex")
    p.add_argument("--niqe", action="store_true", help="also NIQE of the SR image (MATLAB pristine model)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _upscale_arguments(p: argparse.ArgumentParser) -> None:
    from srlib.inference import DEVICES, GLOBAL_STATS

    p.add_argument("inputs", nargs="+", help="LR image files or folders")
    p.add_argument("--scale", type=int, required=True, help="SR factor (checked against the model's)")
    p.add_argument("--model", default=None,
                   help="bicubic (MATLAB-exact imresize; the default without --run/--checkpoint), or the method of the "
                        "trained model, checked against its run.json: crl-sr (crl-a .. crl-f: CRL-SR Table 1), dasr, "
                        "cdsr, edsr, rcan, edsr+pcl, rcan+pcl, edsr+l1 (PCL control) ... (the run or checkpoint "
                        "determines the network; a mismatch is an error listing the names it answers to)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", metavar="RUN_DIR", help="a training run folder (run.json + checkpoint.pt)")
    src.add_argument("--checkpoint", metavar="FILE", help="a model file written by `srlib export`")
    p.add_argument("--out", required=True, help="output folder (<stem>.png per input)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto: cuda when available, else cpu")
    p.add_argument("--tile", type=int, default=256, help="tile side in LR pixels (0: the whole image at once)")
    p.add_argument("--tile-overlap", default="auto",
                   help="margin in LR pixels read around each tile; auto (default) = the network's receptive field, "
                        "so the output equals a whole-image pass; smaller is faster and approximate at tile seams")
    p.add_argument("--global-stats", choices=GLOBAL_STATS, default="exact",
                   help="RCAN/CDSR pool over the whole image: exact (whole-image means, a few extra passes) or "
                        "tile (each tile pools over itself)")
    p.add_argument("--embed-crop", type=int, default=1024,
                   help="blind models embed the degradation from the whole LR image, or from its centre crop of "
                        "this side when a side is longer")
    p.add_argument("--embedding", choices=("print", "save"),
                   help="blind models: print the degradation embedding as JSON, or save <stem>.embedding.npy (the "
                        "vector the SR network uses) and <stem>.embedding.json (every embedding) beside the SR image")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _export_arguments(p: argparse.ArgumentParser) -> None:
    from srlib.export import FORMATS

    p.add_argument("run", help="a training run folder (run.json + checkpoint.pt)")
    p.add_argument("--out", required=True, help="the model file to write (e.g. model.safetensors)")
    p.add_argument("--format", choices=FORMATS, default="auto",
                   help="safetensors (default when installed) or torch (tensors + JSON, loaded with weights_only)")


def _train_command():
    from srlib import train_command

    return train_command


def _status():
    from srlib import status

    return status


def _reproduce_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=None)
    p.add_argument("--only", nargs="*")
    p.add_argument("--data-root", default=None)
    p.add_argument("--force", action="store_true", help="rerun every notebook (default: only the stale ones)")


@dataclass(frozen=True, kw_only=True)
class Command:
    """One subcommand: its help line, a function adding its arguments, and the function running it (-> exit code)."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    "degrade": Command(help="degrade HR images into LR PNGs (+ manifest.json)", arguments=_degrade_arguments,
                       run=cmd_degrade),
    "metrics": Command(help="PSNR/SSIM (Y), RGB PSNR, LPIPS, NIQE of SR images against HR",
                       arguments=_metrics_arguments, run=cmd_metrics),
    "upscale": Command(help="upscale LR images with bicubic or a trained model (tiled, any size)",
                       arguments=_upscale_arguments, run=cmd_upscale),
    "export": Command(help="write a trained run as a self-describing safetensors model file",
                      arguments=_export_arguments, run=cmd_export),
    "train": Command(help="train every run of a profile (skipping finished ones); --list: FLOPs and GPU time",
                     arguments=lambda p: _train_command().add_arguments(p), run=lambda a: _train_command().run(a)),
    "reproduce": Command(help="run every notebook with papermill and write results/<profile>/",
                         arguments=_reproduce_arguments, run=cmd_reproduce),
    "status": Command(help="list committed tables/figures that the checked-out code would not reproduce (exit 1)",
                      arguments=lambda p: _status().add_arguments(p), run=lambda a: _status().run(a)),
}
"""The subcommands, in the order ``srlib --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srlib", description="Contrastive-learning SR companion: tools and pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.arguments(sub.add_parser(name, help=command.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scale = getattr(args, "scale", None)  # the subcommands that take --scale require it
    if scale is not None and scale < 1:
        print(f"srlib {args.command}: error: --scale must be >= 1, got {scale}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command].run(args)
    except (CLIError, D.DegradationError, sdata.ImageReadError, FileNotFoundError, ValueError) as e:
        print(f"srlib {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
