"""Losses of PCL-SR (Wu et al., "Practical Contrastive Learning for Single Image Super-Resolution", Sec. 3.3-3.5).

* :func:`mean_cosine_similarity`: the similarity s of paper Eq. (9): channel-wise cosine of two feature maps,
  averaged over the H x W positions.
* :func:`pcl_infonce`: the contrastive loss L_CL of paper Eqs. (8)-(10): InfoNCE per positive, against all the
  negatives of the same sample, over the tapped layers of the embedding network.
* :func:`pcl_loss`: runs the embedding network (:class:`srlib.archs.pcl_embed.PCLDiscriminator`) on the Haar
  high-frequency bands of the SR image, the positives and the negatives and returns L_CL, in two variants
  (DESIGN.md, "PCL-SR"):

  - default (``released=False``), the paper's intent: the SR anchor's features carry gradients to the SR image;
    the positives' and negatives' features are constants and the embedding network is frozen for this term;
  - ``released=True``, the official code: every feature, the SR anchor's included, is computed under
    ``torch.no_grad``, so **the released variant trains nothing**: the term adds a constant to the SR loss
    (``research/methods.md`` 2.4, "Critical code finding").

* :func:`dual_contrastive_d_loss`: the discriminator loss L_CLD of paper Eq. (7) (Yu et al. 2021's dual contrastive
  loss, as in the official code), which is what trains the embedding network.

The SR objective of paper Eq. (11), ``L_SR = L_1 + alpha * L_CL`` (alpha = 1 in the paper; the released scripts
weight L_CL by 5 for RCAN and 3 for NLSN), is composed by the trainer, which also alternates the SR and
discriminator steps; nothing here sums the terms.

Conventions: feature maps are (B, C, H, W); positives and negatives of sample b are stacked along a second axis,
(B, P, C, H, W) and (B, K, C, H, W). Negatives are those of the same sample only (no cross-batch negatives, as in
the released scripts without ``--shuffle_neg``). The official code uses **no temperature** (``tau = 1``), which is
the default here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["mean_cosine_similarity", "pcl_infonce", "pcl_loss", "dual_contrastive_d_loss"]

_EPS = 1e-8


def mean_cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Similarity s of two feature maps: PCL-SR Eq. (9), as implemented officially.

    ``s(a, b) = 1 / (H W) * sum_{h, w} <a_hw, b_hw> / (||a_hw|| ||b_hw||)``, where a_hw is the C-vector at position
    (h, w): each feature vector is normalised over the channels, the two are dotted, and the cosines are averaged
    over the H x W positions. Vectors with norm below 1e-8 are divided by 1e-8 instead (so a zero vector has cosine 0
    with everything).

    Args:
        a (Tensor): (..., C, H, W) feature maps, any range.
        b (Tensor): (..., C, H, W), broadcastable with ``a`` (e.g. a (B, 1, C, H, W) anchor against (B, K, C, H, W)
            samples).

    Returns:
        Tensor: (...) similarities in [-1, 1]; (B,) for two (B, C, H, W) maps.
    """
    if a.dim() < 3 or b.dim() < 3:
        raise ValueError(f"expected (..., C, H, W) feature maps, got shapes {tuple(a.shape)}, {tuple(b.shape)}")
    cos = (F.normalize(a, dim=-3, eps=_EPS) * F.normalize(b, dim=-3, eps=_EPS)).sum(dim=-3)
    return cos.mean(dim=(-2, -1))


def _infonce_layer(anchor: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, tau: float) -> torch.Tensor:
    """Paper Eq. (8) for one layer, averaged over the positives and the batch: a scalar."""
    b, c, h, w = anchor.shape
    if pos.dim() != 5 or neg.dim() != 5 or pos.shape[0] != b or neg.shape[0] != b:
        raise ValueError(
            f"expected positives (B, P, C, H, W) and negatives (B, K, C, H, W) with B={b}, got "
            f"{tuple(pos.shape)}, {tuple(neg.shape)}"
        )
    if pos.shape[2:] != (c, h, w) or neg.shape[2:] != (c, h, w):
        raise ValueError(
            f"positive/negative maps {tuple(pos.shape[2:])}, {tuple(neg.shape[2:])} do not match the anchor's "
            f"{(c, h, w)}"
        )
    if pos.shape[1] < 1 or neg.shape[1] < 1:
        raise ValueError(f"need at least one positive and one negative, got P={pos.shape[1]}, K={neg.shape[1]}")
    s_pos = mean_cosine_similarity(anchor.unsqueeze(1), pos)  # (B, P)
    s_neg = mean_cosine_similarity(anchor.unsqueeze(1), neg)  # (B, K)
    p = s_pos.shape[1]
    logits = torch.cat([s_pos.unsqueeze(-1), s_neg.unsqueeze(1).expand(b, p, s_neg.shape[1])], dim=-1) / tau
    # cross-entropy with target 0 = logsumexp(logits) - logits[0], per (sample, positive)
    return (torch.logsumexp(logits, dim=-1) - logits[..., 0]).mean()


