"""The ``srlib`` command line: exact LR generation, metrics output, bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srlib import cli
from srlib.data import load_image


def _run(*argv) -> int:
    return cli.main([str(a) for a in argv])


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_degrade_reproduces_matlab_lr(shared_data, tmp_path, scale):
    assert _run("degrade", shared_data / "Set5" / "HR", "--out", tmp_path, "--scale", scale, "--resize", "matlab") == 0
    for ref in sorted((shared_data / "Set5" / "LR_bicubic" / f"X{scale}").glob("*.png")):
        ours = load_image(tmp_path / ref.name.replace(f"x{scale}.png", ".png"))
        np.testing.assert_array_equal(ours, load_image(ref), err_msg=ref.name)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["degradation"]["scale"] == scale and len(manifest["images"]) == 5


def test_console_script_runs(tmp_path):
    img = tmp_path / "hr" / "a.png"
    img.parent.mkdir()
    Image.fromarray(np.full((24, 24, 3), 100, np.uint8)).save(img)
    exe = Path(sys.executable).with_name("srlib")
    if not exe.exists():
        pytest.skip("srlib console script not installed (run make setup)")
    out = subprocess.run([exe, "degrade", img, "--out", tmp_path / "lr", "--scale", "2", "--noise", "5", "--seed", "1"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert load_image(tmp_path / "lr" / "a.png").shape == (12, 12, 3)


def test_degrade_is_seeded(tmp_path, shared_data):
    hr = shared_data / "Set5" / "HR" / "bird.png"
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        _run("degrade", hr, "--out", tmp_path / name, "--scale", 4, "--sigma", 1.2, "--noise", 15, "--seed", seed)
    a, b, c = (load_image(tmp_path / n / "bird.png") for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_degrade_preset_writes_one_folder_per_setting(tmp_path, shared_data):
    _run("degrade", shared_data / "Set5" / "HR" / "bird.png", "--out", tmp_path, "--scale", 4, "--preset", "crl-sv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x4-iso2-n5-50", "x4-ramp0.2-4-n5", "x4-ramp0.2-4-n5-50"]


def test_upscale_and_metrics_json_match_the_api(tmp_path, shared_data, capsys):
    from srlib import metrics
    from srlib.imgutil import modcrop

    lr, sr = tmp_path / "lr", tmp_path / "sr"
    _run("degrade", shared_data / "Set5" / "HR", "--out", lr, "--scale", 4)
    assert _run("upscale", lr, "--scale", 4, "--model", "bicubic", "--out", sr) == 0
    capsys.readouterr()
    assert _run("metrics", "--hr", shared_data / "Set5" / "HR", "--sr", sr, "--scale", 4, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in report["images"]] == ["baby", "bird", "butterfly", "head", "woman"]
    hr = modcrop(load_image(shared_data / "Set5" / "HR" / "woman.png"), 4)
    assert report["images"][4]["psnr_y"] == pytest.approx(metrics.psnr_y(hr, load_image(sr / "woman.png"), 4))
    # published bicubic Set5 x4: 28.42 dB / 0.8104 (PCL-SR Table 2)
    assert report["mean"]["psnr_y"] == pytest.approx(28.42, abs=0.02)
    assert report["mean"]["ssim_y"] == pytest.approx(0.8104, abs=0.001)


def test_metrics_lpips_offline_matches_reference(tmp_path, shared_weights):
    """LPIPS(alex) through the command line with an empty torch hub cache: 0.7219 and 0.1376 (LPIPS authors)."""
    check = shared_weights / "lpips_check"
    for sub, src in (("hr", "ex_ref"), ("sr", "ex_p0")):
        (tmp_path / sub).mkdir()
        for stem in ("p0", "p1"):
            name = src if sub == "hr" else f"ex_{stem}"
            shutil.copy(check / f"{name}.png", tmp_path / sub / f"{stem}.png")
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch_home"),
           "SRLIB_LPIPS_BACKBONE": str(shared_weights / "lpips_backbone_alexnet_features.pth")}
    argv = ["metrics", "--hr", tmp_path / "hr", "--sr", tmp_path / "sr", "--scale", "1", "--crop-border", "0"]
    out = subprocess.run([sys.executable, "-m", "srlib.cli", *argv, "--lpips", "--json"],
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    lp = {r["name"]: r["lpips"] for r in json.loads(out.stdout)["images"]}
    assert round(lp["p0"], 4) == 0.7219 and round(lp["p1"], 4) == 0.1376


def test_bad_inputs_exit_2_with_a_clear_message(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    good = tmp_path / "good"
    good.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(good / "x.png")
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tiny)
    cases = [
        (["degrade", bad, "--out", tmp_path / "o", "--scale", 2], "broken.png"),
        (["degrade", good, "--out", tmp_path / "o", "--scale", 2, "--sigma", 0], "--sigma must be > 0"),
        (["degrade", good, "--out", tmp_path / "o", "--scale", 2, "--sigma", -1], "--sigma must be > 0"),
        (["degrade", good, "--out", tmp_path / "o", "--scale", 0], "--scale must be >= 1"),
        (["degrade", good, "--out", tmp_path / "o", "--scale", 2, "--aniso", "1,2"], "3 comma-separated numbers"),
        (["degrade", tiny, "--out", tmp_path / "o", "--scale", 2, "--sigma", 1], "too small for a 21x21 kernel"),
        (["degrade", tmp_path / "nope", "--out", tmp_path / "o", "--scale", 2], "no such file"),
        (["metrics", "--hr", good, "--sr", tmp_path, "--scale", 2], "without a partner"),
    ]
    for argv, message in cases:
        assert _run(*argv) == 2, argv
        assert message in capsys.readouterr().err, argv
