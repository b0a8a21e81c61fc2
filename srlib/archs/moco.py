"""Momentum contrast (MoCo) with a queue of negatives, as DASR and CDSR use it for degradation representations.

MoCo: He, Fan, Wu, Xie and Girshick, "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020
(Eq. 1: the InfoNCE loss over one positive key and a queue of negative keys; Eq. 2: the momentum update of the key
encoder). DASR (Wang et al., "Unsupervised Degradation Representation Learning for Blind Super-Resolution", CVPR
2021, Sec. 3.2) uses it with the query and the positive key taken from two LR patches of one image under one
degradation (``moco/builder.py`` of the official code; ``research/methods.md`` section 2.1); CDSR copies it.

Settings of both papers (the defaults): projection dimension 256, queue K = 8192 (32 batches of 256), momentum
m = 0.999, temperature T = 0.07. The queue starts as L2-normalised Gaussian noise; there is no shuffled BN.

**Encoder contract.** The wrapped query encoder maps a batch of images to a pair ``(fea, q)``:

* ``fea``: (B, D) the representation the SR network consumes, i.e. the vector *before* the projection MLP (DASR:
  the pooled 256-d conv feature; CDSR: the codebook-compressed vector after CSC);
* ``q``: (B, dim) the projection of ``fea`` by the MLP, **already L2-normalised** (MoCo does not normalise again).

One training step (:meth:`MoCo.forward_train`) follows the official order exactly: query forward (with gradient);
then, without gradient, the momentum update of the key encoder and the key forward; the logits against the queue
*as it was before this step*; finally the keys are enqueued (replacing the oldest ones).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from srlib.archs.common import check_positive_int

__all__ = ["MoCo", "gather_keys"]


@torch.no_grad()
def gather_keys(keys: torch.Tensor) -> torch.Tensor:
    """The keys of every process, concatenated in rank order (the official MoCo's ``concat_all_gather``): under
    DistributedDataParallel each process enqueues the whole global batch of keys, so every queue stays identical.
    Without an initialised process group (or with one process): ``keys`` itself."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return keys
    parts = [torch.empty_like(keys) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, keys.contiguous())
    return torch.cat(parts)


class MoCo(nn.Module):
    """MoCo wrapper: a query encoder, its momentum copy (the key encoder) and a queue of negative keys.

    Args:
        encoder: the query encoder (an ``nn.Module``) or a factory returning one. It must map images to
            ``(fea, q)`` with ``q`` L2-normalised of size ``dim`` (see the module docstring).
        dim: size of the projected keys (256).
        queue_size: number K of negative keys in the queue (8192). Every batch enqueued must divide it.
        momentum: m of the key update ``k = m k + (1 - m) q`` (0.999; MoCo Eq. 2). The blind recipes scale it to
            the stage's length (:func:`srlib.recipes.blind_sr.moco_momentum`).
        temperature: T dividing the logits (0.07; MoCo Eq. 1).
        generator: optional ``torch.Generator`` for the queue's initial noise; without it the global RNG is used,
            so build the model under the caller's seed.

    Attributes:
        encoder_q: the query encoder (trained by back-propagation).
        encoder_k: a deep copy of ``encoder_q`` made at construction, ``requires_grad=False``, moved only by
            :meth:`momentum_update`. Its BatchNorm running statistics are its own (only parameters are averaged,
            as in the official code).
        queue: buffer (dim, K), one unit-norm key per column.
        queue_ptr: buffer (1,) long, the column where the next batch of keys is written (the oldest keys).
    """

    def __init__(
        self,
        encoder: nn.Module | Callable[[], nn.Module],
        dim: int = 256,
        queue_size: int = 8192,
        momentum: float = 0.999,
        temperature: float = 0.07,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if not isinstance(encoder, nn.Module):
            if not callable(encoder):
                raise TypeError(f"MoCo: encoder must be an nn.Module or a factory of one, got {type(encoder).__name__}")
            encoder = encoder()
            if not isinstance(encoder, nn.Module):
                raise TypeError(f"MoCo: the encoder factory returned {type(encoder).__name__}, not an nn.Module")
        self.dim = check_positive_int(dim, "dim")
        self.queue_size = check_positive_int(queue_size, "queue_size")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"MoCo: momentum must lie in [0, 1], got {momentum!r}")
        if not float(temperature) > 0.0:
            raise ValueError(f"MoCo: temperature must be > 0, got {temperature!r}")
        self.momentum = float(momentum)
        self.temperature = float(temperature)

        self.encoder_q = encoder
        self.encoder_k = copy.deepcopy(encoder)
        self.encoder_k.requires_grad_(False)

        noise = torch.randn(dim, queue_size, generator=generator)
        self.register_buffer("queue", F.normalize(noise, dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    # ------------------------------------------------------------------------------------------------ pieces

    def _encode(self, encoder: nn.Module, x: torch.Tensor, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        out = encoder(x)
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise TypeError(f"MoCo: {which} must return a pair (fea, q), got {type(out).__name__}")
        fea, q = out
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"MoCo: {which} returned q of shape {tuple(q.shape)}, expected (B, {self.dim})")
        return fea, q

    def _check_batch(self, b: int, where: str) -> None:
        if b == 0 or self.queue_size % b:
            raise ValueError(
                f"{where}: the queue size {self.queue_size} is not a multiple of the batch size {b}; "
                f"use a batch size that divides {self.queue_size} (the official MoCo/DASR code asserts this)"
            )

    @torch.no_grad()
    def momentum_update(self) -> None:
        """Move every key-encoder parameter towards the query encoder: ``k = m k + (1 - m) q`` (MoCo Eq. 2)."""
        m = self.momentum
        for p_k, p_q in zip(self.encoder_k.parameters(), self.encoder_q.parameters(), strict=True):
            p_k.mul_(m).add_(p_q.detach(), alpha=1.0 - m)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write a batch of keys over the oldest columns of the queue and advance the pointer (mod K).

        Args:
            keys: (B, dim) unit-norm keys; B must divide ``queue_size`` (the official code asserts this, so that a
                batch never wraps around the end of the queue). Under DistributedDataParallel the keys of all
                processes are gathered first (:func:`gather_keys`): B is then the global batch.

        The queue keeps its shape (dim, K); columns ``ptr .. ptr + B - 1`` become ``keys.T``.
        """
        if keys.ndim != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"MoCo.enqueue: expected keys of shape (B, {self.dim}), got {tuple(keys.shape)}")
        keys = gather_keys(keys)
        b = keys.shape[0]
        self._check_batch(b, "MoCo.enqueue")
        ptr = int(self.queue_ptr.item())
        self.queue[:, ptr : ptr + b] = keys.detach().t().to(self.queue.dtype)
        self.queue_ptr[0] = (ptr + b) % self.queue_size

    def contrastive_logits(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of MoCo's InfoNCE (MoCo Eq. 1; DASR Sec. 3.2): ``[q . k+, q . queue] / T``.

        Args:
            q: (B, dim) unit-norm queries (with gradient).
            k: (B, dim) unit-norm positive keys (detached here: keys carry no gradient in MoCo).

        Returns:
            ``(logits, labels)``: logits (B, 1 + K), column 0 the positive; labels (B,) long zeros (the positive's
            index) on ``q``'s device. The queue enters as a detached copy, so a later :meth:`enqueue` cannot
            invalidate the graph.
        """
        if q.ndim != 2 or q.shape != k.shape or q.shape[1] != self.dim:
            raise ValueError(
                f"MoCo.contrastive_logits: expected q and k of one shape (B, {self.dim}), "
                f"got {tuple(q.shape)} and {tuple(k.shape)}"
            )
        l_pos = (q * k.detach()).sum(dim=1, keepdim=True)
        l_neg = q @ self.queue.clone().detach()
        logits = torch.cat([l_pos, l_neg], dim=1) / self.temperature
        labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        return logits, labels

    @staticmethod
    def contrastive_loss(logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy with target 0 (the positive), averaged over the batch: MoCo Eq. 1 / DASR's L_degrad."""
        if labels is None:
            labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits, labels)

    # ------------------------------------------------------------------------------------------------ steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Test-time embedding: ``fea`` of the query encoder, (B, D). The key encoder and queue are not used."""
        return self._encode(self.encoder_q, x, "encoder_q")[0]

    def forward_train(self, im_q: torch.Tensor, im_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One MoCo step, in the official order.

        1. ``fea, q = encoder_q(im_q)`` (with gradient);
        2. without gradient: :meth:`momentum_update`, then ``k = encoder_k(im_k)``;
        3. ``logits, labels = contrastive_logits(q, k)`` against the queue before this step;
        4. :meth:`enqueue` ``(k)``.

        Args:
            im_q: (B, 3, h, w) query images in [0, 1].
            im_k: (B, 3, h', w') positive key images in [0, 1] (DASR: a second patch of the same image, same
                degradation).

        Returns:
            ``(fea, logits, labels)``: fea (B, D) with gradient, logits (B, 1 + K), labels (B,) zeros.
        """
        if im_q.shape[0] != im_k.shape[0]:
            raise ValueError(
                f"MoCo.forward_train: query and key batches differ in size ({im_q.shape[0]} vs {im_k.shape[0]})"
            )
        self._check_batch(im_q.shape[0], "MoCo.forward_train")  # before anything changes
        fea, q = self._encode(self.encoder_q, im_q, "encoder_q")
        with torch.no_grad():
            self.momentum_update()
            _, k = self._encode(self.encoder_k, im_k, "encoder_k")
        logits, labels = self.contrastive_logits(q, k)
        self.enqueue(k)
        return fea, logits, labels