def pcl_infonce(
    anchor_feats: Sequence[torch.Tensor],
    pos_feats: Sequence[torch.Tensor],
    neg_feats: Sequence[torch.Tensor],
    tau: float = 1.0,
) -> torch.Tensor:
    """PCL-SR contrastive loss L_CL: paper Eqs. (8)-(10).

    For sample i, tapped layer l and positive p_j (s = :func:`mean_cosine_similarity`)::

        L_{i,l} = 1/P sum_j -log( exp(s(f_i, p_j) / tau) / (exp(s(f_i, p_j) / tau) + sum_k exp(s(f_i, n_k) / tau)) )
        L_CL    = 1/(B L) sum_i sum_l L_{i,l}

    i.e. for every (sample, layer, positive) the cross-entropy of the logits ``[s(f, p_j), s(f, n_1), ..., s(f,
    n_K)] / tau`` with target 0, averaged with equal weights over the positives, layers and samples.

    Args:
        anchor_feats (sequence of Tensor): L >= 1 maps, layer l of shape (B, C_l, H_l, W_l): the SR image's features.
        pos_feats (sequence of Tensor): L maps, layer l (B, P, C_l, H_l, W_l): features of the P >= 1 positives.
        neg_feats (sequence of Tensor): L maps, layer l (B, K, C_l, H_l, W_l): features of the K >= 1 negatives.
        tau (float): temperature > 0. Default 1.0 (the official code has none).

    Returns:
        Tensor: scalar loss >= log(1 + K exp(-2 / tau)) > 0 (equality when every s(f, p) = 1 and s(f, n) = -1); it
        carries gradients to whichever inputs require them.
    """
    if not tau > 0:
        raise ValueError(f"temperature tau must be > 0, got {tau!r}")
    anchor_feats, pos_feats, neg_feats = list(anchor_feats), list(pos_feats), list(neg_feats)
    if not anchor_feats or not len(anchor_feats) == len(pos_feats) == len(neg_feats):
        raise ValueError(
            f"need the same number L >= 1 of layers, got {len(anchor_feats)} anchor, {len(pos_feats)} positive and "
            f"{len(neg_feats)} negative maps"
        )
    for f in anchor_feats:
        if f.dim() != 4:
            raise ValueError(f"expected (B, C, H, W) anchor maps, got shape {tuple(f.shape)}")
    layers = [_infonce_layer(f, p, n, tau) for f, p, n in zip(anchor_feats, pos_feats, neg_feats, strict=True)]
    return torch.stack(layers).mean()


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Temporarily set ``requires_grad=False`` on the module's parameters; restore each flag on exit."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def _stacked_features(embed_net: nn.Module, x: torch.Tensor, name: str) -> list[torch.Tensor]:
    """Features of (B, N, C, h, w) samples, run as one (B * N) batch, reshaped to (B, N, C_l, H_l, W_l) per layer."""
    if x.dim() != 5:
        raise ValueError(f"expected {name} of shape (B, N, C, h, w), got {tuple(x.shape)}")
    b, n = x.shape[:2]
    return [f.reshape(b, n, *f.shape[1:]) for f in embed_net.features(x.reshape(b * n, *x.shape[2:]))]


