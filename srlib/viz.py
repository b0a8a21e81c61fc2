"""Figures for the notebooks: pure functions that take data and return a :class:`matplotlib.figure.Figure`.

Conventions:

* Every plotting function builds a stand-alone figure (:class:`SRFigure`, a :class:`matplotlib.figure.Figure` that
  displays itself as PNG in IPython) without ``pyplot``, so no figure is registered with a backend, nothing is
  shown twice by Jupyter's inline backend and nothing needs closing.
  The caller displays the returned figure (``display(fig)`` or as a cell's last expression) and saves it with
  :func:`save_figure`; no function here calls ``plt.show``.
* Images are accepted as ``np.ndarray`` (H, W, 3) or (H, W) uint8 RGB/gray (0..255), or as ``torch.Tensor``
  (3, H, W) / (1, 3, H, W) float on the 0..255 scale (:mod:`srlib.imgutil`); they are shown as uint8 RGB.
* Images of different sizes in one figure (HR beside LR) are nearest-neighbour upsampled to the largest size, so
  an LR pixel is shown as an s x s block and every panel has the same scale on the page.
* Kernels are (k, k) arrays or tensors summing to 1 (:mod:`srlib.degradation`); kernels in one figure share one
  colour scale, so a wide kernel looks dimmer than a sharp one, as its weights are.
* :func:`save_figure` writes PNG at 100 dpi without the ``Software`` metadata, atomically, so the same figure gives
  the same bytes on every run.

Besides plots this module has small helpers the figures need: :func:`example_image` (the notebooks' demo image),
:func:`degrade_image` (one seeded degradation of a uint8 image), :func:`noisy_copies`, :func:`center_crop` and
:func:`describe` (a readable line for a degradation).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from srlib import degradation as D
from srlib.fileio import atomic_write
from srlib.imgutil import img2tensor, modcrop, tensor2img

__all__ = [
    "PAPER_TABLE_COLUMNS",
    "SRFigure",
    "center_crop",
    "degrade_image",
    "describe",
    "example_image",
    "figure_png",
    "noisy_copies",
    "plot_degradation",
    "plot_images",
    "plot_kernels",
    "plot_noise_levels",
    "plot_paper_vs_ours",
    "plot_spatially_variant",
    "save_figure",
    "text_sizes_px",
    "texts_outside",
    "to_uint8",
]

#: Columns :func:`plot_paper_vs_ours` needs in its tidy table.
PAPER_TABLE_COLUMNS = ("method", "dataset", "scale", "setting", "metric", "ours_mean", "ours_std", "n_seeds", "paper",
                       "delta")

#: Resolution of saved and displayed figures (a 6-inch figure is 600 pixels wide).
SAVE_DPI = 100
#: Width (CSS pixels) of the space a figure gets: JupyterLab's output area beside its prompt in a usual window, and
#: GitHub's file view. A wider figure is scaled down to it, its text with it.
DISPLAY_WIDTH_PX = 960
#: Widest figure (inches) drawn here: at :data:`SAVE_DPI` it is shown at its own size in :data:`DISPLAY_WIDTH_PX`.
MAX_WIDTH_IN = DISPLAY_WIDTH_PX / SAVE_DPI
#: Smallest text (pixels, at the size a figure is shown; see :func:`text_sizes_px`): a 6-point font at 100 dpi is
#: 8.3 pixels high.
MIN_TEXT_PX = 8.0

# Demo images in order of preference: (set, stem) read from the data root when present.
_EXAMPLE_IMAGES = (("Set5", "butterfly"), ("Set14", "baboon"))


class SRFigure(Figure):
    """A :class:`matplotlib.figure.Figure` that IPython displays as a PNG by itself.

    Figures made without ``pyplot`` have no PNG formatter in a kernel until ``matplotlib.pyplot`` is imported (the
    inline backend registers it), so ``display(fig)`` would show only ``<Figure size ...>``. This subclass renders
    itself with :meth:`_repr_png_` at the dpi of :func:`save_figure`; with the inline backend active it is shown
    once, as any figure.
    """

    def _repr_png_(self) -> bytes:
        return figure_png(self)

    def draw(self, renderer) -> None:
        """Draw as :class:`matplotlib.figure.Figure` does, with every number axis written in full: no offset
        (``+1.358e1``) above an axis or colour bar, which a reader easily misses (colour bars and the axes of
        embedding plots often span a small range far from 0)."""
        _no_offsets(self)
        super().draw(renderer)


def _no_offsets(fig: Figure) -> None:
    from matplotlib.ticker import ScalarFormatter

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            fmt = axis.get_major_formatter()
            if isinstance(fmt, ScalarFormatter):
                fmt.set_useOffset(False)


def figure_png(fig: Figure, dpi: int = SAVE_DPI) -> bytes:
    """The PNG bytes of ``fig`` as :func:`save_figure` writes them (``dpi``; no ``Software`` metadata)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _drawn_texts(fig: Figure, dpi: int) -> tuple[list, Any]:
    """Draw ``fig`` at ``dpi`` with a renderer that records the texts it draws (not the ones matplotlib keeps but
    leaves out, such as tick labels outside the view limits); returns ``(texts, renderer)``."""
    from matplotlib.backends.backend_agg import RendererAgg

    class Recorder(RendererAgg):
        def __init__(self, *args):
            super().__init__(*args)
            self.texts: dict[int, Any] = {}

        def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
            if mtext is not None:
                self.texts[id(mtext)] = mtext
            super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)

    old_dpi = fig.get_dpi()
    fig.set_dpi(dpi)
    try:
        renderer = Recorder(int(fig.get_figwidth() * dpi), int(fig.get_figheight() * dpi), dpi)
        fig.draw(renderer)
    finally:
        fig.set_dpi(old_dpi)
    return [t for t in renderer.texts.values() if t.get_text().strip()], renderer


def text_sizes_px(fig: Figure, display_width_px: float = DISPLAY_WIDTH_PX, dpi: int = SAVE_DPI) -> list[tuple[str,
                                                                                                               float]]:
    """Height of every text drawn in ``fig`` in pixels as a reader sees it: the figure is drawn at ``dpi`` and shown
    at its own size, or scaled down to ``display_width_px`` when it is wider.

    Returns:
        ``[(text, font size in display pixels), ...]`` (font size in points x dpi / 72 x the display scale).
    """
    texts, _ = _drawn_texts(fig, dpi)
    scale = min(1.0, display_width_px / (fig.get_figwidth() * dpi))
    return [(t.get_text(), t.get_fontsize() * dpi / 72.0 * scale) for t in texts]


def texts_outside(fig: Figure, dpi: int = SAVE_DPI, tolerance_px: float = 1.0) -> list[str]:
    """The texts drawn in ``fig`` that reach outside the figure (cut off in the PNG)."""
    texts, renderer = _drawn_texts(fig, dpi)
    w, h = fig.get_figwidth() * dpi, fig.get_figheight() * dpi
    out = []
    for t in texts:
        bb = t.get_window_extent(renderer)
        if bb.x0 < -tolerance_px or bb.y0 < -tolerance_px or bb.x1 > w + tolerance_px or bb.y1 > h + tolerance_px:
            out.append(t.get_text())
    return out


# --------------------------------------------------------------------------------------------------------------------
# Image helpers
# --------------------------------------------------------------------------------------------------------------------


def to_uint8(img) -> np.ndarray:
    """Any image this module accepts -> (H, W, 3) uint8 RGB.

    Args:
        img: (H, W, 3) or (H, W) ``np.ndarray`` (uint8, or float on the 0..255 scale), or a ``torch.Tensor`` of shape
            (3, H, W) or (1, 3, H, W) on the 0..255 scale. Floats are rounded (half to even) and clamped to [0, 255].

    Returns:
        (H, W, 3) uint8 array (a gray image is replicated to three channels).
    """
    if isinstance(img, torch.Tensor):
        t = img[0] if img.ndim == 4 and img.shape[0] == 1 else img
        return tensor2img(t)
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) or (H, W) image or a (3, H, W) tensor, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(np.round(a.astype(np.float64)), 0, 255).astype(np.uint8)
    return a


