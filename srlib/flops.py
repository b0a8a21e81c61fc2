"""Training compute of a run, counted: FLOPs per step and in all, and the time that takes at a stated throughput.

:func:`step_flops` runs one real training step of a run's recipe (its batch constructor, loss, backward pass, and its
critic's step) on random images under ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix
products, the direct-convolution count), at a small probe batch and patch on the CPU, and scales the count to the
run's batch and patch size (a convolutional network's FLOPs grow linearly with both; MoCo's queue logits grow with
the batch only, a few per mille of these networks' work, so the scaled figure is an upper bound by that much).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from srlib.data import PatchSampler
from srlib.runs import RunSpec
from srlib.train import flush_denormals

GPU_TFLOPS = 100.0
"""Sustained training throughput assumed for one current data-centre GPU in the estimates of ``srlib train --list``
(bf16, a tenth of an H100's dense peak; small-channel SR networks reach a fraction of peak). Measure your own with
``srlib train --profile gpu-check`` and pass ``--tflops``."""


def _probe(spec: RunSpec) -> tuple[int, int]:
    """(probe batch, probe LR patch): 2 samples (MoCo queues and in-batch negatives need two), a patch of at most 24
    (CDSR's LPE cuts 12x12 patches: 24 keeps whole ones)."""
    return 2, min(spec.config.lr_patch, 24)


_CACHE: dict[str, float] = {}


def _count(spec: RunSpec) -> float:
    batch, patch = _probe(spec)
    cfg = replace(spec.config, batch_size=batch, lr_patch=patch, world_size=1)
    g = torch.Generator().manual_seed(0)
    side = 2 * patch * cfg.scale
    images = [torch.randint(0, 256, (3, side, side), generator=g, dtype=torch.uint8) for _ in range(4)]
    model = spec.build()
    for name in spec.freeze:
        getattr(model, name).requires_grad_(False)
    loss_fn, critic = spec.objective()
    model.train()
    with flush_denormals(), FlopCounterMode(display=False) as counter:
        b = spec.make_batch(PatchSampler(images, patch * cfg.scale, batch), cfg, g)
        if critic is not None:
            critic.module.train()
            terms = critic.loss_fn(critic.module, model, b)
            sum(v for k, v in terms.items() if not k.startswith("_")).backward()
        terms = loss_fn(model, b)
        sum(v for k, v in terms.items() if not k.startswith("_")).backward()
    scale = (spec.config.batch_size / batch) * (spec.config.lr_patch / patch) ** 2
    return counter.get_total_flops() * scale


def step_flops(spec: RunSpec) -> float:
    """FLOPs of one training step of ``spec`` at its global batch (forward + backward of the loss, and the critic's
    step); cached per architecture, recipe and sizes."""
    key = repr((spec.arch, sorted(spec.arch_kwargs.items()), spec.recipe, spec.config.batch_size,
                spec.config.lr_patch, spec.config.scale, spec.freeze, spec.id.method, spec.id.stage))
    if key not in _CACHE:
        _CACHE[key] = _count(spec)
    return _CACHE[key]


def run_flops(spec: RunSpec) -> float:
    """FLOPs of the whole run (its own iterations; a parent run is counted on its own)."""
    return step_flops(spec) * spec.config.iterations
