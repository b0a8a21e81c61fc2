"""CRL-SR contrastive losses (our reconstruction, DESIGN.md): hand values, properties, gradients, sampling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from srlib.losses import (
    bidirectional_contrastive_loss,
    conditional_contrastive_loss,
    gather_locations,
    hr_reconstruction_loss,
    infonce_refinement_loss,
    patch_infonce,
    penalty_weights,
    sample_locations,
)

E0, E1 = (1.0, 0.0), (0.0, 1.0)
NEG_E0 = (-1.0, 0.0)


def _t(*rows, dtype=torch.float64) -> torch.Tensor:
    """Rows of 2-vectors -> (1, M, 2) tensor."""
    return torch.tensor([rows], dtype=dtype)


def _unit(*shape, seed: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=dtype), dim=-1)


# Anchor a = unit vectors at 0, 90, 180 degrees; b = (0, 0, 90) degrees. Dot products a_i . b_j (by hand):
#   G = [[ 1,  1, 0],
#        [ 0,  0, 1],
#        [-1, -1, 0]]        (not symmetric, so L(a, b) != L(b, a))
A = _t(E0, E1, NEG_E0)
B = _t(E0, E0, E1)
G = [[1, 1, 0], [0, 0, 1], [-1, -1, 0]]


def _infonce_by_hand(g, tau):
    """-log(exp(g_ii / tau) / sum_j exp(g_ij / tau)), mean over i, written from the definition."""
    m = len(g)
    return (
        sum(-math.log(math.exp(g[i][i] / tau) / sum(math.exp(g[i][j] / tau) for j in range(m))) for i in range(m)) / m
    )


# ------------------------------------------------------------------------------------------------ hand-computed values


@pytest.mark.parametrize("tau", [0.07, 0.5, 1.0])
def test_patch_infonce_hand_value(tau):
    e = math.exp(1 / tau)
    # rows of G written out: row0 positive 1 vs {1, 1, 0}; row1 positive 0 vs {0, 0, 1}; row2 positive 0 vs {-1, -1, 0}
    expected = (-math.log(e / (2 * e + 1)) - math.log(1 / (2 + e)) - math.log(1 / (2 / e + 1))) / 3
    assert expected == pytest.approx(_infonce_by_hand(G, tau), abs=1e-12)
    assert patch_infonce(A, B, tau).item() == pytest.approx(expected, abs=1e-6)
    assert infonce_refinement_loss(A, B, tau).item() == pytest.approx(expected, abs=1e-6)


def test_patch_infonce_default_tau_and_float32():
    expected = _infonce_by_hand(G, 0.07)
    assert patch_infonce(A.float(), B.float()).item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_bidirectional_hand_value_is_asymmetric_sum(tau):
    gt = [[G[j][i] for j in range(3)] for i in range(3)]  # b_i . a_j: the transpose, diagonal (1, 0, 0)
    e = math.exp(1 / tau)
    l_ab = _infonce_by_hand(G, tau)
    # transpose rows: [1, 0, -1] (positive 1), [1, 0, -1] (positive 0), [0, 1, 0] (positive 0)
    l_ba = (-math.log(e / (e + 1 + 1 / e)) - math.log(1 / (e + 1 + 1 / e)) - math.log(1 / (2 + e))) / 3
    assert l_ba == pytest.approx(_infonce_by_hand(gt, tau), abs=1e-12)
    assert abs(l_ab - l_ba) > 1e-3  # both directions matter in this example
    assert patch_infonce(B, A, tau).item() == pytest.approx(l_ba, abs=1e-6)
    assert bidirectional_contrastive_loss(A, B, tau).item() == pytest.approx(l_ab + l_ba, abs=1e-6)


def test_penalty_weights_hand_value():
    f_hr = _t(E0, E1, NEG_E0)
    f_lr = _t(E0, E0, E0)
    d = [0.0, math.sqrt(2), 2.0]  # ||e0 - e0||, ||e1 - e0||, ||-e0 - e0||
    mean = sum(d) / 3
    w = penalty_weights(f_hr, f_lr)
    assert w.shape == (1, 3)
    torch.testing.assert_close(w, torch.tensor([[x / mean for x in d]], dtype=torch.float64), atol=1e-6, rtol=0)


def test_penalty_weights_per_image_mean_and_zero_guard():
    f_hr = torch.cat([_t(E0, E1, NEG_E0), _t(E0, E1, NEG_E0)])
    f_lr = torch.cat([_t(E0, E0, E0), _t(E0, E1, NEG_E0)])  # image 1: f_lr == f_hr, all d_i = 0 -> w = 1
    w = penalty_weights(f_hr, f_lr)
    assert torch.equal(w[1], torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(w.mean(dim=1), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("tau", [0.07, 0.5])
@pytest.mark.parametrize("use_penalty", [True, False])
@pytest.mark.parametrize("lr_term", ["sr", "hr"])
def test_conditional_hand_value(tau, use_penalty, lr_term):
    # a = f_hr (0, 90, 180 deg), f_sr = (0, 0, 90 deg): a_i . f_sr_j = G; f_lr = (90, 0, 0 deg):
    # push_i = f_sr_i . l_i = (0, 1, 0) (lr_term="sr", the default) or a_i . l_i = (0, 0, -1) (lr_term="hr");
    # d_i = ||a_i - l_i|| = (sqrt2, sqrt2, 2)
    f_lr = _t(E1, E0, E0)
    d = [math.sqrt(2), math.sqrt(2), 2.0]
    w = [x / (sum(d) / 3) for x in d] if use_penalty else [1.0, 1.0, 1.0]
    push = [0.0, 1.0, 0.0] if lr_term == "sr" else [0.0, 0.0, -1.0]
    total = 0.0
    for i in range(3):
        pos = math.exp(w[i] * G[i][i] / tau)
        negs = sum(math.exp(G[i][j] / tau) for j in range(3) if j != i)
        total += -math.log(pos / (pos + negs + math.exp(w[i] * push[i] / tau)))
    expected = total / 3
    got = conditional_contrastive_loss(A, B, f_lr, tau, use_penalty=use_penalty, lr_term=lr_term)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_hr_reconstruction_loss_hand_value():
    hr = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]]]])
    assert hr_reconstruction_loss(torch.zeros_like(hr), hr).item() == pytest.approx((1 + 2 + 0.5 + 0) / 4)
    with pytest.raises(ValueError, match="shapes differ"):
        hr_reconstruction_loss(hr, hr[..., :1])


# ---------------------------------------------------------------------------------------------------------- properties


def _all_losses(f_hr, f_sr, f_lr, tau=0.07):
    return {
        "patch_infonce": patch_infonce(f_hr, f_sr, tau),
        "bidirectional": bidirectional_contrastive_loss(f_sr, f_hr, tau),
        "conditional": conditional_contrastive_loss(f_hr, f_sr, f_lr, tau),
        "conditional_nopen": conditional_contrastive_loss(f_hr, f_sr, f_lr, tau, use_penalty=False),
        "conditional_lr_on_hr": conditional_contrastive_loss(f_hr, f_sr, f_lr, tau, lr_term="hr"),
        "infonce_refinement": infonce_refinement_loss(f_hr, f_sr, tau),
    }


def test_aligned_positives_beat_shuffled():
    m = 8
    eye = torch.eye(m, dtype=torch.float64).unsqueeze(0)  # orthonormal: a_i . b_j = [i == j]
    shuffled = eye[:, torch.roll(torch.arange(m), 1)]
    f_lr = _unit(1, m, m, seed=3)
    aligned, wrong = _all_losses(eye, eye, f_lr), _all_losses(eye, shuffled, f_lr)
    for name in aligned:
        assert aligned[name] < wrong[name], name
    tau = 0.07  # closed form for the aligned orthonormal case: -1/tau + log(e^(1/tau) + (M - 1))
    assert aligned["patch_infonce"].item() == pytest.approx(-1 / tau + math.log(math.exp(1 / tau) + m - 1), abs=1e-9)


def test_losses_invariant_to_consistent_permutation_of_locations():
    f_hr, f_sr, f_lr = (_unit(2, 6, 5, seed=s) for s in (0, 1, 2))
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    before = _all_losses(f_hr, f_sr, f_lr)
    after = _all_losses(f_hr[:, perm], f_sr[:, perm], f_lr[:, perm])
    for name in before:
        torch.testing.assert_close(after[name], before[name], atol=1e-12, rtol=0, msg=name)
    torch.testing.assert_close(penalty_weights(f_hr[:, perm], f_lr[:, perm]), penalty_weights(f_hr, f_lr)[:, perm])


def test_conditional_without_penalty_orthogonal_lr_adds_exp0_to_denominator():
    # f_hr, f_sr in the span of the first 3 axes, f_lr = the 4th axis: every push logit is 0, so exp(0) = 1 joins
    # the InfoNCE denominator.
    tau = 0.2
    f_hr = F.normalize(
        F.pad(torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64), (0, 1)), dim=-1
    )
    f_sr = F.normalize(
        F.pad(torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64), (0, 1)), dim=-1
    )
    f_lr = torch.zeros(2, 5, 4, dtype=torch.float64)
    f_lr[..., 3] = 1
    total = 0.0
    for b in range(2):
        for i in range(5):
            s = [float(f_hr[b, i] @ f_sr[b, j]) / tau for j in range(5)]
            total += -math.log(math.exp(s[i]) / (sum(math.exp(x) for x in s) + 1.0))
    got = conditional_contrastive_loss(f_hr, f_sr, f_lr, tau, use_penalty=False)
    assert got.item() == pytest.approx(total / 10, abs=1e-9)
    assert got > patch_infonce(f_hr, f_sr, tau)  # the extra negative can only raise the loss


def _conditional_with_weights(f_hr, f_sr, f_lr, w, tau, lr_term="sr"):
    """Independent reference: explicit logit list per location with the given weights w (B, M); the LR logit compares
    f_lr_i with f_sr_i (lr_term="sr", the default) or with f_hr_i (lr_term="hr")."""
    bsz, m, _ = f_hr.shape
    pushed = f_sr if lr_term == "sr" else f_hr
    losses = []
    for b in range(bsz):
        for i in range(m):
            logits = [w[b, i] * (f_hr[b, i] @ f_sr[b, i]) / tau]
            logits += [(f_hr[b, i] @ f_sr[b, j]) / tau for j in range(m) if j != i]
            logits.append(w[b, i] * (pushed[b, i] @ f_lr[b, i]) / tau)
            logits = torch.stack(logits)
            losses.append(-(logits[0] - torch.logsumexp(logits, 0)))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("lr_term", ["sr", "hr"])
def test_penalty_carries_no_gradient(lr_term):
    tau = 0.3
    base = [_unit(2, 4, 3, seed=s) for s in (10, 11, 12)]
    w = penalty_weights(*(t.clone().requires_grad_() for t in (base[0], base[2])))
    assert not w.requires_grad
    torch.testing.assert_close(w.mean(dim=1), torch.ones(2, dtype=torch.float64))

    def grads(fn):
        xs = [t.clone().requires_grad_() for t in base]
        fn(*xs).backward()
        return [x.grad for x in xs]

    ours = grads(lambda h, s, l: conditional_contrastive_loss(h, s, l, tau, lr_term=lr_term))
    w_const = penalty_weights(base[0], base[2])
    const = grads(lambda h, s, l: _conditional_with_weights(h, s, l, w_const, tau, lr_term))
    for g_ours, g_const in zip(ours, const, strict=True):
        torch.testing.assert_close(g_ours, g_const, atol=1e-10, rtol=0)

    def w_with_grad(h, l):  # the same weights, but differentiable: a gradient through w would show up here
        d = torch.linalg.vector_norm(h - l, dim=-1)
        return d / d.mean(dim=1, keepdim=True)

    leaky = grads(lambda h, s, l: _conditional_with_weights(h, s, l, w_with_grad(h, l), tau, lr_term))
    assert not torch.allclose(leaky[2], ours[2], atol=1e-6)  # the check above is sensitive to a leak


# ------------------------------------------------------------------------------------------------------------ gradcheck


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_gradcheck(tau):
    raw = [
        torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(s), dtype=torch.float64).requires_grad_()
        for s in (20, 21, 22)
    ]

    def n(x):
        return F.normalize(x, dim=-1)

    assert torch.autograd.gradcheck(lambda a, b: patch_infonce(n(a), n(b), tau), raw[:2])
    assert torch.autograd.gradcheck(lambda a, b: bidirectional_contrastive_loss(n(a), n(b), tau), raw[:2])
    for lr_term in ("sr", "hr"):
        assert torch.autograd.gradcheck(
            lambda h, s, l, t=lr_term: conditional_contrastive_loss(n(h), n(s), n(l), tau, use_penalty=False,
                                                                    lr_term=t), raw
        )
    # with the penalty, w is detached by design, so finite differences in f_hr / f_lr (which move w) would not match;
    # check the gradient with respect to f_sr, which does not enter w.
    h, l = (x.detach() for x in (raw[0], raw[2]))
    assert torch.autograd.gradcheck(lambda s: conditional_contrastive_loss(n(h), n(s), n(l), tau), (raw[1],))


# --------------------------------------------------------------------------------------------------- sampling, errors


def test_sample_locations_deterministic_distinct_and_no_global_rng():
    state = torch.random.get_rng_state()
    a = sample_locations(8, 6, 20, torch.Generator().manual_seed(7))
    b = sample_locations(8, 6, 20, torch.Generator().manual_seed(7))
    c = sample_locations(8, 6, 20, torch.Generator().manual_seed(8))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.dtype == torch.long and a.shape == (20,)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.unique().numel() == 20 and int(a.min()) >= 0 and int(a.max()) < 48
    assert sample_locations(2, 3, 6, torch.Generator().manual_seed(0)).sort().values.tolist() == list(range(6))


@pytest.mark.parametrize("m", [1, 0, 7])
def test_sample_locations_errors(m):
    with pytest.raises(ValueError, match="m="):
        sample_locations(2, 3, m, torch.Generator())


def test_gather_locations_matches_manual_indexing():
    feat = torch.randn(2, 5, 4, 6, generator=torch.Generator().manual_seed(0))
    idx = sample_locations(4, 6, 7, torch.Generator().manual_seed(1))
    out = gather_locations(feat, idx)
    assert out.shape == (2, 7, 5)
    manual = torch.stack([torch.stack([feat[b, :, int(k) // 6, int(k) % 6] for k in idx]) for b in range(2)])
    assert torch.equal(out, manual)


def test_bad_inputs_raise():
    x = _unit(1, 3, 2, seed=0)
    with pytest.raises(ValueError, match="one shape"):
        patch_infonce(x, x[:, :2])
    with pytest.raises(ValueError, match="M >= 2"):
        patch_infonce(x[:, :1], x[:, :1])
    with pytest.raises(ValueError, match="tau"):
        conditional_contrastive_loss(x, x, x, tau=0.0)
    with pytest.raises(ValueError, match="one shape"):
        conditional_contrastive_loss(x, x, x[0])
