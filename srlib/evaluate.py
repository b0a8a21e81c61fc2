"""Evaluation harness: any upscaler x any test set x scale x degradation -> tidy per-image metrics.

Protocol (DESIGN.md, "Metrics"): the HR image is cropped to a multiple of the scale, the test LR is generated once
per (set, scale, degradation, seed) and cached (:func:`srlib.data.cached_lr_set`), the SR output is rounded to
8 bits, and PSNR/SSIM are computed on the BT.601 Y channel with ``crop_border = scale`` (gray values for grayscale
files).

An *upscaler* is any callable mapping a (1, 3, h, w) float tensor on the 0..255 scale to a (1, 3, h*s, w*s) tensor
on the same scale (a trained network wrapped accordingly, or :func:`bicubic_upscaler`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from srlib import data as sdata
from srlib import metrics, tables
from srlib.degradation import Degradation, imresize, preset
from srlib.imgutil import img2tensor, tensor2img
from srlib.profiles import Profile, cache_dir
from srlib.reference import load_reference
from srlib.train import flush_denormals

Upscaler = Callable[[torch.Tensor], torch.Tensor]
ImageMetric = Callable[[np.ndarray, np.ndarray], float]
"""``metric(hr, sr) -> float`` on (H, W, 3) uint8 images already shaved by the scale (extra metrics of
:func:`measure`, e.g. :func:`perceptual_metrics`)."""


def bicubic_upscaler(scale: int) -> Upscaler:
    """MATLAB-exact bicubic upsampling of 8-bit LR (``imresize(lr, scale)`` on a uint8 image)."""

    def upscale(lr: torch.Tensor) -> torch.Tensor:
        return imresize(lr, float(scale), quantize=True)

    return upscale


def perceptual_metrics(net: str = "alex") -> dict[str, ImageMetric]:
    """NIQE of the SR image (Y channel, MATLAB pristine model) and LPIPS(HR, SR) with real ImageNet weights: the
    metrics of PCL-SR Table 3, as extra metrics for :func:`measure`. Raises if the weights are not found offline."""
    lpips = metrics.LPIPS(net)
    metrics.find_niqe_params()
    return {"niqe": lambda hr, sr: metrics.niqe(sr), "lpips": lpips}


def evaluate_pairs(pairs: Sequence[sdata.Pair], upscaler: Upscaler, scale: int, crop_border: int | None = None,
                   extra_metrics: Mapping[str, ImageMetric] | None = None):
    """Per-image metrics of ``upscaler`` on cached test pairs.

    Args:
        extra_metrics: name -> ``metric(hr, sr)``, computed on both images shaved by ``crop_border``.

    Returns:
        DataFrame with one row per image: ``image, psnr_y, ssim_y, psnr_rgb`` and one column per extra metric.
    """
    border = scale if crop_border is None else crop_border
    rows = []
    with torch.inference_mode():
        for p in pairs:
            sr = tensor2img(upscaler(img2tensor(p.lr)[None])[0])
            if sr.shape != p.hr.shape:
                raise ValueError(f"{p.stem}: SR has shape {sr.shape}, HR has {p.hr.shape} (scale {scale})")
            rows.append(
                {
                    "image": p.stem,
                    "psnr_y": metrics.psnr_y(p.hr, sr, border, gray=p.gray),
                    "ssim_y": metrics.ssim_y(p.hr, sr, border, gray=p.gray),
                    "psnr_rgb": metrics.psnr_rgb(p.hr, sr, border),
                    **{name: float(fn(_shave(p.hr, border), _shave(sr, border)))
                       for name, fn in (extra_metrics or {}).items()},
                }
            )
    return pd.DataFrame(rows)


def _shave(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border else img


def evaluation_sets(profile: Profile, data_root: str | os.PathLike | None = None,
                    names: Sequence[str] | None = None) -> list[sdata.ImageSet]:
    """The test sets ``names`` (default: the profile's ``eval_sets``) found under the data root, each subset to
    ``profile.max_images``; the embedded test set when none of them is present."""
    names = sdata.available_sets(profile.eval_sets if names is None else names, data_root) or ["embedded-test"]
    sets = [sdata.open_set(n, data_root) for n in names]
    return [s.subset(profile.max_images) if profile.max_images else s for s in sets]


def evaluate(
    upscaler: Upscaler,
    image_set: sdata.ImageSet,
    degradation: Degradation,
    seed: int,
    cache: str | os.PathLike | None = None,
    extra_metrics: Mapping[str, ImageMetric] | None = None,
) -> pd.DataFrame:
    """Per-image metrics of ``upscaler`` on ``image_set`` degraded by ``degradation`` (test LR cached by seed).

    Returns:
        DataFrame with ``dataset, scale, setting, seed, image, psnr_y, ssim_y, psnr_rgb`` (+ extra metrics).
    """
    pairs = sdata.cached_lr_set(image_set, degradation, seed, cache_dir(cache))
    per_image = evaluate_pairs(pairs, upscaler, degradation.scale, extra_metrics=extra_metrics)
    meta = {"dataset": image_set.name, "scale": degradation.scale, "setting": degradation.setting, "seed": seed}
    return per_image.assign(**meta)[[*meta, *per_image.columns]]


def measure(
    methods: Mapping[str, Mapping[int, Upscaler]],
    image_sets: Sequence[sdata.ImageSet],
    degradations: Sequence[Degradation],
    noise_seed: int = 0,
    cache: str | os.PathLike | None = None,
    desc: str = "evaluate",
    extra_metrics: Mapping[str, ImageMetric] | None = None,
) -> pd.DataFrame:
    """PSNR/SSIM (Y) of every method x training seed on every image of every set x degradation.

    The test LR of a (set, degradation) is the same for all methods and seeds (generated once with ``noise_seed``
    and cached), so seeds measure the spread of *training*, not of test noise.

    Args:
        methods: method name -> {training seed -> upscaler}; a deterministic method (bicubic) has one entry.
        image_sets: test sets; degradations: test settings (each knows its scale).
        extra_metrics: more per-image metrics (name -> ``metric(hr, sr)``, e.g. :func:`perceptual_metrics`).

    Returns:
        Tidy frame ``method, dataset, scale, setting, metric, seed, image, value`` (metric ``psnr`` / ``ssim`` and
        the extra metrics' names; one row per image, so that claims can pair images: :mod:`srlib.claims`), ready for
        :func:`srlib.tables.summarize` (which takes each set's mean over its images first).
    """
    jobs = [(s, d, m, seed) for s in image_sets for d in degradations for m in methods for seed in methods[m]]
    rows = []
    for image_set, deg, method, seed in tqdm(jobs, desc=desc, unit="run"):
        per_image = evaluate(methods[method][seed], image_set, deg, noise_seed, cache, extra_metrics)
        for metric, column in (("psnr", "psnr_y"), ("ssim", "ssim_y"), *((m, m) for m in extra_metrics or {})):
            rows.extend({"method": method, "dataset": image_set.name, "scale": deg.scale, "setting": deg.setting,
                         "metric": metric, "seed": seed, "image": image, "value": float(value)}
                        for image, value in zip(per_image["image"], per_image[column], strict=True))
    return pd.DataFrame(rows)


def paper_table(measurements: pd.DataFrame | None, paper: str, table: str, metrics=("psnr",)) -> pd.DataFrame:
    """Our measurements of one paper table beside the paper's values; cells the paper reports but we did not
    measure (methods not implemented, scales not trained, absent data sets) keep the paper value with ours empty."""
    if measurements is None or measurements.empty:
        measurements = pd.DataFrame(columns=[*tables.KEYS, "seed", "value"])
    ours = tables.summarize(measurements[measurements.metric.isin(metrics)])
    reference = load_reference(paper, table)
    return tables.compare_with_paper(ours, reference[reference.metric.isin(metrics)], keep_paper_only=True)


def bicubic_baseline(profile: Profile, data_root: str | os.PathLike | None = None, cache=None) -> pd.DataFrame:
    """Protocol check: bicubic PSNR/SSIM (Y) per test set, scale and DASR isotropic width, beside the papers.

    Bicubic has no randomness without noise, so each cell is one deterministic measurement (``n_seeds`` = 1).

    Returns:
        Table with :data:`srlib.tables.TABLE_COLUMNS`, method ``Bicubic``, metrics ``psnr`` and ``ssim``.
    """
    sets, seed = evaluation_sets(profile, data_root), profile.seeds[0]
    measured = pd.concat(
        [measure({"Bicubic": {seed: bicubic_upscaler(scale)}}, sets, preset("dasr-iso", scale), seed, cache,
                 desc=f"bicubic x{scale}") for scale in profile.eval_scales],
        ignore_index=True,
    )
    reference = load_reference()
    return tables.compare_with_paper(tables.summarize(measured), reference[reference.method == "Bicubic"])


def model_upscaler(model: nn.Module, device: str | torch.device = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """Wrap a [0, 1] model as an evaluation upscaler on the 0..255 scale (see :mod:`srlib.evaluate`)."""

    def upscale(lr: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), flush_denormals():
            return model(lr.to(device) / 255.0).clamp(0, 1).cpu() * 255.0

    model.eval()
    return upscale


def model_upscalers(models: dict[tuple[str, int], nn.Module]) -> dict[str, dict[int, Callable]]:
    """``{(method, seed): model}`` -> ``{method: {seed: upscaler}}`` (:func:`model_upscaler`), the shape that
    :func:`srlib.evaluate.measure` takes."""
    methods: dict = {}
    for (name, seed), model in models.items():
        methods.setdefault(name, {})[seed] = model_upscaler(model)
    return methods
