"""Interactive views for JupyterLab that fall back to static figures under papermill, nbval and CI.

Design (``research/ecosystem.md`` section 3): the compute and the plot live in pure functions
(:func:`render_degradation` returns a :class:`matplotlib.figure.Figure`); the widget only collects the control
values into a ``params`` dict and calls that function. ``ipywidgets`` and ``IPython`` are imported inside the
functions that build widgets, so ``import srlib.widgets`` works without Jupyter.

A notebook decides between the widget and the static figure with :func:`resolve_interactive`: its ``parameters``
cell holds ``interactive = None``; papermill injects ``-p interactive False``; nbval and CI set
``SRLIB_INTERACTIVE=0``; otherwise (JupyterLab) the widget is shown.

Explorer parameters (:data:`DEFAULT_PARAMS`):

* ``kernel``: ``"none"`` (bicubic only), ``"iso"`` or ``"aniso"``.
* ``sigma``: isotropic width (standard deviation, pixels). ``l1``, ``l2``: anisotropic widths (standard deviations;
  variances under CDSR's convention); ``theta``: angle in degrees.
* ``noise``: noise level on the 0..255 scale (0..50 on the slider).
* ``scale``: 2, 3 or 4. ``resize``: ``"matlab"``, ``"dasr"`` or ``"sfold"``. ``convention``: ``"std"`` or ``"cdsr"``.
* ``seed``: seed of the noise generator. ``crop``: side of the central HR crop that is degraded (pixels).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import html
import math
import os
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from srlib import degradation as D
from srlib import viz
from srlib.imgutil import img2tensor

__all__ = [
    "DEFAULT_PARAMS",
    "ENV_INTERACTIVE",
    "degradation_explorer",
    "degradation_from_params",
    "render_degradation",
    "resolve_interactive",
]

ENV_INTERACTIVE = "SRLIB_INTERACTIVE"

#: Defaults of :func:`render_degradation` and the explorer's initial control values.
DEFAULT_PARAMS: dict[str, Any] = {
    "kernel": "iso",
    "sigma": 2.4,
    "l1": 3.5,
    "l2": 1.5,
    "theta": 30.0,
    "noise": 0.0,
    "scale": 4,
    "resize": "matlab",
    "convention": "std",
    "seed": 0,
    "crop": 192,
}

_KERNELS = ("none", "iso", "aniso")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def resolve_interactive(interactive: bool | str | None = None) -> bool:
    """Whether a notebook shows live widgets (True) or static figures (False).

    Args:
        interactive: a bool is returned as is; ``None`` reads the environment variable ``SRLIB_INTERACTIVE``
            (``"1"``/``"true"``/``"yes"`` or ``"0"``/``"false"``/``"no"``, case-insensitive; unset or empty: True).
            A string is read the same way.

    Raises:
        ValueError: an unrecognised string (the message names the variable).
    """
    if isinstance(interactive, (bool, np.bool_)):
        return bool(interactive)
    source = "the interactive parameter"
    if interactive is None:
        interactive = os.environ.get(ENV_INTERACTIVE, "")
        source = f"the environment variable {ENV_INTERACTIVE}"
        if interactive.strip() == "":
            return True
    if isinstance(interactive, str):
        v = interactive.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    raise ValueError(f"{source} must be 0 or 1 (or true/false), got {interactive!r}")


def _params(params: dict | None) -> dict[str, Any]:
    params = dict(params or {})
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(f"unknown explorer parameters {unknown}; known: {sorted(DEFAULT_PARAMS)}")
    return {**DEFAULT_PARAMS, **params}


def degradation_from_params(params: dict | None) -> D.Degradation:
    """The :class:`srlib.degradation.Degradation` the explorer's ``params`` describe (missing keys: defaults).

    Raises:
        ValueError: unknown parameter names.
        srlib.degradation.DegradationError: invalid values (unknown kernel type, width <= 0, noise < 0, ...).
    """
    p = _params(params)
    kind = p["kernel"]
    if kind == "none":
        kernel = None
    elif kind == "iso":
        kernel = D.IsoGaussian(float(p["sigma"]))
    elif kind == "aniso":
        kernel = D.AnisoGaussian(float(p["l1"]), float(p["l2"]), float(p["theta"]))
    else:
        raise D.DegradationError(f"unknown kernel type {kind!r}; choose from {list(_KERNELS)}")
    return D.Degradation(int(p["scale"]), kernel, float(p["noise"]), resize=p["resize"], convention=p["convention"])


def render_degradation(hr, params: dict | None = None) -> Figure:
    """Degrade a central crop of ``hr`` and draw kernel, HR crop and LR (the explorer's view, and its static form).

    Args:
        hr: (H, W, 3) uint8 RGB image (or a (3, H, W) tensor on 0..255; see :func:`srlib.viz.to_uint8`).
        params: explorer parameters (see the module docstring; missing keys take :data:`DEFAULT_PARAMS`). The crop
            is ``params["crop"]`` pixels square (smaller images are used whole), cut to a multiple of the scale.

    Returns:
        Figure from :func:`srlib.viz.plot_degradation`; its title is :func:`srlib.viz.describe` of the degradation
        and the seed. The LR is exactly ``viz.degrade_image(crop, degradation, seed)``.

    Raises:
        ValueError, srlib.degradation.DegradationError: invalid parameters or an image too small for the kernel.
    """
    p = _params(params)
    deg = degradation_from_params(p)
    crop = viz.center_crop(viz.to_uint8(hr), int(p["crop"]), deg.scale)
    if crop.shape[0] < deg.scale or crop.shape[1] < deg.scale:
        raise D.DegradationError(f"image crop of {crop.shape[0]}x{crop.shape[1]} pixels is smaller than the scale")
    hr_crop, lr = viz.degrade_image(crop, deg, seed=int(p["seed"]))
    seed = f", seed {int(p['seed'])}" if deg.noise else ""
    kernel_title = "kernel (CDSR: shifted for s-fold)" if deg.convention == "cdsr" and deg.kernel else "kernel"
    return viz.plot_degradation(hr_crop, lr, deg.kernel_tensor(), title=viz.describe(deg) + seed,
                                kernel_title=kernel_title)


def _controls(p: dict[str, Any]) -> dict[str, Any]:
    import ipywidgets as w

    style = {"description_width": "90px"}
    layout = w.Layout(width="300px")

    def slider(desc, value, lo, hi, step, fmt=".1f"):
        return w.FloatSlider(value=value, min=lo, max=hi, step=step, description=desc, continuous_update=False,
                             readout_format=fmt, style=style, layout=layout)

    def dropdown(desc, options, value):
        return w.Dropdown(options=options, value=value, description=desc, style=style, layout=layout)

    return {
        "kernel": dropdown("kernel", list(_KERNELS), p["kernel"]),
        "sigma": slider("width σ", p["sigma"], 0.1, 6.0, 0.1),
        "l1": slider("l1", p["l1"], 0.1, 6.0, 0.1),
        "l2": slider("l2", p["l2"], 0.1, 6.0, 0.1),
        "theta": slider("angle θ (°)", p["theta"], 0.0, 180.0, 5.0, ".0f"),
        "noise": slider("noise level", p["noise"], 0.0, 50.0, 1.0, ".0f"),
        "scale": dropdown("scale", [2, 3, 4], p["scale"]),
        "resize": dropdown("resize", list(D.RESIZE_MODES), p["resize"]),
        "convention": dropdown("convention", list(D.CONVENTIONS), p["convention"]),
        "seed": w.IntText(value=p["seed"], description="noise seed", continuous_update=False, style=style,
                          layout=layout),
    }


# --------------------------------------------------------------------------------------------------------------------
# What every explorer shares: the figure as an image, errors shown in place, debounced redraws, a static copy
# --------------------------------------------------------------------------------------------------------------------

__all__ += ["DEBOUNCE_S", "SLOW_REDRAW_S"]

#: A redraw that took longer than this (seconds) makes the next control changes wait for a pause (debouncing).
SLOW_REDRAW_S = 0.3
#: The pause (seconds) after the last of a burst of control changes (arrow-key presses on a slider, each a change
#: even with ``continuous_update=False``) before a slow explorer redraws, once.
DEBOUNCE_S = 0.35

# While a live explorer is on the page, hide the static copy of its figure that follows it in the same cell's outputs
# (JupyterLab and Notebook 7 class names). A reopened notebook has no live widget, so the copy shows.
_HIDE_STATIC_COPY = ("<style>.jp-OutputArea-child:has(.srlib-explorer) + .jp-OutputArea-child:has(.jp-RenderedImage)"
                     " { display: none; }</style>")


class _Redraw:
    """Calls ``draw()`` for control changes: at once when the last draw took less than ``slow_s`` seconds or when no
    asyncio event loop is running (scripts, tests); otherwise ``delay_s`` after the last of a burst of changes, on the
    running loop (a Jupyter kernel's), so a burst costs one redraw. Changes made by ``draw`` itself are ignored."""

    def __init__(self, draw, slow_s: float = SLOW_REDRAW_S, delay_s: float = DEBOUNCE_S):
        self.draw, self.slow_s, self.delay_s = draw, slow_s, delay_s
        self.last_s = 0.0  # duration of the last draw
        self.count = 0  # draws so far
        self.pending = None  # asyncio.TimerHandle of a scheduled draw
        self.drawing = False

    def now(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None
        self.drawing = True
        t0 = time.perf_counter()
        try:
            self.draw()
        finally:
            self.drawing = False
            self.last_s = time.perf_counter() - t0
            self.count += 1

    def __call__(self, change=None) -> None:
        if self.drawing:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self.last_s < self.slow_s:
            self.now()
            return
        if self.pending is not None:
            self.pending.cancel()
        self.pending = loop.call_later(self.delay_s, self.now)


@functools.cache
def _explorer_class():
    import ipywidgets as w

    class Explorer(w.VBox):
        """An explorer: ``VBox`` [control rows, status line, figure (``Image``), message], plus an invisible style.

        Attributes (for tests and scripts): ``controls`` (name -> widget), ``status`` (``HTML``: what is shown, or
        the error in red), ``image`` (``Image``: the figure as PNG, hidden after an error), ``message`` (``HTML``: the
        error message, or the traceback of an unexpected error), ``refresh()`` (redraw now with the current values),
        ``redraws`` (draws so far) and ``static_png`` (PNG of the first figure drawn).

        Displayed (``display(box)`` or a cell's last value), it emits two outputs: the live widget, then a static
        copy of its first figure. The live widget hides the copy (CSS, JupyterLab and Notebook 7); a saved notebook
        reopened without a kernel shows the copy under "model not found".
        """

        def _ipython_display_(self) -> None:
            from IPython.display import display

            display(self._repr_mimebundle_(), raw=True)
            if self.static_png:
                display({"image/png": base64.b64encode(self.static_png).decode("ascii"),
                         "text/plain": "<static copy of the explorer's first figure>"}, raw=True)

        @property
        def redraws(self) -> int:
            return self._redraw.count

    return Explorer


def _explorer(rows: list, controls: dict, draw_figure):
    """Build an explorer (see :func:`_explorer_class`) around ``draw_figure() -> (Figure, status text)``, which reads
    the controls. Every control change redraws (:class:`_Redraw`); an exception is shown in the status line and the
    message (its text for a ``ValueError``, i.e. invalid input, the traceback for anything else) and the widget keeps
    working. Draws once before returning."""
    import ipywidgets as w

    status = w.HTML()
    # shown at its own size (a flex column would stretch it to the page's width), scaled down only where narrower
    image = w.Image(format="png", layout=w.Layout(max_width="100%", align_self="flex-start"))
    message = w.HTML()
    style = w.HTML(_HIDE_STATIC_COPY, layout=w.Layout(display="none"))
    box = _explorer_class()([*rows, status, image, message, style])
    box.add_class("srlib-explorer")
    box.controls, box.status, box.image, box.message, box.static_png = controls, status, image, message, b""

    def draw() -> None:
        try:
            fig, text = draw_figure()
            png = viz.figure_png(fig)
        except Exception as e:
            status.value = f"<span style='color:#b00020'>{type(e).__name__}: {html.escape(str(e))}</span>"
            detail = f"{type(e).__name__}: {e}" if isinstance(e, ValueError) else traceback.format_exc()
            message.value = f"<pre style='color:#b00020; white-space:pre-wrap'>{html.escape(detail)}</pre>"
            image.layout.display = "none"
            return
        status.value = html.escape(text)
        message.value = ""
        image.value = png
        image.layout.display = None
        if not box.static_png:
            box.static_png = png

    box._redraw = _Redraw(draw)
    box.refresh = box._redraw.now
    for c in controls.values():
        c.observe(box._redraw, names="value")
    box.refresh()
    return box


def degradation_explorer(hr, scale: int = 4, params: dict | None = None):
    """Live explorer of the degradation model: controls for every parameter and the figure of
    :func:`render_degradation` below them.

    Every control has ``continuous_update=False`` (the figure is redrawn when a slider is released); when a redraw
    is slow, bursts of changes (arrow keys) are drawn once (:data:`SLOW_REDRAW_S`, :data:`DEBOUNCE_S`). A callback
    error (e.g. an invalid parameter combination) is shown in the status line and below it instead of the figure;
    the widget keeps working.

    Args:
        hr: (H, W, 3) uint8 RGB image (see :func:`render_degradation`).
        scale: initial scale (2, 3 or 4).
        params: other initial parameters (see :data:`DEFAULT_PARAMS`); ``params["crop"]`` is fixed for the widget.

    Returns:
        An ``ipywidgets.VBox`` [controls, status line, figure, message] that also carries ``controls`` (name ->
        widget), ``status``, ``image``, ``message``, ``refresh()``, ``redraws`` and ``static_png``; displayed, it is
        followed by a static copy of its first figure, which shows when the notebook is reopened without a kernel
        (see :func:`_explorer_class`).
    """
    import ipywidgets as w

    p = _params({**(params or {}), "scale": scale})
    controls = _controls(p)

    def draw_figure():
        values = {name: c.value for name, c in controls.items()}
        values["crop"] = p["crop"]
        kind = values["kernel"]
        controls["sigma"].disabled = kind != "iso"
        for name in ("l1", "l2", "theta"):
            controls[name].disabled = kind != "aniso"
        controls["seed"].disabled = values["noise"] == 0
        # looked up at call time, so a patched module-level render_degradation is what the widget calls;
        # DegradationError is a ValueError: its message is shown; anything else: the traceback
        fig = render_degradation(hr, values)
        try:
            text = viz.describe(degradation_from_params(values))
        except (D.DegradationError, ValueError):  # a patched renderer may accept what the model rejects
            text = ""
        return fig, text

    rows = [
        w.HBox([controls["kernel"], controls["scale"], controls["resize"]]),
        w.HBox([controls["sigma"], controls["noise"], controls["seed"]]),
        w.HBox([controls["l1"], controls["l2"], controls["theta"]]),
        w.HBox([controls["convention"]]),
    ]
    return _explorer(rows, controls, draw_figure)


# --------------------------------------------------------------------------------------------------------------------
# Embedding explorer (notebook 01: CRL-SR's contrastive decoupling encoding)
# --------------------------------------------------------------------------------------------------------------------

__all__ += ["ALL_DEGRADATIONS", "COLOUR_BY", "LOCATION_CHOICES", "embedding_explorer", "render_embedding"]

#: Option of the explorer's degradation dropdown that embeds every degradation at once.
ALL_DEGRADATIONS = "all"
#: What :func:`render_embedding` can colour the points by.
COLOUR_BY = ("image", "degradation", "location")
#: Choices of the explorer's "locations" dropdown (locations per feature map; None = all).
LOCATION_CHOICES = (8, 16, 64, 256, None)


def render_embedding(model, images: dict, degradation_names, layer: int | None, degradations: dict,
                     seed: int = 0, n_locations: int | None = 64, colour_by: str = "image",
                     title: str | None = None, project: bool | None = None, lr_only: bool = False) -> Figure:
    """PCA of the per-location embeddings of E_l(upsampled LR) and E_h(HR) (the explorer's view, and its static form).

    Args:
        model: a :class:`srlib.archs.crl_sr.CRLSR` (with E_h for the HR points; a baseline shows LR points only).
        images: {name: (H, W, 3) uint8 HR crop}, all of one size (the images to embed).
        degradation_names: names (keys of ``degradations``) of the degradations to embed; a single name is accepted.
        layer: encoder layer (:func:`srlib.embeddings.encoder_features`: None = output, 0 = head, k = block k). At
            the output of a CDE model the vectors are the projected ones (``proj_l`` / ``proj_h``), the space the
            CDE loss compares in; elsewhere the raw features, L2-normalised per location.
        degradations: {name: :class:`srlib.degradation.Degradation`} at the model's scale.
        seed: seeds the LR noise and the locations.
        n_locations: locations per feature map (the same in every map); None keeps all.
        colour_by: ``"image"`` (marker = degradation, HR a marker of its own), ``"degradation"`` (marker = image) or
            ``"location"`` (one colour per feature-map location, marker = degradation; use few locations): a
            location whose LR and HR vectors agree forms one tight cluster of its colour.
        title: figure title (default: what is embedded).
        project: passed to :func:`srlib.embeddings.cde_embeddings` (None: projected at the output of a CDE model;
            False: raw features, L2-normalised per location, as a baseline without heads has them).
        lr_only: leave out the HR points (E_h), e.g. to compare E_l of two models in the same kind of space.

    Returns:
        Figure from :func:`srlib.viz.plot_embedding_2d`: one point per (map, location), a large marker per group mean.
    """
    from srlib import embeddings as E

    if colour_by not in COLOUR_BY:
        raise ValueError(f"colour_by must be one of {COLOUR_BY}, got {colour_by!r}")
    names = [degradation_names] if isinstance(degradation_names, str) else list(degradation_names)
    unknown = [n for n in names if n not in degradations]
    if unknown or not names:
        raise ValueError(f"unknown degradations {unknown or names}; known: {list(degradations)}")
    if not images:
        raise ValueError("render_embedding: no image selected")
    emb = E.cde_embeddings(model, images, {n: degradations[n] for n in names}, seed=seed, layer=layer,
                           project=project, n_locations=n_locations)
    x, labels = emb.points(emb.entries("LR") if lr_only else None)
    coords, explained = E.pca_2d(x, return_explained=True)
    if colour_by not in COLOUR_BY:
        raise ValueError(f"colour_by must be one of {COLOUR_BY}, got {colour_by!r}")
    other = "image" if colour_by == "degradation" else "degradation"
    n_maps = len(emb.entries("LR")) if lr_only else len(emb)
    what = f"{emb.vectors.shape[1]} locations x {n_maps} maps" + (", E_l only" if lr_only else "")
    default = f"PCA of {emb.feature_label}\nencoder {E.layer_name(layer)}, {what}"
    marker_name = other
    if other == "degradation":
        marker_name = "degradation (LR) / HR" if "HR" in labels["domain"] else "degradation (LR)"
    colour_name = "location (row, col)" if colour_by == "location" else colour_by
    return viz.plot_embedding_2d(coords, labels[colour_by], labels[other], title=title or default,
                                 colour_name=colour_name, marker_name=marker_name, explained=explained)


def embedding_explorer(model, images: dict, degradations: dict, layers, seed: int = 0,
                       n_locations: int | None = 64):
    """Live PCA of CDE embeddings: choose the images, the degradation and the encoder layer.

    Args:
        model: a :class:`srlib.archs.crl_sr.CRLSR`.
        images: {name: (H, W, 3) uint8 HR crop}, all of one size; all are selected at first.
        degradations: {name: :class:`srlib.degradation.Degradation`}; the dropdown also offers
            :data:`ALL_DEGRADATIONS` (the first choice), which embeds all of them.
        layers: encoder layers to offer (None = output, 0 = head, k = block k); the first is selected at first.
        seed: see :func:`render_embedding`.
        n_locations: initial locations per map (one of :data:`LOCATION_CHOICES`, else 64).

    Returns:
        An explorer (as :func:`degradation_explorer`): ``controls`` are ``"images"`` (a ``SelectMultiple``),
        ``"degradation"``, ``"layer"``, ``"colour"``, ``"locations"`` (``Dropdown``; the choices "output" layer and
        "all" locations hold a sentinel value, not None, which ipywidgets would show as an empty box). Every change
        calls :func:`render_embedding` (looked up at call time) with the new values; an error is shown in the status
        line and below it, and the widget keeps working.
    """
    import ipywidgets as w

    from srlib import embeddings as E

    layers = list(layers)
    if not layers or not images or not degradations:
        raise ValueError("embedding_explorer needs at least one image, degradation and layer")
    style = {"description_width": "80px"}
    controls = {
        "images": w.SelectMultiple(options=list(images), value=tuple(images), description="images",
                                   rows=min(len(images), 5), style=style, layout=w.Layout(width="260px")),
        "degradation": w.Dropdown(options=[ALL_DEGRADATIONS, *degradations], value=ALL_DEGRADATIONS,
                                  description="degradation", style=style, layout=w.Layout(width="300px")),
        "layer": w.Dropdown(options=_choices(layers, E.layer_name), value=_choice(layers[0]), description="layer",
                            style=style, layout=w.Layout(width="220px")),
        "colour": w.Dropdown(options=list(COLOUR_BY), value="image", description="colour by",
                             style=style, layout=w.Layout(width="220px")),
        "locations": w.Dropdown(options=_choices(LOCATION_CHOICES, lambda n: "all" if n is None else str(n)),
                                value=_choice(n_locations if n_locations in LOCATION_CHOICES else LOCATION_CHOICES[2]),
                                description="locations", style=style, layout=w.Layout(width="220px")),
    }

    def draw_figure():
        chosen = controls["degradation"].value
        names = list(degradations) if chosen == ALL_DEGRADATIONS else [chosen]
        selected = {n: images[n] for n in controls["images"].value}
        layer = _unchoice(controls["layer"].value)
        fig = render_embedding(model, selected, names, layer, degradations, seed=seed,
                               n_locations=_unchoice(controls["locations"].value), colour_by=controls["colour"].value)
        return fig, f"{len(selected)} image(s) x {len(names)} degradation(s), layer {E.layer_name(layer)}"

    rows = [w.HBox([controls["images"], w.VBox([controls["degradation"], controls["layer"]]),
                    w.VBox([controls["colour"], controls["locations"]])])]
    return _explorer(rows, controls, draw_figure)


#: Value a dropdown holds for the choice None: ipywidgets shows a Dropdown whose value is None as an empty box (it
#: takes None for "nothing selected"), so None never goes into a Dropdown.
_NONE_CHOICE = "\x00none"


def _choice(value):
    return _NONE_CHOICE if value is None else value


def _unchoice(value):
    return None if value == _NONE_CHOICE else value


def _choices(values, label) -> list[tuple[str, Any]]:
    """Dropdown options ``[(label(v), v), ...]`` with None replaced by a sentinel (see :data:`_NONE_CHOICE`)."""
    return [(label(v), _choice(v)) for v in values]


# --------------------------------------------------------------------------------------------------------------------
# PCL-SR sample-set explorer (notebook 03: positives, negatives and their similarities in the embedding)
# --------------------------------------------------------------------------------------------------------------------

__all__ += ["PCLSampleSet", "PCL_BLUR_FIRST", "PCL_BLUR_SIZES", "PCL_SHARPEN_FIRST", "pcl_sample_explorer",
            "pcl_sample_set", "render_pcl_samples", "spread"]

#: Kernel sizes the explorer offers for the Gaussian negatives (the official draw is from 3, 5, 7, 9, 11).
PCL_BLUR_SIZES = (3, 5, 7, 9, 11, 13, 15)
#: First sharpen factor and first blur width of the explorer's samples: the lower ends of the official ranges
#: f ~ U[0.5, 3) and sigma ~ U[0.1, 2) (``research/methods.md`` 2.4).
PCL_SHARPEN_FIRST, PCL_BLUR_FIRST = 0.5, 0.1


@dataclass(frozen=True)
class PCLSampleSet:
    """Everything :func:`pcl_sample_set` computes for one patch (tensors on the CPU, float32 unless stated).

    With P = 1 + len(sharpen_factors) positives, K = 1 + len(blur_sigmas) negatives, L tapped layers, patch side S
    and scale s:

    Attributes:
        hr: (3, S, S) HR patch in [0, 1] (8-bit values).
        lr: (3, S / s, S / s) LR in [0, 1]: MATLAB bicubic ``imresize`` at 1 / s, quantised to 8 bits.
        anchor: (3, S, S) the anchor: ``sr_fn(lr)`` as returned (not clamped or quantised), or, without an SR
            model, the bicubic upsampling of the LR (:func:`srlib.pcl.upsample_lr`), i.e. the same image as the LR
            negative.
        anchor_is_sr: False when the anchor is the bicubic stand-in.
        positives: (P, 3, S, S): index 0 the HR patch, then ``quantize(sharpen(hr, f))`` for each factor.
        negatives: (K, 3, S, S): index 0 ``upsample_lr(lr)`` (not quantised, as the official code), then
            ``quantize(gaussian_blur(hr, (k, k), (sigma, sigma)))`` for each width.
        anchor_label, pos_labels, neg_labels: titles naming each sample and its parameters.
        sharpen_factors, blur_sigmas, blur_size, scale, top, left, patch, rgb_range: the inputs.
        anchor_hf, pos_hf, neg_hf: (9, S/2, S/2), (P, 9, S/2, S/2), (K, 9, S/2, S/2): the Haar LH/HL/HH bands
            (:func:`srlib.pcl.haar_highpass`, band-major) of the images times ``rgb_range``, the embedding's input.
        anchor_feats, pos_feats, neg_feats: per tapped layer l, (C_l, H_l, W_l), (P, C_l, H_l, W_l) and
            (K, C_l, H_l, W_l) features of the embedding network (eval mode).
        taps: the tapped blocks (``embed_net.taps``, else 0 .. L - 1).
        sim_pos, sim_neg: (L, P) and (L, K) float64 arrays: ``s(anchor, sample)`` per layer
            (:func:`srlib.losses.pcl.mean_cosine_similarity`), in [-1, 1].
        loss_per_layer: (L,) float64: :func:`srlib.losses.pcl.pcl_infonce` (tau = 1) of each layer alone.
        loss: ``pcl_infonce`` over all layers (the mean of ``loss_per_layer``), as the training loss of this one
            patch.
    """

    hr: torch.Tensor
    lr: torch.Tensor
    anchor: torch.Tensor
    anchor_is_sr: bool
    positives: torch.Tensor
    negatives: torch.Tensor
    anchor_label: str
    pos_labels: tuple[str, ...]
    neg_labels: tuple[str, ...]
    sharpen_factors: tuple[float, ...]
    blur_sigmas: tuple[float, ...]
    blur_size: int
    scale: int
    top: int
    left: int
    patch: int
    rgb_range: float
    anchor_hf: torch.Tensor
    pos_hf: torch.Tensor
    neg_hf: torch.Tensor
    anchor_feats: tuple[torch.Tensor, ...]
    pos_feats: tuple[torch.Tensor, ...]
    neg_feats: tuple[torch.Tensor, ...]
    taps: tuple[int, ...]
    sim_pos: np.ndarray
    sim_neg: np.ndarray
    loss_per_layer: np.ndarray
    loss: float

    @property
    def similarities(self) -> np.ndarray:
        """(L, P + K): ``sim_pos`` then ``sim_neg`` (the order of :func:`srlib.viz.plot_pcl_samples`)."""
        return np.concatenate([self.sim_pos, self.sim_neg], axis=1)

    @property
    def layer_names(self) -> list[str]:
        """``"block t (C ch)"`` per tapped layer."""
        return [f"block {t} ({f.shape[0]} ch)" for t, f in zip(self.taps, self.anchor_feats, strict=True)]


def spread(low: float, high: float, n: int) -> tuple[float, ...]:
    """``n`` evenly spaced values from ``low`` to ``high`` (both included; ``n = 1`` gives ``(high,)``).

    The explorer's sharpen factors are ``spread(0.5, f, n_sharp)`` and its blur widths ``spread(0.1, sigma,
    n_blur)``: from the lower end of the official range (U[0.5, 3) and U[0.1, 2)) to the slider value.
    """
    if n < 0:
        raise ValueError(f"spread: n must be >= 0, got {n}")
    if n == 1:
        return (float(high),)
    return tuple(float(v) for v in np.linspace(float(low), float(high), n))


def _check_factors(values, name: str, positive: bool) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except TypeError as e:
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from e
    bad = [v for v in out if not math.isfinite(v) or (v <= 0 if positive else v < 0)]
    if bad:
        raise ValueError(f"{name} must be finite and {'> 0' if positive else '>= 0'}, got {list(out)}")
    return out


def _hr_tensor(hr) -> torch.Tensor:
    """(3, H, W) tensor on 0..255 (uint8 or float) or (H, W, 3) uint8 array -> (3, H, W) float32 on [0, 1]."""
    if isinstance(hr, torch.Tensor):
        if hr.ndim != 3 or hr.shape[0] != 3:
            raise ValueError(f"hr: expected a (3, H, W) tensor on the 0..255 scale, got shape {tuple(hr.shape)}")
        return hr.detach().to("cpu", torch.float32).round().clamp(0, 255) / 255.0
    return img2tensor(viz.to_uint8(hr)) / 255.0


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_patch(image_size, scale, patch, top, left) -> tuple[int, int, int, int]:
    """Validate the scale and the patch of an (H, W) image; returns ``(scale, patch, top, left)`` (default: centred)."""
    if not _is_int(scale) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    if not _is_int(patch) or patch < 2:
        raise ValueError(f"patch must be an integer >= 2, got {patch!r}")
    scale, patch = int(scale), int(patch)
    if patch % scale:
        raise ValueError(f"patch side {patch} must be a multiple of the scale {scale} (the LR is patch / scale "
                         "pixels wide)")
    if patch % 2:
        raise ValueError(f"patch side {patch} must be even (the Haar transform halves it)")
    h, w = (int(v) for v in image_size)
    if patch > h or patch > w:
        raise ValueError(f"patch of {patch}x{patch} pixels is larger than the {h}x{w} image")
    top = (h - patch) // 2 if top is None else top
    left = (w - patch) // 2 if left is None else left
    if not (_is_int(top) and _is_int(left) and 0 <= top <= h - patch and 0 <= left <= w - patch):
        raise ValueError(f"patch of {patch}x{patch} at (top={top!r}, left={left!r}) is outside the {h}x{w} image "
                         f"(top must be an integer in [0, {h - patch}], left in [0, {w - patch}])")
    return scale, patch, int(top), int(left)


def pcl_sample_set(hr, sr_fn, embed_net, scale: int = 4, top: int | None = None, left: int | None = None,
                   patch: int = 96, sharpen_factors=(0.5, 1.75, 3.0), blur_sigmas=(0.1, 1.05, 2.0),
                   blur_size: int = 7, rgb_range: float = 1.0, device=None) -> PCLSampleSet:
    """PCL-SR's positives and negatives for one HR patch, deterministically, and their similarity to the anchor.

    Steps (PCL-SR Sec. 3.2-3.4; the official code's choices, ``research/methods.md`` 2.4):

    1. crop ``hr[:, top:top + patch, left:left + patch]`` (default: the centre);
    2. LR = MATLAB bicubic ``imresize`` at 1 / scale on the 0..255 scale, quantised to 8 bits
       (:func:`srlib.degradation.imresize`);
    3. anchor = ``sr_fn(lr)``; with ``sr_fn=None``, the bicubic upsampling ``upsample_lr(lr)`` stands in (the LR
       negative itself, so its similarity to that negative is 1);
    4. positives = HR and ``quantize(sharpen(hr, f))`` for each f in ``sharpen_factors``; negatives =
       ``upsample_lr(lr)`` and ``quantize(gaussian_blur(hr, (k, k), (sigma, sigma)))`` for each sigma in
       ``blur_sigmas`` with k = ``blur_size`` (:mod:`srlib.pcl`). No random draws: the factors and widths are the
       inputs (the official code draws f ~ U[0.5, 3), sigma ~ U[0.1, 2), k in {3, ..., 11} per copy);
    5. Haar bands ``haar_highpass(x * rgb_range)``, features ``embed_net.features`` in eval mode under no_grad
       (every module's train/eval flag is restored afterwards), ``s = mean_cosine_similarity`` per layer and the
       InfoNCE loss ``pcl_infonce`` with tau = 1 per layer and over all layers (:mod:`srlib.losses.pcl`).

    Args:
        hr: HR image: (3, H, W) tensor on the 0..255 scale (uint8 or float, rounded to 8 bits) or (H, W, 3) uint8
            array.
        sr_fn: callable mapping a (1, 3, S/s, S/s) LR tensor in [0, 1] (on ``device``) to the (1, 3, S, S) SR image
            in [0, 1], or None (bicubic stand-in). Called under ``torch.no_grad``.
        embed_net: the embedding network, e.g. :class:`srlib.archs.pcl_embed.PCLDiscriminator` (a module with
            ``features(x) -> list of (N, C_l, H_l, W_l)`` on (N, 9, S/2, S/2) inputs).
        scale: integer scale s >= 1.
        top, left: position of the patch in the image (default: centred).
        patch: side S of the HR patch, a multiple of ``scale`` and even (Haar).
        sharpen_factors: factors >= 0 of the sharpened positives (1 = identity, < 1 smooths, > 1 sharpens).
        blur_sigmas: widths > 0 (pixels) of the Gaussian negatives.
        blur_size: odd kernel size of the Gaussian negatives (one size for all of them).
        rgb_range: the images are scaled by it before the Haar transform (1: [0, 1] images; 255: the official RCAN
            scripts, which feed the 0..255 range).
        device: where the SR and embedding networks run (default: the device of ``embed_net``'s first parameter, else
            the CPU). Results are returned on the CPU.

    Returns:
        :class:`PCLSampleSet`.

    Raises:
        ValueError: a patch larger than the image or outside it, a patch side not a multiple of the scale or odd, bad
            factors, widths or kernel size, or an ``sr_fn`` output of the wrong shape.
    """
    from srlib import pcl
    from srlib.losses.pcl import mean_cosine_similarity, pcl_infonce

    x = _hr_tensor(hr)
    scale, patch, top, left = _check_patch(x.shape[-2:], scale, patch, top, left)
    factors = _check_factors(sharpen_factors, "sharpen_factors", positive=False)
    sigmas = _check_factors(blur_sigmas, "blur_sigmas", positive=True)
    if not _is_int(blur_size) or blur_size < 1 or blur_size % 2 == 0:
        raise ValueError(f"blur_size must be a positive odd integer, got {blur_size!r}")
    blur_size = int(blur_size)
    if sigmas and blur_size // 2 >= patch:
        raise ValueError(f"blur kernel {blur_size}x{blur_size} is too large for a {patch}x{patch} patch")
    rgb_range = float(rgb_range)
    if not (math.isfinite(rgb_range) and rgb_range > 0):
        raise ValueError(f"rgb_range must be finite and > 0, got {rgb_range!r}")
    if device is None:
        param = next(iter(embed_net.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")

    hr_p = x[:, top : top + patch, left : left + patch][None]  # (1, 3, S, S)
    lr = D.imresize(hr_p.double() * 255.0, scale=1.0 / scale, quantize=True).float() / 255.0
    size = (patch, patch)
    modes = [(m, m.training) for m in embed_net.modules()]
    try:
        embed_net.eval()
        with torch.no_grad():
            if sr_fn is None:
                anchor = pcl.upsample_lr(lr, size)
            else:
                out = sr_fn(lr.to(device))
                if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, 3, patch, patch):
                    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    raise ValueError(f"sr_fn must return a (1, 3, {patch}, {patch}) tensor for a "
                                     f"(1, 3, {patch // scale}, {patch // scale}) LR, got {shape}")
                anchor = out.detach().to("cpu", torch.float32)
            pos = torch.cat([hr_p, *(pcl.quantize(pcl.sharpen(hr_p, f)) for f in factors)])
            neg = torch.cat([pcl.upsample_lr(lr, size),
                             *(pcl.quantize(pcl.gaussian_blur(hr_p, (blur_size, blur_size), (s, s))) for s in sigmas)])
            a_hf, p_hf, n_hf = (pcl.haar_highpass(t * rgb_range) for t in (anchor, pos, neg))
            # one batch: eval-mode BatchNorm makes every sample's features independent of the others
            feats = embed_net.features(torch.cat([a_hf, p_hf, n_hf]).to(device))
            feats = [f.to("cpu", torch.float32) for f in feats]
            n_pos = len(pos)
            a_f = [f[0] for f in feats]
            p_f = [f[1 : 1 + n_pos] for f in feats]
            n_f = [f[1 + n_pos :] for f in feats]
            sim_pos = torch.stack([mean_cosine_similarity(a[None], p) for a, p in zip(a_f, p_f, strict=True)])
            sim_neg = torch.stack([mean_cosine_similarity(a[None], n) for a, n in zip(a_f, n_f, strict=True)])
            per_layer = torch.stack([pcl_infonce([a[None]], [p[None]], [n[None]], tau=1.0)
                                     for a, p, n in zip(a_f, p_f, n_f, strict=True)])
            total = pcl_infonce([a[None] for a in a_f], [p[None] for p in p_f], [n[None] for n in n_f], tau=1.0)
    finally:
        for m, mode in modes:
            m.training = mode
    taps = tuple(int(t) for t in getattr(embed_net, "taps", range(len(feats))))
    if len(taps) != len(feats):
        taps = tuple(range(len(feats)))
    anchor_label = f"anchor: SR x{scale}" if sr_fn is not None else "anchor: bicubic LR↑\n(stand-in, no SR model)"
    return PCLSampleSet(
        hr=hr_p[0], lr=lr[0], anchor=anchor[0], anchor_is_sr=sr_fn is not None, positives=pos, negatives=neg,
        anchor_label=anchor_label,
        pos_labels=("+ HR", *(f"+ sharpen f={f:.2f}" for f in factors)),
        neg_labels=(f"− LR bicubic↑ x{scale}", *(f"− blur σ={s:.2f}, {blur_size}x{blur_size}" for s in sigmas)),
        sharpen_factors=factors, blur_sigmas=sigmas, blur_size=blur_size, scale=scale, top=top, left=left,
        patch=patch, rgb_range=rgb_range, anchor_hf=a_hf[0], pos_hf=p_hf, neg_hf=n_hf, anchor_feats=tuple(a_f),
        pos_feats=tuple(p_f), neg_feats=tuple(n_f), taps=taps, sim_pos=sim_pos.double().numpy(),
        sim_neg=sim_neg.double().numpy(), loss_per_layer=per_layer.double().numpy(), loss=float(total),
    )


def render_pcl_samples(hr, sr_fn, embed_net, scale: int = 4, patch: int = 96, top: int | None = None,
                       left: int | None = None, sharpen: float = 3.0, blur_sigma: float = 2.0, blur_size: int = 7,
                       n_sharp: int = 3, n_blur: int = 3, rgb_range: float = 1.0) -> Figure:
    """The explorer's view (and its static form): :func:`pcl_sample_set` drawn by
    :func:`srlib.viz.plot_pcl_samples`.

    The sharpened positives use the factors ``spread(0.5, sharpen, n_sharp)`` and the blurred negatives the widths
    ``spread(0.1, blur_sigma, n_blur)`` (:func:`spread`: from the lower end of the official range to the given
    strongest value; the defaults give the official ranges' end points, f in {0.5, 1.75, 3} and sigma in {0.1,
    1.05, 2}), all blurs with a ``blur_size`` x ``blur_size`` kernel. Other arguments: see :func:`pcl_sample_set`.

    Returns:
        Figure of :func:`srlib.viz.plot_pcl_samples`; its title gives the scale, the patch and its position, and
        says when the anchor is the bicubic stand-in.

    Raises:
        ValueError: ``sharpen`` below 0.5 or ``blur_sigma`` below 0.1 with more than one copy (the spread would run
            backwards from the fixed first value), and what :func:`pcl_sample_set` rejects.
    """
    for name, value, first, n in (("sharpen f max", sharpen, PCL_SHARPEN_FIRST, n_sharp),
                                  ("blur σ max", blur_sigma, PCL_BLUR_FIRST, n_blur)):
        if n > 1 and not float(value) >= first:
            raise ValueError(f"{name} = {float(value):g} is below the first of the {n} values, which is fixed at "
                             f"{first:g} (the lower end of the official range): choose {first:g} or more")
    s = pcl_sample_set(hr, sr_fn, embed_net, scale=scale, top=top, left=left, patch=patch,
                       sharpen_factors=spread(PCL_SHARPEN_FIRST, sharpen, n_sharp),
                       blur_sigmas=spread(PCL_BLUR_FIRST, blur_sigma, n_blur),
                       blur_size=blur_size, rgb_range=rgb_range)
    anchor = "SR output" if s.anchor_is_sr else "bicubic upsampled LR as a stand-in (no SR model given)"
    title = (f"PCL-SR sample set, x{s.scale}, {s.patch}x{s.patch} patch at (top {s.top}, left {s.left}); "
             f"anchor: {anchor}; Haar bands of the [0, {s.rgb_range:g}] images")
    return viz.plot_pcl_samples(s.anchor * 255.0, s.positives * 255.0, s.negatives * 255.0, s.similarities,
                                s.loss_per_layer, labels=[s.anchor_label, *s.pos_labels, *s.neg_labels],
                                layer_names=s.layer_names, title=title)


def pcl_sample_explorer(hr, sr_fn, embed_net, scale: int = 4, patch: int = 96, interactive: bool | str | None = None,
                        sharpen: float = 3.0, blur_sigma: float = 2.0, blur_size: int = 7, n_sharp: int = 3,
                        n_blur: int = 3, rgb_range: float = 1.0):
    """Notebook 03's sample-set explorer: PCL-SR's positives and negatives for one patch, their Haar high
    frequencies and their similarity to the anchor in the embedding network (:func:`render_pcl_samples`).

    Controls (all with ``continuous_update=False``): ``sharpen`` (:data:`PCL_SHARPEN_FIRST`..3, the strongest sharpen
    factor; the ``n_sharp`` copies use ``spread(0.5, sharpen, n_sharp)``), ``blur_sigma`` (:data:`PCL_BLUR_FIRST`..4,
    the widest blur; the ``n_blur`` copies use ``spread(0.1, blur_sigma, n_blur)``), ``blur_size`` (kernel size,
    :data:`PCL_BLUR_SIZES`), ``top`` and ``left`` (patch position, pixels; they start at the centre). A callback error
    is shown in the status line and below it, and the widget keeps working; the status line gives the factors, the
    widths and the render time.

    Speed (one CPU core, 96 x 96 patch, the paper-size ``PCLDiscriminator()`` with taps 0, 2, 4, 6, 4 + 4 samples):
    the sample set with its features takes about 0.1 s and building the figure about 0.2 s; drawing it as PNG for
    display adds about 0.3-0.5 s. As a redraw takes longer than :data:`SLOW_REDRAW_S`, a burst of changes (arrow
    keys on a slider) is drawn once, :data:`DEBOUNCE_S` after the last.

    Args:
        hr, sr_fn, embed_net, scale, patch, rgb_range: see :func:`pcl_sample_set` (``sr_fn=None``: the bicubic
            stand-in anchor).
        interactive: see :func:`resolve_interactive` (None: the ``SRLIB_INTERACTIVE`` environment variable).
        sharpen, blur_sigma, blur_size: initial control values.
        n_sharp, n_blur: number of sharpened positives and blurred negatives (official: 3 each).

    Returns:
        Interactive: an explorer (as :func:`degradation_explorer`) with ``controls`` ``"sharpen"``, ``"blur_sigma"``,
        ``"blur_size"``, ``"top"``, ``"left"``. Headless: the static Figure of :func:`render_pcl_samples` for the
        initial values (centred patch).

    Raises:
        ValueError: a patch larger than the image or not a multiple of the scale (both modes); headless, any invalid
            value (interactive, those are shown in the status line).
    """
    params = {"scale": scale, "patch": patch, "sharpen": float(sharpen), "blur_sigma": float(blur_sigma),
              "blur_size": blur_size, "n_sharp": n_sharp, "n_blur": n_blur, "rgb_range": rgb_range}
    if not resolve_interactive(interactive):
        return render_pcl_samples(hr, sr_fn, embed_net, **params)
    h, w = _hr_tensor(hr).shape[-2:]
    _, _, top, left = _check_patch((h, w), scale, patch, None, None)

    import ipywidgets as wd

    style = {"description_width": "100px"}
    layout = wd.Layout(width="300px")

    def fslider(desc, value, lo, hi, step):
        return wd.FloatSlider(value=value, min=lo, max=hi, step=step, description=desc, continuous_update=False,
                              readout_format=".2f", style=style, layout=layout)

    def islider(desc, value, hi):
        return wd.IntSlider(value=value, min=0, max=hi, step=1, description=desc, continuous_update=False,
                            style=style, layout=layout)

    # the slider ranges start at the fixed first factor / width: a smaller maximum cannot be chosen
    controls = {
        "sharpen": fslider("sharpen f max", params["sharpen"], PCL_SHARPEN_FIRST, 3.0, 0.05),
        "blur_sigma": fslider("blur σ max", params["blur_sigma"], PCL_BLUR_FIRST, 4.0, 0.05),
        "blur_size": wd.Dropdown(options=sorted({*PCL_BLUR_SIZES, int(blur_size)}), value=int(blur_size),
                                 description="kernel size", style=style, layout=layout),
        "top": islider("patch top", top, h - patch),
        "left": islider("patch left", left, w - patch),
    }

    def draw_figure():
        values = {**params, **{name: c.value for name, c in controls.items()}}
        t0 = time.perf_counter()
        # looked up at call time, so a patched module-level render_pcl_samples is what the widget calls
        fig = render_pcl_samples(hr, sr_fn, embed_net, **values)
        factors = ", ".join(f"{f:.2f}" for f in spread(PCL_SHARPEN_FIRST, values["sharpen"], n_sharp))
        sigmas = ", ".join(f"{v:.2f}" for v in spread(PCL_BLUR_FIRST, values["blur_sigma"], n_blur))
        k = values["blur_size"]
        return fig, (f"sharpen f = {factors or '-'}; blur σ = {sigmas or '-'}, {k}x{k}; patch at "
                     f"({values['top']}, {values['left']}); computed in {time.perf_counter() - t0:.2f} s")

    rows = [wd.HBox([controls["sharpen"], controls["blur_sigma"], controls["blur_size"]]),
            wd.HBox([controls["top"], controls["left"]])]
    return _explorer(rows, controls, draw_figure)


# --------------------------------------------------------------------------------------------------------------------
# DASR / CDSR degradation-embedding explorer (notebook 04)
# --------------------------------------------------------------------------------------------------------------------

__all__ += ["BLIND_COLOURS", "degradation_embedding_explorer", "render_degradation_embedding", "varying_colours"]

#: Colourings of :func:`render_degradation_embedding` (columns of :attr:`srlib.embeddings.PatchEmbeddings.labels`).
BLIND_COLOURS = ("width", "angle", "noise", "width2")


def varying_colours(emb, candidates=("width", "angle", "noise")) -> list[str]:
    """Those of ``candidates`` that vary over the patches of ``emb`` (a noise-free model's noise, an isotropic
    model's angle do not); ``["width"]`` when none does."""
    out = [c for c in candidates if emb.labels[c].dropna().nunique() > 1]
    return out or ["width"]


def render_degradation_embedding(emb, layer: str = "fea", colour_by=None, title: str | None = None) -> Figure:
    """PCA of the degradation embeddings of many LR patches, coloured by what degraded each patch.

    Args:
        emb: :class:`srlib.embeddings.PatchEmbeddings` (:func:`srlib.methods.blind_sr.embeddings_by_model`).
        layer: one of ``emb.layers`` (DASR: ``fea``, ``q``; CDSR also ``fea_csc``, ``attn``).
        colour_by: one name of :data:`BLIND_COLOURS` or several (one panel each); None: those of width, angle and
            noise that vary over the patches (:func:`varying_colours`).
        title: figure title (default: the layer and the number of patches).

    Returns:
        Figure from :func:`srlib.viz.plot_embedding_values`.
    """
    from srlib import embeddings as E

    if colour_by is None:
        colour_by = varying_colours(emb)
    names = [colour_by] if isinstance(colour_by, str) else list(colour_by)
    bad = [c for c in names if c not in BLIND_COLOURS]
    if bad or not names:
        raise ValueError(f"colour_by must be among {BLIND_COLOURS}, got {bad or names}")
    if layer not in emb.vectors:
        raise ValueError(f"unknown layer {layer!r}; this model has {emb.layers}")
    coords, explained = E.pca_2d(emb.vectors[layer], return_explained=True)
    default = f"PCA of the degradation embedding '{layer}', {len(coords)} LR patches"
    return viz.plot_embedding_values(coords, {c: emb.labels[c].to_numpy() for c in names}, title=title or default,
                                     explained=explained)


def degradation_embedding_explorer(embeddings: dict, layer: str = "fea", colour_by: str = "width"):
    """Live PCA of DASR / CDSR degradation embeddings: choose the model, the colouring and the layer.

    Args:
        embeddings: {model label: :class:`srlib.embeddings.PatchEmbeddings`}.
        layer, colour_by: initial choices (the layer falls back to the model's first when it lacks it).

    Returns:
        An explorer (as :func:`degradation_explorer`) with ``controls`` ``"model"``, ``"colour"`` and ``"layer"``
        (``Dropdown``). Changing the model updates the layer choices; errors are shown in the status line and the
        widget keeps working.
    """
    import ipywidgets as w

    if not embeddings:
        raise ValueError("degradation_embedding_explorer needs at least one model")
    if colour_by not in BLIND_COLOURS:
        raise ValueError(f"colour_by must be one of {BLIND_COLOURS}, got {colour_by!r}")
    style = {"description_width": "70px"}
    first = next(iter(embeddings.values()))
    controls = {
        "model": w.Dropdown(options=list(embeddings), description="model", style=style,
                            layout=w.Layout(width="300px")),
        "colour": w.Dropdown(options=list(BLIND_COLOURS), value=colour_by, description="colour by", style=style,
                             layout=w.Layout(width="220px")),
        "layer": w.Dropdown(options=first.layers, value=layer if layer in first.layers else first.layers[0],
                            description="layer", style=style, layout=w.Layout(width="220px")),
    }

    def draw_figure():
        emb = embeddings[controls["model"].value]
        if list(controls["layer"].options) != emb.layers:  # another model: offer its layers, keep the choice if any
            keep = controls["layer"].value
            controls["layer"].options = emb.layers  # (changes made while drawing do not trigger a redraw)
            controls["layer"].value = keep if keep in emb.layers else emb.layers[0]
        layer = controls["layer"].value
        fig = render_degradation_embedding(emb, layer, controls["colour"].value,
                                           title=f"{controls['model'].value}: '{layer}'")
        dims = emb.vectors[layer].shape[1]
        return fig, (f"{len(emb.labels)} LR patches, one random training degradation each; layer '{layer}' has "
                     f"{dims} dimensions")

    return _explorer([w.HBox(list(controls.values()))], controls, draw_figure)
