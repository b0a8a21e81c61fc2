"""Network architectures on images in [0, 1] of shape (B, 3, H, W), one file per paper: CRL-SR (our
reconstruction), RCAN, EDSR, and PCL-SR's embedding network (a discriminator on Haar high-frequency bands).

See :mod:`srlib.archs.common` for the shared blocks and conventions.
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
from srlib.archs.edsr import EDSR
from srlib.archs.pcl_embed import PCLDiscriminator
from srlib.archs.rcan import RCAN

__all__ = [
    "CRLSR",
    "RCAB",
    "RCAN",
    "ChannelAttention",
    "Decoder",
    "EDSR",
    "Encoder",
    "PCLDiscriminator",
    "ProjectionHead",
    "ResBlock",
    "ResidualGroup",
    "Upsampler",
    "count_parameters",
]
