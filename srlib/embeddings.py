"""What CRL-SR's encoders learn: features, projected embeddings, similarities and 2-D projections (compute only).

CRL-SR's contrastive decoupling encoding (CDE; Sec. 3.3; **our reconstruction**, DESIGN.md "CRL-SR" and
:mod:`srlib.losses.contrastive`) trains E_l on the bicubic-upsampled LR and E_h on the HR so that, after a 2-layer
MLP and L2 normalisation, the vectors at the *same* location of the two maps match and those at *other* locations
do not. This module measures that on test crops, with no gradient and no plotting (figures:
:mod:`srlib.viz`; widget: :func:`srlib.widgets.embedding_explorer`):

* :func:`encoder_features`: the feature map of an :class:`srlib.archs.crl_sr.Encoder` after one of its residual
  blocks (a forward hook, removed afterwards), or its output.
* :func:`project_map`: every location of a map through a projection head (or just L2-normalised).
* :func:`location_similarity`: mean cosine at the same vs other locations (the trainer's ``_sim_match`` /
  ``_sim_other`` diagnostics, here on whole test maps).
* :func:`similarity_matrix`: mean cosine between corresponding locations of N maps (how alike two images' features
  are, location by location).
* :func:`pca_2d`: deterministic 2-D PCA.
* :func:`cde_embeddings`: for HR crops x degradations, the per-location vectors of E_l(bicubic-upsampled LR) and
  E_h(HR) with tidy labels (:class:`CDEEmbeddings`); :func:`invariance_table` summarises their similarities.

Layers of an encoder (``layer``): ``0`` is the head (the conv3x3 after the pixel-unshuffle), ``k`` in
``1..n_blocks`` the output of residual block k, ``None`` the encoder output (after the last conv3x3 and the long
skip), which is the map the CDE loss and the projection heads see.

Images: HR crops are (H, W, 3) uint8 RGB arrays; the networks see (B, 3, H, W) float tensors in [0, 1].
Everything runs on the model's device under ``torch.inference_mode``; the only randomness (noise of the LR images,
the choice of locations) comes from generators seeded with ``seed``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from srlib import data as sdata
from srlib.degradation import ANISO9, AnisoGaussian, Degradation, IsoGaussian
from srlib.imgutil import img2tensor, modcrop, tensor2img

__all__ = [
    "CDEEmbeddings",
    "cde_embeddings",
    "encoder_features",
    "invariance_table",
    "layer_name",
    "location_similarity",
    "pca_2d",
    "probe_degradations",
    "probe_images",
    "project_map",
    "similarity_matrix",
]


# --------------------------------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------------------------------


def _n_blocks(encoder: nn.Module) -> int:
    body = getattr(encoder, "body", None)
    if not isinstance(body, nn.Sequential) or not hasattr(encoder, "head"):
        raise TypeError(f"expected an srlib.archs.crl_sr.Encoder (head + body), got {type(encoder).__name__}")
    return len(body) - 1  # residual blocks, then one conv3x3


def layer_name(layer: int | None) -> str:
    """Readable name of an encoder layer: ``"output"``, ``"head"`` or ``"block k"``."""
    if layer is None:
        return "output"
    return "head" if layer == 0 else f"block {layer}"


def encoder_features(encoder: nn.Module, x: torch.Tensor, layer: int | None = None) -> torch.Tensor:
    """Feature map of a CRL-SR encoder at one layer.

    The map is captured with a forward hook on the layer's module; the hook is removed afterwards, also when the
    forward pass fails. No gradient is recorded (``torch.inference_mode``).

    Args:
        encoder: an :class:`srlib.archs.crl_sr.Encoder` (E_l, E_h or E_F).
        x: (B, 3, H, W) float images in [0, 1], H and W multiples of ``encoder.scale``, on the encoder's device.
        layer: ``None`` = the encoder output; ``0`` = the head conv after the pixel-unshuffle; ``k`` in
            ``1..n_blocks`` = after residual block k.

    Returns:
        (B, C, H / s, W / s) float tensor (any range), on the LR grid: location (i, j) comes from HR pixels
        s*i..s*i+s-1, s*j..s*j+s-1.
    """
    n = _n_blocks(encoder)
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, (int, np.integer))
                              or not 0 <= layer <= n):
        raise ValueError(f"layer must be None (output), 0 (head) or a residual block 1..{n}, got {layer!r}")
    if layer is None:
        with torch.inference_mode():
            return encoder(x)
    module = encoder.head if layer == 0 else encoder.body[int(layer) - 1]
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        captured.append(output)

    handle = module.register_forward_hook(hook)
    try:
        with torch.inference_mode():
            encoder(x)
    finally:
        handle.remove()
    return captured[-1]


def project_map(head: nn.Module | None, feat: torch.Tensor) -> torch.Tensor:
    """Every location of a feature map as one unit vector.

    Args:
        head: a projection head ((..., C) -> (..., S), L2-normalised; e.g. ``CRLSR.proj_l``), or ``None`` for the
            raw features, L2-normalised per location (S = C).
        feat: (B, C, h, w) feature map.

    Returns:
        (B, h * w, S) float tensor of unit vectors; row ``y * w + x`` is location (y, x).
    """
    if feat.ndim != 4:
        raise ValueError(f"expected a (B, C, h, w) feature map, got shape {tuple(feat.shape)}")
    v = feat.flatten(2).transpose(1, 2)
    with torch.inference_mode():
        return F.normalize(v if head is None else head(v), dim=-1)


# --------------------------------------------------------------------------------------------------------------------
# Similarities and PCA
# --------------------------------------------------------------------------------------------------------------------


def _as_batch(f, name: str) -> torch.Tensor:
    t = f.detach().cpu().double() if isinstance(f, torch.Tensor) else torch.as_tensor(np.asarray(f)).double()
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise ValueError(f"{name}: expected (M, S) or (B, M, S) vectors, got shape {tuple(t.shape)}")
    return F.normalize(t, dim=-1)


def location_similarity(fa, fb) -> dict[str, float]:
    """Mean cosine between the vectors of two maps at the same location and at other locations.

    As the trainer's CDE diagnostics ``_sim_match`` / ``_sim_other``: with ``sim[b, i, j] = fa[b, i] . fb[b, j]``,
    ``match`` is the mean of the diagonals (i = j) and ``other`` the mean of the off-diagonal entries (i != j) of
    the same image. A contrastive loss that works raises ``match`` and lowers ``other``.

    Args:
        fa, fb: (B, M, S) or (M, S) tensors/arrays of one shape, M >= 2; vectors are L2-normalised here (unit
            vectors pass unchanged).

    Returns:
        ``{"match": float, "other": float}``, both in [-1, 1].
    """
    a, b = _as_batch(fa, "fa"), _as_batch(fb, "fb")
    if a.shape != b.shape or a.shape[1] < 2:
        raise ValueError(f"need two (B, M, S) tensors of one shape with M >= 2, got {tuple(a.shape)}, "
                         f"{tuple(b.shape)}")
    sim = a @ b.transpose(1, 2)
    m = sim.shape[-1]
    diag = sim.diagonal(dim1=1, dim2=2)
    other = (sim.sum() - diag.sum()) / (sim.numel() - sim.shape[0] * m)
    return {"match": float(diag.mean()), "other": float(other)}


def similarity_matrix(feats: Sequence) -> np.ndarray:
    """Mean cosine between corresponding locations of N maps: ``mat[i, j] = mean_m cos(f_i[m], f_j[m])``.

    Args:
        feats: N (M, S) tensors/arrays (the same M locations in each, e.g. :attr:`CDEEmbeddings.vectors`);
            vectors are L2-normalised here.

    Returns:
        (N, N) float64 array, symmetric, in [-1, 1], ones on the diagonal (for nonzero vectors).
    """
    feats = list(feats)
    if not feats:
        raise ValueError("similarity_matrix: got no maps")
    bad = [tuple(np.shape(f)) for f in feats if len(np.shape(f)) != 2]
    if bad or len({tuple(np.shape(f)) for f in feats}) != 1:
        raise ValueError(f"similarity_matrix: expected N (M, S) maps of one shape, got shapes "
                         f"{sorted({tuple(np.shape(f)) for f in feats})}")
    x = torch.cat([_as_batch(f, "feats") for f in feats])  # (N, M, S) unit vectors
    mat = torch.einsum("ims,jms->ij", x, x) / x.shape[1]
    return ((mat + mat.T) / 2).numpy()


def pca_2d(x, return_explained: bool = False):
    """Project points on their first two principal components, deterministically.

    The data are centred and decomposed with an SVD in float64; each component's sign is fixed so that its
    largest-magnitude loading is positive, so the same data always give the same picture.

    Args:
        x: (N, D) array or tensor, N >= 2.
        return_explained: also return the fraction of the total variance each component explains.

    Returns:
        (N, 2) float64 coordinates (column k = component k; a rank-1 input gives zeros in column 1), and with
        ``return_explained`` a (2,) array of variance fractions in [0, 1].
    """
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"pca_2d: expected (N, D) points with N >= 2, got shape {a.shape}")
    a = a - a.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(a, full_matrices=False)
    k = min(2, vt.shape[0])
    comps = vt[:k]
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
    comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
    coords = np.zeros((a.shape[0], 2))
    coords[:, :k] = a @ comps.T
    if not return_explained:
        return coords
    var = s**2
    explained = np.zeros(2)
    explained[:k] = var[:k] / var.sum() if var.sum() > 0 else 0.0
    return coords, explained


# --------------------------------------------------------------------------------------------------------------------
# Probe inputs
# --------------------------------------------------------------------------------------------------------------------


def probe_degradations(scale: int) -> dict[str, Degradation]:
    """The four degradations of notebook 01's analysis: bicubic only, isotropic σ = 2.0, isotropic σ = 3.6 with noise
    15, and an anisotropic kernel of the nine test kernels (``ANISO9[3]``: l1 = 3.5, l2 = 2.0, θ = 45°).

    Returns:
        name -> :class:`srlib.degradation.Degradation` at ``scale`` (names are short labels for plots).
    """
    l1, l2, theta = ANISO9[3]
    return {
        "bicubic": Degradation(scale),
        "iso 2.0": Degradation(scale, IsoGaussian(2.0)),
        "iso 3.6 + n15": Degradation(scale, IsoGaussian(3.6), 15.0),
        f"aniso {l1:g}/{l2:g}/{theta:g}°": Degradation(scale, AnisoGaussian(l1, l2, theta)),
    }


def probe_images(set_names: Sequence[str], data_root: str | os.PathLike | None = None, n_images: int = 4,
                 size: int = 96, multiple: int = 1) -> tuple[str, dict[str, np.ndarray]]:
    """Central crops of the first test images: the first of ``set_names`` found under the data root, else the
    embedded test set (scikit-image, no download).

    Args:
        set_names: candidate test sets in order of preference (e.g. ``profile.eval_sets``).
        data_root: data root (``None``: ``SRLIB_DATA``).
        n_images: the first ``n_images`` images in sorted order.
        size: side of the central crop in HR pixels (smaller images keep their side).
        multiple: crop both sides to a multiple of this (the scale).

    Returns:
        (set name, {stem: (size, size, 3) uint8 RGB crop}); all crops have one size (the smallest side found).
    """
    names = sdata.available_sets(list(set_names), data_root) or ["embedded-test"]
    image_set = sdata.open_set(names[0], data_root)
    records = [image_set.load(s) for s in image_set.stems[:n_images]]
    side = min(size, *(min(r.image.shape[:2]) for r in records))
    side -= side % multiple
    if side < multiple or side < 1:
        raise ValueError(f"probe_images: the images of {names[0]} are too small for a crop of {size} px")
    crops = {}
    for r in records:
        h, w = r.image.shape[:2]
        top, left = (h - side) // 2, (w - side) // 2
        crops[r.stem] = np.ascontiguousarray(r.image[top : top + side, left : left + side])
    return names[0], crops


# --------------------------------------------------------------------------------------------------------------------
# CDE embeddings of test crops
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CDEEmbeddings:
    """Per-location vectors of E_l(upsampled LR) and E_h(HR) for a set of HR crops and degradations.

    Entry n (one feature map) is image ``image[n]`` either degraded by ``degradation[n]`` and seen by E_l
    (``domain[n] == "LR"``) or the HR crop seen by E_h (``domain[n] == "HR"``, ``degradation[n] == "HR"``). Entries
    are ordered image by image: the LR entries in the order of the degradations, then the HR entry.

    Attributes:
        vectors: (N, M, D) float32 unit vectors at the same M locations of every map.
        image, degradation, domain: N labels each.
        locations: (M,) flat indices ``y * w + x`` into the (h, w) grid.
        grid: (h, w), the LR-resolution feature grid.
        layer: the encoder layer (see :func:`encoder_features`).
        projected: whether the vectors went through ``proj_l`` / ``proj_h`` (else raw features, normalised).
        inputs: N uint8 images the encoders saw before upsampling: the LR (h, w, 3) or the HR (H, W, 3).
    """

    vectors: np.ndarray
    image: list[str]
    degradation: list[str]
    domain: list[str]
    locations: np.ndarray
    grid: tuple[int, int]
    layer: int | None
    projected: bool
    inputs: list[np.ndarray] = field(repr=False)

    def __len__(self) -> int:
        return len(self.image)

    @property
    def feature_label(self) -> str:
        """What the vectors are, for titles: e.g. ``"projected (proj_l / proj_h, S=64)"``."""
        if self.projected:
            return f"projected (proj_l / proj_h, S={self.vectors.shape[-1]})"
        return f"raw features at {layer_name(self.layer)}, L2-normalised per location (C={self.vectors.shape[-1]})"

    def entries(self, domain: str | None = None) -> list[int]:
        """Indices of the entries of one domain (``"LR"`` / ``"HR"``), or all."""
        return [i for i, d in enumerate(self.domain) if domain is None or d == domain]

    def labels(self, indices: Sequence[int] | None = None) -> list[str]:
        """``"image / degradation"`` labels of the entries (all by default)."""
        idx = range(len(self)) if indices is None else indices
        return [f"{self.image[i]} / {self.degradation[i]}" for i in idx]

    def similarity(self, domain: str | None = "LR") -> np.ndarray:
        """:func:`similarity_matrix` of the entries of one domain (default the LR entries, E_l), in entry order."""
        return similarity_matrix([self.vectors[i] for i in self.entries(domain)])

    def points(self, indices: Sequence[int] | None = None) -> tuple[np.ndarray, dict[str, list[str]]]:
        """Every (entry, location) vector as one point, with its labels.

        Returns:
            ((P, D) array with P = len(indices) * M, entry-major; {"image", "degradation", "domain", "location": P
            labels}), a location labelled ``"(y, x)"`` on the feature grid.
        """
        idx = list(range(len(self))) if indices is None else list(indices)
        m = self.vectors.shape[1]
        x = self.vectors[idx].reshape(len(idx) * m, -1)
        labels = {k: [getattr(self, k)[i] for i in idx for _ in range(m)] for k in ("image", "degradation", "domain")}
        w = self.grid[1]
        labels["location"] = [f"({int(j) // w}, {int(j) % w})" for _ in idx for j in self.locations]
        return x, labels


def _as_named(items, what: str) -> dict:
    if isinstance(items, Mapping):
        return dict(items)
    items = list(items)
    if what == "degradations":
        return {d.setting: d for d in items}
    return {str(i): v for i, v in enumerate(items)}


def _has_heads(model) -> bool:
    return all(hasattr(model, a) for a in ("encoder_h", "proj_l", "proj_h"))


def cde_embeddings(model: nn.Module, hr_images, degradations, seed: int = 0, layer: int | None = None,
                   project: bool | None = None, n_locations: int | None = None) -> CDEEmbeddings:
    """Embed HR crops (through E_h) and their degraded LR images (through E_l) location by location.

    For every image and degradation the LR is made with a generator seeded from ``(seed, image, degradation)``
    (so an image's LR does not depend on which other images are embedded), bicubic-upsampled as the model does
    (``model.upsample``) and passed through ``model.encoder_l``; the HR crop goes through ``model.encoder_h`` when
    the model has one (CDE variants; the baseline has only E_l, so it gives LR entries only).

    Args:
        model: a :class:`srlib.archs.crl_sr.CRLSR` (any variant; its mode is left as it is).
        hr_images: {name: (H, W, 3) uint8 HR crop} (or a sequence, named "0", "1", ...); all of one size, cropped
            here to a multiple of the scale.
        degradations: {name: :class:`srlib.degradation.Degradation` at the model's scale} (or a sequence, named by
            their ``setting``).
        seed: seeds the LR noise and the choice of locations.
        layer: encoder layer (see :func:`encoder_features`).
        project: map the vectors with ``proj_l`` / ``proj_h`` (the space the CDE loss compares in); ``None`` = when
            the model has projection heads and ``layer`` is None. The heads were trained on encoder outputs only,
            so ``project=True`` needs ``layer=None``. Otherwise the raw features are L2-normalised per location.
        n_locations: keep this many locations (the same, drawn with a generator seeded by ``seed``, sorted) for
            every map; ``None`` keeps all h*w.

    Returns:
        :class:`CDEEmbeddings`; N = n_images * (n_degradations + 1) entries with E_h, n_images * n_degradations
        without.
    """
    images = _as_named(hr_images, "images")
    degs = _as_named(degradations, "degradations")
    if not images or not degs:
        raise ValueError("cde_embeddings needs at least one image and one degradation")
    s = int(model.scale)
    bad = [n for n, d in degs.items() if d.scale != s]
    if bad:
        raise ValueError(f"degradations {bad} are not at the model's scale x{s}")
    heads = _has_heads(model)
    if project is None:
        project = heads and layer is None
    if project and (not heads or layer is not None):
        raise ValueError("project=True needs a CDE model (proj_l, proj_h) and layer=None (the heads map encoder "
                         "outputs)")
    crops = {n: modcrop(np.asarray(v), s) for n, v in images.items()}
    shapes = {c.shape for c in crops.values()}
    if len(shapes) != 1 or any(c.dtype != np.uint8 or c.ndim != 3 or c.shape[2] != 3 for c in crops.values()):
        raise ValueError(f"cde_embeddings: HR crops must be (H, W, 3) uint8 of one size, got "
                         f"{ {n: (c.dtype.name, c.shape) for n, c in crops.items()} }")
    device = next(model.parameters()).device
    hr_shape = shapes.pop()
    h, w = hr_shape[0] // s, hr_shape[1] // s
    if n_locations is None or n_locations >= h * w:
        loc = torch.arange(h * w)
    else:
        if n_locations < 1:
            raise ValueError(f"n_locations must be >= 1 or None, got {n_locations}")
        loc = torch.randperm(h * w, generator=torch.Generator().manual_seed(int(seed)))[:n_locations].sort().values
    # entries in output order: per image its LR maps (one per degradation), then its HR map
    entries: list[tuple[str, str, str]] = []  # (image, degradation, domain)
    lrs, hrs, inputs = [], [], []
    for name, crop in crops.items():
        hr = img2tensor(crop)[None]  # (1, 3, H, W) on 0..255
        for dname, deg in degs.items():
            g = torch.Generator().manual_seed(sdata.image_seed(seed, f"{name}/{deg.name}"))
            lr = deg.apply(hr, generator=g)
            entries.append((name, dname, "LR"))
            lrs.append(lr)
            inputs.append(tensor2img(lr[0]))
        if heads:
            entries.append((name, "HR", "HR"))
            hrs.append(hr)
            inputs.append(crop)
    # one batched pass per encoder (many small passes are slow on a busy CPU)
    feat_l = encoder_features(model.encoder_l, model.upsample(torch.cat(lrs).to(device) / 255.0), layer)
    v_l = project_map(model.proj_l if project else None, feat_l)[:, loc.to(device)].float().cpu().numpy()
    v_h = None
    if heads:
        feat_h = encoder_features(model.encoder_h, torch.cat(hrs).to(device) / 255.0, layer)
        v_h = project_map(model.proj_h if project else None, feat_h)[:, loc.to(device)].float().cpu().numpy()
    vectors, i_l, i_h = [], 0, 0
    for _, _, dom in entries:
        if dom == "LR":
            vectors.append(v_l[i_l])
            i_l += 1
        else:
            vectors.append(v_h[i_h])
            i_h += 1
    image, degradation, domain = (list(x) for x in zip(*entries, strict=True))
    return CDEEmbeddings(np.stack(vectors), image, degradation, domain, loc.numpy(), (h, w), layer, bool(project),
                         inputs)


def invariance_table(embeddings: Mapping[str, CDEEmbeddings]) -> pd.DataFrame:
    """How alike the LR features of one image under different degradations are, against those of other images.

    For every model, all pairs of LR entries (E_l maps) are split into ``same image, different degradation`` and
    ``different image`` (any degradations), and :func:`similarity_matrix`'s cosine (mean over corresponding
    locations) is averaged within each type. A degradation-invariant encoder has a high first value and a gap to
    the second.

    Args:
        embeddings: {model label: :class:`CDEEmbeddings`}; for seeds, pass ``{label: [emb_seed0, emb_seed1, ...]}``
            (a list per label) and each row averages the seeds.

    Returns:
        tidy DataFrame, one row per (model, pair type): ``model, features, pair_type, mean_cosine, std`` (over
        seeds; NaN for one seed), ``n_seeds, n_pairs`` (pairs per seed).
    """
    rows = []
    for model, embs in embeddings.items():
        embs = embs if isinstance(embs, (list, tuple)) else [embs]
        per_type: dict[str, list[float]] = {}
        counts: dict[str, int] = {}
        for emb in embs:
            idx = emb.entries("LR")
            mat = emb.similarity("LR")
            groups: dict[str, list[float]] = {"same image, different degradation": [], "different image": []}
            for a, b in itertools.combinations(range(len(idx)), 2):
                same = emb.image[idx[a]] == emb.image[idx[b]]
                groups["same image, different degradation" if same else "different image"].append(mat[a, b])
            for k, vals in groups.items():
                if vals:
                    per_type.setdefault(k, []).append(float(np.mean(vals)))
                    counts[k] = len(vals)
        for k, means in per_type.items():
            rows.append({
                "model": model,
                "features": embs[0].feature_label,
                "pair_type": k,
                "mean_cosine": float(np.mean(means)),
                "std": float(np.std(means, ddof=1)) if len(means) > 1 else float("nan"),
                "n_seeds": len(means),
                "n_pairs": counts[k],
            })
    return pd.DataFrame(rows, columns=["model", "features", "pair_type", "mean_cosine", "std", "n_seeds", "n_pairs"])


# --------------------------------------------------------------------------------------------------------------------
# DASR / CDSR: degradation embeddings of LR patches (notebook 04)
# --------------------------------------------------------------------------------------------------------------------

__all__ += ["ControlledAccuracy", "PatchEmbeddings", "content_controlled_accuracy", "degradation_patches",
            "degradation_values", "nn_accuracy", "patch_embeddings"]


def nn_accuracy(vectors, labels) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy by cosine similarity (CDSR Table 1's "Acc", our definition).

    Every point's nearest neighbour is the *other* point with the largest cosine similarity to it (ties: the lowest
    index); the accuracy is the fraction of points whose nearest neighbour carries the same label. Points of a
    perfectly clustered embedding score 1; for N equally frequent labels and an embedding that ignores them the
    expectation is (n - 1) / (P - 1) ~ 1 / N (n points per label, P in all).

    Args:
        vectors: (P, D) array or tensor, P >= 2 (zero vectors are compared as they are: cosine 0 to everything).
        labels: P hashable labels (e.g. the degradation of each patch).

    Returns:
        accuracy in [0, 1].
    """
    x, y = _unit_vectors_and_codes(vectors, labels, "nn_accuracy")
    hits, _ = _cross_group_nn(x, y, torch.arange(x.shape[0]))  # each point its own group: leave only itself out
    return hits / x.shape[0]


