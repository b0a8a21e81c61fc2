"""Contrastive losses of CRL-SR (contrastive decoupling encoding CDE, contrastive feature refinement CFR).

The equations of CRL-SR were lost from the paper text; what follows is **our reconstruction** from the surviving
prose of sections 3.3-3.4, fixed in DESIGN.md ("Methods" -> "CRL-SR"). Conventions:

* A feature map (B, C, H, W) is sampled at M flat locations (:func:`sample_locations`, the same locations for every
  image of the batch and for every feature map compared), giving (B, M, C) vectors (:func:`gather_locations`).
  A 2-layer MLP (not here) maps them to (B, M, S), S=256, and they are L2-normalised along S.
* Every loss below **assumes L2-normalised inputs** of shape (B, M, S) and does not renormalise; dot products
  are then cosines in [-1, 1]. Negatives of location i are the other M-1 locations of the *same* image.
* Temperature ``tau`` = 0.07 (CRL-SR section 4.1). Every loss returns a scalar >= 0, averaged over the M
  locations and the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "sample_locations",
    "gather_locations",
    "patch_infonce",
    "bidirectional_contrastive_loss",
    "penalty_weights",
    "LR_TERMS",
    "conditional_logits",
    "conditional_contrastive_loss",
    "infonce_refinement_loss",
    "hr_reconstruction_loss",
]


def _check_features(tau: float, **feats: torch.Tensor) -> None:
    """All tensors (B, M, S) with one shape, M >= 2, and tau > 0."""
    shapes = {name: tuple(t.shape) for name, t in feats.items()}
    first = next(iter(shapes.values()))
    if len(first) != 3 or any(s != first for s in shapes.values()):
        raise ValueError(f"expected feature tensors of one shape (B, M, S), got {shapes}")
    if first[1] < 2:
        raise ValueError(f"need M >= 2 locations (one positive and at least one negative), got M={first[1]}")
    if not tau > 0:
        raise ValueError(f"temperature tau must be > 0, got {tau!r}")


def _diagonal_targets(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (B, M, K) logits whose correct class for row i is column i; mean over B and M."""
    b, m, k = logits.shape
    target = torch.arange(m, device=logits.device).repeat(b)
    return F.cross_entropy(logits.reshape(b * m, k), target)


def sample_locations(h: int, w: int, m: int, generator: torch.Generator) -> torch.Tensor:
    """Draw M distinct flat locations of an h x w feature map.

    Args:
        h, w (int): Height and width of the feature map.
        m (int): Number of locations M, 2 <= M <= h * w.
        generator (torch.Generator): The only source of randomness (CPU generator; no global RNG is used).

    Returns:
        LongTensor: (M,) distinct indices in [0, h * w), on the CPU; index ``y * w + x`` is pixel (y, x).
    """
    if h < 1 or w < 1:
        raise ValueError(f"feature map size must be positive, got h={h}, w={w}")
    if m < 2:
        raise ValueError(f"need m >= 2 locations (one positive and at least one negative), got m={m}")
    if m > h * w:
        raise ValueError(f"cannot draw m={m} distinct locations from a {h}x{w} map ({h * w} locations)")
    return torch.randperm(h * w, generator=generator)[:m]


