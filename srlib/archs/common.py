"""Building blocks shared by the networks of :mod:`srlib.archs`.

Conventions (all of :mod:`srlib.archs`):

* Feature maps are float tensors of shape (B, C, H, W); images are (B, 3, H, W) with values in [0, 1]. There is no
  ``MeanShift`` (the EDSR/RCAN code bases subtract the DIV2K mean on the 0..255 scale; we train on [0, 1] inputs
  instead, which changes no parameter count because ``MeanShift`` is frozen).
* Every convolution is 3x3 with padding 1 and a bias unless said otherwise (EDSR's ``default_conv``).
* Weights come from torch's default initialisation; nothing here touches the global RNG at import time. Build
  models under a seeded (forked) RNG to make them reproducible.

Blocks:

* :class:`ResBlock`: EDSR residual block, conv3x3 -> ReLU -> conv3x3, scaled by ``res_scale``, plus the input
  (Lim et al., "Enhanced Deep Residual Networks", CVPRW 2017, Sec. 3.1; no batch norm).
* :class:`Upsampler`: EDSR's sub-pixel upsampler: ``log2(s)`` stages of conv3x3 (C -> 4C) + PixelShuffle(2) for
  s = 2^k, one conv3x3 (C -> 9C) + PixelShuffle(3) for s = 3.
* :class:`ChannelAttention`, :class:`RCAB`, :class:`ResidualGroup`: RCAN's channel attention, residual channel
  attention block and residual group (Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel
  Attention Networks", ECCV 2018, Sec. 3.2-3.4).
* :func:`count_parameters`: number of trainable scalars of a module or of an iterable of parameters.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn


def conv3x3(in_channels: int, out_channels: int, bias: bool = True) -> nn.Conv2d:
    """3x3 convolution with padding 1 (EDSR's ``default_conv``): (B, Cin, H, W) -> (B, Cout, H, W)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias)


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` if it is an ``int`` (not a bool) >= ``minimum``, else raise a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class ResBlock(nn.Module):
    """EDSR residual block without batch norm: ``x + res_scale * conv(relu(conv(x)))``.

    Args:
        n_feats: channels C (input and output).
        res_scale: factor on the residual branch (EDSR-L uses 0.1; 1.0 otherwise).

    Shapes: (B, C, H, W) -> (B, C, H, W). Parameters: 2 * (9 * C * C + C).
    """

    def __init__(self, n_feats: int, res_scale: float = 1.0):
        super().__init__()
        check_positive_int(n_feats, "n_feats")
        self.body = nn.Sequential(conv3x3(n_feats, n_feats), nn.ReLU(inplace=True), conv3x3(n_feats, n_feats))
        self.res_scale = float(res_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        if self.res_scale != 1.0:
            res = res * self.res_scale
        return res + x


def upsampler_supports(scale) -> bool:
    """True for the scales :class:`Upsampler` builds: 3 and powers of two >= 2."""
    if isinstance(scale, bool) or not isinstance(scale, int):
        return False
    return scale == 3 or (scale >= 2 and scale & (scale - 1) == 0)


class Upsampler(nn.Sequential):
    """EDSR's sub-pixel upsampler (``common.Upsampler`` with no batch norm and no activation).

    For ``scale = 2^k`` (k >= 1): k stages of conv3x3 (C -> 4C) + PixelShuffle(2); for ``scale = 3``: conv3x3
    (C -> 9C) + PixelShuffle(3). Any other scale raises ``ValueError``.

    Shapes: (B, C, h, w) -> (B, C, h * scale, w * scale).
    """

    def __init__(self, scale: int, n_feats: int):
        check_positive_int(n_feats, "n_feats")
        if not upsampler_supports(scale):
            raise ValueError(f"Upsampler supports scale 3 and powers of two (2, 4, 8, ...), got scale={scale!r}")
        layers: list[nn.Module] = []
        if scale == 3:
            layers += [conv3x3(n_feats, 9 * n_feats), nn.PixelShuffle(3)]
        else:
            for _ in range(scale.bit_length() - 1):
                layers += [conv3x3(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
        super().__init__(*layers)
        self.scale = scale


class ChannelAttention(nn.Module):
    """RCAN channel attention (``CALayer``; RCAN Sec. 3.3): ``x * sigmoid(W_u relu(W_d avgpool(x)))``.

    ``W_d`` is a 1x1 convolution C -> C // reduction and ``W_u`` a 1x1 convolution C // reduction -> C, both with
    bias.

    Shapes: (B, C, H, W) -> (B, C, H, W); the attention weights are (B, C, 1, 1) in (0, 1).
    """

    def __init__(self, n_feats: int, reduction: int = 16):
        super().__init__()
        check_positive_int(n_feats, "n_feats")
        check_positive_int(reduction, "reduction")
        if n_feats // reduction < 1:
            raise ValueError(f"reduction {reduction} leaves no channels in the bottleneck of n_feats={n_feats}")
        squeezed = n_feats // reduction
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.mlp = nn.Sequential(
            nn.Conv2d(n_feats, squeezed, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(squeezed, n_feats, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mlp(self.avg_pool(x))


class RCAB(ResBlock):
    """Residual channel attention block (RCAN Sec. 3.4): ``x + res_scale * CA(conv(relu(conv(x))))``, i.e. a
    :class:`ResBlock` whose residual branch ends with channel attention.

    The official ``RCAB.forward`` ignores ``res_scale`` (the multiplication is commented out); with the default
    ``res_scale = 1`` ours is identical to it.

    Shapes: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, n_feats: int, reduction: int = 16, res_scale: float = 1.0):
        super().__init__(n_feats, res_scale)
        self.body.append(ChannelAttention(n_feats, reduction))


class ResidualGroup(nn.Module):
    """RCAN residual group (RCAN Sec. 3.2, "short skip connection"): ``x + conv(RCAB_n(...RCAB_1(x)))``.

    Shapes: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, n_feats: int, n_blocks: int, reduction: int = 16, res_scale: float = 1.0):
        super().__init__()
        check_positive_int(n_blocks, "n_blocks", minimum=0)
        self.body = nn.Sequential(
            *[RCAB(n_feats, reduction, res_scale) for _ in range(n_blocks)],
            conv3x3(n_feats, n_feats),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


def count_parameters(module: nn.Module | Iterable[torch.Tensor], trainable_only: bool = True) -> int:
    """Number of scalars in the parameters of ``module`` (an ``nn.Module`` or an iterable of parameters).

    Shared parameters are counted once. With ``trainable_only`` (default) parameters with ``requires_grad=False``
    are skipped.
    """
    params = module.parameters() if isinstance(module, nn.Module) else module
    seen: set[int] = set()
    total = 0
    for p in params:
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


class ResidualSRNet(nn.Module):
    """The EDSR/RCAN skeleton: head conv -> body (blocks, conv) with a long skip -> upsampler -> conv to RGB.

    Args:
        name: network name for error messages.
        scale: SR factor (3 or a power of two).
        n_feats: feature channels C.
        make_blocks: returns the body's blocks; called after the head is built, so parameters are created (and
            seeded) in the order head, blocks, body conv, upsampler, tail conv.

    Shapes: (B, 3, h, w) in [0, 1] -> (B, 3, h * scale, w * scale).
    """

    def __init__(self, name: str, scale: int, n_feats: int, make_blocks):
        super().__init__()
        if not upsampler_supports(scale):
            raise ValueError(f"scale must be 3 or a power of two (2, 4, ...), got {scale!r}")
        check_positive_int(n_feats, "n_feats")
        self._name = name
        self.scale = scale
        self.head = conv3x3(3, n_feats)
        self.body = nn.Sequential(*make_blocks(), conv3x3(n_feats, n_feats))
        self.tail = nn.Sequential(Upsampler(scale, n_feats), conv3x3(n_feats, 3))

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        if not isinstance(lr, torch.Tensor) or lr.ndim != 4 or lr.shape[1] != 3 or not lr.is_floating_point():
            shape = tuple(lr.shape) if isinstance(lr, torch.Tensor) else type(lr).__name__
            raise ValueError(f"{self._name}: expected a float tensor of shape (B, 3, h, w), got {shape}")
        x = self.head(lr)
        return self.tail(self.body(x) + x)
