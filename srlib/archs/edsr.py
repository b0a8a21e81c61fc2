"""EDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPRW 2017).

A PCL-SR backbone (PCL Tables 1-2: "EDSR-S" and "EDSR-L"; ``research/methods.md`` 2.5). Structure as in the official
``EDSR-PyTorch/src/model/edsr.py`` (EDSR Sec. 3.1-3.2, Fig. 3):

    head conv3x3 (3 -> C)
    body: n_blocks x ResBlock (conv3x3, ReLU, conv3x3, scaled by res_scale, no batch norm), conv3x3,
          long skip from the head output
    tail: EDSR upsampler (pixel shuffle), conv3x3 (C -> 3)

Sizes: **EDSR-S** (the "baseline", the default) 16 blocks, C = 64, res_scale 1; **EDSR-L** 32 blocks, C = 256,
res_scale 0.1 (:data:`EDSR_L`). Difference from the official code: no ``MeanShift`` (our images are [0, 1] tensors;
the official code subtracts the DIV2K mean on the 0..255 scale with two frozen 1x1 convolutions of 3 * 3 + 3 = 12
scalars each, so trainable parameter counts are unchanged: EDSR-S x4 has 1,517,571 trainable parameters, 1,517,595
with the frozen ``MeanShift`` scalars of the official checkpoint).

Images: (B, 3, h, w) in [0, 1] -> (B, 3, h*s, w*s), not clamped.
"""

from __future__ import annotations

from srlib.archs.common import ResBlock, ResidualSRNet, check_positive_int

EDSR_S = {"n_feats": 64, "n_blocks": 16, "res_scale": 1.0}
EDSR_L = {"n_feats": 256, "n_blocks": 32, "res_scale": 0.1}


class EDSR(ResidualSRNet):
    """Enhanced deep residual network (EDSR, CVPRW 2017, Sec. 3.1-3.2, Fig. 3).

    Args:
        scale: SR factor (3 or a power of two).
        n_feats: feature channels C (64 for EDSR-S, 256 for EDSR-L).
        n_blocks: residual blocks (16 / 32).
        res_scale: residual scaling in each block (1.0 / 0.1).

    Shapes: (B, 3, h, w) in [0, 1] -> (B, 3, h * scale, w * scale).
    Trainable parameters: (9*3*C + C) + n_blocks * 2 * (9*C*C + C) + (9*C*C + C) + upsampler + (9*C*3 + 3), the
    upsampler being log2(s) * (9*C*4C + 4C) for s = 2^k and 9*C*9C + 9C for s = 3.
    """

    def __init__(self, scale: int, n_feats: int = 64, n_blocks: int = 16, res_scale: float = 1.0):
        check_positive_int(n_blocks, "n_blocks", minimum=0)
        super().__init__("EDSR", scale, n_feats, lambda: [ResBlock(n_feats, res_scale) for _ in range(n_blocks)])