def _unit_vectors_and_codes(vectors, labels, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, D) vectors L2-normalised in float64 and the labels' integer codes (P,), after checking the shapes."""
    x = torch.as_tensor(np.asarray(vectors.detach().cpu() if isinstance(vectors, torch.Tensor) else vectors),
                        dtype=torch.float64)
    lab = list(labels)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name}: expected (P, D) vectors with P >= 2, got shape {tuple(x.shape)}")
    if len(lab) != x.shape[0]:
        raise ValueError(f"{name}: {x.shape[0]} vectors but {len(lab)} labels")
    return F.normalize(x, dim=1), torch.tensor(_codes(lab))


def _cross_group_nn(x: torch.Tensor, y: torch.Tensor, group: torch.Tensor) -> tuple[int, float]:
    """Nearest neighbours by cosine among the points of *other* groups: (hits, chance summed over points).

    Args:
        x: (P, D) unit vectors; y: (P,) label codes; group: (P,) group codes (a point's own group is never a candidate).

    Returns:
        the number of points whose most similar candidate (ties: the lowest index) shares their label, and the sum over
        points of the fraction of their candidates that share it.
    """
    hits, chance = 0, 0.0
    for start in range(0, x.shape[0], 1024):  # blocks keep the memory at 1024 x P
        rows = slice(start, start + 1024)
        own = group[rows, None] == group[None, :]  # (b, P): same group (the point itself included)
        sim = (x[rows] @ x.T).masked_fill(own, -torch.inf)
        hits += int((y[sim.argmax(dim=1)] == y[rows]).sum())
        same = (y[rows, None] == y[None, :]) & ~own
        chance += float((same.sum(dim=1) / (~own).sum(dim=1)).sum())
    return hits, chance


