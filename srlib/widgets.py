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

import html
import os
import traceback
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from srlib import degradation as D
from srlib import viz

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


def _finish(box, controls: dict, status, out, refresh):
    """Attach the parts a test or script needs (``controls``, ``status``, ``output``, ``refresh``), render once."""
    box.controls, box.status, box.output, box.refresh = controls, status, out, refresh
    refresh()
    return box


def degradation_explorer(hr, scale: int = 4, params: dict | None = None):
    """Live explorer of the degradation model: controls for every parameter and the figure of
    :func:`render_degradation` below them.

    Every control has ``continuous_update=False`` (the figure is redrawn when a slider is released). A callback
    error (e.g. an invalid parameter combination) is shown in the output area and in the status line instead of the
    figure; the widget keeps working.

    Args:
        hr: (H, W, 3) uint8 RGB image (see :func:`render_degradation`).
        scale: initial scale (2, 3 or 4).
        params: other initial parameters (see :data:`DEFAULT_PARAMS`); ``params["crop"]`` is fixed for the widget.

    Returns:
        ``ipywidgets.VBox`` [controls, status line, output]. For tests and scripting it also carries ``controls``
        (name -> widget), ``status`` (an ``HTML`` widget with the last description or error), ``output`` (the
        ``Output`` widget) and ``refresh()`` (redraw with the current values).
    """
    import ipywidgets as w
    from IPython.display import display

    p = _params({**(params or {}), "scale": scale})
    controls = _controls(p)
    out = w.Output()
    status = w.HTML()

    def current() -> dict[str, Any]:
        values = {name: c.value for name, c in controls.items()}
        values["crop"] = p["crop"]
        return values

    def refresh(change=None) -> None:
        values = current()
        kind = values["kernel"]
        controls["sigma"].disabled = kind != "iso"
        for name in ("l1", "l2", "theta"):
            controls[name].disabled = kind != "aniso"
        controls["seed"].disabled = values["noise"] == 0
        try:
            # looked up at call time, so a patched module-level render_degradation is what the widget calls
            fig = render_degradation(hr, values)
        except (D.DegradationError, ValueError) as e:
            status.value = f"<span style='color:#b00020'>{type(e).__name__}: {html.escape(str(e))}</span>"
            with out:
                out.clear_output(wait=True)
                print(f"{type(e).__name__}: {e}")
            return
        except Exception as e:  # a bug: show the traceback where the user looks, keep the widget alive
            status.value = f"<span style='color:#b00020'>{type(e).__name__}: {html.escape(str(e))}</span>"
            with out:
                out.clear_output(wait=True)
                print(traceback.format_exc())
            return
        try:
            status.value = html.escape(viz.describe(degradation_from_params(values)))
        except (D.DegradationError, ValueError):  # a patched renderer may accept what the model rejects
            status.value = ""
        with out:
            out.clear_output(wait=True)
            display(fig)

    for c in controls.values():
        c.observe(refresh, names="value")
    rows = [
        w.HBox([controls["kernel"], controls["scale"], controls["resize"]]),
        w.HBox([controls["sigma"], controls["noise"], controls["seed"]]),
        w.HBox([controls["l1"], controls["l2"], controls["theta"]]),
        w.HBox([controls["convention"]]),
    ]
    return _finish(w.VBox([*rows, status, out]), controls, status, out, refresh)


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
        ``ipywidgets.VBox`` [controls, status line, output]. For tests it also carries ``controls`` (``"images"``: a
        ``SelectMultiple``; ``"degradation"``, ``"layer"``, ``"colour"``, ``"locations"``: ``Dropdown``), ``status``,
        ``output`` and ``refresh()``. Every change calls :func:`render_embedding` (looked up at call time) with the
        new values; an error is shown in the status line and the output, and the widget keeps working.
    """
    import ipywidgets as w
    from IPython.display import display

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
        "layer": w.Dropdown(options=[(E.layer_name(x), x) for x in layers], value=layers[0], description="layer",
                            style=style, layout=w.Layout(width="220px")),
        "colour": w.Dropdown(options=list(COLOUR_BY), value="image", description="colour by",
                             style=style, layout=w.Layout(width="220px")),
        "locations": w.Dropdown(options=[("all" if n is None else str(n), n) for n in LOCATION_CHOICES],
                                value=n_locations if n_locations in LOCATION_CHOICES else LOCATION_CHOICES[2],
                                description="locations", style=style, layout=w.Layout(width="220px")),
    }
    out = w.Output()
    status = w.HTML()

    def refresh(change=None) -> None:
        chosen = controls["degradation"].value
        names = list(degradations) if chosen == ALL_DEGRADATIONS else [chosen]
        selected = {n: images[n] for n in controls["images"].value}
        try:
            fig = render_embedding(model, selected, names, controls["layer"].value, degradations, seed=seed,
                                   n_locations=controls["locations"].value, colour_by=controls["colour"].value)
        except Exception as e:  # shown where the user looks; the widget keeps working
            status.value = f"<span style='color:#b00020'>{type(e).__name__}: {html.escape(str(e))}</span>"
            with out:
                out.clear_output(wait=True)
                print(traceback.format_exc() if not isinstance(e, ValueError) else f"{type(e).__name__}: {e}")
            return
        status.value = html.escape(f"{len(selected)} image(s) x {len(names)} degradation(s), "
                                   f"layer {E.layer_name(controls['layer'].value)}")
        with out:
            out.clear_output(wait=True)
            display(fig)

    for c in controls.values():
        c.observe(refresh, names="value")
    box = w.VBox([w.HBox([controls["images"], w.VBox([controls["degradation"], controls["layer"]]),
                          w.VBox([controls["colour"], controls["locations"]])]), status, out])
    return _finish(box, controls, status, out, refresh)