def _nearest_resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, C) -> (H, W, C) nearest neighbour: output pixel (i, j) takes input (floor(i h / H), floor(j w / W)),
    so an integer factor repeats each pixel as an exact block."""
    h, w = img.shape[:2]
    rows = (np.arange(size[0]) * h) // size[0]
    cols = (np.arange(size[1]) * w) // size[1]
    return img[rows][:, cols]


def center_crop(img: np.ndarray, size: int, multiple: int = 1) -> np.ndarray:
    """Central ``size`` x ``size`` crop of an (H, W, ...) array (smaller sides are kept), both sides then cropped to
    a multiple of ``multiple`` (from the bottom/right, as :func:`srlib.imgutil.modcrop`)."""
    h, w = img.shape[:2]
    ch, cw = min(size, h), min(size, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return modcrop(img[top : top + ch, left : left + cw], multiple)


def example_image(data_root: str | os.PathLike | None = None) -> tuple[str, np.ndarray]:
    """The notebooks' demo image: Set5 ``butterfly`` or Set14 ``baboon`` from the data root when present, else the
    first image of the embedded test set (scikit-image, no download).

    Args:
        data_root: data root; ``None`` reads ``SRLIB_DATA`` (:func:`srlib.data.data_root`).

    Returns:
        (label, image): label like ``"Set5/butterfly"``; image (H, W, 3) uint8 RGB.
    """
    from srlib import data

    root = data.data_root(data_root)
    if root is not None:
        for set_name, stem in _EXAMPLE_IMAGES:
            if data.available_sets([set_name], root):
                images = data.open_set(set_name, root)
                if stem in images.stems:
                    return f"{set_name}/{stem}", images.load(stem).image
    images = data.open_set("embedded-test")
    stem = images.stems[0]
    return f"{images.name}/{stem}", images.load(stem).image


def degrade_image(hr, degradation: D.Degradation, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Apply one degradation to one image with a freshly seeded ``torch.Generator`` (CPU).

    Args:
        hr: HR image (see :func:`to_uint8`); cropped to a multiple of the scale first.
        degradation: the :class:`srlib.degradation.Degradation` to apply.
        seed: seed of the noise generator; the same seed gives the same LR bit for bit.

    Returns:
        (hr, lr): the mod-cropped HR (H, W, 3) uint8 and the LR (H / s, W / s, 3) uint8.
    """
    img = modcrop(to_uint8(hr), degradation.scale)
    g = torch.Generator().manual_seed(int(seed))
    lr = degradation.apply(img2tensor(img)[None], generator=g)[0]
    return img, tensor2img(lr)


def noisy_copies(img, levels: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """``img`` with white Gaussian noise of each level, as the degradation adds it (0..255 scale, then rounded and
    clamped; :meth:`srlib.degradation.Degradation.apply` at scale 1). Every level uses a generator seeded with
    ``seed``, so the copies share one noise pattern, scaled.

    Args:
        img: (H, W, 3) image (see :func:`to_uint8`).
        levels: noise standard deviations on the 0..255 scale (>= 0).

    Returns:
        one (H, W, 3) uint8 array per level (level 0 returns the image unchanged).
    """
    return [degrade_image(img, D.Degradation(1, None, float(n)), seed)[1] for n in levels]


def describe(degradation: D.Degradation, short: bool = False) -> str:
    """Readable one-line description of a degradation.

    Examples: ``"x4, aniso l1=3.5 l2=1.5 θ=30°, noise 15, MATLAB bicubic"``; with ``short=True`` (no scale, resize
    only when not MATLAB's) ``"aniso l1=3.5 l2=1.5 θ=30°, noise 15"`` or ``"bicubic"``.
    """
    d = degradation
    k = d.kernel
    unit = " (variances)" if d.convention == "cdsr" else ""
    if k is None:
        blur = "bicubic" if short else "no blur"
    elif isinstance(k, D.IsoGaussian):
        blur = f"iso σ={k.sigma:g}"
    elif isinstance(k, D.AnisoGaussian):
        blur = f"aniso l1={k.l1:g} l2={k.l2:g} θ={k.theta:g}°{unit}"
    else:
        blur = f"blur σ {k.start:g}→{k.end:g}"
    if d.noise_end is not None:
        noise = f"noise {d.noise:g}→{d.noise_end:g}"
    else:
        noise = f"noise {d.noise:g}" if d.noise else ("" if short else "no noise")
    resize = {"matlab": "MATLAB bicubic", "dasr": "DASR bicubic", "sfold": "s-fold"}[d.resize]
    conv = "CDSR convention" if d.convention == "cdsr" else ""
    if short:
        parts = [blur, noise, "" if d.resize == "matlab" else resize, conv]
    else:
        parts = [f"x{d.scale}", blur, noise, resize, conv]
    return ", ".join(p for p in parts if p)


# --------------------------------------------------------------------------------------------------------------------
# Layout helpers
# --------------------------------------------------------------------------------------------------------------------


def _grid(n: int, ncols: int | None, max_cols: int = 5) -> tuple[int, int]:
    if n < 1:
        raise ValueError("nothing to plot: got an empty list")
    ncols = min(n, max_cols) if ncols is None else int(ncols)
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    return math.ceil(n / ncols), ncols


def _titles(titles: Sequence[str] | None, n: int) -> list[str]:
    if titles is None:
        return [""] * n
    titles = list(titles)
    if len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} panels")
    return [str(t) for t in titles]


def _wrap(text: str, width: int) -> str:
    """``text`` broken at spaces into lines of at most ``width`` characters (existing line breaks kept)."""
    import textwrap

    return "\n".join(textwrap.fill(line, width, break_long_words=False) for line in str(text).split("\n"))


