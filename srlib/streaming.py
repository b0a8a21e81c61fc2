"""Training images streamed from disk: for training sets larger than memory (DF2K: 3,450 2K images, ~20 GB decoded).

The small profiles keep every training image in memory (:class:`srlib.data.PatchSampler`). The ``paper`` and ``gpu``
profiles instead read their images in ``torch.utils.data.DataLoader`` workers: for every step, a worker decodes a few
randomly chosen images and cuts from each a *tile* (a random square, ``tile_factor`` times the HR patch, or the whole
image when smaller); the trainer then draws the step's patches (positions, flips, degradations, noise) from these
tiles with the run's generator, on the training device, exactly as from images in memory.

**Reproducibility.** Which images and tiles a step gets depends only on ``(seed, step)`` (each item of
:class:`StepTiles` seeds its own generator from them), never on the number of workers or on which worker ran it,
so a resumed run reads the same tiles as an uninterrupted one and the same seed gives the same run.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from srlib.data import IMAGE_EXTENSIONS, load_image


def step_seed(seed: int, step: int) -> int:
    """The seed of one step's tiles: a 63-bit hash of ``(seed, step)``."""
    return int.from_bytes(hashlib.sha256(f"tiles/{seed}/{step}".encode()).digest()[:7], "big")


class StepTiles(Dataset):
    """Map-style dataset: item ``step`` is the list of tiles of that step.

    Args:
        files: training image files.
        patch_size: the HR patch side P; a tile is ``tile_factor * P`` square (the whole image when smaller; images
            smaller than P are an error naming the file).
        n_tiles: tiles per step (one per sample of the local batch).
        seed: the run's (rank's) seed.
    """

    def __init__(self, files: Sequence[Path], patch_size: int, n_tiles: int, seed: int, tile_factor: int = 2):
        self.files = [Path(f) for f in files]
        self.patch_size, self.n_tiles, self.seed, self.tile = patch_size, n_tiles, seed, tile_factor * patch_size

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(step_seed(self.seed, step))
        out = []
        for i in torch.randint(len(self.files), (self.n_tiles,), generator=g).tolist():
            img = load_image(self.files[i])  # (H, W, 3) uint8
            h, w = img.shape[:2]
            if min(h, w) < self.patch_size:
                raise ValueError(f"{self.files[i]}: {h}x{w} is smaller than the training patch {self.patch_size}")
            th, tw = min(h, self.tile), min(w, self.tile)
            top = int(torch.randint(h - th + 1, (), generator=g))
            left = int(torch.randint(w - tw + 1, (), generator=g))
            crop = np.ascontiguousarray(img[top : top + th, left : left + tw].transpose(2, 0, 1))
            out.append(torch.from_numpy(crop))
        return out


@dataclass(frozen=True)
class StreamingImages:
    """Training images read from image files by DataLoader workers (pass it to :func:`srlib.train.train` instead of
    a list of tensors).

    Attributes:
        files: the image files (e.g. every PNG of ``DF2K/HR``).
        label: names the set in a run's identity (e.g. ``"DF2K (3450 images)"``).
        workers: DataLoader worker processes (0: read in the training process).
        tile_factor: tile side as a multiple of the HR patch.
    """

    files: tuple[Path, ...]
    label: str
    workers: int = min(8, os.cpu_count() or 1)
    tile_factor: int = 2

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, label: str | None = None, **kw) -> StreamingImages:
        files = tuple(sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS))
        if not files:
            raise FileNotFoundError(f"{folder}: no training images ({', '.join(IMAGE_EXTENSIONS)})")
        return cls(files, label or f"{Path(folder).parent.name} ({len(files)} images)", **kw)

    def loader(self, patch_size: int, batch_size: int, seed: int, start: int, stop: int) -> Iterator[list]:
        """The tiles of steps ``start .. stop - 1`` in order (workers prefetch ahead)."""
        ds = StepTiles(self.files, patch_size, batch_size, seed, self.tile_factor)
        return iter(DataLoader(ds, batch_size=None, sampler=range(start, stop), num_workers=self.workers,
                               prefetch_factor=4 if self.workers else None, persistent_workers=False))
