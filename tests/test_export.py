"""Run folders and exported model files (srlib.export): the round trip gives the same SR bytes, the export is
self-describing and holds no pickle, a checkpoint with a pickle payload is refused without running it, clear errors."""

import csv
import json
import pathlib
import struct

import pytest
import torch

from srlib import export as E
from srlib import inference as I
from srlib.archs import build_arch

pytestmark = pytest.mark.usefixtures("native_conv")

TINY_DASR = {"scale": 4, "n_feats": 8, "n_groups": 1, "n_blocks": 1, "enc_feats": 4, "proj_dim": 8, "queue_size": 8}
TINY_CRL = {"scale": 2, "n_feats": 8, "n_blocks": 1, "n_detail_blocks": 1, "proj_dim": 8, "n_blocks_f": 1}
TINY_EDSR = {"scale": 2, "n_feats": 8, "n_blocks": 1}


def make_run(folder: pathlib.Path, arch: str, kwargs: dict, *, seed: int = 0, step: int = 7, ident: dict | None = None,
             metrics: dict | None = None, checkpoint_extra: dict | None = None) -> pathlib.Path:
    """A run folder as the trainer writes it: run.json, checkpoint.pt (state dict + optimiser-like entries, a
    generator state and the config, as srlib.train saves them), losses.csv, optional metrics.json. The weights are
    seeded and moved off their initialisation so that every branch matters."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_arch(arch, kwargs)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
    folder.mkdir(parents=True)
    ident = ident or {"paper": "blind", "method": arch.lower(), "network": arch, "scale": kwargs["scale"],
                      "seed": seed, "stage": "joint", "arm": ""}
    train = {"scale": kwargs["scale"], "iterations": step, "batch_size": 2, "lr": 1e-4, "seed": seed}
    run = {"id": ident, "arch": {"name": arch, "kwargs": kwargs}, "scale": kwargs["scale"], "precision": "fp32",
           "world_size": 1, "train": train, "fingerprint": "abc123", "data": "embedded-train"}
    (folder / "run.json").write_text(json.dumps(run, indent=2))
    torch.save({"model": model.state_dict(), "step": step, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]},
                "generator": torch.Generator().manual_seed(seed).get_state(), "config": train,
                **(checkpoint_extra or {})}, folder / "checkpoint.pt")
    with open(folder / "losses.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "l1", "total", "lr", "seconds"])
        for s in range(1, step + 1):
            w.writerow([s, 0.1 / s, 0.1 / s, 1e-4, 0.5 * s])
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def lr_image(h=23, w=31, seed=0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


class Touch:
    """A pickle payload: unpickling it creates ``path`` (what an attacker's checkpoint would do, harmlessly)."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def test_load_run_rebuilds_the_network(tmp_path):
    run = make_run(tmp_path / "run", "DASR", TINY_DASR, metrics={"Set5": {"psnr": 25.1}})
    model, info = E.load_run(run)
    ref = build_arch("DASR", TINY_DASR)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    ref.load_state_dict(ckpt["model"])
    assert not model.training and type(model).__name__ == "DASR"
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert info.arch == "DASR" and info.scale == 4 and info.step == 7 and info.arch_kwargs == TINY_DASR
    assert info.metrics == {"Set5": {"psnr": 25.1}} and info.final_losses["step"] == 7
    assert info.id["method"] == "dasr" and info.srlib_version is None
    assert info.describe() == "DASR x4 (blind/dasr, network DASR, seed 0, stage joint, step 7)"


def test_wrapper_prefixes_are_stripped(tmp_path):
    """A state dict saved from a DistributedDataParallel (``module.``) or compiled (``_orig_mod.``) model loads."""
    run = make_run(tmp_path / "run", "EDSR", TINY_EDSR)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    plain = ckpt["model"]
    ckpt["model"] = {f"module._orig_mod.{k}": v for k, v in plain.items()}
    torch.save(ckpt, run / "checkpoint.pt")
    model, _ = E.load_run(run)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in plain.items())


def test_loading_leaves_the_global_rng_alone(tmp_path):
    run = make_run(tmp_path / "run", "DASR", TINY_DASR)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    E.load_run(run)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("fmt", ["safetensors", "torch"])
