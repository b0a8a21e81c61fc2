"""RCAN (Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention Networks", ECCV 2018).

The non-blind baseline row "RCAN" of CRL-SR Tables 2-4 (and a PCL-SR backbone). Structure as in the official
``RCAN_TrainCode/code/model/rcan.py`` (RCAN Sec. 3.1-3.4, Fig. 2):

    head conv3x3 (3 -> C)
    body: n_groups x ResidualGroup(n_blocks x RCAB, conv3x3, short skip), conv3x3, long skip from the head output
    tail: EDSR upsampler (pixel shuffle), conv3x3 (C -> 3)

Paper sizes are the defaults: 10 groups x 20 RCABs, C = 64, channel-attention reduction 16, res_scale 1.
Differences from the official code: no ``MeanShift`` (our images are [0, 1] tensors; the official code subtracts the
DIV2K mean on the 0..255 scale with frozen convolutions, so trainable parameter counts are unchanged), and
``res_scale`` is applied in each RCAB (the official RCAB ignores it; identical at the default 1).

Images: (B, 3, h, w) in [0, 1] -> (B, 3, h*s, w*s), not clamped.
"""

from __future__ import annotations

from srlib.archs.common import ResidualGroup, ResidualSRNet, check_positive_int


class RCAN(ResidualSRNet):
    """Residual channel attention network (RCAN, ECCV 2018, Sec. 3.1, Fig. 2).

    Args:
        scale: SR factor (3 or a power of two).
        n_feats: feature channels C (64).
        n_groups: residual groups (10).
        n_blocks: RCABs per group (20).
        reduction: channel-attention reduction (16).
        res_scale: residual scaling inside each RCAB (1.0).

    Shapes: (B, 3, h, w) in [0, 1] -> (B, 3, h * scale, w * scale).
    """

    def __init__(
        self,
        scale: int,
        n_feats: int = 64,
        n_groups: int = 10,
        n_blocks: int = 20,
        reduction: int = 16,
        res_scale: float = 1.0,
    ):
        check_positive_int(n_groups, "n_groups", minimum=0)
        super().__init__("RCAN", scale, n_feats,
                         lambda: [ResidualGroup(n_feats, n_blocks, reduction, res_scale) for _ in range(n_groups)])
