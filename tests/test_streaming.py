"""Training images streamed from disk (srlib.streaming): a step's tiles depend only on (seed, step), whatever the
number of DataLoader workers, so a streamed run is reproducible and resumes bit-identically."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from srlib import runs as R
from srlib.streaming import StepTiles, StreamingImages
from srlib.train import TrainConfig, build_model, train


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "DF2K" / "HR"
    d.mkdir(parents=True)
    for i, (h, w) in enumerate([(60, 80), (72, 50), (90, 90), (40, 64)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"{i:04d}.png")
    return d


def test_tiles_depend_on_seed_and_step_only(folder):
    files = sorted(folder.iterdir())
    ds = StepTiles(files, 16, 3, seed=7)
    a, b = ds[5], ds[5]
    assert len(a) == 3 and all(t.dtype == torch.uint8 and t.shape[0] == 3 for t in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(not torch.equal(x, y) for x, y in zip(a, ds[6], strict=True))
    assert all(min(t.shape[1:]) >= 16 and max(t.shape[1:]) <= 32 for t in a)  # tiles: 2 x the patch, or the image
    serial = list(StreamingImages(tuple(files), "t", workers=0).loader(16, 3, 7, 2, 6))
    parallel = list(StreamingImages(tuple(files), "t", workers=2).loader(16, 3, 7, 2, 6))
    assert len(serial) == 4
    for s, p in zip(serial, parallel, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(s, p, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(serial[3], ds[5], strict=True))


def test_image_smaller_than_the_patch_is_named(folder):
    with pytest.raises(ValueError, match=r"0003\.png: 40x64 is smaller than the training patch 48"):
        [StepTiles([folder / "0003.png"], 48, 1, seed=0)[0]]


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.up = nn.PixelShuffle(2)

    def forward(self, x):
        return self.up(self.conv(x))


def _l1(model, batch):
    return {"l1": F.l1_loss(model(batch.lr), batch.hr)}


def test_streamed_run_resumes_bit_identically(folder, tmp_path):
    images = StreamingImages.from_folder(folder, workers=0)
    cfg = TrainConfig(scale=2, iterations=6, batch_size=2, lr_patch=8, lr=1e-3, checkpoint_every=2, seed=3)
    whole = train(build_model(Tiny, 3), _l1, images, cfg, tmp_path / "a", progress=False)
    train(build_model(Tiny, 3), _l1, images, cfg, tmp_path / "b", progress=False, max_steps=3)
    rest = train(build_model(Tiny, 3), _l1, images, cfg, tmp_path / "b", progress=False)
    assert rest.steps_run == 3
    a, b = whole.model.state_dict(), rest.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    logs = [pd.read_csv(r.losses_csv).drop(columns="seconds") for r in (whole, rest)]
    assert logs[0].equals(logs[1]) and logs[0].step.tolist() == list(range(1, 7))


def test_large_training_sets_are_streamed(folder, monkeypatch):
    monkeypatch.setattr(R, "STREAM_ABOVE", 3)
    label, images = R.load_training_images(R.TrainData(("DF2K",), 32), folder.parent.parent)
    assert isinstance(images, StreamingImages) and len(images.files) == 4 and label == "DF2K (streamed)"
    monkeypatch.setattr(R, "STREAM_ABOVE", 1000)
    label, images = R.load_training_images(R.TrainData(("DF2K",), 48), folder.parent.parent)
    assert isinstance(images, list) and "3 of 4 images >= 48 px" in label