def gather_locations(feat: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Feature vectors of a map at flat locations, the same locations for every image of the batch.

    Args:
        feat (Tensor): (B, C, H, W) feature map, any range.
        idx (LongTensor): (M,) flat indices ``y * W + x`` in [0, H * W) (see :func:`sample_locations`).

    Returns:
        Tensor: (B, M, C), ``out[b, i] = feat[b, :, idx[i] // W, idx[i] % W]``.
    """
    if feat.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) feature map, got shape {tuple(feat.shape)}")
    if idx.dim() != 1:
        raise ValueError(f"expected (M,) flat indices, got shape {tuple(idx.shape)}")
    return feat.flatten(2)[:, :, idx.to(feat.device)].transpose(1, 2)


def patch_infonce(anchor: torch.Tensor, other: torch.Tensor, tau: float = 0.07) -> torch.Tensor:
    """Patch-wise InfoNCE L(a, b): CRL-SR Eq. (2), our reconstruction (DESIGN.md).

    For every location i the anchor is a_i, the positive b_i and the negatives b_j (j != i) of the same image::

        L(a, b) = mean_{batch, i} -log( exp(a_i . b_i / tau) / sum_{j=1..M} exp(a_i . b_j / tau) )

    (the denominator includes the positive). Computed as cross-entropy over the (B, M, M) similarity matrix.

    Args:
        anchor (Tensor): (B, M, S), L2-normalised along S (not renormalised here).
        other (Tensor): (B, M, S), L2-normalised along S; row i is the positive of anchor row i.
        tau (float): Temperature, > 0. Default: 0.07.

    Returns:
        Tensor: scalar loss >= 0.
    """
    _check_features(tau, anchor=anchor, other=other)
    return _diagonal_targets(torch.bmm(anchor, other.transpose(1, 2)) / tau)


def bidirectional_contrastive_loss(f_l: torch.Tensor, f_h: torch.Tensor, tau: float = 0.07) -> torch.Tensor:
    """CDE bidirectional contrastive loss: CRL-SR Eq. (3), our reconstruction (DESIGN.md).

    ``L_bi = L(f_l, f_h) + L(f_h, f_l)`` with L = :func:`patch_infonce` (first argument = anchors).

    Args:
        f_l (Tensor): (B, M, S) L2-normalised features of the upsampled LR (encoder E_l + MLP).
        f_h (Tensor): (B, M, S) L2-normalised features of the HR (encoder E_h + MLP), same locations.
        tau (float): Temperature, > 0. Default: 0.07.

    Returns:
        Tensor: scalar loss >= 0.
    """
    return patch_infonce(f_l, f_h, tau) + patch_infonce(f_h, f_l, tau)


def penalty_weights(f_hr: torch.Tensor, f_lr: torch.Tensor) -> torch.Tensor:
    """Adaptive penalty factors w_i: CRL-SR Eq. (5), our reconstruction (DESIGN.md).

    ``d_i = ||f_hr_i - f_lr_i||_2``, ``w_i = d_i / mean_{j=1..M}(d_j)`` per image, so each image's weights have mean
    1. Computed under ``torch.no_grad`` (the result carries no gradient). If all d_i of an image are 0 its weights
    are 1.

    Args:
        f_hr (Tensor): (B, M, S) HR features.
        f_lr (Tensor): (B, M, S) upsampled-LR features, same locations.

    Returns:
        Tensor: (B, M) weights >= 0, ``requires_grad=False``.
    """
    if f_hr.shape != f_lr.shape or f_hr.dim() != 3:
        raise ValueError(f"expected two (B, M, S) tensors of one shape, got {tuple(f_hr.shape)}, {tuple(f_lr.shape)}")
    with torch.no_grad():
        d = torch.linalg.vector_norm(f_hr - f_lr, dim=-1)
        mean = d.mean(dim=1, keepdim=True)
        ok = mean > 0
        return torch.where(ok, d / torch.where(ok, mean, torch.ones_like(mean)), torch.ones_like(d))


LR_TERMS = ("sr", "hr")
"""Readings of CFR's LR pushing term (:func:`conditional_logits`): ``"sr"`` (default) the term acts on f_sr; ``"hr"``
the first implementation's form, f_lr as an extra negative of the HR anchor (no gradient path to the SR network)."""


def conditional_logits(
    f_hr: torch.Tensor,
    f_sr: torch.Tensor,
    f_lr: torch.Tensor,
    tau: float = 0.07,
    use_penalty: bool = True,
    lr_term: str = "sr",
) -> torch.Tensor:
    """The (B, M, M + 1) logits of the CFR conditional contrastive loss (:func:`conditional_contrastive_loss`).

    Row i holds location i's logits: columns 0..M-1 the HR anchor a_i = f_hr_i against f_sr_j (the positive p_i =
    f_sr_i at column i, the negatives f_sr_j at j != i), column M the LR pushing term; w_i =
    :func:`penalty_weights` (f_hr, f_lr) (detached) scales column i and column M, or is 1 when ``use_penalty=False``::

        out[b, i, j] = (w_i if j == i else 1) * f_hr_i . f_sr_j / tau        (j < M)
        out[b, i, M] = w_i * f_sr_i . f_lr_i / tau     lr_term="sr" (default; the text's reading)
        out[b, i, M] = w_i * f_hr_i . f_lr_i / tau     lr_term="hr" (the first implementation's form)

    The paper says the SR feature "will be pushed away by [f_lr] and pulled towards [f_hr] simultaneously", an extra
    force that "pushes the reconstructed SR features towards the corresponding HR features" (CRL-SR Sec. 3.4; the
    symbols were lost from the text). With ``"sr"`` both forces act on f_sr_i: its positive logit pulls it towards
    f_hr_i and its LR logit, in the denominator, pushes it away from f_lr_i. With ``"hr"`` the LR logit depends on
    f_hr and f_lr only (E_F of the HR and of the bicubic LR), which no SR-network parameter reaches: for the SR
    network that column is a constant, so ablation (b) differs from (c) by w_i and a constant in the denominator.

    Args:
        f_hr (Tensor): (B, M, S) L2-normalised HR features (anchors).
        f_sr (Tensor): (B, M, S) L2-normalised SR features (positive at i, negatives elsewhere).
        f_lr (Tensor): (B, M, S) L2-normalised upsampled-LR features (pushing term, and the penalty).
        tau (float): Temperature, > 0. Default: 0.07.
        use_penalty (bool): Scale the positive and LR logits by w_i (Eq. (6)); False gives Eq. (4). Default: True.
        lr_term (str): ``"sr"`` or ``"hr"``, which feature the LR term is compared with (see above). Default: "sr".

    Returns:
        Tensor: (B, M, M + 1) logits; the correct class of row i is column i.
    """
    _check_features(tau, f_hr=f_hr, f_sr=f_sr, f_lr=f_lr)
    if lr_term not in LR_TERMS:
        raise ValueError(f"lr_term must be one of {LR_TERMS}, got {lr_term!r}")
    sim = torch.bmm(f_hr, f_sr.transpose(1, 2)) / tau  # (B, M, M): a_i . f_sr_j / tau
    pushed = f_sr if lr_term == "sr" else f_hr
    push = (pushed * f_lr).sum(dim=-1, keepdim=True) / tau  # (B, M, 1): f_sr_i . l_i / tau (or a_i . l_i / tau)
    if use_penalty:
        w = penalty_weights(f_hr, f_lr).unsqueeze(-1)  # (B, M, 1)
        eye = torch.eye(sim.shape[1], dtype=torch.bool, device=sim.device)
        sim = torch.where(eye, w * sim, sim)
        push = w * push
    return torch.cat([sim, push], dim=-1)


def conditional_contrastive_loss(
    f_hr: torch.Tensor,
    f_sr: torch.Tensor,
    f_lr: torch.Tensor,
    tau: float = 0.07,
    use_penalty: bool = True,
    lr_term: str = "sr",
) -> torch.Tensor:
    """CFR conditional contrastive loss: CRL-SR Eq. (4) + (6), our reconstruction (DESIGN.md, "revised reading").

    Anchor a_i = f_hr_i, positive p_i = f_sr_i, negatives n_j = f_sr_j (j != i) and the LR pushing term with
    l_i = f_lr_i; w_i = :func:`penalty_weights` (f_hr, f_lr) (detached), or 1 when ``use_penalty=False`` (that is
    Eq. (4)). With the default ``lr_term="sr"`` the LR term compares l_i with the SR feature p_i, so f_sr_i is
    pulled towards f_hr_i and pushed away from f_lr_i at once (the paper's text); ``lr_term="hr"`` is the first
    implementation's form, l_i as an extra negative of the HR anchor, which never reaches the SR network::

        q_i = p_i (lr_term="sr")  or  a_i (lr_term="hr")
        z_i = exp(w_i a_i . p_i / tau) + sum_{j != i} exp(a_i . n_j / tau) + exp(w_i q_i . l_i / tau)
        L_cond = mean_{batch, i} -log( exp(w_i a_i . p_i / tau) / z_i )

    Args: as :func:`conditional_logits` (f_hr, f_sr, f_lr: (B, M, S) L2-normalised features).

    Returns:
        Tensor: scalar loss >= 0.
    """
    return _diagonal_targets(conditional_logits(f_hr, f_sr, f_lr, tau, use_penalty, lr_term))


def infonce_refinement_loss(f_hr: torch.Tensor, f_sr: torch.Tensor, tau: float = 0.07) -> torch.Tensor:
    """Plain InfoNCE refinement loss of CRL-SR ablations (c) and (e) (Table 1), our reconstruction (DESIGN.md).

    ``L(f_hr, f_sr)`` of CRL-SR Eq. (2) (:func:`patch_infonce`): no LR pushing term and no penalty.

    Args:
        f_hr (Tensor): (B, M, S) L2-normalised HR features (anchors).
        f_sr (Tensor): (B, M, S) L2-normalised SR features.
        tau (float): Temperature, > 0. Default: 0.07.

    Returns:
        Tensor: scalar loss >= 0.
    """
    return patch_infonce(f_hr, f_sr, tau)


def hr_reconstruction_loss(recon: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """HR reconstruction loss L_HR = mean |D(E_F(HR)) - HR|: CRL-SR Eq. (7) (L1, as in DESIGN.md).

    Args:
        recon (Tensor): (B, C, H, W) decoder output D(E_F(HR)), on the same value scale as ``hr``.
        hr (Tensor): (B, C, H, W) HR images.

    Returns:
        Tensor: scalar mean absolute error over all elements.
    """
    if recon.shape != hr.shape:
        raise ValueError(f"recon and hr shapes differ: {tuple(recon.shape)} vs {tuple(hr.shape)}")
    return F.l1_loss(recon, hr)