def pcl_loss(
    embed_net: nn.Module,
    sr_hf: torch.Tensor,
    pos_hf: torch.Tensor,
    neg_hf: torch.Tensor,
    released: bool = False,
    tau: float = 1.0,
) -> torch.Tensor:
    """PCL-SR contrastive loss L_CL (paper Eqs. (8)-(10)) through the embedding network, in two variants.

    Runs ``embed_net.features`` (:meth:`srlib.archs.pcl_embed.PCLDiscriminator.features`) on the SR anchor, on the
    P positives (one (B * P) batch) and on the K negatives (one (B * K) batch), and returns :func:`pcl_infonce`.

    * ``released=False`` (default; the paper's method): the anchor's features carry gradients to ``sr_hf`` (hence to
      the SR network); the positives' and negatives' features are computed under ``torch.no_grad`` (constants); the
      embedding network's parameters are frozen while the anchor passes through it, so this term gives them no
      gradient (they are trained by :func:`dual_contrastive_d_loss` only). Their ``requires_grad`` flags are
      restored afterwards.
    * ``released=True`` (the official code, ``research/methods.md`` 2.4): every feature, the SR anchor's included,
      is computed under ``torch.no_grad``. The result has ``requires_grad=False``: **the released variant trains
      nothing**; ``L_1 + alpha * L_CL`` then has exactly the gradient of L_1.

    The network's train/eval mode is left to the caller. In train mode BatchNorm normalises the anchor, the positive
    and the negative batches each with its own batch statistics and updates its running statistics (as the official
    code, whose D is always in train mode); in eval mode it uses the running statistics.

    Args:
        embed_net (nn.Module): a module with ``features(x) -> list of (N, C_l, H_l, W_l)`` maps.
        sr_hf (Tensor): (B, C, h, w) Haar high-frequency bands of the SR image (C = 9 for RGB).
        pos_hf (Tensor): (B, P, C, h, w) bands of the positives (HR and its sharpened copies).
        neg_hf (Tensor): (B, K, C, h, w) bands of the negatives (upsampled LR and blurred HR copies).
        released (bool): reproduce the official no-grad computation. Default False.
        tau (float): temperature > 0. Default 1.0 (the official code has none).

    Returns:
        Tensor: scalar loss >= 0.
    """
    if sr_hf.dim() != 4:
        raise ValueError(f"expected sr_hf of shape (B, C, h, w), got {tuple(sr_hf.shape)}")
    for name, t in (("pos_hf", pos_hf), ("neg_hf", neg_hf)):
        if t.dim() != 5 or t.shape[0] != sr_hf.shape[0] or t.shape[2:] != sr_hf.shape[1:]:
            raise ValueError(
                f"expected {name} of shape (B, N, C, h, w) matching sr_hf {tuple(sr_hf.shape)}, got {tuple(t.shape)}"
            )
    with torch.no_grad():
        pos_feats = _stacked_features(embed_net, pos_hf, "pos_hf")
        neg_feats = _stacked_features(embed_net, neg_hf, "neg_hf")
        if released:
            return pcl_infonce(embed_net.features(sr_hf), pos_feats, neg_feats, tau)
    with _frozen(embed_net):
        anchor_feats = embed_net.features(sr_hf)
    return pcl_infonce(anchor_feats, pos_feats, neg_feats, tau)


def dual_contrastive_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Dual contrastive discriminator loss L_CLD: PCL-SR Eq. (7) (Yu et al. 2021), as in the official code.

    Over the flattened logits r_1..r_N (real: HR, and with ``--contras_D_train`` its sharpened copies) and f_1..f_M
    (fake: SR, and with ``--contras_D_train`` the blurred copies)::

        L_D = mean_i CE([r_i, f_1, ..., f_M], 0) + mean_j CE([-f_j, -r_1, ..., -r_N], 0)
            = mean_i [log(e^{r_i} + sum_m e^{f_m}) - r_i] + mean_j [log(e^{-f_j} + sum_n e^{-r_n}) + f_j]

    Each real logit must win a softmax against all fakes, and each negated fake logit against all negated reals.
    Eq. (7) writes the same two terms as the expected log-probabilities that the discriminator maximises; this is
    their negative, a loss to minimise.

    Args:
        real_logits (Tensor): any shape with N >= 1 elements, e.g. (B, 16) patch logits; flattened.
        fake_logits (Tensor): any shape with M >= 1 elements; flattened.

    Returns:
        Tensor: scalar loss > 0.
    """
    r, f = real_logits.reshape(-1), fake_logits.reshape(-1)
    if r.numel() < 1 or f.numel() < 1:
        raise ValueError(f"need at least one real and one fake logit, got N={r.numel()}, M={f.numel()}")

    def half(own: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
        logits = torch.cat([own.unsqueeze(1), others.unsqueeze(0).expand(own.numel(), others.numel())], dim=1)
        return (torch.logsumexp(logits, dim=1) - own).mean()

    return half(r, f) + half(-f, -r)
