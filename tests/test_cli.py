"""The ``srlib`` command line: exact LR generation, metrics output, bad input."""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
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
    assert exe.exists(), f"srlib console script missing beside {sys.executable}: broken install (run make setup)"
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


# ---------------------------------------------------------------------------------------------------------------------
# upscale with trained models, export
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture()
def dasr_run(tmp_path):
    from test_export import TINY_DASR, make_run

    return make_run(tmp_path / "runs" / "dasr-x4-s0", "DASR", TINY_DASR)


@pytest.fixture()
def photos(tmp_path):
    """Two small RGB photos (structured, not flat) and their folder."""
    folder = tmp_path / "photos"
    folder.mkdir()
    g = np.random.default_rng(0)
    for name, (h, w) in (("a", (37, 45)), ("b", (30, 26))):
        yy, xx = np.mgrid[:h, :w]
        img = np.stack([(xx * 5) % 256, (yy * 7) % 256, g.integers(0, 256, (h, w))], axis=-1).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{name}.png")
    return folder


def test_upscale_with_a_run_matches_the_whole_image_model(tmp_path, dasr_run, photos, native_conv):
    from srlib.export import load_run

    out = tmp_path / "sr"
    assert _run("upscale", photos, "--scale", 4, "--model", "dasr", "--run", dasr_run, "--out", out, "--tile", 12,
                "--device", "cpu", "--no-progress") == 0
    model, _ = load_run(dasr_run)
    for name in ("a", "b"):
        lr = load_image(photos / f"{name}.png")
        with torch.inference_mode():
            ref = model(torch.from_numpy(lr.transpose(2, 0, 1).copy())[None].float() / 255.0)
        ref = (ref[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        sr = load_image(out / f"{name}.png")
        assert sr.shape == (lr.shape[0] * 4, lr.shape[1] * 4, 3)
        assert np.abs(sr.astype(int) - ref.astype(int)).max() <= 1 and (sr != ref).mean() < 1e-3


def test_upscale_with_an_export_gives_the_same_bytes(tmp_path, dasr_run, photos, capsys, native_conv):
    model_file = tmp_path / "dasr.safetensors"
    assert _run("export", dasr_run, "--out", model_file) == 0
    assert f"DASR x4 (blind/dasr, network DASR, seed 0, stage joint, step 7) -> {model_file}" in capsys.readouterr().out
    for flag, src, out in (("--run", dasr_run, "a"), ("--checkpoint", model_file, "b")):
        assert _run("upscale", photos, "--scale", 4, flag, src, "--out", tmp_path / out, "--tile", 16,
                    "--no-progress") == 0
    for name in ("a.png", "b.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_upscale_embedding_print_and_save(tmp_path, dasr_run, photos, capsys, native_conv):
    from srlib import inference
    from srlib.export import load_run

    assert _run("upscale", photos / "a.png", "--scale", 4, "--run", dasr_run, "--out", tmp_path / "p",
                "--embedding", "print", "--no-progress") == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[0])
    assert _run("upscale", photos / "a.png", "--scale", 4, "--run", dasr_run, "--out", tmp_path / "s",
                "--embedding", "save", "--no-progress") == 0
    saved = json.loads((tmp_path / "s" / "a.embedding.json").read_text())
    vec = np.load(tmp_path / "s" / "a.embedding.npy")
    model, _ = load_run(dasr_run)
    lr = torch.from_numpy(load_image(photos / "a.png").transpose(2, 0, 1).copy())[None].float() / 255.0
    with torch.inference_mode():
        fea = model.embed(lr)["fea"][0].numpy()
    assert vec.shape == (16,) and vec.dtype == np.float32 and np.array_equal(vec, fea)
    assert printed["consumed"] == "fea" and np.allclose(printed["vectors"]["fea"], fea, rtol=0, atol=1e-6)
    assert saved["image"] == "a" and saved["region"] == [0, 37, 0, 45] and set(saved["vectors"]) == {"fea", "q"}
    assert inference.is_blind(model)


def test_upscale_progress_bar(tmp_path, dasr_run, photos):
    out = subprocess.run([sys.executable, "-m", "srlib.cli", "upscale", photos / "a.png", "--scale", "4", "--run",
                          dasr_run, "--out", tmp_path / "sr", "--tile", "16"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "a: 100%" in out.stderr and "9/9" in out.stderr  # 3 x 3 tiles, one pass (DASR pools nothing globally)
    # margin = receptive radius: head 1 + DA block 4 + group conv 1 + body conv 1 + two x2 upsampler convs 2 + tail 1
    assert "tiles of 16 px + 10 px margin (exact" in out.stdout


def test_upscale_bicubic_unchanged(tmp_path, photos):
    from srlib.evaluate import bicubic_upscaler
    from srlib.imgutil import img2tensor, tensor2img

    assert _run("upscale", photos, "--scale", 3, "--out", tmp_path / "sr") == 0
    lr = load_image(photos / "b.png")
    expected = tensor2img(bicubic_upscaler(3)(img2tensor(lr)[None])[0])
    assert np.array_equal(load_image(tmp_path / "sr" / "b.png"), expected)


def test_upscale_and_export_errors(tmp_path, dasr_run, photos, capsys):
    from test_export import TINY_EDSR, Touch, make_run

    edsr = make_run(tmp_path / "runs" / "edsr", "EDSR", TINY_EDSR,
                    ident={"paper": "pcl-sr", "method": "pcl-l1", "network": "EDSR-S", "arm": ""})
    no_spec = tmp_path / "runs" / "old"
    no_spec.mkdir()
    (no_spec / "checkpoint.pt").write_bytes(b"")
    unknown = make_run(tmp_path / "runs" / "unknown", "EDSR", TINY_EDSR)
    spec = json.loads((unknown / "run.json").read_text())
    (unknown / "run.json").write_text(json.dumps({**spec, "arch": {"name": "SwinIR", "kwargs": {}}}))
    marker = tmp_path / "pwned"
    evil = make_run(tmp_path / "runs" / "evil", "EDSR", TINY_EDSR, checkpoint_extra={"x": Touch(marker)})
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    out = tmp_path / "sr"
    up = ["upscale", photos, "--out", out]
    cases = [
        ([*up, "--scale", 4, "--model", "cdsr", "--run", dasr_run],
         f"--model cdsr does not match {dasr_run}: it holds DASR x4"),
        ([*up, "--scale", 2, "--model", "edsr+pcl", "--run", edsr], "accepts edsr, edsr+l1, pcll1"),
        ([*up, "--scale", 2, "--run", dasr_run], f"--scale 2 does not match {dasr_run}: DASR x4"),
        ([*up, "--scale", 2, "--run", no_spec], f"{no_spec / 'run.json'}: missing"),
        ([*up, "--scale", 2, "--run", unknown], "unknown architecture 'SwinIR'"),
        ([*up, "--scale", 2, "--run", evil], f"refused to load checkpoint {evil / 'checkpoint.pt'}"),
        ([*up, "--scale", 2, "--checkpoint", evil / "checkpoint.pt"], f"refused to load checkpoint {evil}"),
        ([*up, "--scale", 2, "--checkpoint", tmp_path / "none.safetensors"], "none.safetensors: no such model file"),
        ([*up, "--scale", 2, "--checkpoint", dasr_run], "is a folder; pass a run folder with --run"),
        ([*up, "--scale", 4, "--model", "dasr"], "--model dasr needs its trained weights: --run RUN_DIR"),
        ([*up, "--scale", 4, "--model", "bicubic", "--run", dasr_run], "--model bicubic takes no --run"),
        ([*up, "--scale", 2, "--run", edsr, "--embedding", "save"], "is not a blind model"),
        ([*up, "--scale", 4, "--run", dasr_run, "--tile", -1], "--tile must be >= 0"),
        ([*up, "--scale", 4, "--run", dasr_run, "--tile-overlap", "x"], "--tile-overlap: expected 'auto'"),
        (["upscale", photos / "a.png", notes, "--out", out, "--scale", 4, "--run", dasr_run],
         f"{notes}: not a readable image file"),
        (["export", no_spec, "--out", tmp_path / "m.safetensors"], "run.json: missing"),
        (["export", evil, "--out", tmp_path / "m.safetensors"], "refused to load"),
    ]
    if not torch.cuda.is_available():
        cases.append(([*up, "--scale", 4, "--run", dasr_run, "--device", "cuda"], "torch sees no CUDA GPU"))
    for argv, message in cases:
        assert _run(*argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
    assert not marker.exists() and not out.exists() and not (tmp_path / "m.safetensors").exists()


def test_commands_dispatch_through_one_table():
    """Every subcommand is one COMMANDS entry: the parser offers exactly them, and main runs the entry's function."""
    assert {"degrade", "metrics", "upscale", "export", "reproduce"} <= set(cli.COMMANDS)
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(cli.COMMANDS)
    argv = {"upscale": ["upscale", "x", "--scale", "2", "--out", "o"], "export": ["export", "r", "--out", "m"]}
    for name, args in argv.items():
        assert cli.build_parser().parse_args(args).command == name
