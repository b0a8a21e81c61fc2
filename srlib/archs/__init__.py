"""Network architectures: CRL-SR (our reconstruction) and RCAN, on images in [0, 1] of shape (B, 3, H, W).

See :mod:`srlib.archs.common` for the shared blocks and conventions, :mod:`srlib.archs.crl_sr` for every
reconstruction choice of CRL-SR, and :mod:`srlib.archs.rcan` for RCAN.
"""

from srlib.archs.common import (
    RCAB,
    ChannelAttention,
    ResBlock,
    ResidualGroup,
    Upsampler,
    count_parameters,
)
from srlib.archs.crl_sr import CRLSR, Decoder, Encoder, ProjectionHead
from srlib.archs.rcan import RCAN

__all__ = [
    "CRLSR",
    "RCAB",
    "RCAN",
    "ChannelAttention",
    "Decoder",
    "Encoder",
    "ProjectionHead",
    "ResBlock",
    "ResidualGroup",
    "Upsampler",
    "count_parameters",
]
