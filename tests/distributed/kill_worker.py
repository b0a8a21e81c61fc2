"""Run by tests/test_crash_safety.py under ``torchrun --nproc_per_node 2`` (gloo, CPU): a tiny DDP run to be killed.

    torchrun --nproc_per_node 2 tests/distributed/kill_worker.py RUN_DIR [--step-sleep SECONDS]

Trains a tiny x2 network for ``ITERATIONS`` steps with a checkpoint every ``CHECKPOINT_EVERY`` steps into RUN_DIR
(``checkpoint.pt``, ``losses.csv``), resuming from RUN_DIR's checkpoint when there is one; rank 0 prints
``kill_worker: trained N steps`` at the end. ``--step-sleep`` makes
every step last a little longer (a sleep inside the loss, which changes no number), so that a kill at a random moment
lands in the middle of training rather than in the start-up. Like tests/distributed/worker.py's ``train`` mode (copied,
not imported, so that the two tests evolve independently), with more steps.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from srlib import distributed
from srlib.train import TrainConfig, build_model, train

SEED, ITERATIONS, CHECKPOINT_EVERY = 7, 8, 2
CFG = TrainConfig(scale=2, iterations=ITERATIONS, batch_size=4, lr_patch=8, lr=1e-3,
                  checkpoint_every=CHECKPOINT_EVERY, seed=SEED, world_size=2)


class Tiny(nn.Module):
    """(B, 3, h, w) -> (B, 3, 2h, 2w): two convolutions and a pixel shuffle."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1))
        self.up = nn.PixelShuffle(2)

    def forward(self, x):
        return self.up(self.body(x))


def images() -> list[torch.Tensor]:
    """Three fixed random (3, 40, 48) uint8 training images."""
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (3, 40, 48), generator=g, dtype=torch.uint8) for _ in range(3)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--step-sleep", type=float, default=0.0)
    args = parser.parse_args()

    def l1(model, batch):
        if args.step_sleep:
            time.sleep(args.step_sleep)
        return {"l1": F.l1_loss(model(batch.lr), batch.hr)}

    distributed.init(torch.device("cpu"))
    result = train(build_model(Tiny, SEED), l1, images(), CFG, Path(args.run_dir), progress=False)
    if distributed.rank() == 0:
        print(f"kill_worker: trained {result.steps_run} steps", flush=True)
    distributed.close()
    # Leave without the interpreter's teardown: once in ~40 launches on a loaded 2-core machine, a rank aborted there
    # after the run had finished and its checkpoint was written ("terminate called without an active exception",
    # SIGABRT; a gloo thread still alive at exit). The test checks the run's files, not gloo's teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