class ControlledAccuracy(NamedTuple):
    """Result of :func:`content_controlled_accuracy`: ``accuracy`` of the cross-image nearest neighbour, ``chance``
    the accuracy of a neighbour drawn uniformly from the same candidates, ``n`` the points scored."""

    accuracy: float
    chance: float
    n: int


def content_controlled_accuracy(vectors, labels, images) -> ControlledAccuracy:
    """1-nearest-neighbour accuracy by cosine similarity where a point's neighbour comes from *another image* (ours).

    :func:`nn_accuracy` lets a patch's nearest neighbour be another patch of its own image, which, under DASR's
    sampling (:func:`degradation_patches`), may carry the same degradation: an encoder that recognises image content
    scores there without seeing the degradation. Here every point's candidates are the points of the *other*
    images only, so matching content cannot help: the accuracy is the fraction of points whose most cosine-similar
    candidate carries the same label (ties: the lowest index). ``chance`` is the expected accuracy of a candidate
    drawn uniformly at random: the mean over points of the fraction of their candidates that share their label (0.5
    for two labels equally frequent in every image).

    Args:
        vectors: (P, D) array or tensor of embeddings.
        labels: P hashable labels (e.g. the degradation's ``setting`` or its blur ``width``).
        images: P hashable image names; points with no candidate (a single image) are an error.

    Returns:
        :class:`ControlledAccuracy` ``(accuracy, chance, n)`` with ``n = P``.
    """
    x, y = _unit_vectors_and_codes(vectors, labels, "content_controlled_accuracy")
    img = list(images)
    if len(img) != x.shape[0]:
        raise ValueError(f"content_controlled_accuracy: {x.shape[0]} vectors but {len(img)} images")
    if len(set(img)) < 2:
        raise ValueError("content_controlled_accuracy: needs points of at least two images")
    hits, chance = _cross_group_nn(x, y, torch.tensor(_codes(img)))
    return ControlledAccuracy(hits / x.shape[0], chance / x.shape[0], int(x.shape[0]))