@pytest.mark.parametrize("arch,kwargs", [("DASR", TINY_DASR), ("CRLSR", TINY_CRL)])
def test_export_round_trip_gives_identical_sr(tmp_path, fmt, arch, kwargs):
    run = make_run(tmp_path / "run", arch, kwargs, metrics={"psnr": 30.0})
    out = tmp_path / f"model.{fmt}"
    written = E.export_run(run, out, fmt=fmt)
    assert written.source == out and out.is_file()
    a, info_a = E.load_run(run)
    b, info_b = E.load_export(out)
    lr = lr_image()
    sr_a = I.upscale(a, lr, I.TileSpec(tile=10))
    sr_b = I.upscale(b, lr, I.TileSpec(tile=10))
    assert torch.equal(sr_a, sr_b)  # same bits, not just close
    for k, v in a.state_dict().items():
        assert torch.equal(b.state_dict()[k], v) and b.state_dict()[k].dtype == v.dtype, k
    assert info_b.arch == info_a.arch and info_b.arch_kwargs == info_a.arch_kwargs and info_b.scale == info_a.scale
    assert info_b.run == info_a.run and info_b.metrics == {"psnr": 30.0} and info_b.step == 7
    assert info_b.final_losses == info_a.final_losses and info_b.srlib_version not in (None, "")
    assert E.load_model(out)[1].arch == arch and E.load_model(run)[1].source == run


def test_export_is_safetensors_with_a_json_description(tmp_path):
    """Read the file by the safetensors layout itself (u64 header length, JSON header, raw bytes): no pickle."""
    run = make_run(tmp_path / "run", "EDSR", TINY_EDSR, metrics={"Set14": 24.0})
    out = tmp_path / "m.safetensors"
    E.export_run(run, out)
    data = out.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = json.loads(header["__metadata__"]["srlib"])
    assert meta["format"] == "srlib-model" and meta["arch"] == {"name": "EDSR", "kwargs": TINY_EDSR}
    assert meta["scale"] == 2 and meta["metrics"] == {"Set14": 24.0} and meta["run"]["train"]["iterations"] == 7
    assert meta["source"] == "run" and meta["step"] == 7 and meta["final_losses"]["l1"] == pytest.approx(0.1 / 7)
    state = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    assert set(header) - {"__metadata__"} == set(state)
    w = header["head.weight"]
    raw = data[8 + n + w["data_offsets"][0]: 8 + n + w["data_offsets"][1]]
    assert w["dtype"] == "F32" and torch.equal(torch.frombuffer(bytearray(raw), dtype=torch.float32),
                                               state["head.weight"].flatten())
    assert b"\x80\x04" not in data[:8 + n] and b"__reduce__" not in data  # no pickle stream


