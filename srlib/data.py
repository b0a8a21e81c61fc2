"""Image data: reading files, the embedded and folder image sets, patch sampling and the cached test LR sets.

Conventions (see :mod:`srlib.imgutil`):

* An image in NumPy is ``np.ndarray`` of shape (H, W, 3), dtype uint8, RGB, values 0..255.
* An image tensor is ``torch.Tensor`` of shape (3, H, W) or (B, 3, H, W), float32, values on the 0..255 scale.
* Every random draw in this module comes from a ``torch.Generator`` passed in by the caller; nothing here reads
  or changes a global random state, so a trainer that saves ``generator.get_state()`` resumes exactly.

Image sets
    An :class:`ImageSet` is a named, sorted list of stems with a lazy loader. Get any set by name with
    :func:`open_set`:

    * ``"embedded-train"`` / ``"embedded-test"``: natural images bundled in the scikit-image wheel
      (``skimage.data``), no download (:data:`EMBEDDED_TRAIN`, :data:`EMBEDDED_TEST`).
    * any other name: ``<data_root>/<name>/HR/*.png`` (also .jpg/.jpeg/.bmp/.tif/.tiff), where the data root
      is the ``data_root`` argument, else the environment variable ``SRLIB_DATA`` (:func:`data_root`).

Test LR cache
    :func:`cached_lr_set` degrades each HR image of a test set once per (set, scale, degradation, seed),
    writes the LR PNGs and a ``manifest.json`` (parameters, seed, sha256 of every image) into a folder named
    by a hash of all of these, and reuses the folder afterwards, checking the sha256 of every LR file.
    Each image gets its own generator seeded from (seed, stem), so adding an image to a set never changes
    the LR of the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from srlib.fileio import atomic_write
from srlib.imgutil import img2tensor, modcrop, tensor2img
from srlib.locks import path_lock

__all__ = [
    "CACHE_VERSION",
    "EMBEDDED_TEST",
    "EMBEDDED_TRAIN",
    "IMAGE_EXTENSIONS",
    "DatasetNotFoundError",
    "ImageReadError",
    "ImageRecord",
    "ImageSet",
    "Pair",
    "PatchSampler",
    "available_sets",
    "cached_lr_set",
    "data_root",
    "dihedral",
    "embedded_set",
    "existing_lr",
    "folder_set",
    "hr_sha256",
    "image_seed",
    "inverse_dihedral",
    "is_grayscale_file",
    "load_image",
    "open_set",
    "sample_patches",
    "save_image",
]

#: Bump when the way cached LR images are produced or stored changes; it is part of every cache key.
CACHE_VERSION = 1

#: File suffixes read by :func:`folder_set` (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

ENV_DATA_ROOT = "SRLIB_DATA"

# Embedded images: stem -> (skimage.data function, index into its return value or None). Every one of them is a
# file inside the scikit-image wheel (checked with scikit-image 0.26 and no network: none goes through pooch).
_EMBEDDED_SOURCES: dict[str, tuple[str, int | None]] = {
    "astronaut": ("astronaut", None),  # 512x512 RGB
    "brick": ("brick", None),  # 512x512 gray
    "camera": ("camera", None),  # 512x512 gray
    "cell": ("cell", None),  # 660x550 gray (microscopy)
    "chelsea": ("chelsea", None),  # 300x451 RGB
    "clock": ("clock", None),  # 300x400 gray (motion-blurred photograph)
    "coffee": ("coffee", None),  # 400x600 RGB
    "coins": ("coins", None),  # 303x384 gray
    "grass": ("grass", None),  # 512x512 gray
    "gravel": ("gravel", None),  # 512x512 gray
    "hubble_deep_field": ("hubble_deep_field", None),  # 872x1000 RGB
    "immunohistochemistry": ("immunohistochemistry", None),  # 512x512 RGB
    "moon": ("moon", None),  # 512x512 gray
    "motorcycle_left": ("stereo_motorcycle", 0),  # 500x741 RGB
    "retina": ("retina", None),  # 1411x1411 RGB
    "rocket": ("rocket", None),  # 427x640 RGB
}

#: Embedded test split: five colour photographs (sizes H x W: astronaut 512x512, chelsea 300x451,
#: coffee 400x600, motorcycle_left 500x741, rocket 427x640).
EMBEDDED_TEST: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "motorcycle_left", "rocket")

#: Embedded training split: the other natural images of ``skimage.data`` whose shorter side is >= 300 pixels
#: (so a 192-pixel HR patch, 48 x 4, fits in every one). Grayscale ones are replicated to RGB and flagged gray.
#: Left out: synthetic images (checkerboard, colorwheel, shepp_logan_phantom, binary_blobs, horse, logo), small
#: ones (page 191x384, text 172x448, microaneurysms 102x102, lfw_subset 25x25), ``cat`` (the same image as
#: chelsea) and the right view of the stereo motorcycle pair (the same scene as the test image motorcycle_left).
EMBEDDED_TRAIN: tuple[str, ...] = (
    "brick",
    "camera",
    "cell",
    "clock",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "retina",
)

_EMBEDDED_SPLITS = {"test": EMBEDDED_TEST, "train": EMBEDDED_TRAIN}


class ImageReadError(ValueError):
    """A file exists but cannot be read as an image (corrupt, truncated, not an image, unsupported mode)."""


class DatasetNotFoundError(FileNotFoundError):
    """A data root, set folder or image folder is missing or holds no images."""


# --------------------------------------------------------------------------------------------------------------
# Reading and writing image files
# --------------------------------------------------------------------------------------------------------------

def _unit16_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Integer array on the 0..65535 scale (values outside are clipped) -> uint8 round(v * 255 / 65535)."""
    v = np.clip(arr.astype(np.int64), 0, 65535)
    # (v * 255 + 32767) // 65535 == round(v * 255 / 65535): 65535 is odd, so no value is exactly half-way.
    return ((v * 255 + 32767) // 65535).astype(np.uint8)


def _float_to_uint8(arr: np.ndarray, path: Path) -> np.ndarray:
    """Mode ``F`` rule: values in [0, 1] are taken as a 0..1 image (x 255); values in [-1, 256] as already on the
    0..255 scale; both are then rounded (half to even) and clipped to 0..255. Anything else is an error."""
    a = arr.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ImageReadError(f"{path}: float image (mode F) holds NaN or infinite values")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo >= 0.0 and hi <= 1.0:
        a = a * 255.0
    elif lo < -1.0 or hi > 256.0:
        raise ImageReadError(
            f"{path}: float image (mode F) has values in [{lo:g}, {hi:g}]; only a 0..1 or a 0..255 range is "
            "understood"
        )
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def _palette_rgb(im: Any) -> np.ndarray:
    """The palette of a ``P``/``PA`` image as a (256, 3) uint8 array (missing entries are black)."""
    pal = im.getpalette("RGB") or []
    table = np.zeros((256, 3), dtype=np.uint8)
    entries = np.asarray(pal, dtype=np.uint8).reshape(-1, 3)[:256]
    table[: len(entries)] = entries
    return table


def _decode(path: Path) -> tuple[np.ndarray, bool]:
    """Read ``path`` -> ((H, W, 3) uint8 RGB, gray flag). See :func:`load_image` for the mode rules."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    try:
        with Image.open(path) as im:
            im.load()  # decode now, so that a truncated or corrupt file fails here
            mode = im.mode
            if mode == "RGB":
                rgb = np.asarray(im, dtype=np.uint8)
                gray = False
            elif mode in ("RGBA", "RGBX"):
                rgb = np.asarray(im, dtype=np.uint8)[..., :3]  # alpha is dropped (not composited)
                gray = False
            elif mode in ("L", "LA", "La"):
                g = np.asarray(im.getchannel(0), dtype=np.uint8)
                rgb, gray = np.repeat(g[..., None], 3, axis=2), True
            elif mode == "1":
                g = np.asarray(im, dtype=bool).astype(np.uint8) * np.uint8(255)
                rgb, gray = np.repeat(g[..., None], 3, axis=2), True
            elif mode in ("P", "PA"):
                idx = np.asarray(im.getchannel(0), dtype=np.uint8)  # palette indices; transparency is ignored
                table = _palette_rgb(im)
                used = table[np.unique(idx)]
                gray = bool(np.all(used[:, 0] == used[:, 1]) and np.all(used[:, 1] == used[:, 2]))
                rgb = table[idx]
            elif mode.startswith("I;16") or mode == "I":
                g = _unit16_to_uint8(np.asarray(im))
                rgb, gray = np.repeat(g[..., None], 3, axis=2), True
            elif mode == "F":
                g = _float_to_uint8(np.asarray(im), path)
                rgb, gray = np.repeat(g[..., None], 3, axis=2), True
            else:  # CMYK, YCbCr, LAB, HSV, RGBa, ...: let Pillow convert
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
                gray = False
    except FileNotFoundError:
        raise
    except ImageReadError:
        raise
    except UnidentifiedImageError as e:
        raise ImageReadError(f"{path}: not a readable image file (Pillow cannot identify its format)") from e
    except Exception as e:  # truncated data, bad CRC, decoder errors, decompression bomb, unsupported mode
        raise ImageReadError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from e
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageReadError(f"{path}: decoded to an unexpected shape {rgb.shape}")
    return rgb, gray


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB, whatever its mode.

    Mode rules (Pillow modes; for a multi-frame file the first frame is read):

    * ``RGB``: as is. ``RGBA`` / ``RGBX``: the alpha (padding) channel is dropped, colours are not composited.
    * ``L``, ``LA`` (alpha dropped), ``1`` (0 / 255): the gray value is replicated to the three channels.
    * ``P`` / ``PA``: palette colours looked up per pixel; transparency and alpha are ignored.
    * ``I;16``, ``I;16B``, ``I;16L`` and ``I`` (16-bit gray; ``I`` is clipped to 0..65535):
      ``round(v * 255 / 65535)``, replicated to three channels.
    * ``F`` (float gray): values within [0, 1] are taken as a 0..1 image and multiplied by 255; values within
      [-1, 256] are taken as already on the 0..255 scale; then rounded and clipped to 0..255. Other ranges,
      NaN or inf raise :class:`ImageReadError`.
    * anything else (``CMYK``, ``YCbCr``, ...): Pillow's ``convert("RGB")``.

    Args:
        path: image file (PNG, JPEG, BMP, TIFF, ... anything Pillow reads).

    Returns:
        np.ndarray: (H, W, 3), uint8, RGB, values 0..255.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ImageReadError: the file is not an image, is truncated or corrupt (the message names the file and the
            problem).
    """
    return _decode(Path(path))[0]


def is_grayscale_file(path: str | os.PathLike) -> bool:
    """Whether an image file is stored as grayscale (scored on its gray values, as MATLAB evaluations do).

    True for the modes ``L``, ``LA``, ``1``, ``I;16*``, ``I``, ``F``, and for a palette image (``P``/``PA``)
    whose palette entries used by the pixels are all gray (R = G = B). An RGB file is never gray, even when its
    three channels happen to be equal. The file is decoded (the same errors as :func:`load_image`).
    """
    return _decode(Path(path))[1]


def save_image(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write an image as PNG, atomically (a temporary file in the same folder, then ``os.replace``).

    Args:
        path: destination file; written as PNG whatever its suffix. Its folder is created.
        img: (H, W, 3) uint8 RGB, or (H, W) uint8 gray (written as mode ``L``).

    Raises:
        ValueError: ``img`` is not uint8 of shape (H, W, 3) or (H, W).
    """
    from PIL import Image

    path = Path(path)
    img = np.asarray(img)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"save_image({path}): expected an (H, W, 3) or (H, W) uint8 array, got {img.dtype} "
                         f"array of shape {img.shape}")
    pil = Image.fromarray(np.ascontiguousarray(img))
    with atomic_write(path) as f:
        pil.save(f, format="PNG")


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hr_sha256(img: np.ndarray) -> str:
    """sha256 (hex) of an image's decoded pixels: ``b"HxWxC:"`` followed by the C-order uint8 bytes.

    Hashing pixels, not file bytes, identifies the image the same way for files (whatever their encoding) and
    for the in-memory embedded set.
    """
    img = np.ascontiguousarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"hr_sha256: expected a uint8 array, got {img.dtype}")
    h = hashlib.sha256("x".join(str(s) for s in img.shape).encode() + b":")
    h.update(img.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------------
# Image sets
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRecord:
    """One image of a set: ``image`` is (H, W, 3) uint8 RGB; ``gray`` says the source is grayscale."""

    stem: str
    image: np.ndarray
    gray: bool


@dataclass
class ImageSet:
    """A named image set: sorted stems and a lazy loader.

    Attributes:
        name: set name (e.g. ``"Set5"``, ``"embedded-test"``); part of every cache key.
        stems: image names without suffix, sorted.
        loader: ``loader(stem) -> ((H, W, 3) uint8 RGB, gray flag)``.
        paths: source file of each stem for a folder set, else None.
    """

    name: str
    stems: list[str]
    loader: Callable[[str], tuple[np.ndarray, bool]] = field(repr=False)
    paths: dict[str, Path] | None = field(default=None, repr=False)

    @classmethod
    def from_arrays(cls, name: str, images: Mapping[str, np.ndarray],
                    gray: Mapping[str, bool] | None = None) -> ImageSet:
        """A set held in memory: ``images`` maps stem -> (H, W, 3) uint8 RGB, or (H, W) uint8 gray (replicated to
        RGB and flagged gray). ``gray`` overrides the flag per stem."""
        arrays: dict[str, tuple[np.ndarray, bool]] = {}
        for stem, img in images.items():
            img = np.asarray(img)
            if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
                raise ValueError(f"set {name!r}, image {stem!r}: expected (H, W, 3) or (H, W) uint8, got "
                                 f"{img.dtype} array of shape {img.shape}")
            is_gray = img.ndim == 2
            if is_gray:
                img = np.repeat(img[..., None], 3, axis=2)
            if gray is not None and stem in gray:
                is_gray = bool(gray[stem])
            arrays[stem] = (np.ascontiguousarray(img), is_gray)

        def loader(stem: str) -> tuple[np.ndarray, bool]:
            img, g = arrays[stem]
            return img.copy(), g

        return cls(name=name, stems=sorted(arrays), loader=loader)

    def __len__(self) -> int:
        return len(self.stems)

    def load(self, stem: str) -> ImageRecord:
        """Load one image by stem."""
        if stem not in self.stems:
            raise KeyError(f"set {self.name!r} has no image {stem!r}")
        img, gray = self.loader(stem)
        return ImageRecord(stem=stem, image=img, gray=gray)

    def __iter__(self) -> Iterator[ImageRecord]:
        for stem in self.stems:
            yield self.load(stem)

    def subset(self, n: int) -> ImageSet:
        """The first ``n`` images in sorted stem order. The name becomes ``f"{name}-first{n}"`` when images are
        dropped (so results are never labelled with the full set's name)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"subset of set {self.name!r}: n must be a positive integer, got {n!r}")
        if n >= len(self.stems):
            return self
        stems = sorted(self.stems)[:n]
        paths = None if self.paths is None else {s: self.paths[s] for s in stems}
        return ImageSet(name=f"{self.name}-first{n}", stems=stems, loader=self.loader, paths=paths)

    def tensors(self) -> list[torch.Tensor]:
        """All images as (3, H, W) float32 tensors on the 0..255 scale, in stem order."""
        return [img2tensor(r.image) for r in self]


def _load_embedded(stem: str) -> tuple[np.ndarray, bool]:
    import skimage.data

    fn, index = _EMBEDDED_SOURCES[stem]
    img = getattr(skimage.data, fn)()
    if index is not None:
        img = img[index]
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"embedded image {stem!r}: skimage.data.{fn} returned {img.dtype}, expected uint8")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2)), True
    return np.ascontiguousarray(img[..., :3]), False


