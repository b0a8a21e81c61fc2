"""CRL-SR networks (Zhang, Lu, Zhan and Yu, "Blind Image Super-Resolution via Contrastive Representation Learning",
   arXiv 2107.00708).

**This is our reconstruction** (DESIGN.md, "Methods" -> "CRL-SR"). No official code exists and the paper's
equations were lost from the text we have, so every architectural choice below is ours, made from the surviving
prose of Sec. 3.2-3.4 and 4.1; the loss functions live in the loss code, not here.

What the paper says (prose) and what we build:

* **SR network** (Sec. 4.1: "Our baseline only contains an encoder (15 residual blocks) for feature extraction and
  a decoder for upsampling LR images"; Sec. 3.2/3.4: a "feature generation module" G generates the lost
  high-frequency details from the resolution-invariant features). We build ``sr = D_sr(G(E_l(up))) + up`` with

  - ``up = imresize(lr, scale)``: MATLAB-exact bicubic upsampling (:func:`srlib.degradation.imresize`, float
    mode). E_l works on the upsampled LR because CDE (Sec. 3.3) compares E_l's features with E_h's features of
    the HR image, which has the same size.
  - E_l = :class:`Encoder`: ``pixel_unshuffle(scale)`` first, so the encoder runs at LR resolution and its
    feature map (B, C, h, w) lies on the LR grid (our choice, DESIGN.md: it aligns E_l's and E_h's maps
    location by location and keeps the cost of an LR-resolution network). Then conv3x3 (3 s^2 -> C),
    ``n_blocks`` EDSR residual blocks (15 in the paper), conv3x3, and a long skip from the head output (EDSR
    style).
  - G: ``n_detail_blocks`` EDSR residual blocks on the LR-grid features (size not in the paper; default 4).
  - D_sr = :class:`Decoder`: conv3x3 -> EDSR upsampler (pixel shuffle) -> conv3x3 (C -> 3).
  - Global residual ``+ up``: the network predicts the detail missing from the bicubic image (our choice; it makes
    small, briefly trained models start from bicubic quality).

  The SR network is the same in all six ablation variants of Table 1 (a-f), so all six have the same test-time
  parameter count (:meth:`CRLSR.sr_parameters`). CDE and CFR only add training-time modules.
* **CDE** (Sec. 3.3, Fig. 1): two encoders of the same architecture, E_l on ``up`` and E_h (``encoder_h``) on the
  HR image. The paper maps the M feature vectors to S = 256 dimensions with "a two-layer perceptron (MLP)" and
  normalises them: :class:`ProjectionHead` (Linear C -> S, ReLU, Linear S -> S, L2 normalisation), one head per
  encoder (``proj_l``, ``proj_h``; separate heads because the two encoders see different domains - our choice).
  E_h is not used at test time.
* **CFR** (Sec. 3.4, Fig. 1/2a): "two E_F that map HR and SR images to a feature space, and D that reconstructs
  HR images from this feature space". We use one shared-weight (siamese) feature extractor ``feature_net`` (an
  :class:`Encoder` with ``n_blocks_f`` residual blocks, default 2) applied to HR, SR and the upsampled LR (the
  condition f_lr of the conditional contrastive loss), one projection head ``proj_f`` shared by the three, and
  ``hr_decoder`` (a :class:`Decoder`, no global residual) trained with L_HR = L1(D(E_F(HR)), HR) so that E_F
  cannot collapse. The paper takes "the M spatial locations of each layer"; we take them from E_F's output
  map only (one layer).
* Sizes (Sec. 4.1): 15 residual blocks in the encoder, S = 256; n_feats = 64 is EDSR's and our choice. Profiles
  pass smaller sizes.

Images are (B, 3, H, W) float tensors with values in [0, 1]; SR outputs are not clamped.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from srlib.archs.common import ResBlock, Upsampler, check_positive_int, conv3x3, upsampler_supports
from srlib.degradation import imresize


def _check_scale(scale) -> int:
    if not upsampler_supports(scale):
        raise ValueError(f"scale must be 3 or a power of two (2, 4, ...), got {scale!r}")
    return scale


def _check_images(x, name: str, channels: int = 3) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point() or x.shape[1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a float tensor of shape (B, {channels}, H, W), got {shape}")


class Encoder(nn.Module):
    """CRL-SR encoder (E_l, E_h and E_F; CRL-SR Sec. 3.3-3.4, Fig. 1; our reconstruction, DESIGN.md).

    ``pixel_unshuffle(scale)`` -> conv3x3 (in_channels * s^2 -> C) -> ``n_blocks`` :class:`ResBlock` -> conv3x3,
    plus a long skip from the head output (EDSR style).

    Args:
        scale: SR factor s; an HR-size input is folded into s x s blocks so the encoder runs at LR resolution.
        n_feats: feature channels C (64).
        n_blocks: residual blocks (15 in the paper for E_l; 0 is allowed).
        in_channels: image channels (3).

    Shapes: (B, in_channels, H, W) with H, W multiples of ``scale``, values in [0, 1] -> (B, C, H / s, W / s).
    Feature location (i, j) is computed from the s x s input block at rows s*i..s*i+s-1, columns s*j..s*j+s-1,
    i.e. the block that bicubic upsampling builds around LR pixel (i, j): the map is aligned with the LR grid.
    """

    def __init__(self, scale: int, n_feats: int = 64, n_blocks: int = 15, in_channels: int = 3):
        super().__init__()
        check_positive_int(scale, "scale")
        check_positive_int(n_feats, "n_feats")
        check_positive_int(in_channels, "in_channels")
        check_positive_int(n_blocks, "n_blocks", minimum=0)
        self.scale = scale
        self.in_channels = in_channels
        self.head = conv3x3(in_channels * scale * scale, n_feats)
        self.body = nn.Sequential(*[ResBlock(n_feats) for _ in range(n_blocks)], conv3x3(n_feats, n_feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "Encoder", self.in_channels)
        h, w = x.shape[-2:]
        s = self.scale
        if h % s or w % s:
            raise ValueError(
                f"Encoder(scale={s}): input of {h}x{w} pixels is not a multiple of the scale {s}; "
                f"crop it to {h - h % s}x{w - w % s} first"
            )
        x = self.head(F.pixel_unshuffle(x, s) if s > 1 else x)
        return self.body(x) + x


class ProjectionHead(nn.Module):
    """Projection MLP of CRL-SR Sec. 3.3 ("mapped to S-dimensional vectors by a two-layer perceptron ... normalized").

    Linear (C -> dim) -> ReLU -> Linear (dim -> dim), then L2 normalisation over the last axis.

    Shapes: (..., C), typically (B, M, C) feature vectors gathered at M locations -> (..., dim), unit L2 norm.
    """

    def __init__(self, n_feats: int, dim: int = 256):
        super().__init__()
        check_positive_int(n_feats, "n_feats")
        check_positive_int(dim, "dim")
        self.mlp = nn.Sequential(nn.Linear(n_feats, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(v), dim=-1)


class Decoder(nn.Module):
    """CRL-SR decoder (SR decoder and CFR's HR decoder D; CRL-SR Sec. 3.4, 4.1; our reconstruction, DESIGN.md).

    conv3x3 (C -> C) -> EDSR :class:`~srlib.archs.common.Upsampler` -> conv3x3 (C -> 3).

    Shapes: (B, C, h, w) -> (B, 3, h * s, w * s), unbounded values (images in ~[0, 1] after training).
    """

    def __init__(self, scale: int, n_feats: int = 64, out_channels: int = 3):
        super().__init__()
        _check_scale(scale)
        self.body = nn.Sequential(
            conv3x3(n_feats, n_feats),
            Upsampler(scale, n_feats),
            conv3x3(n_feats, out_channels),
        )

    @property
    def last_conv(self) -> nn.Conv2d:
        """The final conv3x3 (C -> 3)."""
        return self.body[-1]

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.body(f)


class CRLSR(nn.Module):
    """CRL-SR, every variant of its Table 1 ablation (CRL-SR Sec. 3.2-3.4, Fig. 1; our reconstruction, DESIGN.md).

    Test-time SR network (identical for every ``cde``/``cfr`` setting)::

        up = imresize(lr, scale)                        # MATLAB bicubic, (B, 3, h*s, w*s)
        sr = decoder(generator(encoder_l(up))) + up

    Training-time modules: ``cde=True`` adds ``encoder_h`` (E_h, same architecture as E_l), ``proj_l`` and
    ``proj_h``; ``cfr=True`` adds ``feature_net`` (E_F, ``n_blocks_f`` blocks), ``proj_f`` and ``hr_decoder`` (D).
    The projection heads are applied by the loss code to the (B, M, C) vectors it gathers at M locations.

    Args:
        scale: SR factor (2, 3, 4, ...).
        n_feats: feature channels C (64).
        n_blocks: residual blocks of E_l and E_h (15, CRL-SR Sec. 4.1).
        n_detail_blocks: residual blocks of the detail generator G (4; not given by the paper).
        proj_dim: S, the projection dimension (256, CRL-SR Sec. 4.1).
        cde: build the CDE modules.
        cfr: build the CFR modules.
        n_blocks_f: residual blocks of E_F (2; not given by the paper).
    """

    def __init__(
        self,
        scale: int,
        n_feats: int = 64,
        n_blocks: int = 15,
        n_detail_blocks: int = 4,
        proj_dim: int = 256,
        cde: bool = True,
        cfr: bool = True,
        n_blocks_f: int = 2,
    ):
        super().__init__()
        _check_scale(scale)
        check_positive_int(n_detail_blocks, "n_detail_blocks", minimum=0)
        self.scale = scale
        self.cde = bool(cde)
        self.cfr = bool(cfr)
        # Test-time SR network.
        self.encoder_l = Encoder(scale, n_feats, n_blocks)
        self.generator = nn.Sequential(*[ResBlock(n_feats) for _ in range(n_detail_blocks)])
        self.decoder = Decoder(scale, n_feats)
        # Training-time modules.
        if self.cde:
            self.encoder_h = Encoder(scale, n_feats, n_blocks)
            self.proj_l = ProjectionHead(n_feats, proj_dim)
            self.proj_h = ProjectionHead(n_feats, proj_dim)
        if self.cfr:
            self.feature_net = Encoder(scale, n_feats, n_blocks_f)
            self.proj_f = ProjectionHead(n_feats, proj_dim)
            self.hr_decoder = Decoder(scale, n_feats)

    # ---------------------------------------------------------------------------------------------------------------

    def upsample(self, lr: torch.Tensor) -> torch.Tensor:
        """MATLAB-exact bicubic upsampling in float: (B, 3, h, w) -> (B, 3, h*s, w*s), same dtype and device."""
        return imresize(lr, self.scale)

    def _sr_from(self, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f_l = self.encoder_l(up)
        return self.decoder(self.generator(f_l)) + up, f_l

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """SR image: (B, 3, h, w) in [0, 1] -> (B, 3, h*s, w*s), not clamped (~[0, 1])."""
        _check_images(lr, "CRLSR")
        return self._sr_from(self.upsample(lr))[0]

    def forward_train(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every tensor the CRL-SR losses need, in one pass.

        Args:
            lr: (B, 3, h, w) LR images in [0, 1].
            hr: (B, 3, h*s, w*s) HR images in [0, 1].

        Returns:
            dict with ``sr`` (B, 3, h*s, w*s), ``up`` (bicubic LR, same shape), ``f_l`` = E_l(up) (B, C, h, w); with
            ``cde``: ``f_h`` = E_h(hr) (B, C, h, w); with ``cfr``: ``f_f_hr``, ``f_f_sr``, ``f_f_lr`` = E_F of hr,
            sr and up (B, C, h, w each) and ``hr_recon`` = D(E_F(hr)) (B, 3, h*s, w*s). Every tensor keeps its
            graph (``f_f_sr`` back-propagates into the SR network); detaching is the loss code's choice.
        """
        _check_images(lr, "CRLSR.forward_train lr")
        _check_images(hr, "CRLSR.forward_train hr")
        b, _, h, w = lr.shape
        s = self.scale
        if hr.shape[0] != b or hr.shape[-2:] != (h * s, w * s):
            raise ValueError(
                f"CRLSR.forward_train: hr of shape {tuple(hr.shape)} does not match lr of shape {tuple(lr.shape)} "
                f"at scale {s} (expected ({b}, 3, {h * s}, {w * s}))"
            )
        up = self.upsample(lr)
        sr, f_l = self._sr_from(up)
        out = {"sr": sr, "up": up, "f_l": f_l}
        if self.cde:
            out["f_h"] = self.encoder_h(hr)
        if self.cfr:
            f_f_hr = self.feature_net(hr)
            out["f_f_hr"] = f_f_hr
            out["f_f_sr"] = self.feature_net(sr)
            out["f_f_lr"] = self.feature_net(up)
            out["hr_recon"] = self.hr_decoder(f_f_hr)
        return out

    def sr_modules(self) -> dict[str, nn.Module]:
        """The modules of the test-time SR network: E_l, G and the decoder."""
        return {"encoder_l": self.encoder_l, "generator": self.generator, "decoder": self.decoder}

    def sr_parameters(self) -> list[nn.Parameter]:
        """Parameters of the test-time SR network only (E_l, G, decoder), for parameter counts and benchmarks."""
        return [p for m in self.sr_modules().values() for p in m.parameters()]
