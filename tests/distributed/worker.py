"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node 2`` (gloo, CPU): one mode per call.

    torchrun --nproc_per_node 2 tests/distributed/worker.py MODE OUT_DIR

Modes: ``train`` (a tiny model, ``ITERATIONS`` steps, optionally stopping at ``--max-steps``), ``moco`` (every rank
enqueues its own keys into one MoCo queue). Rank 0 writes the results under OUT_DIR.
"""

import argparse
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from srlib import distributed
from srlib.archs.moco import MoCo
from srlib.train import TrainConfig, build_model, train

SEED, ITERATIONS = 5, 4
CFG = TrainConfig(scale=2, iterations=ITERATIONS, batch_size=4, lr_patch=8, lr=1e-3, checkpoint_every=2, seed=SEED,
                  world_size=2)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1))
        self.up = nn.PixelShuffle(2)

    def forward(self, x):
        return self.up(self.body(x))


def l1(model, batch):
    return {"l1": F.l1_loss(model(batch.lr), batch.hr)}


def images():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (3, 40, 48), generator=g, dtype=torch.uint8) for _ in range(3)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("train", "moco"))
    parser.add_argument("out")
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    parser.add_argument("--max-steps", type=int, default=None)
    args = parser.parse_args()
    distributed.init(torch.device("cpu"))
    rank, out = dist.get_rank(), Path(args.out)
    if args.mode == "train":
        from dataclasses import replace

        cfg = replace(CFG, iterations=args.iterations)
        result = train(build_model(Tiny, SEED), l1, images(), cfg, out / "run", max_steps=args.max_steps,
                       progress=False)
        if rank == 0:
            torch.save(result.model.state_dict(), out / "weights.pt")
    else:
        moco = build_model(lambda: MoCo(nn.Identity(), dim=4, queue_size=8), SEED)
        keys = torch.full((2, 4), float(rank + 1))  # rank r enqueues two keys of value r + 1
        moco.enqueue(keys)
        if rank == 0:
            torch.save({"queue": moco.queue, "ptr": moco.queue_ptr}, out / "queue.pt")
    distributed.close()
    return 0


if __name__ == "__main__":
    distributed.exit_process(main())  # as srlib train's workers: no interpreter teardown for gloo's threads to abort
    sys.exit(0)
