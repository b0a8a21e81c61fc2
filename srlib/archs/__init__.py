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
from srlib.archs.dasr import DASR, DABlock, DAConv, DAGroup, DASRNet, DegradationEncoder, NonBlindDASR
from srlib.archs.edsr import EDSR
from srlib.archs.moco import MoCo
from srlib.archs.pcl_embed import PCLDiscriminator
from srlib.archs.rcan import RCAN

ARCHITECTURES = {cls.__name__: cls for cls in (CRLSR, RCAN, EDSR, DASR, CDSR, NonBlindDASR, PCLDiscriminator)}
"""The trainable networks by class name: a run's ``run.json`` names its architecture by this key and its constructor
keyword arguments, so :func:`build_arch` rebuilds the network (exported checkpoints and ``srlib upscale`` use it)."""


def build_arch(name: str, kwargs: dict):
    """The network ``ARCHITECTURES[name](**kwargs)``; a clear error for an unknown name."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name](**kwargs)


__all__ = [
    "ARCHITECTURES",
    "build_arch",
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
    "NonBlindDASR",
    "PCLDiscriminator",
    "ProjectionHead",
    "ResBlock",
    "ResidualDenseBlock",
    "ResidualGroup",
    "Upsampler",
    "count_parameters",
]