def test_export_is_deterministic(tmp_path):
    run = make_run(tmp_path / "run", "EDSR", TINY_EDSR)
    E.export_run(run, tmp_path / "a.safetensors")
    E.export_run(run, tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_the_payload_is_real(tmp_path):
    """The payload used below does create its file when unpickled without weights_only (the refusal tests could
    otherwise pass for the wrong reason)."""
    marker = tmp_path / "created"
    torch.save({"x": Touch(marker)}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def test_checkpoint_with_a_pickle_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    run = make_run(tmp_path / "run", "EDSR", TINY_EDSR, checkpoint_extra={"extra": Touch(marker)})
    with pytest.raises(E.UnsafeCheckpointError, match=r"refused to load checkpoint .*checkpoint\.pt") as err:
        E.load_run(run)
    assert str(run / "checkpoint.pt") in str(err.value) and "Nothing in it was run" in str(err.value)
    with pytest.raises(E.UnsafeCheckpointError):
        E.export_run(run, tmp_path / "out.safetensors")
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_model_file_with_a_pickle_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pt"
    state = build_arch("EDSR", TINY_EDSR).state_dict()
    meta = json.dumps({"format": "srlib-model", "arch": {"name": "EDSR", "kwargs": TINY_EDSR}, "scale": 2})
    torch.save({"srlib": meta, "tensors": state, "x": Touch(marker)}, evil)
    with pytest.raises(E.UnsafeCheckpointError, match="refused to load checkpoint .*model.pt"):
        E.load_export(evil)
    assert not marker.exists()


def test_clear_errors(tmp_path):
    run = make_run(tmp_path / "run", "EDSR", TINY_EDSR)
    with pytest.raises(E.ModelFileError, match="no such run folder"):
        E.load_run(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no such model file"):
        E.load_export(tmp_path / "nope.safetensors")

    (run / "run.json").rename(run / "spec.json")
    with pytest.raises(E.ModelFileError, match=r"run\.json: missing"):
        E.load_run(run)
    spec = json.loads((run / "spec.json").read_text())

    (run / "run.json").write_text(json.dumps({**spec, "arch": {"name": "SRGAN", "kwargs": {}}}))
    with pytest.raises(E.ModelFileError, match=r"run\.json: unknown architecture 'SRGAN'; srlib knows \["):
        E.load_run(run)
    wider = {**TINY_EDSR, "n_feats": 16}
    (run / "run.json").write_text(json.dumps({**spec, "arch": {"name": "EDSR", "kwargs": wider}}))
    with pytest.raises(E.ModelFileError, match=r"checkpoint\.pt: the weights do not fit EDSR.*of another shape"):
        E.load_run(run)
    (run / "run.json").write_text(json.dumps({**spec, "scale": 3}))
    with pytest.raises(E.ModelFileError, match='"scale" is 3 but "arch.kwargs.scale" is 2'):
        E.load_run(run)
    (run / "run.json").write_text("{not json")
    with pytest.raises(E.ModelFileError, match=r"run\.json: not readable JSON"):
        E.load_run(run)
    (run / "run.json").write_text(json.dumps(spec))
    (run / "checkpoint.pt").unlink()
    with pytest.raises(E.ModelFileError, match=r"checkpoint\.pt: missing"):
        E.load_run(run)

    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(E.ModelFileError, match="plain.safetensors: a safetensors file without srlib's"):
        E.load_export(tmp_path / "plain.safetensors")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(E.ModelFileError, match="notes.txt: not an srlib model file: neither safetensors nor"):
        E.load_export(tmp_path / "notes.txt")
    torch.save({"model": {}}, tmp_path / "checkpoint.pt")
    with pytest.raises(E.ModelFileError, match="not an srlib model export.*--run"):
        E.load_export(tmp_path / "checkpoint.pt")


@pytest.mark.parametrize("ident,arch,accepted,refused", [
    ({"paper": "blind", "method": "dasr", "network": "DASR", "arm": "cdsr-n15-cd"}, "DASR", ["dasr", "DASR"],
     ["cdsr", "edsr", "dasr+pcl"]),
    ({"paper": "pcl-sr", "method": "pcl-pcl-haar-gen", "network": "RCAN", "stage": "finetune", "arm": ""}, "RCAN",
     ["rcan", "RCAN+PCL", "rcan + pcl", "pcl-pcl-haar-gen"], ["edsr", "rcan+l1", "rcan+control", "edsr+pcl"]),
    ({"paper": "pcl-sr", "method": "pcl-pcl-released-haar-gen", "network": "RCAN", "arm": ""}, "RCAN",
     ["rcan", "rcan+pcl", "rcan+released"], ["rcan+l1"]),
    ({"paper": "pcl-sr", "method": "pcl-l1", "network": "EDSR-S", "arm": ""}, "EDSR",
     ["edsr", "EDSR-S", "edsr-s+control", "edsr+l1"], ["edsr+pcl", "rcan"]),
    ({"paper": "pcl-sr", "method": "pcl-base", "network": "EDSR-S", "stage": "pretrain"}, "EDSR",
     ["edsr", "edsr-s", "edsr+base"], ["edsr+pcl", "edsr+l1"]),
    ({"paper": "crl-sr", "method": "crl-f", "network": "CRLSR"}, "CRLSR",
     ["crl-sr", "CRL-SR", "crl", "crl-f", "crl-sr+f", "crlsr"], ["crl-a", "crl-sr+a", "dasr"]),
    ({"paper": "crl-sr", "method": "rcan", "network": "RCAN"}, "RCAN", ["rcan"], ["rcan+pcl", "crl-sr"]),
])
def test_model_names(ident, arch, accepted, refused):
    """The method names of the recipes (srlib.recipes: RunId(paper, method, network, ..., arm)) as --model names."""
    info = E.ModelInfo(source=pathlib.Path("run"), arch=arch, scale=4, run={"id": ident})
    for name in accepted:
        assert info.matches(name), (name, info.names())
    for name in refused:
        assert not info.matches(name), (name, info.names())
