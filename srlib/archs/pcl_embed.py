"""PCL-SR's embedding network: the EDSR-PyTorch VGG-style discriminator on Haar high-frequency bands.

PCL-SR (Wu et al., "Practical Contrastive Learning for Single Image Super-Resolution", Sec. 3.3) trains a
discriminator E_D on the LH, HL and HH sub-bands of a level-1 Haar transform (LL dropped; 3 bands x 3 colours = 9
channels at half the image resolution) with the dual contrastive loss (paper Eq. 7,
:func:`srlib.losses.pcl.dual_contrastive_d_loss`), and uses its intermediate feature maps as the embedding of the
contrastive loss (paper Eqs. 8-10, :func:`srlib.losses.pcl.pcl_loss`). The layout follows the official code
(``src/loss/discriminator.py``; ``research/methods.md`` section 2.4):

* 8 blocks, each a 3x3 convolution **without bias** (padding 1) + ``BatchNorm2d`` + ``LeakyReLU(0.2)``.

  ======  ==========  ======
  block   channels    stride
  ======  ==========  ======
  0       in -> 64    1
  1       64 -> 64    2
  2       64 -> 128   1
  3       128 -> 128  2
  4       128 -> 256  1
  5       256 -> 256  2
  6       256 -> 512  1
  7       512 -> 512  2
  ======  ==========  ======

* Patch head (the official ``patchD``): ``AdaptiveAvgPool2d(4)`` + 1x1 convolution 512 -> 1 (with bias), i.e. 16
  patch logits per image. The non-patch head (``patch_head=False``) is EDSR's classifier, Flatten -> Linear(512 *
  s * s, 1024) -> LeakyReLU(0.2) -> Linear(1024, 1), where s is the spatial size after block 7; it needs the input
  size at construction (``input_size``).
* Feature taps (``--cl_layer``): block indices, default (0, 2, 4, 6), the paper's "first 4 intermediate layers"
  (64, 128, 256, 512 channels). With ``before_relu=True`` (``--before_relu``) a tap is the BatchNorm output of the
  block, otherwise its LeakyReLU output. **Both released training scripts tap only block 4** (``--cl_layer 4``:
  256 channels at 1/4 of the input size, i.e. 24 x 24 for a 192 x 192 HR patch whose Haar bands are 96 x 96).

A stride-2 block maps size n to ceil(n / 2), so for a (B, 9, H, W) input the taps at blocks 0, 2, 4, 6 have spatial
sizes H, ceil(H / 2), ceil(H / 4), ceil(H / 8) (1/2, 1/4, 1/8, 1/16 of the HR size) and block 7 outputs
ceil(H / 16).

Differences from the official code, none of which changes a value: the activation is not in-place (so the BN output
that a ``before_relu`` tap returns is not overwritten), and :meth:`PCLDiscriminator.features` stops after the last
tapped block. The input is fed in whatever range the caller uses (the official code feeds the raw range, 0-255 for
RCAN, with no normalisation); the Haar transform itself is not part of this module. Weights come from torch's
default initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from srlib.archs.common import check_positive_int

__all__ = ["PCLDiscriminator", "PCL_D_CHANNELS", "PCL_D_STRIDES"]

PCL_D_CHANNELS: tuple[int, ...] = (64, 64, 128, 128, 256, 256, 512, 512)
"""Output channels of the 8 discriminator blocks."""
PCL_D_STRIDES: tuple[int, ...] = (1, 2, 1, 2, 1, 2, 1, 2)
"""Strides of the 8 discriminator blocks."""


class PCLDiscriminator(nn.Module):
    """PCL-SR's discriminator / embedding network E_D (EDSR-PyTorch VGG-style D, patch head).

    Args:
        in_channels: input channels; 9 for the Haar LH/HL/HH bands of an RGB image (default).
        taps: block indices in [0, 7], strictly increasing, whose outputs :meth:`features` returns. Default
            (0, 2, 4, 6), the paper's four intermediate layers; the released scripts use (4,).
        before_relu: tap the BatchNorm output (True, default, the released scripts' ``--before_relu``) or the
            LeakyReLU output (False).
        patch_head: AdaptiveAvgPool2d(4) + 1x1 conv 512 -> 1 giving 16 patch logits per image (True, default), or
            EDSR's fully connected classifier giving 1 logit (False; needs ``input_size``).
        input_size: spatial size (square) of the input, only for ``patch_head=False``.
        base_channels: width of block 0; block t has ``base_channels * PCL_D_CHANNELS[t] // 64`` channels. Default
            64, the official network; the small profiles shrink it (a width-16 network costs 1/16 of the FLOPs).

    Shapes:
        :meth:`forward`: (B, in_channels, H, W) -> logits (B, 16) with the patch head, (B, 1) without.
        :meth:`features`: (B, in_channels, H, W) -> list, one (B, C_t, H_t, W_t) map per tap (see the module
        docstring for C_t, H_t).
    """

    def __init__(
        self,
        in_channels: int = 9,
        taps: Sequence[int] = (0, 2, 4, 6),
        before_relu: bool = True,
        patch_head: bool = True,
        input_size: int | None = None,
        base_channels: int = 64,
    ):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(base_channels, "base_channels")
        taps = tuple(taps)
        n_blocks = len(PCL_D_CHANNELS)
        if (
            not taps
            or any(isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < n_blocks for t in taps)
            or any(a >= b for a, b in zip(taps, taps[1:], strict=False))
        ):
            raise ValueError(f"taps must be strictly increasing block indices in [0, {n_blocks - 1}], got {taps!r}")
        self.in_channels = in_channels
        self.taps = taps
        self.before_relu = bool(before_relu)
        self.patch_head = bool(patch_head)
        self.channels = tuple(base_channels * c // PCL_D_CHANNELS[0] for c in PCL_D_CHANNELS)

        convs = []
        c_in = in_channels
        for c_out, stride in zip(self.channels, PCL_D_STRIDES, strict=True):
            convs.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm2d(c_out),
                )
            )
            c_in = c_out
        self.blocks = nn.ModuleList(convs)
        self.act = nn.LeakyReLU(0.2)

        if self.patch_head:
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(c_in, 1, kernel_size=1))
        else:
            if input_size is None:
                raise ValueError("patch_head=False needs input_size (the fully connected head has a fixed size)")
            size = check_positive_int(input_size, "input_size")
            for stride in PCL_D_STRIDES:
                size = (size - 1) // stride + 1
            self.head = nn.Sequential(
                nn.Flatten(), nn.Linear(c_in * size * size, 1024), nn.LeakyReLU(0.2), nn.Linear(1024, 1)
            )

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected a (B, {self.in_channels}, H, W) input, got shape {tuple(x.shape)}")

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at the tapped blocks (the embedding of PCL-SR's contrastive loss, paper Sec. 3.4).

        Args:
            x (Tensor): (B, in_channels, H, W) Haar high-frequency bands, any range.

        Returns:
            list[Tensor]: one map per entry of ``taps``, in that order; block t gives (B, self.channels[t], H_t,
            W_t), the BatchNorm output if ``before_relu`` else the LeakyReLU output.
        """
        self._check_input(x)
        out = []
        last = self.taps[-1]
        for i, block in enumerate(self.blocks[: last + 1]):
            y = block(x)
            x = self.act(y)
            if i in self.taps:
                out.append(y if self.before_relu else x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Discriminator logits E_D(x) (paper Eq. 7).

        Args:
            x (Tensor): (B, in_channels, H, W) Haar high-frequency bands, any range.

        Returns:
            Tensor: (B, 16) patch logits (row-major over the 4 x 4 pooled grid) with the patch head, else (B, 1).
        """
        self._check_input(x)
        for block in self.blocks:
            x = self.act(block(x))
        return self.head(x).flatten(1)