def _blank(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


# --------------------------------------------------------------------------------------------------------------------
# Kernels and images
# --------------------------------------------------------------------------------------------------------------------


def _as_kernel_list(kernels) -> list[np.ndarray]:
    if isinstance(kernels, (torch.Tensor, np.ndarray)) and np.ndim(kernels) == 3:
        kernels = list(kernels)
    elif isinstance(kernels, (torch.Tensor, np.ndarray)):
        kernels = [kernels]
    out = []
    for k in kernels:
        a = k.detach().cpu().double().numpy() if isinstance(k, torch.Tensor) else np.asarray(k, dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"expected (k, k) kernels, got shape {a.shape}")
        out.append(a)
    return out


def plot_kernels(kernels, titles: Sequence[str] | None = None, ncols: int | None = None, suptitle: str | None = None,
                 gamma: float = 1.0, cmap: str = "viridis", panel_size: float = 1.5) -> Figure:
    """Grid of blur kernels with one shared colour scale and one colour bar.

    Args:
        kernels: (N, k, k) tensor/array or a sequence of (k, k) kernels (weights >= 0, each summing to 1).
        titles: one title per kernel (the parameters, e.g. ``"σ=1.2"``).
        ncols: columns of the grid (default: up to 5).
        suptitle: figure title.
        gamma: colour-scale exponent; 1 is linear, 0.5 (square root) makes the tails of wide kernels visible while
            keeping one scale for all panels.
        cmap: matplotlib colour map.
        panel_size: width of one panel in inches (100 dpi when saved).

    Returns:
        Figure with N image axes (the first N of ``fig.axes``), all with colour limits [0, max weight], and a colour
        bar labelled "kernel weight" (or "weight (√ scale)" for ``gamma=0.5``); a cross marks the kernel centre
        ((k - 1) / 2, (k - 1) / 2).
    """
    ks = _as_kernel_list(kernels)
    titles = _titles(titles, len(ks))
    nrows, ncols = _grid(len(ks), ncols)
    vmax = max(float(k.max()) for k in ks) or 1.0
    norm = PowerNorm(gamma, vmin=0.0, vmax=vmax) if gamma != 1 else None
    fig = SRFigure(figsize=(panel_size * ncols + 1.2, panel_size * nrows + (0.35 if suptitle else 0.1)),
                 layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    im = None
    for i, ax in enumerate(axes.ravel()):
        if i >= len(ks):
            ax.set_axis_off()
            continue
        k = ks[i]
        im = ax.imshow(k, cmap=cmap, norm=norm, vmin=None if norm else 0.0, vmax=None if norm else vmax,
                       interpolation="nearest")
        c = (k.shape[0] - 1) / 2
        ax.plot([c], [c], marker="+", color="white", markersize=5, markeredgewidth=0.6, alpha=0.6)
        ax.set_title(titles[i], fontsize=8)
        _blank(ax)
    cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.9, aspect=25)
    label = {1.0: "kernel weight", 0.5: "weight (√ scale)"}.get(float(gamma), f"weight (^{gamma:g} scale)")
    cb.set_label(label, fontsize=8)
    cb.ax.tick_params(labelsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


def plot_images(images, titles: Sequence[str] | None = None, ncols: int | None = None, suptitle: str | None = None,
                size: tuple[int, int] | None = None, panel_size: float = 2.2) -> Figure:
    """Row/grid of images at one common size (LR nearest-neighbour upsampled to the HR size).

    Args:
        images: sequence of images (see :func:`to_uint8`: (H, W, 3) uint8 or (3, H, W) tensors on 0..255).
        titles: one title per image.
        ncols: columns of the grid (default: up to 5).
        suptitle: figure title.
        size: (H, W) every image is shown at; default the largest height and width among the images. An LR image of
            1/s the size becomes s x s pixel blocks.
        panel_size: width of one panel in inches (at most: the figure is at most :data:`MAX_WIDTH_IN` wide).

    Returns:
        Figure with one image axes per image (the first ``len(images)`` of ``fig.axes``); each shows an
        (H, W, 3) uint8 array of the common size.
    """
    imgs = [to_uint8(im) for im in images]
    titles = _titles(titles, len(imgs))
    nrows, ncols = _grid(len(imgs), ncols)
    if size is None:
        size = (max(im.shape[0] for im in imgs), max(im.shape[1] for im in imgs))
    aspect = size[0] / size[1]
    panel_size = min(panel_size, MAX_WIDTH_IN / ncols)  # the page's width: text keeps its size on screen
    fig = SRFigure(figsize=(panel_size * ncols, panel_size * aspect * nrows + 0.3 * nrows + (0.3 if suptitle else 0)),
                 layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= len(imgs):
            ax.set_axis_off()
            continue
        ax.imshow(_nearest_resize(imgs[i], size), interpolation="nearest")
        ax.set_title(titles[i], fontsize=8)
        _blank(ax)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


def plot_degradation(hr, lr, kernel=None, title: str | None = None, kernel_title: str = "kernel") -> Figure:
    """Kernel, HR and LR side by side (the explorer's view).

    Args:
        hr: (H, W, 3) HR image (see :func:`to_uint8`).
        lr: (H / s, W / s, 3) LR image, shown nearest-neighbour upsampled to the HR size.
        kernel: (k, k) kernel that was convolved, or ``None`` (no blur, or a spatially variant one).
        title: figure title (the degradation's parameters).
        kernel_title: title of the kernel panel.

    Returns:
        Figure with axes [kernel, HR, LR, colour bar] (no colour bar when ``kernel`` is None).
    """
    hr8, lr8 = to_uint8(hr), to_uint8(lr)
    fig = SRFigure(figsize=(7.8, 2.9), layout="constrained")
    ax_k, ax_hr, ax_lr = fig.subplots(1, 3, width_ratios=[1, 1.35, 1.35])
    if kernel is not None:
        k = _as_kernel_list(kernel)[0]
        im = ax_k.imshow(k, cmap="viridis", vmin=0, interpolation="nearest")
        c = (k.shape[0] - 1) / 2
        ax_k.plot([c], [c], marker="+", color="white", markersize=5, markeredgewidth=0.6, alpha=0.6)
        cb = fig.colorbar(im, ax=ax_k, shrink=0.8)
        cb.set_label("kernel weight", fontsize=7)
        cb.ax.tick_params(labelsize=7)
        ax_k.set_title(_wrap(f"{kernel_title} ({k.shape[0]}x{k.shape[1]})", 26), fontsize=8)
    else:
        ax_k.text(0.5, 0.5, "no blur kernel", ha="center", va="center", fontsize=9, transform=ax_k.transAxes)
        ax_k.set_title(_wrap(kernel_title, 26), fontsize=8)
    _blank(ax_k)
    ax_hr.imshow(hr8, interpolation="nearest")
    ax_hr.set_title(f"HR crop {hr8.shape[0]}x{hr8.shape[1]}", fontsize=8)
    ax_lr.imshow(_nearest_resize(lr8, hr8.shape[:2]), interpolation="nearest")
    ax_lr.set_title(f"LR {lr8.shape[0]}x{lr8.shape[1]} (shown at HR size)", fontsize=8)
    _blank(ax_hr)
    _blank(ax_lr)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


# --------------------------------------------------------------------------------------------------------------------
# Spatially variant degradations and noise
# --------------------------------------------------------------------------------------------------------------------


def _blur_profile(d: D.Degradation, width: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-HR-column kernel width(s) of a degradation: x = HR column index, {label: (width,) values}."""
    x = np.arange(width, dtype=np.float64)
    k = d.kernel
    if k is None:
        return x, {"no blur (σ = 0)": np.zeros(width)}
    if isinstance(k, D.WidthRamp):
        return x, {"blur width σ": D.column_ramp(k.start, k.end, width).numpy()}
    if isinstance(k, D.IsoGaussian):
        return x, {"blur width σ": np.full(width, k.sigma)}
    unit = " (variance)" if d.convention == "cdsr" else ""
    return x, {f"l1{unit}": np.full(width, k.l1), f"l2{unit}": np.full(width, k.l2)}


def _noise_profile(d: D.Degradation, lr_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-LR-column noise level, placed at the LR pixel centres in HR column coordinates."""
    s = d.scale
    x = (np.arange(lr_width) + 0.5) * s - 0.5
    if d.noise_end is not None:
        return x, D.column_ramp(d.noise, d.noise_end, lr_width).numpy()
    return x, np.full(lr_width, float(d.noise))


def plot_spatially_variant(hr, lr, degradation, titles: Sequence[str] | None = None, panel_size: float = 2.6,
                           suptitle: str | None = None) -> Figure:
    """Spatially variant degradations (CRL-SR Table 2): each LR image with its per-column blur width and noise level.

    Args:
        hr: (H, W, 3) HR image the LR images were made from (sets the display size; see :func:`to_uint8`).
        lr: one (H / s, W / s, 3) LR image or a sequence of them, one per degradation.
        degradation: one :class:`srlib.degradation.Degradation` or a sequence, matching ``lr``.
        titles: one title per column (default: ``describe(degradation, short=True)``).
        panel_size: width of one column in inches.
        suptitle: figure title.

    Returns:
        Figure with 2 rows per column: the LR image at HR size above, and below it, over the same HR columns, the
        blur width (left axis, pixels, blue) and the noise level (right axis, 0..255 scale, red). The line data are
        exact: ``column_ramp`` over the HR columns for the width, over the LR columns for the noise.
    """
    if isinstance(degradation, D.Degradation):
        degradation, lr = [degradation], [lr]
    degs, lrs = list(degradation), list(lr)
    if len(degs) != len(lrs):
        raise ValueError(f"got {len(lrs)} LR images for {len(degs)} degradations")
    titles = _titles(titles, len(degs)) if titles is not None else [describe(d, short=True) for d in degs]
    hr8 = to_uint8(hr)
    h, w = hr8.shape[:2]
    profiles = [(_blur_profile(d, w), _noise_profile(d, to_uint8(x).shape[1])) for d, x in zip(degs, lrs, strict=True)]
    s_max = max(max(float(v.max()) for v in bp[1].values()) for bp, _ in profiles)
    n_max = max(float(npf[1].max()) for _, npf in profiles)
    n = len(degs)
    img_h = panel_size * h / w
    fig = SRFigure(figsize=(panel_size * n + 0.6 * n, img_h + 1.6 + (0.3 if suptitle else 0)), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False, height_ratios=[img_h, 1.1], sharex="col")
    colours = ("tab:blue", "tab:cyan")
    for j, (lr_, title) in enumerate(zip(lrs, titles, strict=True)):
        ax_img, ax_s = axes[0, j], axes[1, j]
        ax_img.imshow(_nearest_resize(to_uint8(lr_), (h, w)), interpolation="nearest", aspect="auto",
                      extent=(-0.5, w - 0.5, h - 0.5, -0.5))
        ax_img.set_title(title, fontsize=8)
        ax_img.set_yticks([])
        (xb, blur), (xn, noise) = profiles[j]
        handles = []
        for (label, values), c in zip(blur.items(), colours, strict=False):
            handles += ax_s.plot(xb, values, color=c, lw=1.5, label=label)
        ax_s.set_ylim(0, max(s_max * 1.1, 1.0))
        ax_s.set_xlim(-0.5, w - 0.5)
        ax_s.set_xlabel("HR column (left → right)", fontsize=8)
        ax_s.tick_params(labelsize=7)
        ax_s.set_ylabel("blur width (px)", fontsize=8, color="tab:blue")
        ax_n = ax_s.twinx()
        handles += ax_n.plot(xn, noise, color="tab:red", lw=1.5, ls="--", label="noise level")
        ax_n.set_ylim(0, max(n_max * 1.1, 1.0))
        ax_n.set_ylabel("noise σ (0..255)", fontsize=8, color="tab:red")
        ax_n.tick_params(labelsize=7)
        if j == 0:
            ax_s.legend(handles=handles, fontsize=6, loc="upper left", frameon=False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


def plot_noise_levels(clean, noisy, levels: Sequence[float], suptitle: str | None = None, panel_size: float = 1.7,
                      residual_range: float = 100.0) -> Figure:
    """Noisy copies of one crop (top) and their residuals noisy - clean (bottom).

    Args:
        clean: (H, W, 3) clean crop (see :func:`to_uint8`).
        noisy: one (H, W, 3) image per level (e.g. from :func:`noisy_copies`).
        levels: the nominal noise standard deviations (0..255 scale), used in the titles.
        suptitle: figure title.
        panel_size: width of one panel in inches.
        residual_range: the residual colour scale is [-residual_range, residual_range] (0..255 units).

    Returns:
        Figure with 2 x N image axes (noisy copies; green-channel residuals) and a colour bar; each title gives the
        nominal level and the standard deviation measured on the residual over all channels (after rounding and
        clamping to [0, 255], which lowers it where the image is near black or white).
    """
    c8 = to_uint8(clean).astype(np.float64)
    nz = [to_uint8(x) for x in noisy]
    levels = list(levels)
    if len(nz) != len(levels):
        raise ValueError(f"got {len(nz)} noisy images for {len(levels)} levels")
    n = len(nz)
    fig = SRFigure(figsize=(panel_size * n + 0.8, 2 * panel_size * c8.shape[0] / c8.shape[1] + 0.8),
                 layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    im = None
    for j, (x, lvl) in enumerate(zip(nz, levels, strict=True)):
        res = x.astype(np.float64) - c8
        axes[0, j].imshow(x, interpolation="nearest")
        axes[0, j].set_title(f"σ = {lvl:g} (measured {res.std():.1f})", fontsize=8)
        im = axes[1, j].imshow(res[..., 1], cmap="RdBu_r", vmin=-residual_range, vmax=residual_range,
                               interpolation="nearest")
        _blank(axes[0, j])
        _blank(axes[1, j])
    axes[0, 0].set_ylabel("noisy", fontsize=8)
    axes[1, 0].set_ylabel("noisy − clean\n(green channel)", fontsize=8)
    cb = fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.9)
    cb.set_label("0..255 units", fontsize=7)
    cb.ax.tick_params(labelsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


# --------------------------------------------------------------------------------------------------------------------
# Paper vs ours
# --------------------------------------------------------------------------------------------------------------------


_CAT_COLUMNS = ("dataset", "scale", "setting")
_METRIC_TITLES = {"psnr": "PSNR (dB, Y) ↑", "ssim": "SSIM (Y) ↑", "lpips": "LPIPS ↓", "niqe": "NIQE ↓"}


def _fmt_cat(column: str, value) -> str:
    return f"×{value}" if column == "scale" else str(value)


def _fmt_delta(metric: str, v: float) -> str:
    m = metric.lower()
    if "psnr" in m:
        return f"{v:+.2f}"
    if "ssim" in m:
        return f"{v:+.4f}"
    return f"{v:+.3g}"


def _chunks(cats: list[tuple], per_row: int) -> list[list[tuple]]:
    """Split the categories into rows of at most ``per_row``, breaking between (dataset, scale) groups when a group
    fits in a row (a group longer than a row is split)."""
    groups: list[list[tuple]] = []
    for c in cats:
        if groups and groups[-1][0][:2] == c[:2]:
            groups[-1].append(c)
        else:
            groups.append([c])
    rows: list[list[tuple]] = [[]]
    for g in groups:
        while g:
            if rows[-1] and len(rows[-1]) + min(len(g), per_row) > per_row:
                rows.append([])
            take = per_row - len(rows[-1])
            rows[-1].extend(g[:take])
            g = g[take:]
    return rows


def plot_paper_vs_ours(table, metrics: Sequence[str] | None = None, title: str | None = None,
                       panel_size: float = 4.5) -> Figure:
    """Our results beside the papers' values: one panel per metric, stacked.

    Args:
        table: tidy ``pandas.DataFrame`` with the columns of :data:`PAPER_TABLE_COLUMNS` (method, dataset, scale,
            setting, metric, ours_mean, ours_std, n_seeds, paper, delta = ours_mean - paper). ``paper`` may be NaN
            (no published value: no marker, no delta) and ``ours_std`` may be NaN (one seed: no error bar). Rows that
            repeat a cell with another source (two papers publishing the same number) are drawn once per distinct
            paper value.
        metrics: metrics to plot, in order (default: those in the table, in order of appearance).
        title: figure title.
        panel_size: minimum panel width in inches. Each x category gets room for its methods' points; the figure
            grows with them up to :data:`MAX_WIDTH_IN`, beyond which a metric's categories continue on further rows
            (broken between datasets and scales where they fit), so the text keeps its size on the page.

    Returns:
        Figure with one axes per metric and row (top to bottom): x = (dataset, scale, setting) categories (tick labels
        name what varies, the axis label what is the same everywhere), a coloured point with error bar (mean ± std
        over seeds) per method, all inside the axes (the methods of a category spread over at most 0.8 of its slot),
        a black bar (``gid="paper"``) at each paper value, and the delta (or "no paper") above each point, with the
        seed count when it is not the same everywhere (else it is in the legend); written upright when the points are
        too close for it. A metric continued on a further row has "(continued)" in that row's title.
    """
    missing = [c for c in PAPER_TABLE_COLUMNS if c not in getattr(table, "columns", ())]
    if missing:
        raise ValueError(f"plot_paper_vs_ours: the table lacks the columns {missing} "
                         f"(needs {list(PAPER_TABLE_COLUMNS)})")
    if len(table) == 0:
        raise ValueError("plot_paper_vs_ours: the table is empty")
    all_metrics = list(dict.fromkeys(table["metric"].tolist()))
    metrics = all_metrics if metrics is None else list(metrics)
    unknown = [m for m in metrics if m not in all_metrics]
    if unknown:
        raise ValueError(f"plot_paper_vs_ours: metrics {unknown} not in the table (has {all_metrics})")
    methods = list(dict.fromkeys(table["method"].tolist()))
    n_methods = len(methods)
    colours = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    seed_counts = {int(n) for n in table["n_seeds"] if np.isfinite(float(n))}
    one_count = len(seed_counts) == 1 and len(table["n_seeds"].dropna()) == len(table)
    # x layout: category i spans [i - 0.5, i + 0.5]; its methods sit at i + offset, |offset| <= 0.4
    step = min(0.18, 0.8 / n_methods)
    offsets = {m: (i - (n_methods - 1) / 2) * step for i, m in enumerate(methods)}
    cat_in = max(0.6, 0.16 * n_methods)  # inches per category
    margin_in = 1.6  # y tick labels and padding
    per_row = max(1, int((MAX_WIDTH_IN - margin_in) // cat_in))
    rows_by_metric = {}
    for metric in metrics:
        sub = table[table["metric"] == metric]
        cats = list(dict.fromkeys(zip(sub["dataset"], sub["scale"], sub["setting"], strict=True)))
        rows_by_metric[metric] = _chunks(cats, per_row)
    widest = max(len(r) for rows in rows_by_metric.values() for r in rows)
    width = min(max(panel_size, widest * cat_in + margin_in), MAX_WIDTH_IN)
    # an annotation (about 0.4 in wide at 6 points) is written upright when its neighbours are closer than that
    crowded = (step * cat_in if n_methods > 1 else cat_in) < 0.45
    n_axes = sum(len(rows) for rows in rows_by_metric.values())
    ncols = min(n_methods + 1, 3) if width >= 8 else (2 if width >= 6 else 1)
    n_legend = -(-(n_methods + 1) // ncols)
    row_in = 2.5 if n_axes <= 2 else 2.1
    fig = SRFigure(figsize=(width, row_in * n_axes + 0.2 + 0.17 * n_legend + (0.3 if title else 0)),
                   layout="constrained")
    axes = iter(fig.subplots(n_axes, 1, squeeze=False)[:, 0])
    # tick labels name only what varies between categories; what is the same everywhere goes in the axis label
    varying = [c for c in _CAT_COLUMNS if table[c].nunique(dropna=False) > 1]
    xlabel = ", ".join(_fmt_cat(c, table[c].iloc[0]) for c in _CAT_COLUMNS if c not in varying)
    for metric in metrics:
        sub = table[table["metric"] == metric]
        for r, cats in enumerate(rows_by_metric[metric]):
            ax = next(axes)
            pos = {c: i for i, c in enumerate(cats)}
            in_row = sub[[c in pos for c in zip(sub["dataset"], sub["scale"], sub["setting"], strict=True)]]
            for (method, *cat), rows in in_row.groupby(["method", *_CAT_COLUMNS], sort=False, dropna=False):
                first = rows.iloc[0]
                x = pos[tuple(cat)] + offsets[method]
                mean, std = float(first["ours_mean"]), float(first["ours_std"])
                ax.errorbar([x], [mean], yerr=[std] if np.isfinite(std) else None, fmt="o", color=colours[method],
                            markersize=4.5, capsize=3, lw=1.2)
                papers = rows[np.isfinite(rows["paper"].astype(float))].drop_duplicates("paper")
                for paper in papers["paper"].astype(float):
                    ax.plot([x], [paper], marker="_", color="black", markersize=min(12.0, 72 * step * cat_in),
                            markeredgewidth=2, gid="paper")
                deltas = [_fmt_delta(metric, float(d)) for d in papers["delta"]]
                label = "/".join(deltas) if deltas else "no paper"
                if not one_count and np.isfinite(float(first["n_seeds"])):
                    label += f" (n={int(first['n_seeds'])})"
                ax.annotate(label, (x, mean), xytext=(0, 6), textcoords="offset points", fontsize=6, ha="center",
                            va="bottom", rotation=90 if crowded else 0)
            for i in range(1, len(cats)):  # separate datasets and scales
                if cats[i][:2] != cats[i - 1][:2]:
                    ax.axvline(i - 0.5, color="0.8", lw=0.8)
            ticks = ["\n".join(_fmt_cat(c, v) for c, v in zip(_CAT_COLUMNS, cat, strict=True) if c in varying)
                     or "all" for cat in cats]
            ax.set_xticks(range(len(cats)), ticks, fontsize=7 if cat_in >= 0.6 else 6)
            ax.set_xlim(-0.5, len(cats) - 0.5)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.margins(y=0.3 if crowded else 0.2)
            name = _METRIC_TITLES.get(str(metric).lower(), str(metric))
            ax.set_title(name if r == 0 else f"{name} (continued)", fontsize=9)
            ax.tick_params(axis="y", labelsize=7)
            ax.grid(axis="y", alpha=0.3)
    n = seed_counts.pop() if one_count else 0
    seeds = f", {n} seed{'s' if n != 1 else ''}" if one_count else ""
    handles = [Line2D([], [], color=colours[m], marker="o", ls="", label=f"{m} (ours: mean ± std{seeds})")
               for m in methods]
    handles.append(Line2D([], [], color="black", marker="_", markersize=12, markeredgewidth=2, ls="",
                          label="paper (Δ = ours − paper, written above each point)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


# --------------------------------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------------------------------


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = SAVE_DPI) -> Path:
    """Write ``fig`` as a PNG, reproducibly and atomically.

    The PNG carries no ``Software`` (matplotlib version) entry, so the same figure gives the same bytes on every run
    with the same library versions. The image goes to a temporary file in the target folder, then replaces ``path``
    in one step (``os.replace``): a failure never leaves a half-written file or destroys the previous one.

    Args:
        fig: the figure.
        path: target ``.png`` path; parent folders are created.
        dpi: resolution (100: a figure of 6 inches is 600 pixels wide).

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_figure writes PNG files; got {path}")
    with atomic_write(path) as f:
        f.write(figure_png(fig, dpi))
    return path


# --------------------------------------------------------------------------------------------------------------------
# Training curves and embeddings (notebook 01: CRL-SR's contrastive decoupling encoding)
# --------------------------------------------------------------------------------------------------------------------

__all__ += ["CURVE_LABELS", "plot_embedding_2d", "plot_similarity_matrix", "plot_training_curves"]

#: Readable names of the loss-log columns of :func:`srlib.train.load_losses` used by :func:`plot_training_curves`.
CURVE_LABELS = {
    "l1": "L1(SR, HR)",
    "cde": "λ_cde · L_bi (CDE)",
    "cfr": "λ_c · L_cfr (CFR)",
    "hr": "λ_hr · L_HR",
    "total": "total loss",
    "_sim_match": "cos, same location",
    "_sim_other": "cos, other locations",
}


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` steps (shorter at the start)."""
    c = np.cumsum(np.insert(values.astype(np.float64), 0, 0.0))
    n = np.arange(1, len(values) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


def plot_training_curves(losses_df, columns, title: str | None = None, smooth: int | None = None,
                         labels: dict[str, str] | None = None, panel_size: float = 3.6, logy: Sequence[str] = ()
                         ) -> Figure:
    """Loss-log columns against the training step: a moving average over the raw values drawn faintly.

    Args:
        losses_df: a loss log (``pandas.DataFrame`` with a ``step`` column, :func:`srlib.train.load_losses`), or
            ``{run label: DataFrame}`` to draw several runs in each panel (colour = run; line style = column).
        columns: one panel per item; an item is a column name or a tuple of names drawn in one panel, e.g.
            ``["l1", "cde", ("_sim_match", "_sim_other")]``. A run without a column is skipped in that panel.
        title: figure title.
        smooth: moving-average window in steps (default: 1/20 of the run, at least 1).
        labels: readable column names (defaults: :data:`CURVE_LABELS`, else the column name).
        panel_size: width of one panel in inches (at most; the figure is at most :data:`MAX_WIDTH_IN` wide, with
            at most three panels side by side and further rows below).
        logy: columns whose panel gets a logarithmic y axis.

    Returns:
        Figure with one axes per panel in the order given (x = step); each curve is a faint raw line (``alpha``
        0.25) under its moving average (``gid="smoothed"``), and the panel title names the window.
    """
    runs = dict(losses_df) if isinstance(losses_df, dict) else {"": losses_df}
    if not runs:
        raise ValueError("plot_training_curves: no loss log given")
    panels = [(c,) if isinstance(c, str) else tuple(c) for c in columns]
    if not panels:
        raise ValueError("plot_training_curves: no columns given")
    known = set().union(*(set(df.columns) for df in runs.values()))
    missing = sorted({c for p in panels for c in p} - known)
    if missing:
        raise ValueError(f"plot_training_curves: columns {missing} are in no loss log (have {sorted(known)})")
    names = {**CURVE_LABELS, **(labels or {})}
    # the page's width (MAX_WIDTH_IN): at most three panels of 2.8 in or more side by side, then further rows
    ncols = max(1, min(len(panels), int(MAX_WIDTH_IN // 2.8)))
    nrows = math.ceil(len(panels) / ncols)
    panel_size = min(panel_size, MAX_WIDTH_IN / ncols)
    fig = SRFigure(figsize=(panel_size * ncols, 2.9 * nrows + (0.3 if title else 0)), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in grid[len(panels):]:
        ax.remove()
    axes = grid[: len(panels)]
    run_colours = {r: f"C{i % 10}" for i, r in enumerate(runs)}
    styles = ("-", "--", ":", "-.")
    for ax, panel in zip(axes, panels, strict=True):
        windows = set()
        for r, df in runs.items():
            for j, col in enumerate(panel):
                if col not in df.columns:
                    continue
                step = df["step"].to_numpy()
                raw = df[col].to_numpy(dtype=np.float64)
                win = smooth or max(1, len(raw) // 20)
                windows.add(win)
                colour = run_colours[r] if len(runs) > 1 else f"C{j % 10}"
                ls = styles[j % len(styles)] if len(runs) > 1 else "-"
                label = ", ".join(x for x in (r, names.get(col, col) if len(panel) > 1 else "") if x)
                ax.plot(step, raw, color=colour, lw=0.8, alpha=0.25, ls=ls)
                ax.plot(step, _smooth(raw, win), color=colour, lw=1.6, ls=ls, label=label or None, gid="smoothed")
        ax.set_title(" vs ".join(names.get(c, c) for c in panel) if len(panel) > 1 else names.get(panel[0], panel[0]),
                     fontsize=8)
        smoothed = sorted(x for x in windows if x > 1)
        ax.set_xlabel(f"step (lines: mean of {'/'.join(map(str, smoothed))} steps; faint: raw)" if smoothed else "step",
                      fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if any(c in logy for c in panel):
            ax.set_yscale("log")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_similarity_matrix(mat, labels: Sequence[str], title: str | None = None, groups: Sequence[str] | None = None,
                           vmin: float | None = None, vmax: float | None = 1.0, cmap: str = "viridis",
                           annotate: bool = True) -> Figure:
    """Heatmap(s) of pairwise similarities with the value written in every cell.

    Args:
        mat: (N, N) array, or ``{panel title: (N, N) array}`` for panels side by side with one colour scale.
        labels: N row/column labels (e.g. the degradation of each entry).
        title: figure title.
        groups: N group labels (e.g. the image of each entry), consecutive entries of a group together. White lines
            separate the groups, each group is named once above its columns, and the row labels read
            ``"group / label"``.
        vmin, vmax: colour limits (default: the smallest value over all panels, and 1).
        cmap: matplotlib colour map.
        annotate: write each value (2 decimals) in its cell (not when the cells are too small for it).

    Returns:
        Figure with one image axes per panel (the first ``len(mat)`` of ``fig.axes``) and a colour bar. The figure
        is at most :data:`MAX_WIDTH_IN` wide: panels that do not fit side by side continue on further rows.
    """
    mats = {k: np.asarray(v, dtype=np.float64) for k, v in mat.items()} if isinstance(mat, dict) else {"": np.asarray(
        mat, dtype=np.float64)}
    labels = [str(x) for x in labels]
    n = len(labels)
    for k, m in mats.items():
        if m.shape != (n, n):
            raise ValueError(f"plot_similarity_matrix: matrix {k!r} has shape {m.shape}, expected ({n}, {n}) for "
                             f"{n} labels")
    if groups is not None and len(groups) != n:
        raise ValueError(f"plot_similarity_matrix: got {len(groups)} groups for {n} labels")
    groups = None if groups is None else [str(g) for g in groups]
    row_labels = labels if groups is None else [f"{g} / {x}" for g, x in zip(groups, labels, strict=True)]
    # block boundaries: start index of every run of equal group labels
    starts = [0] + [b for b in range(1, n) if groups and groups[b] != groups[b - 1]] if groups else []
    lo = min(float(m.min()) for m in mats.values()) if vmin is None else vmin
    hi = max(float(m.max()) for m in mats.values()) if vmax is None else vmax
    # fit the width of the page (MAX_WIDTH_IN): row labels, panels side by side while a cell keeps room for its
    # value ("0.93" at 6 points is 0.19 in wide), else on further rows; a colour bar
    label_in = 0.05 * max(len(x) for x in row_labels) + 0.3
    avail = MAX_WIDTH_IN - label_in - 0.9
    min_cell = 0.22 if annotate else 0.08
    ncols = max(1, min(len(mats), int(avail // max(min_cell * n, 1.5))))
    nrows = math.ceil(len(mats) / ncols)
    side = min(max(3.0, 0.3 * n + 1.0), avail / ncols)
    annotate = annotate and side / n >= min_cell
    extra = 0.06 * max(len(x) for x in labels) + (0.25 if groups else 0) + (0.25 if len(mats) > 1 else 0)
    fig = SRFigure(figsize=(side * ncols + label_in + 0.9, (side + extra) * nrows + (0.3 if title else 0)),
                   layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in grid[len(mats):]:
        ax.remove()
    axes = grid[: len(mats)]
    im = None
    fs = 7 if side / n >= 0.3 else 6
    for i, (ax, (name, m)) in enumerate(zip(axes, mats.items(), strict=True)):
        im = ax.imshow(m, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        if annotate:
            mid = (lo + hi) / 2
            for r in range(n):
                for c in range(n):
                    ax.text(c, r, f"{m[r, c]:.2f}", ha="center", va="center", fontsize=fs,
                            color="black" if m[r, c] > mid else "white")
        for b in starts[1:]:
            ax.axhline(b - 0.5, color="white", lw=1.5)
            ax.axvline(b - 0.5, color="white", lw=1.5)
        ax.set_xticks(range(n), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(n), row_labels if i % ncols == 0 else [""] * n, fontsize=6)
        if groups:
            top = ax.secondary_xaxis("top")
            ends = [*starts[1:], n]
            top.set_xticks([(a + b - 1) / 2 for a, b in zip(starts, ends, strict=True)],
                           [groups[a] for a in starts], fontsize=7)
            top.tick_params(length=0)
        if name:
            ax.set_title(name, fontsize=8, pad=14 if groups else 6)
    cb = fig.colorbar(im, ax=axes.tolist(), shrink=0.8, aspect=30)
    cb.set_label("mean cosine", fontsize=7)
    cb.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


_MARKERS = ("o", "^", "s", "D", "v", "P", "X", "<", ">", "*")


def plot_embedding_2d(coords, colour_by: Sequence[str], marker_by: Sequence[str] | None = None,
                      title: str | None = None, colour_name: str = "image", marker_name: str = "domain",
                      explained: Sequence[float] | None = None, centroids: bool = True, size: float | None = None,
                      alpha: float | None = None, max_legend: int = 16) -> Figure:
    """Scatter of 2-D embeddings (e.g. :func:`srlib.embeddings.pca_2d` of per-location vectors): colour = one label,
    marker = another.

    Args:
        coords: (P, 2) points.
        colour_by: P labels that pick the colour (e.g. the image).
        marker_by: P labels that pick the marker (e.g. ``"LR"`` / ``"HR"`` or the degradation); None: one marker.
        title: figure title.
        colour_name, marker_name: legend titles.
        explained: fraction of the variance of each axis, shown in the axis labels (e.g. ``"PC1 (42%)"``).
        centroids: also draw the mean of every (colour, marker) group of two or more points as a large marker with a
            black edge.
        size, alpha: size (points^2) and opacity of the point markers (default: larger and more opaque when there
            are few points).
        max_legend: name at most this many colours in the legend (else it says how many there are).

    Returns:
        Figure with one axes (``fig.axes[0]``) holding one scatter collection per (colour, marker) group in order of
        first appearance (then the centroid collections), and two legends.
    """
    xy = np.asarray(coords, dtype=np.float64)
    p = len(xy)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"plot_embedding_2d: expected (P, 2) coordinates, got shape {xy.shape}")
    marker_by = ["" for _ in range(p)] if marker_by is None else [str(x) for x in marker_by]
    colour_by = [str(x) for x in colour_by]
    if len(colour_by) != p or len(marker_by) != p:
        raise ValueError(f"plot_embedding_2d: {p} points but {len(colour_by)} colour and {len(marker_by)} marker "
                         "labels")
    colour_keys = list(dict.fromkeys(colour_by))
    if len(colour_keys) <= 10:
        colours = {c: f"C{i}" for i, c in enumerate(colour_keys)}
    else:  # tab20, then an evenly spaced hue circle for more labels
        from matplotlib import colormaps

        cmap = colormaps["tab20"] if len(colour_keys) <= 20 else colormaps["hsv"]
        n = 20 if len(colour_keys) <= 20 else len(colour_keys) + 1
        colours = {c: cmap(i / n if n > 20 else i) for i, c in enumerate(colour_keys)}
    markers = {m: _MARKERS[i % len(_MARKERS)] for i, m in enumerate(dict.fromkeys(marker_by))}
    size = (36.0 if p <= 200 else 14.0 if p <= 1000 else 6.0) if size is None else size
    alpha = (0.8 if p <= 200 else 0.45) if alpha is None else alpha
    fig = SRFigure(figsize=(6.4, 4.8 + (0.3 if title else 0)), layout="constrained")
    ax = fig.subplots()
    cb, mb = np.array(colour_by), np.array(marker_by)
    groups = list(dict.fromkeys(zip(colour_by, marker_by, strict=True)))
    for c, m in groups:
        sel = (cb == c) & (mb == m)
        ax.scatter(xy[sel, 0], xy[sel, 1], s=size, color=colours[c], marker=markers[m], alpha=alpha, linewidths=0)
    drawn = 0
    if centroids:
        for c, m in groups:
            sel = (cb == c) & (mb == m)
            if sel.sum() < 2:  # a group of one point is its own mean
                continue
            drawn += 1
            mean = xy[sel].mean(axis=0)
            ax.scatter([mean[0]], [mean[1]], s=70, color=colours[c], marker=markers[m], edgecolors="black",
                       linewidths=0.8, zorder=3)
    ex = list(explained) if explained is not None else None
    ax.set_xlabel(f"PC1 ({ex[0]:.0%} of variance)" if ex else "PC1", fontsize=8)
    ax.set_ylabel(f"PC2 ({ex[1]:.0%} of variance)" if ex else "PC2", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if len(colours) <= max_legend:
        h_col = [Line2D([], [], color=colours[c], marker="o", ls="", label=c) for c in colours]
    else:  # too many to name: say what the colours are
        h_col = [Line2D([], [], color=colours[c], marker="o", ls="") for c in list(colours)[:3]]
        h_col[-1].set_label(f"{len(colours)}, one colour each")
    leg = ax.legend(handles=h_col, title=colour_name, fontsize=7, title_fontsize=7, loc="upper left",
                    bbox_to_anchor=(1.01, 1.0), frameon=False)
    if len(markers) > 1 or marker_by[0]:
        ax.add_artist(leg)
        h_mk = [Line2D([], [], color="0.3", marker=markers[m], ls="", label=m) for m in markers]
        if drawn:
            h_mk.append(Line2D([], [], color="0.6", marker="o", markeredgecolor="black", markersize=8, ls="",
                               label="mean of a group"))
        ax.legend(handles=h_mk, title=marker_name, fontsize=7, title_fontsize=7, loc="lower left",
                  bbox_to_anchor=(1.01, 0.0), frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def plot_penalty_map(hr, bicubic, weights, title: str | None = None, panel_size: float = 3.0) -> Figure:
    """CRL-SR's CFR penalty map beside the detail the LR lost.

    Args:
        hr: HR image (H, W, 3) uint8 (see :func:`to_uint8`).
        bicubic: the bicubic upsampling of its LR, same shape.
        weights: (h, w) penalty weights w_i on the LR grid (mean 1), shown at HR size (nearest neighbour).

    Returns:
        Figure with three panels: HR, w_i, |HR - bicubic| averaged over channels.
    """
    hr, bicubic = to_uint8(hr), to_uint8(bicubic)
    w = np.asarray(weights, dtype=np.float64)
    lost = np.abs(hr.astype(np.float64) - bicubic.astype(np.float64)).mean(axis=2)
    panel_size = min(panel_size, (MAX_WIDTH_IN - 1.2) / 3)  # the page's width: text keeps its size on screen
    fig = SRFigure(figsize=(3 * panel_size + 1.2, panel_size + 0.6))
    axes = fig.subplots(1, 3)
    axes[0].imshow(hr)
    axes[0].set_title("HR", fontsize=9)
    im = axes[1].imshow(np.kron(w, np.ones((hr.shape[0] // w.shape[0], hr.shape[1] // w.shape[1]))), cmap="magma")
    axes[1].set_title(f"penalty w_i (mean 1, max {w.max():.2f})", fontsize=9)
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.02)
    im = axes[2].imshow(lost, cmap="magma")
    axes[2].set_title("|HR - bicubic(LR)| (0..255)", fontsize=9)
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.02)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------------------------
# PCL-SR sample sets (notebook 03: positives, negatives and their similarities to the anchor)
# --------------------------------------------------------------------------------------------------------------------

__all__ += ["haar_hf_magnitude", "plot_pcl_samples"]


def _as_unit_float(img) -> np.ndarray:
    """An image of this module's conventions -> (3, H, W) float64 on [0, 1], without rounding float tensors."""
    if isinstance(img, torch.Tensor):
        t = img[0] if img.ndim == 4 and img.shape[0] == 1 else img
        if t.ndim != 3 or t.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) tensor on the 0..255 scale, got shape {tuple(img.shape)}")
        return t.detach().to("cpu", torch.float64).numpy() / 255.0
    return to_uint8(img).transpose(2, 0, 1).astype(np.float64) / 255.0


def haar_hf_magnitude(img) -> np.ndarray:
    """High-frequency magnitude of one image: ``sum_c sqrt(LH_c^2 + HL_c^2 + HH_c^2)`` of the one-level Haar DWT.

    The bands are those PCL-SR's embedding network sees (:func:`srlib.pcl.haar_dwt`, orthonormal Haar, LL dropped),
    computed on the image scaled to [0, 1]; the per-colour magnitudes are summed over R, G, B.

    Args:
        img: (H, W, 3) uint8 image or (3, H, W) tensor on the 0..255 scale (see :func:`to_uint8`; float tensors are
            used unrounded), H and W even.

    Returns:
        (H / 2, W / 2) float64 array, values in [0, 3 sqrt(3)] (0 on flat regions).
    """
    from srlib.pcl import haar_dwt

    x = torch.from_numpy(_as_unit_float(img))[None]
    _, highs = haar_dwt(x)  # (1, 3, 3, h, w): colour, band
    return highs[0].pow(2).sum(dim=1).sqrt().sum(dim=0).numpy()


def plot_pcl_samples(anchor, positives, negatives, similarities, losses=None, *, labels: Sequence[str] | None = None,
                     layer_names: Sequence[str] | None = None, title: str | None = None, hf_percentile: float = 99.0,
                     panel_size: float = 1.45) -> Figure:
    """PCL-SR's sample set for one patch: anchor, positives and negatives, their Haar high frequencies and their
    similarity to the anchor in every tapped layer of the embedding network.

    Args:
        anchor: the anchor image (the SR output), (3, H, W) tensor on the 0..255 scale or (H, W, 3) uint8 (see
            :func:`to_uint8`; float tensors keep their precision in the Haar row), H and W even.
        positives: P >= 1 images of the anchor's size (a sequence, or a (P, 3, H, W) tensor on 0..255), e.g. HR and
            its sharpened copies.
        negatives: K >= 1 images of the same size, e.g. the upsampled LR and blurred copies of HR.
        similarities: (L, P + K) array: ``s(anchor, sample)`` in tapped layer l (cosines in [-1, 1],
            :func:`srlib.losses.pcl.mean_cosine_similarity`), positives first, then negatives, in the given order.
        losses: (L,) per-layer InfoNCE loss values (named under each layer's bars), or None.
        labels: 1 + P + K titles (anchor, positives, negatives), e.g. with the sharpen factor or the blur width and
            kernel size of each sample; default ``"anchor"``, ``"positive j"``, ``"negative k"``.
        layer_names: L names of the tapped layers (default ``"layer 0"``, ...).
        title: figure title.
        hf_percentile: the shared colour scale of the Haar row runs from 0 to the largest ``hf_percentile``-th
            percentile over the panels (values above it are saturated); 100 uses the largest value.
        panel_size: width of one image column in inches (at most: the figure is at most :data:`MAX_WIDTH_IN` wide,
            and titles too long for a column are wrapped at spaces).

    Returns:
        Figure whose first 1 + P + K axes show the images (uint8 RGB), the next 1 + P + K their
        :func:`haar_hf_magnitude` (one colour scale, one colour bar; each title gives the mean), then the bar axes
        (x = tapped layer; one bar per sample, positives in blues, negatives in oranges, in the order given; the
        tick labels carry the layer's loss), then the colour bar. Positive titles are blue, negative titles orange.
    """
    pos, neg = list(positives), list(negatives)
    n_pos, n_neg = len(pos), len(neg)
    if n_pos < 1 or n_neg < 1:
        raise ValueError(f"plot_pcl_samples: need at least one positive and one negative, got P={n_pos}, K={n_neg}")
    samples = [anchor, *pos, *neg]
    n = len(samples)
    labels = (["anchor", *(f"positive {j}" for j in range(n_pos)), *(f"negative {k}" for k in range(n_neg))]
              if labels is None else _titles(labels, n))
    sims = np.asarray(similarities, dtype=np.float64)
    if sims.ndim != 2 or sims.shape[1] != n_pos + n_neg or sims.shape[0] < 1:
        raise ValueError(f"plot_pcl_samples: similarities must have shape (L, {n_pos + n_neg}) for {n_pos} positives "
                         f"and {n_neg} negatives, got {sims.shape}")
    n_layers = sims.shape[0]
    layer_names = [f"layer {i}" for i in range(n_layers)] if layer_names is None else _titles(layer_names, n_layers)
    loss = None if losses is None else np.asarray(losses, dtype=np.float64).reshape(-1)
    if loss is not None and loss.shape != (n_layers,):
        raise ValueError(f"plot_pcl_samples: got {loss.shape[0]} losses for {n_layers} layers")
    if not 0 < hf_percentile <= 100:
        raise ValueError(f"plot_pcl_samples: hf_percentile must be in (0, 100], got {hf_percentile!r}")
    shown = [to_uint8(x) for x in samples]
    size = shown[0].shape[:2]
    if any(x.shape[:2] != size for x in shown):
        raise ValueError(f"plot_pcl_samples: every sample must have the anchor's size {size}, got "
                         f"{[x.shape[:2] for x in shown]}")
    hf = [haar_hf_magnitude(x) for x in samples]
    vmax = max(float(np.percentile(m, hf_percentile)) for m in hf) or 1.0

    from matplotlib import colormaps

    pos_colours = [colormaps["Blues"](v) for v in np.linspace(0.85, 0.45, n_pos)]
    neg_colours = [colormaps["Oranges"](v) for v in np.linspace(0.85, 0.45, n_neg)]
    title_colours = ["black", *(["tab:blue"] * n_pos), *(["tab:orange"] * n_neg)]
    panel_size = min(panel_size, (MAX_WIDTH_IN - 1.0) / n)  # the page's width: text keeps its size on screen
    chars = max(8, int(panel_size * 72 / (7 * 0.55)))  # characters of a 7-point title that fit above a panel
    img_h = panel_size * size[0] / size[1]
    fig = SRFigure(figsize=(panel_size * n + 1.0, 2 * img_h + 2.9 + (0.3 if title else 0)), layout="constrained")
    gs = fig.add_gridspec(3, n + 1, height_ratios=[img_h, img_h, 2.3], width_ratios=[1.0] * n + [0.08])
    img_axes = [fig.add_subplot(gs[0, i]) for i in range(n)]
    hf_axes = [fig.add_subplot(gs[1, i]) for i in range(n)]
    ax_bar = fig.add_subplot(gs[2, :])
    im = None
    for i in range(n):
        img_axes[i].imshow(shown[i], interpolation="nearest")
        img_axes[i].set_title(_wrap(labels[i], chars), fontsize=7, color=title_colours[i])
        im = hf_axes[i].imshow(hf[i], cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
        hf_axes[i].set_title(f"mean {hf[i].mean():.3f}", fontsize=7)
        _blank(img_axes[i])
        _blank(hf_axes[i])
    img_axes[0].set_ylabel("image", fontsize=8)
    hf_axes[0].set_ylabel("Haar HF magnitude", fontsize=8)
    cb = fig.colorbar(im, cax=fig.add_subplot(gs[1, n]))
    cb.set_label("Σ_RGB √(LH²+HL²+HH²)", fontsize=7)
    cb.ax.tick_params(labelsize=6)

    n_bars = n_pos + n_neg
    width = 0.8 / n_bars
    x = np.arange(n_layers)
    for j, (colour, label) in enumerate(zip([*pos_colours, *neg_colours], labels[1:], strict=True)):
        ax_bar.bar(x - 0.4 + (j + 0.5) * width, sims[:, j], width=width, color=colour, label=label.replace("\n", " "),
                   edgecolor="white", linewidth=0.3)
    ticks = layer_names if loss is None else [f"{name}\nInfoNCE {v:.4f}" for name, v in zip(layer_names, loss,
                                                                                           strict=True)]
    ax_bar.set_xticks(x, ticks, fontsize=7)
    ax_bar.axhline(0.0, color="0.5", lw=0.6)
    ax_bar.set_ylim(min(0.0, float(sims.min())) - 0.05, 1.05)
    ax_bar.set_xlim(-0.5, n_layers - 0.5)
    ax_bar.set_ylabel("s(anchor, sample)\n(mean cosine)", fontsize=7)
    ax_bar.tick_params(axis="y", labelsize=7)
    ax_bar.grid(axis="y", alpha=0.3)
    # legend below the bars: positives in the top row, negatives in the bottom row (matplotlib fills columns first)
    handles, names = ax_bar.get_legend_handles_labels()
    blank = Line2D([], [], ls="", marker="")
    cols = max(n_pos, n_neg)
    pairs = [(handles[j], names[j]) if j < n_pos else (blank, "") for j in range(cols)]
    pairs_neg = [(handles[n_pos + k], names[n_pos + k]) if k < n_neg else (blank, "") for k in range(cols)]
    order = [x for pair in zip(pairs, pairs_neg, strict=True) for x in pair]
    ax_bar.legend([h for h, _ in order], [t for _, t in order], fontsize=6, frameon=False, loc="upper center",
                  bbox_to_anchor=(0.5, -0.22), ncols=cols, title="positives (blue), negatives (orange)",
                  title_fontsize=6)
    bar_title = "similarity to the anchor per tapped layer"
    if loss is not None:
        bar_title += f"; InfoNCE (τ = 1) mean over layers {loss.mean():.4f}"
    ax_bar.set_title(bar_title, fontsize=8)
    if title:
        fig.suptitle(_wrap(title, int(fig.get_figwidth() * 72 / (9 * 0.55))), fontsize=9)
    return fig


def plot_gains(gains, metrics: Sequence[str] = ("psnr",), title: str | None = None, panel_size: float = 4.5) -> Figure:
    """Paired effects with their bootstrap CIs beside the paper's: one panel per metric, one bar group per dataset.

    Args:
        gains: frame from :func:`srlib.methods.pcl_sr.paired_gains` (``better, worse, dataset, metric, effect,
            ci_low, ci_high, paper_effect, verdict``: effects oriented so that positive is an improvement, also for
            LPIPS and NIQE); a comparison is labelled "better vs worse".
        metrics: metrics to draw, one panel each.
        title: figure title.

    Returns:
        Figure: bars = our mean effect over seeds and images (error bar: the 95% bootstrap CI), black diamonds = the
        paper's effect where it reports one; a dashed line at 0; each bar's verdict's initial above it (s supported,
        c contradicted, i inconclusive).
    """
    metrics = [m for m in metrics if (gains.metric == m).any()]
    if not metrics:
        raise ValueError(f"no gains for metrics {metrics!r}")
    n_pairs = len(set(zip(gains.better, gains.worse, strict=True)))
    fig = SRFigure(figsize=(min(max(panel_size * len(metrics), 7.5), MAX_WIDTH_IN), 3.4 + 0.2 * -(-(n_pairs + 1) // 3)),
                   layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        sub = gains[gains.metric == metric]
        pairs = list(dict.fromkeys(zip(sub.better, sub.worse, strict=True)))
        datasets = list(dict.fromkeys(sub.dataset))
        width = 0.8 / len(pairs)
        for i, (better, worse) in enumerate(pairs):
            rows = sub[(sub.better == better) & (sub.worse == worse)].set_index("dataset").reindex(datasets)
            x = np.arange(len(datasets)) + (i - (len(pairs) - 1) / 2) * width
            err = np.vstack([(rows.effect - rows.ci_low).clip(lower=0), (rows.ci_high - rows.effect).clip(lower=0)])
            ax.bar(x, rows.effect, width, yerr=np.nan_to_num(err), capsize=2, label=f"{better} vs {worse}")
            ax.scatter(x, rows.paper_effect, marker="D", color="black", s=14, zorder=3,
                       label="paper" if i == 0 else None)
            for xi, top, v in zip(x, rows.ci_high.fillna(rows.effect), rows.verdict.fillna(""), strict=True):
                if v and np.isfinite(top):
                    ax.annotate(v[0], (xi, top), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7)
        ax.axhline(0, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xticks(np.arange(len(datasets)), datasets)
        ax.set_ylabel(f"effect ({metric}{', dB' if metric == 'psnr' else ''}; + = better)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(labels)), fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------------------------------------------------
# DASR / CDSR (notebook 04): degradation embeddings coloured by a number, real LR examples
# --------------------------------------------------------------------------------------------------------------------

__all__ += ["EMBEDDING_COLOURS", "plot_embedding_values", "real_lr_examples"]

#: What :func:`plot_embedding_values` panels can be coloured by: column of the labels -> axis label and colour map.
EMBEDDING_COLOURS = {
    "width": ("blur width (std of the wider axis, px)", "viridis"),
    "width2": ("blur width (std of the narrower axis, px)", "viridis"),
    "angle": ("blur angle (degrees)", "twilight"),
    "noise": ("noise level (0..255)", "magma"),
}


def plot_embedding_values(coords, values: dict, title: str | None = None, explained: Sequence[float] | None = None,
                          panel_size: float = 3.4) -> Figure:
    """2-D embeddings (e.g. :func:`srlib.embeddings.pca_2d` of degradation embeddings), one panel per colouring.

    Args:
        coords: (P, 2) points.
        values: {name: P numbers} (names of :data:`EMBEDDING_COLOURS` get their label and colour map; NaN values,
            e.g. the angle of an isotropic blur, are drawn in grey).
        title: figure title.
        explained: fraction of the variance of each axis (shown in the axis labels).
        panel_size: panel side in inches (at most: the figure is at most :data:`MAX_WIDTH_IN` wide).

    Returns:
        Figure with one scatter axes per colouring (``fig.axes[:len(values)]``), each with a colour bar.
    """
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"plot_embedding_values: expected (P, 2) coordinates, got shape {xy.shape}")
    if not values:
        raise ValueError("plot_embedding_values: nothing to colour by")
    p = len(xy)
    panel_size = min(panel_size, (MAX_WIDTH_IN - 0.4) / len(values))  # the page's width: text keeps its size
    fig = SRFigure(figsize=(panel_size * len(values) + 0.4, panel_size + (0.4 if title else 0.1)),
                   layout="constrained")
    axes = fig.subplots(1, len(values), squeeze=False)[0]
    size = 14.0 if p <= 500 else 6.0
    ex = list(explained) if explained is not None else None
    for ax, (name, vals) in zip(axes, values.items(), strict=True):
        v = np.asarray(vals, dtype=np.float64)
        if v.shape != (p,):
            raise ValueError(f"plot_embedding_values: {p} points but {v.shape} values for {name!r}")
        label, cmap = EMBEDDING_COLOURS.get(name, (name, "viridis"))
        missing = ~np.isfinite(v)
        if missing.any():
            ax.scatter(xy[missing, 0], xy[missing, 1], s=size, color="0.75", linewidths=0, label="not defined")
            ax.legend(fontsize=6, loc="best", frameon=False)
        if (~missing).any():
            sc = ax.scatter(xy[~missing, 0], xy[~missing, 1], c=v[~missing], s=size, cmap=cmap, alpha=0.8,
                            linewidths=0)
            cb = fig.colorbar(sc, ax=ax, shrink=0.85)
            cb.ax.tick_params(labelsize=6)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel(f"PC1 ({ex[0]:.0%})" if ex else "PC1", fontsize=7)
        ax.set_ylabel(f"PC2 ({ex[1]:.0%})" if ex else "PC2", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


#: RealSRSet images shown by :func:`real_lr_examples`, in order of preference.
_REAL_EXAMPLES = ("building", "chip", "Lincoln", "oldphoto2", "comic1", "frog")


def real_lr_examples(data_root: str | os.PathLike | None = None, n: int = 3, size: int = 64
                     ) -> tuple[str, dict[str, np.ndarray]]:
    """Real low-quality inputs for a visual comparison (no ground truth): central ``size`` x ``size`` crops of
    RealSRSet+5images (``<root>/RealSRSet_plus5/LQ``; its named images first, then the others in sorted order); when
    the folder is absent, the embedded test images shrunk by 4 with MATLAB bicubic (a stand-in: synthetic LR).

    Returns:
        (source label, {name: (size, size, 3) uint8 crop}) with at most ``n`` images, all of one size (smaller
        images shrink the common side).
    """
    from srlib import data

    root = data.data_root(data_root)
    images: dict[str, np.ndarray] = {}
    label = "RealSRSet+5images (real LR, no ground truth)"
    if root is not None and (root / "RealSRSet_plus5" / "LQ").is_dir():
        real = data.folder_set("RealSRSet_plus5", root, subdir="LQ")
        order = [s for s in _REAL_EXAMPLES if s in real.stems] + [s for s in real.stems if s not in _REAL_EXAMPLES]
        images = {s: real.load(s).image for s in order[:n]}
    if not images:
        emb = data.open_set("embedded-test")
        label = "embedded test images, bicubic x1/4 (RealSRSet not found)"
        for s in emb.stems[:n]:
            hr = img2tensor(modcrop(emb.load(s).image, 4))[None]
            images[s] = tensor2img(D.imresize(hr, 0.25, quantize=True)[0])
    side = min(size, *(min(im.shape[:2]) for im in images.values()))
    return label, {k: center_crop(v, side) for k, v in images.items()}
