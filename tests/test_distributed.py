"""One run trained by two processes (torchrun, gloo on the CPU) with DistributedDataParallel.

* after one step the weights equal (to 1e-6) a one-process step on the concatenation of both ranks' batches;
* a DDP run stopped after a checkpoint resumes and ends with the weights of an uninterrupted DDP run;
* MoCo's queue under two ranks holds the keys of both (gathered before enqueueing, as the official MoCo does).
"""

import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from srlib.data import PatchSampler
from srlib.train import build_model, degraded_patches, rank_seed

sys.path.insert(0, str(Path(__file__).parent / "distributed"))
import worker  # noqa: E402

WORKER = Path(__file__).parent / "distributed" / "worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(WORKER), *args]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_two_ranks_equal_one_process_on_the_concatenated_batch(tmp_path):
    _torchrun("train", str(tmp_path), "--iterations", "1")
    ddp = _weights(tmp_path / "weights.pt")
    # the same step in one process: rank r's batch is drawn from its own generator, the global batch is both
    cfg = replace(worker.CFG, iterations=1, world_size=1, batch_size=2)
    batches = [degraded_patches(PatchSampler(worker.images(), 16, 2), cfg,
                                torch.Generator().manual_seed(rank_seed(worker.SEED, r, 2))) for r in range(2)]
    lr, hr = torch.cat([b.lr for b in batches]), torch.cat([b.hr for b in batches])
    model = build_model(worker.Tiny, worker.SEED)
    opt = torch.optim.Adam(model.parameters(), lr=worker.CFG.lr, betas=(0.9, 0.999), eps=1e-8)
    F.l1_loss(model(lr), hr).backward()
    opt.step()
    ref = model.state_dict()
    assert ref.keys() == ddp.keys()
    for k in ref:
        torch.testing.assert_close(ddp[k], ref[k], rtol=0, atol=1e-6)
    assert not torch.equal(ddp["body.0.weight"], build_model(worker.Tiny, worker.SEED).state_dict()["body.0.weight"])


def test_ddp_run_resumes_to_the_uninterrupted_weights(tmp_path):
    _torchrun("train", str(tmp_path / "whole"))
    _torchrun("train", str(tmp_path / "split"), "--max-steps", "2")  # stops after the checkpoint at step 2
    first = _weights(tmp_path / "split" / "weights.pt")
    ckpt = torch.load(tmp_path / "split" / "run" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 2 and len(ckpt["generators"]) == 2
    assert len(ckpt["loss_generators"]) == 2  # every rank's loss stream (srlib.train.loss_seed), distinct
    assert not torch.equal(ckpt["loss_generators"][0], ckpt["loss_generators"][1])
    _torchrun("train", str(tmp_path / "split"))
    whole, resumed = _weights(tmp_path / "whole" / "weights.pt"), _weights(tmp_path / "split" / "weights.pt")
    assert any(not torch.equal(first[k], whole[k]) for k in whole)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    log = (tmp_path / "split" / "run" / "losses.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in log[1:]] == list(range(1, worker.ITERATIONS + 1))


def test_moco_queue_holds_the_keys_of_both_ranks(tmp_path):
    _torchrun("moco", str(tmp_path))
    q = _weights(tmp_path / "queue.pt")
    # rank 0's two keys (value 1) then rank 1's (value 2), written at the start of the queue
    torch.testing.assert_close(q["queue"][:, :4], torch.tensor([1.0, 1, 2, 2]).expand(4, 4))
    assert int(q["ptr"]) == 4
