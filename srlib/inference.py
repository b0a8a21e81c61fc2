"""Tiled super-resolution of images of any size with a trained network: bounded memory, no seams.

**Tiles.** The LR image is cut into ``tile x tile`` cores (LR pixels). Each core is run through the network together
with a margin of ``overlap`` LR pixels on every side (clipped at the image border), and only the core's part of the
output (``s`` times its size) is kept. When the margin is at least the network's receptive-field radius
(:func:`receptive_radius`, the default), every kept output pixel sees exactly the LR pixels it sees in a whole-image
pass, and at the image border the tile's zero padding *is* the image's padding, so the tiled output equals the
whole-image output up to float rounding (tested to 1e-5 on every architecture). A smaller margin is faster and
approximate. Memory is bounded by one tile (plus the output image itself, written tile by tile into a uint8
buffer by :func:`upscale_image`). Measured with ``srlib upscale`` on a 2000x1500 photo, smoke-profile DASR x4 (2 CPU
cores): peak RSS 1.36 GB with 256-px tiles, 10.5 GB for the whole image at once (0.88 GB of each is ``import
torch``); the two 8000x6000 results were byte-identical.

**Global quantities.** Three things in our networks look at the whole image, and a tile alone would get them
wrong:

* the degradation embedding of the blind models (DASR, CDSR): computed **once** from the whole LR image, or from its
  centre ``embed_crop x embed_crop`` crop when a side is longer (default 1024: the encoder's activations then stay
  bounded too; the output then differs from a whole-image ``model(lr)``, which embeds the whole image), and
  reused for every tile (:func:`degradation_embedding`);
* RCAN's channel attention (RCAN Sec. 3.3: ``sigmoid(MLP(global average pool(x)))`` in every RCAB);
* CDSR's domain query attention (its DQA conv queries with the channel means ``GAP(x)`` of its input).

For the last two, ``global_stats="exact"`` (the default) computes every global mean over the **whole** image with
the tiles, one pooling site at a time: a sweep over the tiles runs the network up to the first site whose mean is
not known yet, adds up that site's input over each tile's core (the margin makes it exact) and stops; the mean is
then fixed for all tiles (forward hooks replace the per-tile pooling by it). After one sweep per site a last sweep
gives the output. This costs about (sites / 2 + 1) forward passes (RCAN: 1 site per RCAB; CDSR: 2 per RRDB-SFT
block; the other networks have none and take one pass). ``global_stats="tile"`` lets each tile pool over itself
(one pass; what tiled inference usually does; not equal to the whole-image output).

Images are (1, 3, h, w) float tensors in [0, 1] (LR) and (1, 3, h*s, w*s) (SR, not clamped); :func:`upscale_image`
takes and returns (H, W, 3) uint8 arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from srlib.archs import CDSR, CRLSR, DASR, EDSR, RCAN, NonBlindDASR
from srlib.archs.cdsr import DQAConv
from srlib.archs.common import ChannelAttention
from srlib.archs.dasr import DAConv

__all__ = [
    "DEVICES",
    "GLOBAL_STATS",
    "Embedding",
    "NotAnSRModel",
    "Tile",
    "TileSpec",
    "degradation_embedding",
    "is_blind",
    "pooling_sites",
    "receptive_radius",
    "resolve_device",
    "tiles",
    "upscale",
    "upscale_image",
]

DEVICES = ("auto", "cpu", "cuda")
GLOBAL_STATS = ("exact", "tile")


class NotAnSRModel(ValueError):
    """A network that :mod:`srlib.inference` cannot run as a super-resolution model (e.g. PCL's discriminator)."""


# ---------------------------------------------------------------------------------------------------------------------
# What each architecture's test-time network is
# ---------------------------------------------------------------------------------------------------------------------

_SR_PATH: dict[type, Callable[[nn.Module], list[nn.Module]]] = {
    EDSR: lambda m: [m],
    RCAN: lambda m: [m],
    CRLSR: lambda m: list(m.sr_modules().values()),
    DASR: lambda m: [m.sr_net],
    NonBlindDASR: lambda m: [m.sr_net],
    CDSR: lambda m: [m.sr_net],
}
"""The modules a test-time forward runs through, per architecture (training-only modules and the blind models'
degradation encoders excluded: the embedding is computed once per image)."""

_EXTRA_RADIUS: dict[type, int] = {CRLSR: 3}
"""Receptive-field radius (LR pixels) of operations that are not convolution modules: CRL-SR's bicubic upsampling
(cubic support +-2 LR pixels, +1 for the s x s block that the encoder's pixel-unshuffle gathers; the global residual
``+ up`` lies within the same bound)."""

_BLIND: dict[type, str] = {DASR: "fea", CDSR: "fea_csc"}
"""Blind architectures -> the key of ``model.embed(lr)`` that the SR network consumes (``sr_net(lr, emb)``)."""


def _sr_modules(model: nn.Module) -> list[nn.Module]:
    fn = _SR_PATH.get(type(model))
    if fn is None:
        raise NotAnSRModel(f"{type(model).__name__} is not a super-resolution network srlib can run "
                           f"(it runs {sorted(c.__name__ for c in _SR_PATH)})")
    return fn(model)


def is_blind(model: nn.Module) -> bool:
    """True for networks that embed the degradation of their input (DASR, CDSR)."""
    return type(model) in _BLIND


def _conv_radius(m: nn.Module) -> int:
    """How far (in the module's input pixels) one output pixel of ``m`` reaches, for convolution-like modules."""
    if isinstance(m, nn.Conv2d):
        spans = [(k - 1) * d for k, d in zip(m.kernel_size, m.dilation, strict=True)]
        if isinstance(m.padding, str):  # "same" / "valid": bounded by the whole span
            return max(spans)
        return max(max(p, span - p) for span, p in zip(spans, m.padding, strict=True))
    if isinstance(m, DAConv):  # the dynamic depthwise conv (F.conv2d, padding k // 2); its 1x1 conv is a module
        return m.kernel_size // 2
    return 0


def receptive_radius(model: nn.Module) -> int:
    """An upper bound (LR pixels) on how far an SR output pixel reaches into the LR image, given the global
    quantities (embedding, pooled means).

    The sum of the radii of every convolution of the test-time network (:data:`_SR_PATH`), each counted as if it ran
    at LR resolution (convolutions after the upsampler reach less), plus :data:`_EXTRA_RADIUS`. Every path through the
    network crosses a subset of these convolutions, so the sum bounds it.
    """
    total = sum(_conv_radius(m) for part in _sr_modules(model) for m in part.modules())
    return total + _EXTRA_RADIUS.get(type(model), 0)


def pooling_sites(model: nn.Module) -> int:
    """Number of modules of the test-time network that pool over the whole map (RCAN channel attention, CDSR DQA):
    ``global_stats="exact"`` runs one extra (partial) sweep over the tiles for each."""
    return len(_GlobalMeans(_sr_modules(model), (1, 1)).sites)


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; ``"cuda"`` without a GPU is an error."""
    if isinstance(name, torch.device):
        return name
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {name!r}; choose from {DEVICES}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)


# ---------------------------------------------------------------------------------------------------------------------
# Degradation embedding of blind models
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Embedding:
    """The degradation embedding of one LR image.

    Attributes:
        vectors: every embedding ``model.embed`` returns, each (1, D) on the CPU (DASR: ``fea`` (4c) and ``q``; CDSR:
            ``fea``, ``fea_csc``, ``attn`` (codebook attention), ``q``).
        consumed: the key of the vector the SR network consumes (DASR ``fea``, CDSR ``fea_csc``).
        region: (y0, y1, x0, x1), the LR region it was computed from (the whole image unless it was cropped).
        image_size: (h, w) of the LR image.
    """

    vectors: dict[str, torch.Tensor] = field(default_factory=dict)
    consumed: str
    region: tuple[int, int, int, int]
    image_size: tuple[int, int]

    @property
    def vector(self) -> torch.Tensor:
        """The (1, D) vector the SR network consumes."""
        return self.vectors[self.consumed]

    @property
    def cropped(self) -> bool:
        return self.region != (0, self.image_size[0], 0, self.image_size[1])

    def to_dict(self) -> dict:
        """JSON-able: every vector as a list of floats, the consumed key, the region and the image size."""
        return {"consumed": self.consumed, "region": list(self.region), "image_size": list(self.image_size),
                "vectors": {k: v[0].tolist() for k, v in self.vectors.items()}}


def _embed_region(h: int, w: int, crop: int | None) -> tuple[int, int, int, int]:
    if crop is None or (h <= crop and w <= crop):
        return 0, h, 0, w
    ch, cw = min(h, crop), min(w, crop)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return y0, y0 + ch, x0, x0 + cw


def degradation_embedding(model: nn.Module, lr: torch.Tensor, embed_crop: int | None = 1024,
                          device: str | torch.device = "cpu") -> Embedding:
    """The degradation embedding a blind model (DASR, CDSR) computes from ``lr`` (DASR Sec. 3.2; CDSR Sec. 3, LPE
    + CSC), from the whole image or, when a side exceeds ``embed_crop``, from the centre ``embed_crop`` crop.

    Args:
        model: a DASR or CDSR in eval mode. lr: (1, 3, h, w) in [0, 1]. embed_crop: crop side (None: never crop).
    """
    if not is_blind(model):
        raise NotAnSRModel(f"{type(model).__name__} is not a blind model: it has no degradation embedding")
    _check_lr(lr)
    h, w = lr.shape[-2:]
    y0, y1, x0, x1 = _embed_region(h, w, embed_crop)
    device = resolve_device(device)
    with torch.inference_mode():
        vectors = model.embed(lr[..., y0:y1, x0:x1].to(device))
    return Embedding(vectors={k: v.detach().to("cpu", torch.float32) for k, v in vectors.items()},
                     consumed=_BLIND[type(model)], region=(y0, y1, x0, x1), image_size=(h, w))


# ---------------------------------------------------------------------------------------------------------------------
# Tiles
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TileSpec:
    """How to tile.

    Attributes:
        tile: core side in LR pixels; None or 0: the whole image in one pass.
        overlap: margin in LR pixels on each side of a core; None: :func:`receptive_radius` (exact).
        global_stats: ``"exact"`` (pooled means over the whole image, several sweeps) or ``"tile"`` (per tile).
        embed_crop: blind models embed the whole image, or its centre crop of this side when a side is longer.
    """

    tile: int | None = 256
    overlap: int | None = None
    global_stats: str = "exact"
    embed_crop: int | None = 1024

    def __post_init__(self):
        if self.tile is not None and (isinstance(self.tile, bool) or not isinstance(self.tile, int) or self.tile < 0):
            raise ValueError(f"tile must be an integer >= 0 (0: whole image), got {self.tile!r}")
        if self.overlap is not None and (not isinstance(self.overlap, int) or self.overlap < 0):
            raise ValueError(f"tile overlap must be an integer >= 0, got {self.overlap!r}")
        if self.global_stats not in GLOBAL_STATS:
            raise ValueError(f"global_stats must be one of {GLOBAL_STATS}, got {self.global_stats!r}")
        if self.embed_crop is not None and self.embed_crop < 1:
            raise ValueError(f"embed_crop must be >= 1, got {self.embed_crop!r}")


@dataclass(frozen=True)
class Tile:
    """One tile: ``core`` (y0, y1, x0, x1) is the LR region whose output it gives; ``box`` (y0, y1, x0, x1) the LR
    region it reads (the core plus the margin, clipped to the image)."""

    core: tuple[int, int, int, int]
    box: tuple[int, int, int, int]

    @property
    def core_in_box(self) -> tuple[int, int, int, int]:
        """The core in the tile's own coordinates."""
        (y0, y1, x0, x1), (by0, _, bx0, _) = self.core, self.box
        return y0 - by0, y1 - by0, x0 - bx0, x1 - bx0


def tiles(h: int, w: int, tile: int | None, margin: int) -> list[Tile]:
    """Row-major tiles covering an h x w image: cores of ``tile`` x ``tile`` (the last row/column smaller), boxes
    grown by ``margin`` on each side and clipped. ``tile`` None or 0 (or >= both sides): one tile."""
    t_h = h if not tile else min(tile, h)
    t_w = w if not tile else min(tile, w)
    out = []
    for y0 in range(0, h, t_h):
        for x0 in range(0, w, t_w):
            y1, x1 = min(y0 + t_h, h), min(x0 + t_w, w)
            out.append(Tile((y0, y1, x0, x1), (max(0, y0 - margin), min(h, y1 + margin),
                                                max(0, x0 - margin), min(w, x1 + margin))))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Global means over the whole image (RCAN channel attention, CDSR DQA)
# ---------------------------------------------------------------------------------------------------------------------


def _override_channel_attention(m: ChannelAttention, mean: Callable[[], torch.Tensor | None]):
    """RCAN Sec. 3.3: replace ``avg_pool(x)`` (B, C, 1, 1) by the whole-image mean."""

    def hook(_mod, _args, output):
        value = mean()
        return None if value is None else value.to(output.dtype).view_as(output)

    return m.avg_pool.register_forward_hook(hook)


def _override_dqa(m: DQAConv, mean: Callable[[], torch.Tensor | None]):
    """CDSR's DQA conv: replace the query ``x.mean(dim=(2, 3))`` (B, C) by the whole-image mean."""

    def hook(_mod, args):
        value = mean()
        return None if value is None else (value.to(args[0].dtype).view_as(args[0]), *args[1:])

    return m.dqa.register_forward_pre_hook(hook)


_GLOBAL_SITES: dict[type, Callable] = {
    ChannelAttention: _override_channel_attention,
    DQAConv: _override_dqa,
}
"""Modules that average their first input over the whole map -> a function installing a hook that makes them use
a given mean instead. Each site's input (``args[0]`` of the module) is what gets averaged."""


class _Stop(Exception):
    """Raised by a capture hook to end a forward pass once the site's input is summed."""


class _GlobalMeans:
    """Hooks computing and imposing whole-image means at every global-pooling site of a network (see the module
    docstring). ``self.tile`` must be set to the tile being run."""

    def __init__(self, modules: list[nn.Module], image_size: tuple[int, int]):
        self.sites = [m for part in modules for m in part.modules() if type(m) in _GLOBAL_SITES]
        self.image_size = image_size
        self.means: dict[int, torch.Tensor] = {}
        self.tile: Tile | None = None
        self.collecting: int | None = None
        self.acc: torch.Tensor | None = None
        self.count = 0
        self.ratio: int | None = None

    @contextmanager
    def installed(self) -> Iterator[_GlobalMeans]:
        handles = []
        try:
            for i, m in enumerate(self.sites):
                handles.append(m.register_forward_pre_hook(self._capture(i)))
                handles.append(_GLOBAL_SITES[type(m)](m, lambda i=i: self.means.get(i)))
            yield self
        finally:
            for h in handles:
                h.remove()

    def _capture(self, i: int):
        def hook(_mod, args):
            if i in self.means:
                return None
            if self.collecting is None:
                self.collecting = i
            elif self.collecting != i:
                raise RuntimeError(f"global-pooling sites ran in another order on another tile ({i} before "
                                   f"{self.collecting}); exact tiling needs a fixed order")
            self._add(args[0])
            raise _Stop

        return hook

    def _add(self, x: torch.Tensor) -> None:
        (by0, by1, bx0, bx1), (cy0, cy1, cx0, cx1) = self.tile.box, self.tile.core_in_box
        th, tw = by1 - by0, bx1 - bx0
        fh, fw = x.shape[-2:]
        r = fh // th
        if r < 1 or fh != r * th or fw != r * tw:
            raise NotImplementedError(f"exact tiling: a global-pooling site sees a {fh}x{fw} map for a {th}x{tw} "
                                      f"tile (not an integer multiple); use global_stats='tile'")
        if self.ratio is None:
            self.ratio = r
        part = x[..., cy0 * r:cy1 * r, cx0 * r:cx1 * r].to(torch.float64).sum(dim=(-2, -1))
        self.acc = part if self.acc is None else self.acc + part
        self.count += (cy1 - cy0) * (cx1 - cx0) * r * r

    def end_sweep(self) -> bool:
        """Fix the mean collected in this sweep; False when the sweep collected nothing (it gave the output)."""
        if self.collecting is None:
            return False
        h, w = self.image_size
        if self.count != h * w * self.ratio**2:
            raise RuntimeError(f"exact tiling: the tiles covered {self.count} of {h * w * self.ratio ** 2} positions")
        self.means[self.collecting] = (self.acc / self.count).to(torch.float32)
        self.collecting, self.acc, self.count, self.ratio = None, None, 0, None
        return True


# ---------------------------------------------------------------------------------------------------------------------
# Upscaling
# ---------------------------------------------------------------------------------------------------------------------


def _check_lr(lr) -> None:
    if not isinstance(lr, torch.Tensor) or lr.ndim != 4 or lr.shape[:2] != (1, 3) or not lr.is_floating_point():
        shape = tuple(lr.shape) if isinstance(lr, torch.Tensor) else type(lr).__name__
        raise ValueError(f"expected one LR image as a float tensor of shape (1, 3, h, w) in [0, 1], got {shape}")


def upscale(
    model: nn.Module,
    lr: torch.Tensor,
    spec: TileSpec = TileSpec(),
    *,
    embedding: Embedding | torch.Tensor | None = None,
    device: str | torch.device = "cpu",
    write: Callable[[tuple[int, int, int, int], torch.Tensor], None] | None = None,
    progress: bool = False,
    desc: str = "tiles",
) -> torch.Tensor | None:
    """Super-resolve one LR image tile by tile (see the module docstring).

    Args:
        model: an SR network of :mod:`srlib.archs` (put in eval mode here), on ``device``.
        lr: (1, 3, h, w) float in [0, 1], any device (tiles are moved to ``device`` one at a time).
        spec: tile size, margin, global statistics, embedding crop.
        embedding: blind models only: the degradation embedding to use (an :class:`Embedding` or the (1, D) vector
            the SR network consumes); None computes it with :func:`degradation_embedding`.
        write: called as ``write((Y0, Y1, X0, X1), sr_part)`` with each core's output (1, 3, Y1 - Y0, X1 - X0) on the
            CPU, in SR pixel coordinates; None collects them into the returned tensor.
        progress: show a tqdm bar over the tile passes.

    Returns:
        (1, 3, h*s, w*s) float32 on the CPU, not clamped; None when ``write`` is given.
    """
    _check_lr(lr)
    modules = _sr_modules(model)
    device = resolve_device(device)
    model.eval()
    s = model.scale
    h, w = lr.shape[-2:]
    if is_blind(model):
        if embedding is None:
            embedding = degradation_embedding(model, lr, spec.embed_crop, device)
        vec = (embedding.vector if isinstance(embedding, Embedding) else embedding).to(device)

        def run(x):
            return model.sr_net(x, vec)
    else:
        if embedding is not None:
            raise NotAnSRModel(f"{type(model).__name__} is not a blind model: it takes no degradation embedding")
        run = model
    margin = receptive_radius(model) if spec.overlap is None else spec.overlap
    parts = tiles(h, w, spec.tile, margin)
    out = None
    if write is None:
        out = torch.empty(1, 3, h * s, w * s, dtype=torch.float32)

        def write(region, sr):
            out[..., region[0]:region[1], region[2]:region[3]] = sr

    stats = _GlobalMeans(modules, (h, w))
    exact = spec.global_stats == "exact" and len(parts) > 1 and bool(stats.sites)
    sweeps = len(stats.sites) + 1 if exact else 1
    from srlib.train import flush_denormals

    with torch.inference_mode(), flush_denormals(), (stats.installed() if exact else nullcontext()), \
            tqdm(total=len(parts) * sweeps, desc=desc, disable=not progress, unit="tile") as bar:
        while True:
            for t in parts:
                stats.tile = t
                by0, by1, bx0, bx1 = t.box
                try:
                    sr = run(lr[..., by0:by1, bx0:bx1].to(device))
                except _Stop:
                    bar.update()
                    continue
                cy0, cy1, cx0, cx1 = t.core_in_box
                y0, y1, x0, x1 = t.core
                write((y0 * s, y1 * s, x0 * s, x1 * s),
                      sr[..., cy0 * s:cy1 * s, cx0 * s:cx1 * s].to("cpu", torch.float32))
                bar.update()
            if not (exact and stats.end_sweep()):
                break
    return out


def upscale_image(
    model: nn.Module,
    img: np.ndarray,
    spec: TileSpec = TileSpec(),
    *,
    device: str | torch.device = "cpu",
    embedding: Embedding | None = None,
    progress: bool = False,
    desc: str = "tiles",
) -> np.ndarray:
    """Super-resolve an (h, w, 3) uint8 RGB image into an (h*s, w*s, 3) uint8 one, tile by tile: each tile's output
    is clamped to [0, 1], scaled to 0..255 and rounded half to even (as :func:`srlib.imgutil.tensor2img` and the
    evaluation upscalers do), so memory holds one tile of floats and the uint8 result."""
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an (h, w, 3) uint8 RGB image, got {img.dtype} of shape {img.shape}")
    s = model.scale
    h, w = img.shape[:2]
    lr = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float().div_(255.0)
    result = np.empty((h * s, w * s, 3), np.uint8)

    def write(region, sr):
        y0, y1, x0, x1 = region
        result[y0:y1, x0:x1] = (sr[0].clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()

    upscale(model, lr, spec, embedding=embedding, device=device, write=write, progress=progress, desc=desc)
    return result

