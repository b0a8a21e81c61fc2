"""PCL-SR losses and embedding network: hand values, gradients, the released no-grad variant, discriminator shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from srlib.archs.pcl_embed import PCLDiscriminator
from srlib.losses import dual_contrastive_d_loss, mean_cosine_similarity, pcl_infonce, pcl_loss


def _map(*vectors, h: int = 1, w: int = 1) -> torch.Tensor:
    """C-vectors listed row-major over an h x w grid -> (1, C, h, w) float64 map."""
    return torch.tensor(vectors, dtype=torch.float64).T.reshape(1, -1, h, w)


def _ce0(*logits: float) -> float:
    """Cross-entropy of a logit list with target 0, written out: -log(e^{l_0} / sum_k e^{l_k})."""
    return -math.log(math.exp(logits[0]) / sum(math.exp(v) for v in logits))


# ----------------------------------------------------------------------------------------------------------------
# similarity s (Eq. 9)


def test_mean_cosine_similarity_hand_value():
    # 1 x 2 grid; position 0: (3, 4) vs (4, 3) -> cos 24/25; position 1: (1, 0) vs (0, 2) -> cos 0. Mean 12/25.
    a = _map((3.0, 4.0), (1.0, 0.0), h=1, w=2)
    b = _map((4.0, 3.0), (0.0, 2.0), h=1, w=2)
    s = mean_cosine_similarity(a, b)
    assert s.shape == (1,)
    assert s.item() == pytest.approx(12 / 25, abs=1e-12)


def test_mean_cosine_similarity_2x2_and_properties():
    # 2 x 2 grid: cosines 1, -1, 0, 1/sqrt(2) -> mean (1 - 1 + 0 + 1/sqrt(2)) / 4
    a = _map((1.0, 0.0), (0.0, 2.0), (1.0, 0.0), (1.0, 0.0), h=2, w=2)
    b = _map((5.0, 0.0), (0.0, -1.0), (0.0, 3.0), (1.0, 1.0), h=2, w=2)
    assert mean_cosine_similarity(a, b).item() == pytest.approx((1 / math.sqrt(2)) / 4, abs=1e-12)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 4, 5, 6, generator=g), torch.randn(3, 4, 5, 6, generator=g)
    s = mean_cosine_similarity(x, y)
    assert s.shape == (3,)
    torch.testing.assert_close(s, mean_cosine_similarity(y, x))  # symmetric
    torch.testing.assert_close(s, mean_cosine_similarity(2.5 * x, y))  # invariant to positive scaling
    torch.testing.assert_close(mean_cosine_similarity(x, x), torch.ones(3))
    # independent truth: torch's own cosine over the channel axis, averaged over positions
    torch.testing.assert_close(s, F.cosine_similarity(x, y, dim=1).mean(dim=(1, 2)))
    # broadcasting an anchor (B, 1, C, H, W) against (B, K, C, H, W) samples gives (B, K)
    z = torch.randn(3, 2, 4, 5, 6, generator=g)
    sk = mean_cosine_similarity(x.unsqueeze(1), z)
    assert sk.shape == (3, 2)
    torch.testing.assert_close(sk[:, 1], mean_cosine_similarity(x, z[:, 1]))


# ----------------------------------------------------------------------------------------------------------------
# InfoNCE (Eqs. 8-10)

# Anchor f = (1, 0); positive p = (1, 1): s = 1/sqrt(2); negatives (0, 1): s = 0, (-2, 0): s = -1.
F0 = _map((1.0, 0.0))
P0 = _map((1.0, 1.0)).unsqueeze(1)  # (1, 1, 2, 1, 1)
N0 = torch.cat([_map((0.0, 1.0)), _map((-2.0, 0.0))]).unsqueeze(0)  # (1, 2, 2, 1, 1)
R2 = 1 / math.sqrt(2)


def test_pcl_infonce_hand_value_no_temperature():
    loss = pcl_infonce([F0], [P0], [N0])
    expected = -math.log(math.exp(R2) / (math.exp(R2) + math.exp(0.0) + math.exp(-1.0)))
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_pcl_infonce_hand_value_temperature():
    tau = 0.5
    loss = pcl_infonce([F0], [P0], [N0], tau=tau)
    expected = -math.log(math.exp(R2 / tau) / (math.exp(R2 / tau) + math.exp(0.0 / tau) + math.exp(-1.0 / tau)))
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_pcl_infonce_averages_positives_layers_samples():
    # Layer 1 = the case above plus a second positive (0, -1) (s = 0): mean over the two positives.
    pos_a = torch.cat([P0, _map((0.0, -1.0)).unsqueeze(1)], dim=1)  # (1, 2, 2, 1, 1)
    layer1 = (_ce0(R2, 0.0, -1.0) + _ce0(0.0, 0.0, -1.0)) / 2
    # Layer 2 on a 1 x 2 grid: anchor ((1,0), (0,1)); positives ((1,0),(0,1)) s = 1 and ((1,0),(1,0)) s = 1/2;
    # negatives ((-1,0),(0,-1)) s = -1 and ((0,1),(1,0)) s = 0.
    f2 = _map((1.0, 0.0), (0.0, 1.0), h=1, w=2)
    p2 = torch.stack([_map((1.0, 0.0), (0.0, 1.0), h=1, w=2), _map((1.0, 0.0), (1.0, 0.0), h=1, w=2)], dim=1)
    n2 = torch.stack([_map((-1.0, 0.0), (0.0, -1.0), h=1, w=2), _map((0.0, 1.0), (1.0, 0.0), h=1, w=2)], dim=1)
    layer2 = (_ce0(1.0, -1.0, 0.0) + _ce0(0.5, -1.0, 0.0)) / 2
    assert pcl_infonce([F0, f2], [pos_a, p2], [N0, n2]).item() == pytest.approx((layer1 + layer2) / 2, abs=1e-12)
    # Two samples: the batch mean of the per-sample losses; sample 2 negates the anchor and positives, not N0.
    two = pcl_infonce([torch.cat([F0, -F0])], [torch.cat([pos_a, -pos_a])], [torch.cat([N0, N0])])
    sample2 = (_ce0(R2, 0.0, 1.0) + _ce0(0.0, 0.0, 1.0)) / 2  # -f: s(-f, -p) unchanged, s(-f, n) negated
    assert two.item() == pytest.approx((layer1 + sample2) / 2, abs=1e-12)


def test_pcl_infonce_rejects_bad_input():
    with pytest.raises(ValueError):
        pcl_infonce([F0], [P0], [N0], tau=0.0)
    with pytest.raises(ValueError):
        pcl_infonce([F0, F0], [P0], [N0])
    with pytest.raises(ValueError):
        pcl_infonce([F0], [P0[:, :, :1]], [N0])  # channel mismatch
    with pytest.raises(ValueError):
        pcl_infonce([F0], [P0[0]], [N0])  # positives without the sample axis


def test_pcl_infonce_gradcheck():
    g = torch.Generator().manual_seed(1)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    a1, a2 = r(2, 3, 2, 2).requires_grad_(), r(2, 4, 1, 2).requires_grad_()
    pos, neg = [r(2, 2, 3, 2, 2), r(2, 2, 4, 1, 2)], [r(2, 3, 3, 2, 2), r(2, 3, 4, 1, 2)]
    assert torch.autograd.gradcheck(lambda x, y: pcl_infonce([x, y], pos, neg, tau=0.7), (a1, a2))


# ----------------------------------------------------------------------------------------------------------------
# dual contrastive discriminator loss (Eq. 7)


def test_dual_contrastive_d_loss_hand_value():
    r, f = (1.0, -0.5), (0.2, 2.0)
    term_real = sum(math.log(math.exp(ri) + math.exp(f[0]) + math.exp(f[1])) - ri for ri in r) / 2
    term_fake = sum(math.log(math.exp(-fj) + math.exp(-r[0]) + math.exp(-r[1])) + fj for fj in f) / 2
    loss = dual_contrastive_d_loss(torch.tensor([r], dtype=torch.float64), torch.tensor([f], dtype=torch.float64))
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(term_real + term_fake, abs=1e-12)


def test_dual_contrastive_d_loss_unequal_counts_and_order():
    # N = 3 reals, M = 1 fake, given as (3,) and (1, 1): every real competes with the one fake and vice versa.
    r, f = (0.3, -1.0, 2.0), (0.5,)
    expected = sum(_ce0(ri, f[0]) for ri in r) / 3 + _ce0(-f[0], *(-ri for ri in r))
    loss = dual_contrastive_d_loss(torch.tensor(r, dtype=torch.float64), torch.tensor([f], dtype=torch.float64))
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    # a discriminator that separates real from fake by a wide margin has a small loss, the reverse a large one
    good = dual_contrastive_d_loss(torch.full((2, 16), 10.0), torch.full((2, 16), -10.0))
    bad = dual_contrastive_d_loss(torch.full((2, 16), -10.0), torch.full((2, 16), 10.0))
    assert good.item() < 1e-6 < 20 < bad.item()


def test_dual_contrastive_d_loss_gradcheck():
    g = torch.Generator().manual_seed(2)
    r = torch.randn(2, 3, generator=g, dtype=torch.float64).requires_grad_()
    f = torch.randn(2, 2, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(dual_contrastive_d_loss, (r, f))


# ----------------------------------------------------------------------------------------------------------------
# pcl_loss: default (with gradients) vs released (no_grad) variant


def _setup(seed: int = 3):
    """Tiny SR 'network' (9 -> 9 conv), embedding net, an 8 x 8 input batch of 2, 2 positives, 3 negatives."""
    torch.manual_seed(seed)
    sr_net = nn.Conv2d(9, 9, 3, padding=1)
    embed = PCLDiscriminator(taps=(0, 2, 4, 6))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 9, 8, 8, generator=g)
    pos = torch.randn(2, 2, 9, 8, 8, generator=g)
    neg = torch.randn(2, 3, 9, 8, 8, generator=g)
    return sr_net, embed, x, pos, neg


def test_pcl_loss_value_matches_infonce_of_features():
    sr_net, embed, x, pos, neg = _setup()
    embed.eval()
    sr = sr_net(x)
    with torch.no_grad():
        anchor = embed.features(sr)
        pf = [torch.stack([embed.features(pos[:, k])[i] for k in range(2)], dim=1) for i in range(4)]
        nf = [torch.stack([embed.features(neg[:, k])[i] for k in range(3)], dim=1) for i in range(4)]
        expected = pcl_infonce(anchor, pf, nf, tau=0.5)
    default = pcl_loss(embed, sr, pos, neg, tau=0.5)
    released = pcl_loss(embed, sr, pos, neg, released=True, tau=0.5)
    torch.testing.assert_close(default.detach(), expected)
    torch.testing.assert_close(released, expected)


@pytest.mark.parametrize("train_mode", [False, True])
def test_released_variant_trains_nothing(train_mode):
    sr_net, embed, x, pos, neg = _setup()
    embed.train(train_mode)
    x.requires_grad_()
    sr = sr_net(x)
    loss = pcl_loss(embed, sr, pos, neg, released=True)
    assert not loss.requires_grad and loss.grad_fn is None
    assert loss.item() > 0
    # L1 + alpha * L_CL has exactly the gradient of L1 (to the SR input and to the SR network's parameters)
    target = torch.zeros_like(sr)
    (F.l1_loss(sr, target) + 5.0 * loss).backward()
    with_cl = [x.grad.clone()] + [p.grad.clone() for p in sr_net.parameters()]
    x.grad = None
    sr_net.zero_grad(set_to_none=True)
    embed.zero_grad(set_to_none=True)
    F.l1_loss(sr_net(x), target).backward()
    l1_only = [x.grad] + [p.grad for p in sr_net.parameters()]
    for a, b in zip(with_cl, l1_only, strict=True):
        assert torch.equal(a, b)
    assert all(p.grad is None for p in embed.parameters())


@pytest.mark.parametrize("train_mode", [False, True])
def test_default_variant_trains_sr_not_embedding(train_mode):
    sr_net, embed, x, pos, neg = _setup()
    embed.train(train_mode)
    x.requires_grad_()
    sr = sr_net(x)
    loss = pcl_loss(embed, sr, pos, neg)
    assert loss.requires_grad
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sr_net.parameters())
    # the embedding net gets no gradient from this term, and its requires_grad flags are restored
    assert all(p.grad is None for p in embed.parameters())
    assert all(p.requires_grad for p in embed.parameters())


def test_default_variant_gradient_reaches_anchor_only():
    _, embed, x, pos, neg = _setup()
    embed.eval()
    sr = x.clone().requires_grad_()
    pos, neg = pos.clone().requires_grad_(), neg.clone().requires_grad_()
    pcl_loss(embed, sr, pos, neg).backward()
    assert sr.grad.abs().sum() > 0
    assert pos.grad is None and neg.grad is None  # positives and negatives are constants


@pytest.mark.usefixtures("native_conv")
def test_embedding_is_trained_by_d_loss():
    """L_CLD reaches every parameter of the embedding with a non-zero gradient, and steps along it lower the loss.

    The one exception is a truth of Eq. (7): the loss is unchanged when every logit moves by the same constant, so the
    bias of the last 1x1 conv (which adds that constant) gets a zero gradient."""
    _, embed, x, pos, neg = _setup()
    real, fake = pos[:, 0], x
    dual_contrastive_d_loss(embed(real), embed(fake)).backward()
    grads = {name: p.grad for name, p in embed.named_parameters()}
    shift = next(reversed(grads))
    assert shift == "head.1.bias" and grads[shift].numel() == 1 and grads[shift].abs().item() < 1e-6
    zero = [n for n, g in grads.items() if n != shift and (g is None or not g.abs().sum() > 0)]
    assert not zero, f"no gradient reaches {zero}"
    # Descent on a batch large enough for BatchNorm (4 x 32 x 32: the last block is 2 x 2, not 1 x 1): real and fake
    # differ in scale, and plain gradient steps separate them.
    torch.manual_seed(3)
    embed = PCLDiscriminator(taps=(0, 2, 4, 6))
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(4, 9, 32, 32, generator=g), 0.5 * torch.randn(4, 9, 32, 32, generator=g)
    opt = torch.optim.SGD(embed.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = dual_contrastive_d_loss(embed(real), embed(fake))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(b < a for a, b in zip(losses[:-1], losses[1:], strict=True)) and losses[-1] < losses[0] - 0.5, losses


def test_pcl_loss_rejects_mismatched_shapes():
    _, embed, x, pos, neg = _setup()
    with pytest.raises(ValueError):
        pcl_loss(embed, x, pos[:, 0], neg)
    with pytest.raises(ValueError):
        pcl_loss(embed, x, pos[:1], neg)


# ----------------------------------------------------------------------------------------------------------------
# discriminator / embedding network


def _n_params() -> int:
    """Parameters written out: 8 bias-free 3x3 convs + BN (weight, bias), then the 1x1 patch conv 512 -> 1 + bias."""
    chans = [9, 64, 64, 128, 128, 256, 256, 512, 512]
    return sum(9 * ci * co + 2 * co for ci, co in zip(chans[:-1], chans[1:], strict=True)) + 512 + 1


def test_discriminator_shapes_and_taps():
    torch.manual_seed(0)
    d = PCLDiscriminator()
    assert sum(p.numel() for p in d.parameters()) == _n_params()
    x = torch.randn(2, 9, 32, 32)
    assert d(x).shape == (2, 16)
    feats = d.features(x)
    # taps 0, 2, 4, 6 follow strides 1 | 2 | 2 | 2 (blocks 1, 3, 5 are stride 2): sizes 32, 16, 8, 4
    assert [tuple(f.shape) for f in feats] == [(2, 64, 32, 32), (2, 128, 16, 16), (2, 256, 8, 8), (2, 512, 4, 4)]
    # odd sizes: a stride-2 block maps n to ceil(n / 2)
    assert [f.shape[-1] for f in d.features(torch.randn(2, 9, 33, 33))] == [33, 17, 9, 5]
    assert d(torch.randn(2, 9, 8, 8)).shape == (2, 16)  # adaptive pooling: any input size (block 7 gives 1 x 1)
    # the released scripts' single tap: block 4, 256 channels at 1/4 of the input size
    (f4,) = PCLDiscriminator(taps=(4,)).features(x)
    assert f4.shape == (2, 256, 8, 8)


def test_discriminator_before_relu_vs_after():
    torch.manual_seed(0)
    pre = PCLDiscriminator(before_relu=True)
    post = PCLDiscriminator(before_relu=False)
    post.load_state_dict(pre.state_dict())
    pre.eval()
    post.eval()
    x = torch.randn(2, 9, 16, 16)
    with torch.no_grad():
        a, b = pre.features(x), post.features(x)
        for fa, fb in zip(a, b, strict=True):
            assert (fa < 0).any()  # BN outputs have negative entries ...
            assert not torch.equal(fa, fb)  # ... so the taps differ
            torch.testing.assert_close(fb, F.leaky_relu(fa, 0.2))  # LeakyReLU output = LeakyReLU(BN output)
        torch.testing.assert_close(pre(x), post(x))  # the tap choice does not change the logits


def test_discriminator_fc_head_and_validation():
    torch.manual_seed(0)
    d = PCLDiscriminator(patch_head=False, input_size=32, taps=(6,))
    assert d(torch.randn(2, 9, 32, 32)).shape == (2, 1)
    for bad in [(), (2, 0), (0, 8), (1, 1), (-1,)]:
        with pytest.raises(ValueError):
            PCLDiscriminator(taps=bad)
    with pytest.raises(ValueError):
        PCLDiscriminator(patch_head=False)
    with pytest.raises(ValueError):
        PCLDiscriminator()(torch.randn(1, 3, 8, 8))
