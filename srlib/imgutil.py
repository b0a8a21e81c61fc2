"""Image conversions shared by every module: one place for uint8 <-> tensor, mod-crop and the Y channel.

Conventions (used everywhere in srlib):

* An image on disk or in NumPy is ``np.ndarray`` of shape (H, W, 3), dtype uint8, RGB, values 0..255.
* An image tensor is ``torch.Tensor`` of shape (3, H, W) or (B, 3, H, W), float32, values on the 0..255 scale
  (DASR's convention; noise levels are then stated on the same scale as the papers state them).
* The Y channel is ITU-R BT.601 "studio" luma (16..235), computed in float without rounding, exactly as
  MATLAB's ``rgb2ycbcr`` and BasicSR's ``to_y_channel`` do.
"""

from __future__ import annotations

import numpy as np
import torch

# BT.601 studio-swing luma weights for R, G, B on the 0..255 scale (MATLAB rgb2ycbcr, first row / 255).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64) / 255.0
# Full-range luma (ITU-R BT.601), equal to the gray value on an image whose three channels are equal.
_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def img2tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 tensor on the 0..255 scale."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {img.shape}")
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()


def tensor2img(t: torch.Tensor) -> np.ndarray:
    """(3, H, W) float tensor on the 0..255 scale -> (H, W, 3) uint8 (rounded half to even, clamped)."""
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(t.shape)}")
    return t.detach().to("cpu", torch.float32).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right of an (H, W, ...) array so that H and W are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def rgb2y(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB on the 0..255 scale -> (H, W) float64 BT.601 Y in [16, 235], not rounded."""
    return img.astype(np.float64) @ _Y_WEIGHTS + 16.0


def rgb2gray(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB on the 0..255 scale -> (H, W) float64 full-range luma (the gray value of a gray image)."""
    return img.astype(np.float64) @ _GRAY_WEIGHTS