def embedded_set(split: str) -> ImageSet:
    """The embedded image set: ``split`` is ``"train"`` or ``"test"`` (:data:`EMBEDDED_TRAIN`,
    :data:`EMBEDDED_TEST`). Named ``"embedded-train"`` / ``"embedded-test"``. Images are read lazily from the
    scikit-image wheel (no network)."""
    if split not in _EMBEDDED_SPLITS:
        raise ValueError(f"embedded_set: split must be 'train' or 'test', got {split!r}")
    return ImageSet(name=f"embedded-{split}", stems=sorted(_EMBEDDED_SPLITS[split]), loader=_load_embedded)


def data_root(data_root: str | os.PathLike | None = None) -> Path | None:
    """The data root: the argument if given, else the environment variable ``SRLIB_DATA``, else None.

    The folder is not checked here (:func:`folder_set` does, with a clear error).
    """
    if data_root is not None and str(data_root) != "":
        return Path(data_root).expanduser()
    env = os.environ.get(ENV_DATA_ROOT, "")
    return Path(env).expanduser() if env else None


_resolve_data_root = data_root  # the functions below take a parameter named data_root that shadows it


def _image_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if p.stem in files:
            raise ValueError(f"{folder}: two image files share the stem {p.stem!r}: {files[p.stem].name} and {p.name}")
        files[p.stem] = p
    return files


