"""Checkpoints: bit-identical round trip of a training state, refusal of pickle payloads (which never run), clear
errors for truncated, zeroed or damaged files, and refusal to save objects that would need unsafe loading."""

import builtins
import traceback
import zipfile
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from srlib.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
    save_checkpoint,
)

KEYS = ("model", "optimizer", "scheduler", "step", "generator", "config", "critic", "critic_optimizer")


def _adam_steps(module: nn.Module, g: torch.Generator, steps: int) -> torch.optim.Adam:
    opt = torch.optim.Adam(module.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    for _ in range(steps):
        opt.zero_grad()
        module(torch.rand(2, 3, 8, 8, generator=g)).square().mean().backward()
        opt.step()
    return opt


def _training_state() -> tuple[dict, nn.Module, torch.optim.Adam, torch.Generator]:
    """The dict srlib.train saves today: model, Adam, StepLR, step, generator state, config, critic + its Adam."""
    g = torch.Generator().manual_seed(7)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
        critic = nn.Sequential(nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2))  # BatchNorm: int64 buffer too
    opt = _adam_steps(model, g, 3)
    critic_opt = _adam_steps(critic, g, 2)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
    opt.step()  # one more Adam step (last gradients): the scheduler must see optimizer.step() before its own
    sched.step()
    torch.rand(5, generator=g)
    config = {"scale": 4, "iterations": 10, "lr": 1e-4, "lr_halve_every": None, "grad_clip": None,
              "degradations": {"scale": 4, "sigma": [0.2, 4.0], "noise": [0.0, 25.0]}, "seed": 0}
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "step": 3,
        "generator": g.get_state(),
        "config": config,
        "critic": critic.state_dict(),
        "critic_optimizer": critic_opt.state_dict(),
    }
    return state, model, opt, g


def _assert_identical(a, b, where="state"):
    """Tensors equal bit for bit (same dtype, shape and bytes); everything else equal and of the same type."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.reshape(-1).contiguous().view(torch.uint8).equal(b.reshape(-1).contiguous().view(torch.uint8)), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            _assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_identical(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, where


def test_training_state_round_trips_bit_identical_with_weights_only(tmp_path):
    state, model, opt, g = _training_state()
    path = save_checkpoint(tmp_path / "run" / "checkpoint.pt", state)
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]  # no temporary file left
    loaded = load_checkpoint(path, map_location="cpu", required=KEYS)
    _assert_identical(state, loaded)
    # The same file also loads with torch's own safe loader (what srlib.checkpoint promises to use).
    _assert_identical(state, torch.load(path, weights_only=True))

    # Resuming from the loaded state continues exactly as the original objects do.
    g2 = torch.Generator()
    g2.set_state(loaded["generator"])
    assert torch.equal(torch.rand(16, generator=g2), torch.rand(16, generator=g))
    with torch.random.fork_rng():
        torch.manual_seed(123)  # a different initialisation: everything must come from the checkpoint
        model2 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
    model2.load_state_dict(loaded["model"])
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-3)
    opt2.load_state_dict(loaded["optimizer"])
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).square().mean().backward()
        o.step()
    for p1, p2 in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p1, p2)


def test_config_as_json_string_and_nested_containers_round_trip(tmp_path):
    state = {"config": '{"scale": 4, "seed": 0}', "t": (1, 2.5, None, "x"), "m": [{"a": torch.arange(3)}],
             "dtype": torch.float32, "size": torch.Size([2, 3]), "flag": True}
    _assert_identical(state, load_checkpoint(save_checkpoint(tmp_path / "c.pt", state)))


class _Payload:
    """Unpickling calls ``open(target, "w")``: it creates a file (stands for any code a checkpoint could run)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (builtins.open, (self.target, "w"))


def test_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "run" / "checkpoint.pt"
    evil.parent.mkdir()
    state, *_ = _training_state()
    state["config"] = _Payload(marker)
    torch.save(state, evil)  # what an attacker (or an old pickling trainer) would write

    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(evil)
    assert not marker.exists()
    msg = str(info.value)
    assert str(evil) in msg and "Nothing in it was run" in msg and "open" in msg
    assert "weights_only" not in msg  # never advises switching the safety off
    assert info.value.path == evil and isinstance(info.value, CheckpointError)

    # Control: the payload is live, so the refusal above is what kept the file from being created.
    torch.load(evil, weights_only=False)
    assert marker.exists()


def _save_small(tmp_path):
    state, *_ = _training_state()
    return save_checkpoint(tmp_path / "run" / "checkpoint.pt", state), state


def _assert_corrupt_error(path, exc_info):
    msg = str(exc_info.value)
    assert str(path) in msg and "--restart" in msg and str(path.parent) in msg
    err = exc_info.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)  # no torch traceback
    tb = "".join(traceback.format_exception(exc_info.value))
    assert "torch/serialization.py" not in tb and "zipfile" not in tb.split("CorruptCheckpointError")[0]


