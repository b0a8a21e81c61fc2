"""Processes started by ``torchrun``: the process group, this process's device, and who writes.

``torchrun --nproc_per_node N -m srlib train ...`` starts N processes with ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE`` set; :func:`init` joins them into one ``torch.distributed`` process group (NCCL on CUDA, gloo on the
CPU) and each run is then trained by all of them together with DistributedDataParallel (:mod:`srlib.train`).
Without torchrun (``WORLD_SIZE`` unset or 1) nothing is initialised.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist


def world_size() -> int:
    """Processes of this job (``$WORLD_SIZE``, 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", "0"))


def init(device: torch.device) -> torch.device:
    """Join the process group when started by torchrun with several processes; returns this process's device
    (``cuda:LOCAL_RANK`` for CUDA, else ``device``)."""
    if world_size() == 1 or (dist.is_available() and dist.is_initialized()):
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def close() -> None:
    """Leave the process group (after a barrier, so no rank exits while another still writes)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_process(code: int) -> None:
    """End a torchrun worker without the interpreter's teardown: gloo's threads occasionally abort it
    (``terminate called without an active exception``, about one launch in 40 here) after all work is written,
    turning a finished job into a failed one. Single processes exit normally."""
    if world_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
