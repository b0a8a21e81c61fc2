"""Tests of srlib.data: image reading, image sets, patch sampling and the cached test LR sets."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from srlib import data, degradation
from srlib.data import (
    CACHE_VERSION,
    EMBEDDED_TEST,
    EMBEDDED_TRAIN,
    DatasetNotFoundError,
    ImageReadError,
    ImageSet,
    PatchSampler,
    available_sets,
    cached_lr_set,
    dihedral,
    embedded_set,
    existing_lr,
    folder_set,
    hr_sha256,
    image_seed,
    inverse_dihedral,
    is_grayscale_file,
    load_image,
    open_set,
    sample_patches,
    save_image,
)

# --------------------------------------------------------------------------------------------------------------
# Reading files in every mode (the expected RGB values are written out by hand)
# --------------------------------------------------------------------------------------------------------------


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_load_rgb_and_rgba(tmp_path):
    rgb = np.array([[[1, 2, 3], [250, 128, 0]], [[9, 8, 7], [0, 255, 60]]], dtype=np.uint8)
    p = _save(Image.fromarray(rgb), tmp_path / "rgb.png")
    assert np.array_equal(load_image(p), rgb) and load_image(p).dtype == np.uint8
    assert not is_grayscale_file(p)
    alpha = np.array([[0, 255], [10, 128]], dtype=np.uint8)
    p = _save(Image.fromarray(np.dstack([rgb, alpha])), tmp_path / "rgba.png")
    assert Image.open(p).mode == "RGBA"
    assert np.array_equal(load_image(p), rgb)  # alpha dropped, colours not composited
    assert not is_grayscale_file(p)


def test_load_gray_modes(tmp_path):
    g = np.array([[0, 17, 255]], dtype=np.uint8)
    want = np.array([[[0, 0, 0], [17, 17, 17], [255, 255, 255]]], dtype=np.uint8)
    p = _save(Image.fromarray(g), tmp_path / "l.png")
    assert Image.open(p).mode == "L"
    assert np.array_equal(load_image(p), want) and is_grayscale_file(p)
    p = _save(Image.fromarray(np.dstack([g, np.array([[5, 6, 7]], np.uint8)])), tmp_path / "la.png")
    assert Image.open(p).mode == "LA"
    assert np.array_equal(load_image(p), want) and is_grayscale_file(p)
    b = Image.new("1", (3, 1))
    b.putdata([0, 1, 0])
    p = _save(b, tmp_path / "one.png")
    assert Image.open(p).mode == "1"
    assert np.array_equal(load_image(p), np.array([[[0] * 3, [255] * 3, [0] * 3]], dtype=np.uint8))
    assert is_grayscale_file(p)


@pytest.mark.parametrize("transparency", [False, True])
def test_load_palette(tmp_path, transparency):
    im = Image.new("P", (3, 1))
    im.putpalette([10, 20, 30, 200, 100, 50, 7, 7, 7])
    im.putdata([1, 0, 2])
    kw = {"transparency": 0} if transparency else {}
    p = _save(im, tmp_path / "p.png", **kw)
    reread = Image.open(p)
    assert reread.mode == "P" and (("transparency" in reread.info) == transparency)
    assert np.array_equal(load_image(p), np.array([[[200, 100, 50], [10, 20, 30], [7, 7, 7]]], dtype=np.uint8))
    assert not is_grayscale_file(p)


def test_palette_with_only_gray_colours_is_gray(tmp_path):
    im = Image.new("P", (2, 1))
    im.putpalette([40, 40, 40, 90, 90, 90])
    im.putdata([1, 0])
    p = _save(im, tmp_path / "pg.png")
    assert is_grayscale_file(p)
    assert np.array_equal(load_image(p), np.array([[[90] * 3, [40] * 3]], dtype=np.uint8))


# 16-bit values and round(v * 255 / 65535) worked out by hand: 1000 -> 3.891 -> 4, 128 -> 0.498 -> 0,
# 129 -> 0.502 -> 1, 25700 -> 100 exactly, 65535 -> 255.
_V16 = [0, 1000, 128, 129, 25700, 65535]
_V16_TO_8 = [0, 4, 0, 1, 100, 255]


@pytest.mark.parametrize(
    "mode,suffix,dtype",
    [("I;16", ".png", np.uint16), ("I;16B", ".tif", ">u2"), ("I", ".tif", np.int32)],
)
def test_load_16bit(tmp_path, mode, suffix, dtype):
    p = _save(Image.fromarray(np.array([_V16], dtype=dtype)), tmp_path / f"g16{suffix}")
    assert Image.open(p).mode == mode
    want = np.repeat(np.array([_V16_TO_8], dtype=np.uint8)[..., None], 3, axis=2)
    assert np.array_equal(load_image(p), want)
    assert is_grayscale_file(p)


def test_load_float(tmp_path):
    # 0..255-ranged: rounded (half to even) and clipped.
    p = _save(Image.fromarray(np.array([[0.4, 0.6, 254.7, 100.0, 255.5]], np.float32)), tmp_path / "f8.tif")
    assert Image.open(p).mode == "F"
    assert np.array_equal(load_image(p)[..., 0], np.array([[0, 1, 255, 100, 255]], dtype=np.uint8))
    assert is_grayscale_file(p)
    # 0..1-ranged: x 255 -> 0, 127.5 -> 128 (half to even), 255.
    p = _save(Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)), tmp_path / "f1.tif")
    assert np.array_equal(load_image(p)[..., 0], np.array([[0, 128, 255]], dtype=np.uint8))
    # Anything else is refused with the file's name.
    p = _save(Image.fromarray(np.array([[0.0, 1000.0]], np.float32)), tmp_path / "fbad.tif")
    with pytest.raises(ImageReadError, match="fbad.tif"):
        load_image(p)


def test_read_errors_name_the_file(tmp_path):
    full = _save(Image.fromarray(np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)), tmp_path / "full.png")
    raw = full.read_bytes()
    (tmp_path / "truncated.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageReadError, match="truncated.png"):
        load_image(tmp_path / "truncated.png")
    (tmp_path / "text.png").write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match=r"text\.png.*not a readable image"):
        load_image(tmp_path / "text.png")
    with pytest.raises(ImageReadError, match="text.png"):
        is_grayscale_file(tmp_path / "text.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="folder"):
        load_image(tmp_path)
    assert issubclass(ImageReadError, ValueError)


def test_save_image_roundtrip_and_atomic(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    save_image(tmp_path / "a.png", img)
    assert np.array_equal(load_image(tmp_path / "a.png"), img)
    save_image(tmp_path / "a.png", img[::-1])  # replaces the file
    assert np.array_equal(load_image(tmp_path / "a.png"), img[::-1])
    save_image(tmp_path / "g.png", img[..., 0])
    assert Image.open(tmp_path / "g.png").mode == "L"
    with pytest.raises(ValueError, match="uint8"):
        save_image(tmp_path / "b.png", img.astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "g.png"]  # no temporary files left behind


@pytest.mark.needs_data
def test_grayscale_flag_on_set14(shared_data):
    if not (shared_data / "Set14" / "HR" / "bridge.png").is_file():
        pytest.skip(f"Set14 not in the data root {shared_data}")
    assert is_grayscale_file(shared_data / "Set14" / "HR" / "bridge.png")
    assert not is_grayscale_file(shared_data / "Set14" / "HR" / "baboon.png")
    img = load_image(shared_data / "Set14" / "HR" / "bridge.png")
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])


# --------------------------------------------------------------------------------------------------------------
# Embedded set
# --------------------------------------------------------------------------------------------------------------

_EMBEDDED_SHAPES = {
    "astronaut": (512, 512, False),
    "chelsea": (300, 451, False),
    "coffee": (400, 600, False),
    "motorcycle_left": (500, 741, False),
    "rocket": (427, 640, False),
    "brick": (512, 512, True),
    "camera": (512, 512, True),
    "cell": (660, 550, True),
    "clock": (300, 400, True),
    "coins": (303, 384, True),
    "grass": (512, 512, True),
    "gravel": (512, 512, True),
    "hubble_deep_field": (872, 1000, False),
    "immunohistochemistry": (512, 512, False),
    "moon": (512, 512, True),
    "retina": (1411, 1411, False),
}


def test_embedded_lists_are_fixed_and_disjoint():
    assert EMBEDDED_TEST == ("astronaut", "chelsea", "coffee", "motorcycle_left", "rocket")
    assert EMBEDDED_TRAIN == ("brick", "camera", "cell", "clock", "coins", "grass", "gravel", "hubble_deep_field",
                              "immunohistochemistry", "moon", "retina")
    assert not set(EMBEDDED_TEST) & set(EMBEDDED_TRAIN)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        embedded_set("val")


@pytest.mark.parametrize("split", ["train", "test"])
def test_embedded_images(split):
    s = embedded_set(split)
    assert s.name == f"embedded-{split}"
    assert s.stems == sorted(EMBEDDED_TEST if split == "test" else EMBEDDED_TRAIN)
    records = list(s)
    assert [r.stem for r in records] == s.stems
    for r in records:
        h, w, gray = _EMBEDDED_SHAPES[r.stem]
        assert r.image.shape == (h, w, 3) and r.image.dtype == np.uint8, r.stem
        assert r.gray == gray, r.stem
        if gray:
            assert np.array_equal(r.image[..., 0], r.image[..., 2])
        assert min(h, w) >= 300
    # Deterministic: a second load gives the same pixels.
    again = {r.stem: hr_sha256(r.image) for r in embedded_set(split)}
    assert again == {r.stem: hr_sha256(r.image) for r in records}
    assert open_set(f"embedded-{split}").stems == s.stems


def test_subset_keeps_first_sorted():
    s = embedded_set("test")
    sub = s.subset(2)
    assert sub.stems == ["astronaut", "chelsea"] and sub.name == "embedded-test-first2" and len(sub) == 2
    assert s.subset(99) is s
    with pytest.raises(ValueError, match="positive"):
        s.subset(0)


# --------------------------------------------------------------------------------------------------------------
# Folder sets
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.needs_data
def test_folder_set_on_set5(shared_data):
    s = folder_set("Set5", data_root=shared_data)
    assert s.name == "Set5" and s.stems == ["baby", "bird", "butterfly", "head", "woman"]
    rec = s.load("bird")
    assert rec.image.dtype == np.uint8 and rec.image.shape == (288, 288, 3) and not rec.gray
    assert open_set("Set5", data_root=shared_data).stems == s.stems
    assert available_sets(["Set5", "NoSuchSet", "embedded-test"], data_root=shared_data) == ["Set5", "embedded-test"]


@pytest.mark.needs_data
def test_existing_lr_on_set5(shared_data):
    lr = existing_lr("Set5", 4, data_root=shared_data)
    assert sorted(lr) == ["baby", "bird", "butterfly", "head", "woman"]
    hr = folder_set("Set5", data_root=shared_data)
    for stem, path in lr.items():
        h, w = hr.load(stem).image.shape[:2]
        assert path.name == f"{stem}x4.png"
        assert load_image(path).shape == (h // 4, w // 4, 3)
    assert existing_lr("Set14", 4, data_root=shared_data) == {}


def test_folder_set_layout_and_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("SRLIB_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError, match="SRLIB_DATA"):
        folder_set("Set5")
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        folder_set("Set5", data_root=tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match=r"Set5.HR"):
        folder_set("Set5", data_root=tmp_path)
    (tmp_path / "Empty" / "HR").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="no image files"):
        folder_set("Empty", data_root=tmp_path)
    assert issubclass(DatasetNotFoundError, FileNotFoundError)

    hr = tmp_path / "Mine" / "HR"
    hr.mkdir(parents=True)
    px = np.full((4, 4, 3), 100, dtype=np.uint8)
    Image.fromarray(px).save(hr / "c.png")
    Image.fromarray(px).save(hr / "a.bmp")
    Image.fromarray(px).save(hr / "b.TIF")
    Image.fromarray(px).save(hr / "d.jpg", quality=100)
    (hr / "notes.txt").write_text("ignored")
    (hr / ".hidden.png").write_bytes(b"ignored")
    s = folder_set("Mine", data_root=tmp_path)
    assert s.stems == ["a", "b", "c", "d"]
    assert np.array_equal(s.load("a").image, px)
    # The environment variable is the fallback; the argument wins.
    monkeypatch.setenv("SRLIB_DATA", str(tmp_path))
    assert data.data_root() == tmp_path and data.data_root("/elsewhere") == Path("/elsewhere")
    assert folder_set("Mine").stems == s.stems
    assert available_sets(["Mine", "Empty", "Set5"]) == ["Mine"]
    assert existing_lr("Mine", 2) == {}
    Image.fromarray(px).save(hr / "a.png")
    with pytest.raises(ValueError, match="stem 'a'"):
        folder_set("Mine")


# --------------------------------------------------------------------------------------------------------------
# Patch sampling
# --------------------------------------------------------------------------------------------------------------


def _np_dihedral_group(c: np.ndarray) -> list[np.ndarray]:
    """The 8 flips/rotations of a (3, P, P) array, written with NumPy (independent of srlib)."""
    out = []
    for base in (c, c[:, :, ::-1]):
        for k in range(4):
            out.append(np.rot90(base, k, axes=(1, 2)))
    return out


def test_dihedral_is_the_group_and_invertible():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    outs = [dihedral(x, t) for t in range(8)]
    assert len({tuple(o.flatten().tolist()) for o in outs}) == 8
    assert torch.equal(outs[0], x)
    group = _np_dihedral_group(x[0].numpy())
    for o in outs:
        assert any(np.array_equal(o[0].numpy(), g) for g in group)
    for t in range(8):
        assert torch.equal(inverse_dihedral(dihedral(x, t), t), x)
    with pytest.raises(ValueError, match="0..7"):
        dihedral(x, 8)


def test_sample_patches_is_seeded():
    imgs = [torch.rand(3, 20, 30) * 255, torch.rand(3, 16, 16) * 255]
    a = sample_patches(imgs, 8, 6, torch.Generator().manual_seed(1))
    b = sample_patches(imgs, 8, 6, torch.Generator().manual_seed(1))
    c = sample_patches(imgs, 8, 6, torch.Generator().manual_seed(2))
    assert a.shape == (6, 3, 8, 8) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sample_patches_does_not_touch_global_rng():
    imgs = [torch.rand(3, 10, 10)]
    state = torch.get_rng_state()
    sample_patches(imgs, 4, 3, torch.Generator().manual_seed(0))
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("augment", [True, False])
def test_every_patch_is_a_transformed_crop(augment):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (3, 5, 6)).astype(np.float32)
    p = 3
    crops = [img[:, y : y + p, x : x + p] for y in range(5 - p + 1) for x in range(6 - p + 1)]
    allowed = [g for c in crops for g in (_np_dihedral_group(c) if augment else [c])]
    patches = sample_patches([torch.from_numpy(img)], p, 40, torch.Generator().manual_seed(0), augment=augment)
    for patch in patches.numpy():
        assert any(np.array_equal(patch, g) for g in allowed)
    if augment:  # some patch is not a plain crop
        assert any(not any(np.array_equal(patch, c) for c in crops) for patch in patches.numpy())


def test_sample_patches_uses_every_image_and_uint8():
    imgs = [torch.zeros(3, 8, 8, dtype=torch.uint8), torch.full((3, 9, 12), 255, dtype=torch.uint8)]
    out = sample_patches(imgs, 4, 50, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32
    means = out.mean(dim=(1, 2, 3))
    assert set(means.tolist()) == {0.0, 255.0}


def test_too_small_image_is_named():
    imgs = [torch.zeros(3, 10, 10), torch.zeros(3, 4, 5)]
    with pytest.raises(ValueError, match=r"'small'.*4x5.*8x8"):
        sample_patches(imgs, 8, 2, torch.Generator(), names=["big", "small"])
    with pytest.raises(ValueError, match="#1"):
        sample_patches(imgs, 8, 2, torch.Generator())
    with pytest.raises(ValueError, match="'small'"):
        PatchSampler(imgs, 8, 2, names=["big", "small"])


def test_patch_sampler_resumes_from_generator_state():
    rng = np.random.default_rng(0)
    s = ImageSet.from_arrays("toy", {"a": rng.integers(0, 256, (20, 24, 3), dtype=np.uint8),
                                     "b": rng.integers(0, 256, (18, 30), dtype=np.uint8)})
    sampler = PatchSampler.from_image_set(s, patch_size=8, batch_size=4)
    assert len(sampler) == 2 and sampler.names == ["toy/a", "toy/b"]
    g = torch.Generator().manual_seed(5)
    straight = list(sampler.batches(g, 3))
    assert straight[0].shape == (4, 3, 8, 8) and straight[0].dtype == torch.float32
    g = torch.Generator().manual_seed(5)
    first = sampler.sample(g)
    state = g.get_state()  # what a checkpoint saves
    g2 = torch.Generator()
    g2.set_state(state)
    resumed = [first, *sampler.batches(g2, 2)]
    for x, y in zip(straight, resumed, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(straight[0], straight[1])


# --------------------------------------------------------------------------------------------------------------
# Cached test LR sets
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeDegradation:
    """Box downsampling + seeded Gaussian noise: the same three members as srlib.degradation.Degradation."""

    scale: int = 2
    noise: float = 5.0

    @property
    def name(self) -> str:
        return f"x{self.scale}-box-n{self.noise:g}"

    def to_dict(self) -> dict:
        return {"kind": "box", "scale": self.scale, "noise": self.noise}

    def apply(self, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        lr = F.avg_pool2d(hr, self.scale)
        if self.noise:
            lr = lr + self.noise * torch.randn(lr.shape, generator=generator)
        return lr.round().clamp(0, 255)


def _toy_images(n: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    imgs = {f"img{i}": rng.integers(0, 256, (9 + i, 12 + 2 * i, 3), dtype=np.uint8) for i in range(n)}
    imgs["gray"] = rng.integers(0, 256, (10, 10), dtype=np.uint8)
    return imgs


def _key(set_name, stems, hashes, deg, seed):
    payload = {"set": set_name, "stems": stems, "hr_sha256": hashes, "degradation": deg.to_dict(), "seed": seed,
               "cache_version": CACHE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _folders(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/x*/*") if p.is_dir())


def test_cache_writes_folder_manifest_and_true_lr(tmp_path):
    imgs = _toy_images()
    s = ImageSet.from_arrays("toy", imgs)
    deg = FakeDegradation(scale=2, noise=0.0)
    pairs = cached_lr_set(s, deg, seed=3, cache_dir=tmp_path)
    stems = sorted(imgs)
    hashes = [hr_sha256(np.repeat(imgs[k][..., None], 3, 2) if imgs[k].ndim == 2 else imgs[k]) for k in stems]
    folder = tmp_path / "toy" / "x2" / f"x2-box-n0-seed3-{_key('toy', stems, hashes, deg, 3)[:10]}"
    assert _folders(tmp_path) == [folder]
    assert [p.stem for p in pairs] == stems
    for p in pairs:
        src = imgs[p.stem] if imgs[p.stem].ndim == 3 else np.repeat(imgs[p.stem][..., None], 3, 2)
        h, w = src.shape[0] // 2 * 2, src.shape[1] // 2 * 2
        assert np.array_equal(p.hr, src[:h, :w]) and p.hr.dtype == np.uint8
        # Independent truth without noise: the mean of each 2x2 block, rounded half to even.
        box = src[:h, :w].astype(np.float64).reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
        assert np.array_equal(p.lr, np.round(box).astype(np.uint8))
        assert p.gray == (p.stem == "gray")
        assert np.array_equal(load_image(folder / f"{p.stem}x2.png"), p.lr)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["scale"] == 2 and manifest["stems"] == stems
    assert manifest["degradation"] == deg.to_dict() and manifest["cache_version"] == CACHE_VERSION
    for entry, h in zip(manifest["images"], hashes, strict=True):
        assert entry["hr_sha256"] == h
        assert entry["lr_sha256"] == hashlib.sha256((folder / entry["lr_file"]).read_bytes()).hexdigest()
    assert not [p for p in (tmp_path / "toy" / "x2").iterdir() if p.is_dir() and p.name.startswith(".")]  # no temp
    assert sorted(p.name for p in (tmp_path / "toy" / "x2").iterdir() if p.is_file()) == [f".{folder.name}.lock"]


def test_cache_is_reused_without_degrading(tmp_path, monkeypatch):
    s = ImageSet.from_arrays("toy", _toy_images())
    deg = FakeDegradation()
    first = cached_lr_set(s, deg, seed=0, cache_dir=tmp_path)

    def boom(self, hr, generator):
        raise AssertionError("apply must not be called when the cache is valid")

    monkeypatch.setattr(FakeDegradation, "apply", boom)
    second = cached_lr_set(s, deg, seed=0, cache_dir=tmp_path)
    for a, b in zip(first, second, strict=True):
        assert a.stem == b.stem and np.array_equal(a.lr, b.lr) and np.array_equal(a.hr, b.hr)


def test_tampered_lr_is_regenerated(tmp_path):
    s = ImageSet.from_arrays("toy", _toy_images())
    deg = FakeDegradation()
    first = {p.stem: p.lr for p in cached_lr_set(s, deg, seed=0, cache_dir=tmp_path)}
    (folder,) = _folders(tmp_path)
    target = folder / "img1x2.png"
    Image.fromarray(255 - first["img1"]).save(target)
    with pytest.warns(RuntimeWarning, match="img1x2.png"):
        again = {p.stem: p.lr for p in cached_lr_set(s, deg, seed=0, cache_dir=tmp_path)}
    for stem, lr in first.items():
        assert np.array_equal(again[stem], lr)
    assert np.array_equal(load_image(target), first["img1"])
    manifest = json.loads((folder / "manifest.json").read_text())
    (entry,) = [e for e in manifest["images"] if e["stem"] == "img1"]
    assert entry["lr_sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text("{not json")
    with pytest.warns(RuntimeWarning, match="manifest.json"):
        cached_lr_set(s, deg, seed=0, cache_dir=tmp_path)
    assert _folders(tmp_path) == [folder]


def test_seed_and_degradation_select_the_folder(tmp_path):
    s = ImageSet.from_arrays("toy", _toy_images())
    a = cached_lr_set(s, FakeDegradation(noise=5.0), seed=0, cache_dir=tmp_path)
    b = cached_lr_set(s, FakeDegradation(noise=5.0), seed=1, cache_dir=tmp_path)
    c = cached_lr_set(s, FakeDegradation(noise=10.0), seed=0, cache_dir=tmp_path)
    assert len(_folders(tmp_path)) == 3
    assert not np.array_equal(a[0].lr, b[0].lr) and not np.array_equal(a[0].lr, c[0].lr)
    # Each image has its own generator, so two images of the same size still get different noise.
    assert image_seed(0, "img0") != image_seed(0, "img1") != image_seed(1, "img0")
    assert image_seed(0, "baby") == 5596549278123244742  # pinned: changing it would silently change every cache


def test_adding_an_image_keeps_the_other_lr(tmp_path):
    imgs = _toy_images()
    small = ImageSet.from_arrays("toy", imgs)
    # The new image sorts first, so every other image moves one place down the list.
    big = ImageSet.from_arrays("toy", {**imgs, "a_new": np.zeros((8, 8, 3), np.uint8)})
    a = {p.stem: p.lr for p in cached_lr_set(small, FakeDegradation(), seed=7, cache_dir=tmp_path)}
    b = {p.stem: p.lr for p in cached_lr_set(big, FakeDegradation(), seed=7, cache_dir=tmp_path)}
    assert big.stems[0] == "a_new"
    assert len(_folders(tmp_path)) == 2 and set(b) == set(a) | {"a_new"}
    for stem, lr in a.items():
        assert np.array_equal(lr, b[stem])


def test_each_image_has_its_own_seeded_generator(tmp_path):
    img = np.full((8, 8, 3), 128, np.uint8)
    s = ImageSet.from_arrays("twins", {"p": img, "q": img})
    deg = FakeDegradation(noise=20.0)
    p, q = cached_lr_set(s, deg, seed=4, cache_dir=tmp_path)
    assert not np.array_equal(p.lr, q.lr)  # same pixels, different stems -> different noise
    for pair in (p, q):
        g = torch.Generator().manual_seed(image_seed(4, pair.stem))
        want = deg.apply(torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None], g)[0]
        assert np.array_equal(pair.lr, want.permute(1, 2, 0).numpy().astype(np.uint8))


def test_cache_errors_name_the_image(tmp_path):
    s = ImageSet.from_arrays("toy", {"ok": np.zeros((8, 8, 3), np.uint8), "thin": np.zeros((1, 8, 3), np.uint8)})
    with pytest.raises(ValueError, match=r"'thin'.*1x8.*scale 2"):
        cached_lr_set(s, FakeDegradation(), seed=0, cache_dir=tmp_path)

    @dataclass(frozen=True)
    class WrongShape(FakeDegradation):
        def apply(self, hr, generator):
            return hr

    s = ImageSet.from_arrays("toy", {"ok": np.zeros((8, 8, 3), np.uint8)})
    with pytest.raises(ValueError, match=r"'ok'.*expected \(1, 3, 4, 4\)"):
        cached_lr_set(s, WrongShape(), seed=0, cache_dir=tmp_path)
    assert _folders(tmp_path) == []
    assert not [p for p in tmp_path.rglob(".tmp*")]


def test_real_degradation_cache(tmp_path):
    s = embedded_set("test").subset(1)
    deg = degradation.Degradation(2, degradation.IsoGaussian(1.0), 5.0)
    a = cached_lr_set(s, deg, seed=0, cache_dir=tmp_path)
    b = cached_lr_set(s, deg, seed=0, cache_dir=tmp_path)
    assert a[0].lr.shape == (256, 256, 3) and np.array_equal(a[0].lr, b[0].lr)
    (folder,) = _folders(tmp_path)
    assert folder.name.startswith(f"{deg.name}-seed0-")


@pytest.mark.needs_data
def test_real_bicubic_matches_shipped_matlab_lr(tmp_path, shared_data):
    shipped = existing_lr("Set5", 4, data_root=shared_data)
    if not shipped:
        pytest.skip(f"Set5/LR_bicubic/X4 not in the data root {shared_data}")
    pairs = cached_lr_set(folder_set("Set5", data_root=shared_data), degradation.Degradation(4), 0, tmp_path)
    for p in pairs:
        assert np.array_equal(p.lr, load_image(shipped[p.stem])), p.stem