def _codes(values: list) -> list[int]:
    """Integer codes of hashable values, in order of first appearance."""
    codes = {v: i for i, v in enumerate(dict.fromkeys(values))}
    return [codes[v] for v in values]


def degradation_values(degradation: Degradation) -> dict[str, float]:
    """Numbers to colour a degradation by: ``width`` and ``width2``, the standard deviations (pixels) of the blur
    along its wider and narrower axis (0 without blur; CDSR's variances are converted), ``angle`` (degrees, NaN for
    isotropic blur) and ``noise`` (0..255 scale)."""
    k = degradation.kernel
    if k is None:
        w1 = w2 = 0.0
        angle = float("nan")
    elif isinstance(k, IsoGaussian):
        w1 = w2 = float(k.sigma)
        angle = float("nan")
    elif isinstance(k, AnisoGaussian):
        a, b = (float(k.l1), float(k.l2))
        if degradation.convention == "cdsr":
            a, b = a**0.5, b**0.5
        w1, w2 = max(a, b), min(a, b)
        angle = float(k.theta) % 180.0
    else:
        raise ValueError(f"degradation_values: spatially variant blur {k!r} has no single width")
    return {"width": w1, "width2": w2, "angle": angle, "noise": float(degradation.noise)}


def degradation_patches(hr_images, degradations, patches_per_image: int, lr_patch: int, seed: int = 0):
    """LR patches of held-out images, each under a known degradation.

    For every image and every degradation, ``patches_per_image`` HR patches of ``lr_patch * scale`` pixels are cut
    at positions drawn from ``torch.Generator().manual_seed(seed)`` (independently for every (image, degradation),
    so the degradation is not tied to a content) and degraded as training patches are (blur with reflect padding on
    the patch, downsample, noise, round). Pass ``degradations`` as a :class:`srlib.degradation.DegradationSpace`
    instead to give every patch its own random degradation (``patches_per_image`` per image).

    Args:
        hr_images: {name: (H, W, 3) uint8} or a sequence of them; each at least ``lr_patch * scale`` per side.
        degradations: a sequence (or {name: ...}) of :class:`Degradation` sharing scale, resize mode and
            convention (e.g. a preset), or a ``DegradationSpace`` (one random degradation per patch).
        patches_per_image: patches per (image, degradation), or per image for a ``DegradationSpace``.
        lr_patch: LR patch side.
        seed: the only source of randomness.

    Returns:
        (lr, degs, image): lr (P, 3, lr_patch, lr_patch) float32 in [0, 1]; degs the P degradations; image the P
        image names.
    """
    from srlib.degradation import DegradationSpace, apply_batch

    images = _as_named(hr_images, "images")
    if not images:
        raise ValueError("degradation_patches: no image")
    if not isinstance(patches_per_image, int) or patches_per_image < 1:
        raise ValueError(f"patches_per_image must be a positive integer, got {patches_per_image!r}")
    g = torch.Generator().manual_seed(int(seed))
    space = degradations if isinstance(degradations, DegradationSpace) else None
    degs = None if space else list(_as_named(degradations, "degradations").values())
    if degs is not None and not degs:
        raise ValueError("degradation_patches: no degradation")
    scale = space.scale if space else degs[0].scale
    if degs is not None and any(d.scale != scale for d in degs):
        raise ValueError("degradation_patches: the degradations must share one scale")
    p = lr_patch * scale
    hr_patches, out_degs, names = [], [], []
    for name, img in images.items():
        img = np.asarray(img)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"degradation_patches: image {name!r} must be (H, W, 3) uint8, got {img.dtype} "
                             f"{img.shape}")
        h, w = img.shape[:2]
        if h < p or w < p:
            raise ValueError(f"degradation_patches: image {name!r} is {h}x{w}, smaller than the HR patch {p}x{p}")
        t = img2tensor(img)
        per_image = space.sample_batch(patches_per_image, g) if space else degs
        n = patches_per_image if space else patches_per_image * len(degs)
        tops = torch.randint(h - p + 1, (n,), generator=g).tolist()
        lefts = torch.randint(w - p + 1, (n,), generator=g).tolist()
        for k in range(n):
            hr_patches.append(t[:, tops[k] : tops[k] + p, lefts[k] : lefts[k] + p])
            out_degs.append(per_image[k] if space else per_image[k // patches_per_image])
            names.append(name)
    hr = torch.stack(hr_patches)
    lr = torch.cat([apply_batch(hr[i : i + 256], out_degs[i : i + 256], g) for i in range(0, len(hr), 256)])
    return lr / 255.0, out_degs, names


@dataclass(frozen=True)
class PatchEmbeddings:
    """Degradation embeddings of many LR patches (DASR's / CDSR's encoder), with what each patch shows.

    Attributes:
        vectors: {layer: (P, D) float32}: the keys of the model's ``embed`` (DASR: ``fea`` the pooled encoder
            output the SR network consumes, ``q`` the unit-norm MoCo projection; CDSR also ``fea_csc`` after the
            codebook and ``attn`` the codebook attention).
        labels: DataFrame, one row per patch: ``image``, ``degradation`` (its ``setting``), ``width``, ``width2``,
            ``angle``, ``noise`` (:func:`degradation_values`).
    """

    vectors: dict
    labels: pd.DataFrame

    @property
    def layers(self) -> list[str]:
        return list(self.vectors)

    def accuracy(self, layer: str = "fea", by: str = "degradation") -> float:
        """:func:`nn_accuracy` of one layer's vectors against the label column ``by``."""
        return nn_accuracy(self.vectors[layer], self.labels[by])

    def controlled_accuracy(self, layer: str = "fea", by: str = "degradation") -> ControlledAccuracy:
        """:func:`content_controlled_accuracy` of one layer's vectors against the label column ``by`` (neighbours
        from other images only)."""
        return content_controlled_accuracy(self.vectors[layer], self.labels[by], self.labels["image"])


def patch_embeddings(model: nn.Module, lr: torch.Tensor, degradations, images, batch_size: int = 256
                     ) -> PatchEmbeddings:
    """Run ``model.embed`` (a DASR or CDSR, in eval mode) over LR patches (from :func:`degradation_patches`).

    Args:
        model: :class:`srlib.archs.DASR` or :class:`srlib.archs.cdsr.CDSR`.
        lr: (P, 3, h, w) in [0, 1]; degradations, images: P labels each.

    Returns:
        :class:`PatchEmbeddings` (vectors on the CPU).
    """
    if len(degradations) != lr.shape[0] or len(images) != lr.shape[0]:
        raise ValueError(f"patch_embeddings: {lr.shape[0]} patches, {len(degradations)} degradations, "
                         f"{len(images)} image names")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    try:
        with torch.inference_mode():
            for i in range(0, lr.shape[0], batch_size):
                for k, v in model.embed(lr[i : i + batch_size].to(device)).items():
                    parts.setdefault(k, []).append(v.float().cpu())
    finally:
        model.train(was_training)
    vectors = {k: torch.cat(v).numpy() for k, v in parts.items()}
    rows = [{"image": n, "degradation": d.setting, **degradation_values(d)}
            for n, d in zip(images, degradations, strict=True)]
    return PatchEmbeddings(vectors, pd.DataFrame(rows))