def _set_folder(name: str, root: Path | None, subdir: str) -> Path:
    if root is None:
        raise DatasetNotFoundError(
            f"image set {name!r}: no data root; pass data_root=... or set the environment variable {ENV_DATA_ROOT} "
            f"to a folder laid out as <root>/{name}/{subdir}/*.png"
        )
    if not root.is_dir():
        raise DatasetNotFoundError(f"image set {name!r}: data root {root} does not exist or is not a folder "
                                   f"(from the data_root argument or {ENV_DATA_ROOT})")
    return root / name / subdir


def folder_set(name: str, data_root: str | os.PathLike | None = None, subdir: str = "HR") -> ImageSet:
    """An image set read from ``<root>/<name>/<subdir>/*.{png,jpg,jpeg,bmp,tif,tiff}``, sorted by stem.

    The set's name is ``name`` for ``subdir="HR"``, else ``f"{name}-{subdir}"``. Images are decoded lazily with
    :func:`load_image`; the gray flag is the file's (:func:`is_grayscale_file`).

    Raises:
        DatasetNotFoundError: no data root, or the root, the set folder or any image in it is missing (the message
            names the path and ``SRLIB_DATA``).
    """
    root = _resolve_data_root(data_root)
    folder = _set_folder(name, root, subdir)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"image set {name!r}: folder {folder} not found (data root {root}, from the "
                                   f"data_root argument or {ENV_DATA_ROOT})")
    files = _image_files(folder)
    if not files:
        raise DatasetNotFoundError(f"image set {name!r}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    stems = sorted(files)

    def loader(stem: str) -> tuple[np.ndarray, bool]:
        return _decode(files[stem])

    set_name = name if subdir == "HR" else f"{name}-{subdir}"
    return ImageSet(name=set_name, stems=stems, loader=loader, paths=dict(files))


def _is_embedded_name(name: str) -> bool:
    return name in ("embedded-train", "embedded-test")


def available_sets(names: Sequence[str], data_root: str | os.PathLike | None = None) -> list[str]:
    """Those of ``names`` that can be opened with :func:`open_set` (embedded sets always; folder sets when
    ``<root>/<name>/HR`` holds at least one image file), in the given order."""
    root = _resolve_data_root(data_root)
    out = []
    for name in names:
        if _is_embedded_name(name):
            out.append(name)
            continue
        if root is None:
            continue
        folder = root / name / "HR"
        try:
            if folder.is_dir() and _image_files(folder):
                out.append(name)
        except (OSError, ValueError):
            continue
    return out


def open_set(name: str, data_root: str | os.PathLike | None = None) -> ImageSet:
    """Any image set by name: ``"embedded-train"`` / ``"embedded-test"`` (:func:`embedded_set`), else the folder
    set ``<root>/<name>/HR`` (:func:`folder_set`)."""
    if _is_embedded_name(name):
        return embedded_set(name.split("-", 1)[1])
    return folder_set(name, data_root=data_root)


def existing_lr(name: str, scale: int, data_root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Precomputed LR files shipped with a set: ``<root>/<name>/LR_bicubic/X{scale}/<stem>x{scale}.png``.

    Returns:
        dict stem -> LR file path, sorted by stem; empty when the set has no such folder (or no data root).
        The LR of an HR image is ``1/scale`` the size of the HR mod-cropped to ``scale``.
    """
    root = _resolve_data_root(data_root)
    if root is None:
        return {}
    folder = root / name / "LR_bicubic" / f"X{scale}"
    if not folder.is_dir():
        return {}
    suffix = f"x{scale}"
    out = {}
    for stem, p in sorted(_image_files(folder).items()):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            out[stem[: -len(suffix)]] = p
    return out


# --------------------------------------------------------------------------------------------------------------
# Patch sampling
# --------------------------------------------------------------------------------------------------------------


def dihedral(x: torch.Tensor, t: int) -> torch.Tensor:
    """Element ``t`` (0..7) of the dihedral group on the last two dims: flip the width if ``t & 4``, then rotate by
    ``(t & 3) * 90`` degrees counter-clockwise. ``t = 0`` is the identity."""
    if not 0 <= int(t) < 8:
        raise ValueError(f"dihedral transform index must be in 0..7, got {t}")
    t = int(t)
    if t & 4:
        x = x.flip(-1)
    return torch.rot90(x, t & 3, dims=(-2, -1)) if t & 3 else x


def inverse_dihedral(x: torch.Tensor, t: int) -> torch.Tensor:
    """The inverse of :func:`dihedral`: ``inverse_dihedral(dihedral(x, t), t) == x`` (for self-ensembles)."""
    if not 0 <= int(t) < 8:
        raise ValueError(f"dihedral transform index must be in 0..7, got {t}")
    t = int(t)
    if t & 3:
        x = torch.rot90(x, -(t & 3), dims=(-2, -1))
    return x.flip(-1) if t & 4 else x


def _image_label(names: Sequence[str] | None, i: int) -> str:
    return repr(names[i]) if names is not None else f"#{i}"


def _check_patch_images(images: Sequence[torch.Tensor], patch_size: int, names: Sequence[str] | None) -> None:
    if not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive integer, got {patch_size!r}")
    if len(images) == 0:
        raise ValueError("no images to sample patches from")
    if names is not None and len(names) != len(images):
        raise ValueError(f"{len(names)} names for {len(images)} images")
    for i, img in enumerate(images):
        if not isinstance(img, torch.Tensor) or img.ndim != 3 or img.shape[0] != 3:
            shape = tuple(img.shape) if hasattr(img, "shape") else type(img).__name__
            raise ValueError(f"image {_image_label(names, i)}: expected a (3, H, W) tensor, got {shape}")
        h, w = int(img.shape[1]), int(img.shape[2])
        if h < patch_size or w < patch_size:
            raise ValueError(f"image {_image_label(names, i)} is {h}x{w} (HxW), smaller than the patch "
                             f"{patch_size}x{patch_size}")


def _draw_patches(images: Sequence[torch.Tensor], patch_size: int, n: int, generator: torch.Generator,
                  augment: bool) -> torch.Tensor:
    """Draw order (all from ``generator``): image indices (n), tops (n), lefts (n), then transforms (n)."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"number of patches must be a positive integer, got {n!r}")
    p = patch_size
    idx = torch.randint(len(images), (n,), generator=generator)
    u_top = torch.rand(n, generator=generator, dtype=torch.float64)
    u_left = torch.rand(n, generator=generator, dtype=torch.float64)
    ts = torch.randint(8, (n,), generator=generator) if augment else torch.zeros(n, dtype=torch.int64)
    return crop_patches(images, p, idx, u_top, u_left, ts)


def crop_patches(images: Sequence[torch.Tensor], patch_size: int, idx: torch.Tensor, u_top: torch.Tensor,
                 u_left: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Patches at given draws: patch k is image ``idx[k]`` cropped at the relative position (``u_top[k]``,
    ``u_left[k]``) in [0, 1) of the valid range, then dihedral transform ``transforms[k]`` (:func:`dihedral`).

    Returns:
        (n, 3, P, P) float32, values as in the images.
    """
    p = patch_size
    out = []
    for k in range(len(idx)):
        img = images[int(idx[k])]
        h, w = int(img.shape[1]), int(img.shape[2])
        top = min(int(u_top[k] * (h - p + 1)), h - p)
        left = min(int(u_left[k] * (w - p + 1)), w - p)
        out.append(dihedral(img[:, top : top + p, left : left + p], int(transforms[k])).to(torch.float32))
    return torch.stack(out).contiguous()


def sample_patches(images: Sequence[torch.Tensor], patch_size: int, n: int, generator: torch.Generator,
                   augment: bool = True, names: Sequence[str] | None = None) -> torch.Tensor:
    """Random square patches from a list of images.

    For each patch: a uniformly random image, a uniformly random crop position, and (if ``augment``) a uniformly
    random one of the 8 dihedral transforms (:func:`dihedral`: flips and 90-degree rotations). Every draw comes
    from ``generator``; the same generator state gives the same batch.

    Args:
        images: (3, H, W) tensors (float on the 0..255 scale, or uint8), each at least ``patch_size`` in H and W.
        patch_size: P, side of the square patch in pixels.
        n: number of patches.
        generator: the only source of randomness (a CPU ``torch.Generator``).
        augment: apply a random dihedral transform to each patch.
        names: optional image names for error messages.

    Returns:
        Tensor: (n, 3, P, P) float32, on the images' device, values as in the images.

    Raises:
        ValueError: an image smaller than the patch (naming the image and both sizes), bad shapes or sizes.
    """
    _check_patch_images(images, patch_size, names)
    return _draw_patches(images, patch_size, n, generator, augment)


class PatchSampler:
    """Training patches from a set decoded once.

    Holds the images as (3, H, W) uint8 tensors (a quarter of the float memory, on the CPU) and yields (B, 3, P, P)
    float32 batches on the 0..255 scale on ``device``. A batch depends only on the generator's state, so saving
    ``generator.get_state()`` with a checkpoint and restoring it resumes the same sequence of batches.

    Example:
        >>> sampler = PatchSampler.from_image_set(embedded_set("train"), patch_size=96, batch_size=16)
        >>> g = torch.Generator().manual_seed(0)
        >>> hr = sampler.sample(g)  # (16, 3, 96, 96) float32
    """

    def __init__(self, images: Sequence[torch.Tensor | np.ndarray], patch_size: int, batch_size: int,
                 augment: bool = True, names: Sequence[str] | None = None, device: str | torch.device = "cpu"):
        tensors = []
        for i, img in enumerate(images):
            if isinstance(img, np.ndarray):
                if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                    raise ValueError(f"image {_image_label(names, i)}: expected (H, W, 3) uint8, got {img.dtype} "
                                     f"array of shape {img.shape}")
                img = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
            tensors.append(img)
        _check_patch_images(tensors, patch_size, names)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.images = tensors
        self.names = list(names) if names is not None else None
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.augment = augment
        self.device = torch.device(device)

    @classmethod
    def from_image_set(cls, image_set: ImageSet, patch_size: int, batch_size: int,
                       augment: bool = True) -> PatchSampler:
        """Decode every image of ``image_set`` once (as uint8 tensors)."""
        images, names = [], []
        for rec in image_set:
            images.append(torch.from_numpy(np.ascontiguousarray(rec.image.transpose(2, 0, 1))))
            names.append(f"{image_set.name}/{rec.stem}")
        return cls(images, patch_size, batch_size, augment=augment, names=names)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        """One batch: (batch_size, 3, P, P) float32 on the 0..255 scale, on ``self.device`` (cropped on the CPU from
        the generator's draws, then moved: the training device degrades it)."""
        return _draw_patches(self.images, self.patch_size, self.batch_size, generator, self.augment).to(self.device)

    def batches(self, generator: torch.Generator, n_batches: int | None = None) -> Iterator[torch.Tensor]:
        """``n_batches`` batches (endless when None), each from :meth:`sample` with the same generator."""
        i = 0
        while n_batches is None or i < n_batches:
            yield self.sample(generator)
            i += 1


# --------------------------------------------------------------------------------------------------------------
# Cached test LR sets
# --------------------------------------------------------------------------------------------------------------


class DegradationLike(Protocol):
    """What :func:`cached_lr_set` needs from a degradation (``srlib.degradation.Degradation`` provides it)."""

    scale: int

    @property
    def name(self) -> str: ...

    def to_dict(self) -> dict: ...

    def apply(self, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


@dataclass(frozen=True)
class Pair:
    """A test pair. ``hr``: (H, W, 3) uint8 RGB, mod-cropped to the scale; ``lr``: (H/s, W/s, 3) uint8 RGB;
    ``gray``: the HR source is grayscale (score it on gray values)."""

    stem: str
    hr: np.ndarray
    lr: np.ndarray
    gray: bool


def image_seed(seed: int, stem: str) -> int:
    """Seed of the per-image generator: the first 8 bytes (little-endian) of sha256(f"{seed}:{stem}"), 63 bits."""
    digest = hashlib.sha256(f"{int(seed)}:{stem}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _safe_component(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._+=-]+", "_", str(s)).strip("._")
    return s or "unnamed"


def _srlib_version() -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("srlib")
        except PackageNotFoundError:
            pass
    except ImportError:  # pragma: no cover
        pass
    try:
        import srlib

        return getattr(srlib, "__version__", None)
    except Exception:  # pragma: no cover - srlib is importable whenever this module is
        return None


def _degrade_one(degradation: DegradationLike, set_name: str, stem: str, hr: np.ndarray, seed: int) -> np.ndarray:
    scale = int(degradation.scale)
    h, w = hr.shape[:2]
    if h < scale or w < scale:
        raise ValueError(f"set {set_name!r}, image {stem!r}: HR is {h}x{w} (HxW), smaller than the scale {scale} "
                         f"of degradation {degradation.name!r}")
    gen = torch.Generator().manual_seed(image_seed(seed, stem))
    try:
        lr_t = degradation.apply(img2tensor(hr)[None], gen)
    except Exception as e:
        msg = f"set {set_name!r}, image {stem!r} ({h}x{w}): degradation {degradation.name!r} failed: {e}"
        try:
            err = type(e)(msg)  # keep the type (e.g. DegradationError, a ValueError) with a message naming the image
        except Exception:
            err = RuntimeError(msg)
        raise err from e
    expected = (1, 3, h // scale, w // scale)
    if not isinstance(lr_t, torch.Tensor) or tuple(lr_t.shape) != expected:
        got = tuple(lr_t.shape) if isinstance(lr_t, torch.Tensor) else type(lr_t).__name__
        raise ValueError(f"set {set_name!r}, image {stem!r}: degradation {degradation.name!r} returned {got}, "
                         f"expected {expected}")
    return tensor2img(lr_t[0])


def _lr_name(stem: str, scale: int) -> str:
    return f"{stem}x{scale}.png"


def _check_cache(folder: Path, key: str, stems: list[str], hrs: list[np.ndarray],
                 scale: int) -> tuple[list[np.ndarray] | None, str]:
    """Load the LR images of a cache folder if it is complete and intact, else (None, reason)."""
    mpath = folder / "manifest.json"
    if not mpath.is_file():
        return None, f"{mpath} is missing"
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as e:
        return None, f"{mpath} is unreadable ({e})"
    if manifest.get("key") != key or manifest.get("cache_version") != CACHE_VERSION:
        return None, f"{mpath} belongs to other parameters (key or cache version differ)"
    entries = manifest.get("images")
    if not isinstance(entries, list) or [e.get("stem") for e in entries] != stems:
        return None, f"{mpath} lists other images"
    lrs = []
    for entry, hr in zip(entries, hrs, strict=True):
        lpath = folder / _lr_name(entry["stem"], scale)
        if not lpath.is_file():
            return None, f"LR file {lpath} is missing"
        try:  # (OSError: another process replacing an invalid folder right now; the caller rechecks under the lock)
            if file_sha256(lpath) != entry.get("lr_sha256"):
                return None, f"LR file {lpath} does not match the sha256 in the manifest (modified or corrupt)"
            lr = load_image(lpath)
        except (ImageReadError, OSError) as e:
            return None, str(e)
        if lr.shape != (hr.shape[0] // scale, hr.shape[1] // scale, 3):
            return None, f"LR file {lpath} has shape {lr.shape}, expected HR {hr.shape[:2]} / {scale}"
        lrs.append(lr)
    return lrs, ""


def cached_lr_set(image_set: ImageSet, degradation: DegradationLike, seed: int,
                  cache_dir: str | os.PathLike) -> list[Pair]:
    """Test pairs of ``image_set`` under ``degradation``, generated once and cached on disk.

    Folder: ``cache_dir / image_set.name / f"x{scale}" / f"{degradation.name}-seed{seed}-{key[:10]}"``, where
    ``key`` is the sha256 of the canonical JSON of (set name, stems, per-image :func:`hr_sha256`,
    ``degradation.to_dict()``, seed, :data:`CACHE_VERSION`) (path components are sanitised to
    ``[A-Za-z0-9._+=-]``). It holds ``<stem>x<scale>.png`` LR files and ``manifest.json`` (set, scale, stems,
    degradation dict and name, seed, cache version, key, srlib version, and per image: HR pixel sha256, HR file
    name and file sha256 for folder sets, LR file sha256, shapes, gray flag, image seed). Everything is written
    into a temporary folder that is then renamed, so an interrupted run leaves no partial cache. Generating holds
    the folder's inter-process lock (:func:`srlib.locks.path_lock`, ``.<folder>.lock`` beside it): a second process
    asking for the same set meanwhile waits (saying so on stderr), then reuses the finished folder; the images are
    degraded once.

    Each HR is mod-cropped to the scale, then degraded as a (1, 3, H, W) float tensor with its own generator
    ``torch.Generator().manual_seed(image_seed(seed, stem))``: adding an image to the set never changes the LR
    of the others.

    On reuse the manifest must match and every LR file must match its sha256; otherwise the folder is
    regenerated with a warning (corrupt data is never used silently).

    Args:
        image_set: the HR images.
        degradation: provides ``scale``, ``name``, ``to_dict()`` and ``apply(hr, generator)`` returning
            (B, 3, H/s, W/s) float on the 0..255 scale, rounded and clamped.
        seed: the test-set seed.
        cache_dir: root of the cache.

    Returns:
        list[Pair]: in stem order; ``hr`` (H, W, 3) uint8 mod-cropped, ``lr`` (H/s, W/s, 3) uint8, ``gray``.

    Raises:
        ValueError: an HR image smaller than the scale, or a degradation failing on / returning the wrong shape
            for an image (the message names the set and the image).
    """
    scale = int(degradation.scale)
    if scale < 1:
        raise ValueError(f"degradation {degradation.name!r}: scale must be a positive integer, got {scale}")
    seed = int(seed)
    records = list(image_set)
    stems = [r.stem for r in records]
    hrs = [modcrop(r.image, scale) for r in records]
    for r, hr in zip(records, hrs, strict=True):
        if hr.shape[0] == 0 or hr.shape[1] == 0:
            raise ValueError(f"set {image_set.name!r}, image {r.stem!r}: HR is {r.image.shape[0]}x{r.image.shape[1]} "
                             f"(HxW), smaller than the scale {scale} of degradation {degradation.name!r}")
    hr_hashes = [hr_sha256(r.image) for r in records]
    deg_dict = degradation.to_dict()
    key_payload = {
        "set": image_set.name,
        "stems": stems,
        "hr_sha256": hr_hashes,
        "degradation": deg_dict,
        "seed": seed,
        "cache_version": CACHE_VERSION,
    }
    key = hashlib.sha256(_canonical_json(key_payload).encode()).hexdigest()
    parent = Path(cache_dir) / _safe_component(image_set.name) / f"x{scale}"
    folder = parent / f"{_safe_component(degradation.name)}-seed{seed}-{key[:10]}"

    def pairs(lrs: list[np.ndarray]) -> list[Pair]:
        return [Pair(stem=r.stem, hr=hr, lr=lr, gray=r.gray) for r, hr, lr in zip(records, hrs, lrs, strict=True)]

    if folder.exists():
        lrs, _ = _check_cache(folder, key, stems, hrs, scale)
        if lrs is not None:
            return pairs(lrs)
    # One process generates a cache folder; another one asking for it meanwhile waits, then reuses it.
    with path_lock(folder, what=f"generating the LR cache {folder.name}"):
        if folder.exists():
            lrs, reason = _check_cache(folder, key, stems, hrs, scale)
            if lrs is not None:
                return pairs(lrs)
            warnings.warn(f"LR cache {folder} is invalid: {reason}; regenerating it", RuntimeWarning, stacklevel=2)
        return pairs(_generate_cache(folder, key, records, hrs, hr_hashes, image_set, degradation, seed, deg_dict))


def _generate_cache(folder: Path, key: str, records: list[ImageRecord], hrs: list[np.ndarray], hr_hashes: list[str],
                    image_set: ImageSet, degradation: DegradationLike, seed: int, deg_dict: dict) -> list[np.ndarray]:
    """Degrade every image into a temporary folder beside ``folder`` and install it (the caller holds the lock)."""
    from tqdm.auto import tqdm

    scale = int(degradation.scale)
    stems = [r.stem for r in records]
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=parent))
    try:
        lrs, entries = [], []
        bar = tqdm(list(zip(records, hrs, hr_hashes, strict=True)), desc=f"LR {image_set.name} {degradation.name}",
                   disable=None if len(records) > 4 else True, leave=False)
        for rec, hr, hsh in bar:
            lr = _degrade_one(degradation, image_set.name, rec.stem, hr, seed)
            lpath = tmp / _lr_name(rec.stem, scale)
            save_image(lpath, lr)
            entry = {
                "stem": rec.stem,
                "hr_sha256": hsh,
                "hr_shape": list(rec.image.shape),
                "hr_cropped_shape": list(hr.shape),
                "lr_file": lpath.name,
                "lr_sha256": file_sha256(lpath),
                "lr_shape": list(lr.shape),
                "gray": bool(rec.gray),
                "image_seed": image_seed(seed, rec.stem),
            }
            if image_set.paths is not None and rec.stem in image_set.paths:
                src = image_set.paths[rec.stem]
                entry["hr_file"] = src.name
                entry["hr_file_sha256"] = file_sha256(src)
            entries.append(entry)
            lrs.append(lr)
        manifest = {
            "cache_version": CACHE_VERSION,
            "key": key,
            "set": image_set.name,
            "scale": scale,
            "stems": stems,
            "degradation": deg_dict,
            "degradation_name": degradation.name,
            "seed": seed,
            "srlib_version": _srlib_version(),
            "images": entries,
        }
        with atomic_write(tmp / "manifest.json", binary=False) as f:
            f.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _install_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return lrs


def _install_folder(tmp: Path, folder: Path) -> None:
    """Rename the finished ``tmp`` folder to ``folder``, moving an existing (invalid) ``folder`` aside first."""
    old = None
    if folder.exists():
        old = folder.parent / f".old-{folder.name}-{os.getpid()}-{tmp.name[-8:]}"
        os.replace(folder, old)
    try:
        os.replace(tmp, folder)
    except OSError:
        if folder.exists():  # another process installed the same folder meanwhile: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