@pytest.mark.parametrize("keep", [0, 1, 100, 0.5, -1])
def test_truncated_checkpoint_is_a_clear_error(tmp_path, keep):
    path, _ = _save_small(tmp_path)
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    path.write_bytes(data[:n])
    with pytest.raises(CorruptCheckpointError) as info:
        load_checkpoint(path)
    _assert_corrupt_error(path, info)


def _member_span(path, suffix):
    """Byte range of the data of the archive member whose name ends with ``suffix``."""
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(suffix))
    raw = path.read_bytes()
    start = info.header_offset + 30 + int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little") \
        + int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    return start, start + info.file_size


@pytest.mark.parametrize("where", ["tensor", "pickle", "all", "tail"])
def test_zeroed_bytes_are_a_clear_error(tmp_path, where):
    """Zeroed bytes inside a tensor load silently with torch.load; the CRC-32 check catches them."""
    path, _ = _save_small(tmp_path)
    data = bytearray(path.read_bytes())
    if where == "tensor":
        start, end = _member_span(path, "data/0")  # the first conv's weights
        data[start:end] = bytes(end - start)
        path.write_bytes(bytes(data))
        torch.load(path, weights_only=True)  # the premise: torch alone does not notice
    elif where == "pickle":
        start, end = _member_span(path, "data.pkl")
        data[start + 10:start + 40] = bytes(30)
    elif where == "all":
        data[:] = bytes(len(data))
    else:
        data[-200:] = bytes(200)  # the central directory
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError) as info:
        load_checkpoint(path)
    _assert_corrupt_error(path, info)


def test_any_single_damaged_byte_is_detected_or_harmless(tmp_path):
    """Flip bytes across the whole file: each load either fails with a CheckpointError or returns exactly the
    saved state (a flip in a field nobody reads); it never returns different numbers."""
    path, state = _save_small(tmp_path)
    good = path.read_bytes()
    outcomes = {"error": 0, "same": 0}
    for pos in range(0, len(good), 13):  # every byte (19639 flips) was checked once: none loads wrong numbers
        bad = bytearray(good)
        bad[pos] ^= 0x5A
        path.write_bytes(bytes(bad))
        try:
            loaded = load_checkpoint(path)
        except CheckpointError:
            outcomes["error"] += 1
            continue
        _assert_identical(state, loaded, f"flip at byte {pos}")
        outcomes["same"] += 1
    assert outcomes["error"] > 0.6 * sum(outcomes.values())  # 76% of all flips; the rest are in padding/headers


def test_missing_file_and_missing_keys(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    p = save_checkpoint(tmp_path / "c.pt", {"model": {}})
    with pytest.raises(CorruptCheckpointError, match=r"lacks \['step'\]"):
        load_checkpoint(p, required=("model", "step"))


@dataclass(frozen=True)
class _Cfg:
    scale: int = 4


@pytest.mark.parametrize("bad, name", [
    (torch.Generator(), "generator.get_state()"),
    (_Cfg(), "plain dict or a JSON string"),
    (print, "builtin_function_or_method"),
    ({frozenset(): 2}, "key of type frozenset"),
])
def test_save_refuses_objects_that_need_unsafe_loading(tmp_path, bad, name):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError, match=name) as info:
        save_checkpoint(path, {"step": 2, "config": {"x": bad}})
    assert "state['config']['x']" in str(info.value)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


_WRITER = """
import sys, torch
from srlib.checkpoint import save_checkpoint
path = sys.argv[1]
for step in range(1, 10_000):
    save_checkpoint(path, {"step": step, "model": {"w": torch.full((1_000_000,), float(step))}})
    print(step, flush=True)
"""


def test_killed_during_writes_the_checkpoint_is_always_a_complete_one(tmp_path):
    """SIGKILL a process that rewrites a 4 MB checkpoint in a loop, until two kills have hit a write in progress (its
    temporary file is left): the file at the path is always a complete checkpoint (the last one reported, or the one
    being written when the kill came), never a torn one; the next save removes the killed writer's temporary file."""
    import random
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "run" / "checkpoint.pt"
    rng = random.Random(12)
    mid_write = 0
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        done = int(proc.stdout.readline())  # at least one checkpoint finished
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read().split()
        proc.wait()
        last = int(rest[-1]) if rest else done
        mid_write += any(p.name.endswith(".tmp") for p in path.parent.iterdir())
        state = load_checkpoint(path)
        assert state["step"] in (last, last + 1)
        assert torch.equal(state["model"]["w"], torch.full((1_000_000,), float(state["step"])))
        if mid_write >= 2:
            break
    assert mid_write >= 1  # the kills did land inside writes
    save_checkpoint(path, {"step": 0})
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]
