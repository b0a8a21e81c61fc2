"""Network architectures on images in [0, 1] of shape (B, 3, H, W), one file per paper: CRL-SR (our
reconstruction), RCAN, EDSR, and PCL-SR's embedding network (a discriminator on Haar high-frequency bands).

See :mod:`srlib.archs.common` for the shared blocks and conventions.
"""

from srlib.archs.cdsr import CDSR, CSC, DQA, LPE, RRDBSFT, CDSREncoder, CDSRNet, DQAConv, FuseBlock, ResidualDenseBlock
from srlib.archs.common import (
    RCAB,
    ChannelAttention,
    ResBlock,
    ResidualGroup,
    Upsampler,
    count_parameters,
)
from srlib.archs.crl_sr import CRLSR, Decoder, Encoder, ProjectionHead
from srlib.archs.dasr import DASR, DABlock, DAConv, DAGroup, DASRNet, DegradationEncoder
from srlib.archs.edsr import EDSR
from srlib.archs.moco import MoCo
from srlib.archs.pcl_embed import PCLDiscriminator
from srlib.archs.rcan import RCAN

__all__ = [
    "CDSR",
    "CRLSR",
    "CSC",
    "DASR",
    "DQA",
    "LPE",
    "RCAB",
    "RCAN",
    "RRDBSFT",
    "CDSREncoder",
    "CDSRNet",
    "ChannelAttention",
    "DABlock",
    "DAConv",
    "DAGroup",
    "DASRNet",
    "DQAConv",
    "Decoder",
    "DegradationEncoder",
    "EDSR",
    "Encoder",
    "FuseBlock",
    "MoCo",
    "PCLDiscriminator",
    "ProjectionHead",
    "ResBlock",
    "ResidualDenseBlock",
    "ResidualGroup",
    "Upsampler",
    "count_parameters",
]
