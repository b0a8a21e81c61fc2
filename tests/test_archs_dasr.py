"""DASR (srlib.archs.dasr) and the MoCo wrapper (srlib.archs.moco): batched per-sample DA convolution against a
loop, MoCo's queue (oldest keys replaced, pointer wrap-around, batch-size error), momentum rule, logits, step order,
DASR shapes at x2/x3/x4, gradients (SR net and query encoder yes, key encoder no), the [0, 1] mean shift, and the
paper-size parameter count against a hand formula. Tiny widths (C <= 8, one group of one block, 8x8 LR)."""


import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from srlib.archs import DASR, DAConv, DASRNet, DegradationEncoder, MoCo, count_parameters
from srlib.archs.dasr import DIV2K_RGB_MEAN, per_sample_depthwise_conv
from srlib.train import build_model

C = 8
TINY = {"n_feats": C, "n_groups": 1, "n_blocks": 1, "reduction": 2, "enc_feats": 4, "proj_dim": 8, "queue_size": 8}


pytestmark = pytest.mark.usefixtures("native_conv")


def _rand(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class _TinyEncoder(nn.Module):
    """(B, 3, H, W) -> (fea = channel means through a linear map (B, 5), q = normalised projection (B, dim))."""

    def __init__(self, dim=4):
        super().__init__()
        self.body = nn.Linear(3, 5)
        self.mlp = nn.Linear(5, dim)

    def forward(self, x):
        fea = self.body(x.mean(dim=(2, 3)))
        return fea, F.normalize(self.mlp(fea), dim=1)


def _moco(queue_size=6, dim=4, momentum=0.9, seed=0):
    return build_model(lambda: MoCo(_TinyEncoder(dim), dim=dim, queue_size=queue_size, momentum=momentum), seed)


# ---------------------------------------------------------------- DA conv


def test_per_sample_depthwise_conv_matches_loop():
    """Batch folded into channels + one grouped conv == a loop of depthwise convs, one per sample."""
    b, c, k = 3, 4, 3
    x = _rand(b, c, 6, 5, dtype=torch.float64) - 0.5
    kernels = _rand(b, c, k, k, seed=1, dtype=torch.float64) - 0.5
    loop = torch.cat([F.conv2d(x[i : i + 1], kernels[i].unsqueeze(1), padding=k // 2, groups=c) for i in range(b)])
    assert torch.allclose(per_sample_depthwise_conv(x, kernels), loop, atol=1e-12)
    # and sample i really uses its own kernels: swapping two kernels changes the result
    swapped = kernels[[1, 0, 2]]
    assert not torch.allclose(per_sample_depthwise_conv(x, swapped), loop)


def test_da_conv_batched_equals_per_sample_loop():
    """DAConv on a batch == DAConv's branches computed sample by sample with torch's depthwise conv (float64)."""
    conv = build_model(lambda: DAConv(C, 3, reduction=2), 0).double()
    x = _rand(3, C, 5, 6, dtype=torch.float64) - 0.5
    emb = _rand(3, C, seed=2, dtype=torch.float64) - 0.5
    out = conv(x, emb)
    assert out.shape == x.shape
    kernels = conv.kernel(emb).reshape(3, C, 3, 3)
    assert not torch.allclose(kernels[0], kernels[1])  # kernels really differ between samples
    refs = []
    for i in range(3):
        dw = F.conv2d(x[i : i + 1], kernels[i].unsqueeze(1), padding=1, groups=C)
        branch1 = conv.conv(F.leaky_relu(dw, 0.1))
        att = torch.sigmoid(conv.ca[2](F.leaky_relu(conv.ca[0](emb[i : i + 1]), 0.1)))
        refs.append(branch1 + x[i : i + 1] * att[:, :, None, None])
    assert torch.allclose(out, torch.cat(refs), atol=1e-12)


def test_da_conv_rejects_mismatched_embedding():
    conv = DAConv(C, 3, reduction=2)
    with pytest.raises(ValueError, match="embedding"):
        conv(torch.zeros(2, C, 4, 4), torch.zeros(3, C))


# ---------------------------------------------------------------- MoCo


def test_moco_queue_init_is_unit_norm_and_seeded():
    a = MoCo(_TinyEncoder(), dim=4, queue_size=6, generator=torch.Generator().manual_seed(3))
    b = MoCo(_TinyEncoder(), dim=4, queue_size=6, generator=torch.Generator().manual_seed(3))
    assert a.queue.shape == (4, 6) and a.queue_ptr.tolist() == [0]
    torch.testing.assert_close(a.queue.norm(dim=0), torch.ones(6))
    assert torch.equal(a.queue, b.queue)


def test_moco_enqueue_replaces_oldest_and_wraps():
    moco = _moco(queue_size=6)
    q0 = moco.queue.clone()
    batches = [F.normalize(_rand(2, 4, seed=s), dim=1) for s in range(4)]
    moco.enqueue(batches[0])
    assert moco.queue.shape == (4, 6) and moco.queue_ptr.item() == 2
    assert torch.equal(moco.queue[:, :2], batches[0].t()) and torch.equal(moco.queue[:, 2:], q0[:, 2:])
    moco.enqueue(batches[1])
    moco.enqueue(batches[2])
    assert moco.queue_ptr.item() == 0  # wrapped around
    expected = torch.cat([b.t() for b in batches[:3]], dim=1)
    assert torch.equal(moco.queue, expected)
    moco.enqueue(batches[3])  # the oldest keys (batch 0, columns 0-1) are the ones replaced
    assert moco.queue.shape == (4, 6) and moco.queue_ptr.item() == 2
    assert torch.equal(moco.queue[:, :2], batches[3].t()) and torch.equal(moco.queue[:, 2:], expected[:, 2:])


def test_moco_batch_must_divide_queue():
    moco = _moco(queue_size=6)
    before = (moco.queue.clone(), moco.queue_ptr.clone(), [p.clone() for p in moco.encoder_k.parameters()])
    with pytest.raises(ValueError, match="not a multiple of the batch size 4"):
        moco.enqueue(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="not a multiple of the batch size 4"):
        moco.forward_train(_rand(4, 3, 5, 5), _rand(4, 3, 5, 5, seed=1))
    # nothing changed: neither the queue nor the key encoder
    assert torch.equal(moco.queue, before[0]) and torch.equal(moco.queue_ptr, before[1])
    assert all(torch.equal(p, b) for p, b in zip(moco.encoder_k.parameters(), before[2], strict=True))
    with pytest.raises(ValueError, match="keys of shape"):
        moco.enqueue(torch.zeros(2, 5))


def test_moco_key_encoder_is_frozen_copy_and_follows_momentum_rule():
    moco = _moco(momentum=0.9)
    pairs = list(zip(moco.encoder_k.parameters(), moco.encoder_q.parameters(), strict=True))
    for p_k, p_q in pairs:  # a deep copy: equal values, separate storage, frozen
        assert torch.equal(p_k, p_q) and p_k.data_ptr() != p_q.data_ptr()
        assert not p_k.requires_grad and p_q.requires_grad
    with torch.no_grad():  # move the query encoder so the rule is visible
        for i, (_, p_q) in enumerate(pairs):
            p_q.add_(_rand(*p_q.shape, seed=10 + i))
    k_before = [p_k.clone() for p_k, _ in pairs]
    moco.momentum_update()
    for (p_k, p_q), k0 in zip(pairs, k_before, strict=True):
        assert torch.allclose(p_k, 0.9 * k0 + 0.1 * p_q, atol=1e-6)
        assert not torch.allclose(p_k, k0) and not torch.allclose(p_k, p_q)


def test_moco_logits_and_loss():
    moco = _moco(queue_size=6)
    q = F.normalize(_rand(2, 4, seed=1) - 0.5, dim=1)
    k = F.normalize(_rand(2, 4, seed=2) - 0.5, dim=1)
    logits, labels = moco.contrastive_logits(q, k)
    assert logits.shape == (2, 7) and labels.tolist() == [0, 0] and labels.dtype == torch.long
    torch.testing.assert_close(logits[:, 0], (q * k).sum(1) / 0.07)
    torch.testing.assert_close(logits[:, 1:], q @ moco.queue / 0.07)
    expected = -torch.log_softmax(logits, dim=1)[:, 0].mean()
    torch.testing.assert_close(moco.contrastive_loss(logits, labels), expected)
    torch.testing.assert_close(moco.contrastive_loss(logits), expected)


def test_moco_forward_train_order():
    """Momentum update before the key forward, logits against the queue before the step, keys enqueued after."""
    moco = _moco(queue_size=6, momentum=0.5)
    with torch.no_grad():
        for p in moco.encoder_q.parameters():
            p.add_(1.0)
    im_q, im_k = _rand(2, 3, 5, 5, seed=1), _rand(2, 3, 5, 5, seed=2)
    queue_before = moco.queue.clone()
    fea, logits, labels = moco.forward_train(im_q, im_k)
    fea_q, q = moco.encoder_q(im_q)
    _, k = moco.encoder_k(im_k)  # the key encoder *after* the update produced the enqueued keys
    torch.testing.assert_close(fea, fea_q)
    torch.testing.assert_close(logits[:, 0], (q * k).sum(1) / 0.07)
    torch.testing.assert_close(logits[:, 1:], q @ queue_before / 0.07)
    torch.testing.assert_close(moco.queue[:, :2], k.t())
    assert moco.queue_ptr.item() == 2 and labels.tolist() == [0, 0]
    # and gradients flow into the query encoder only (the in-place enqueue does not break the graph)
    moco.contrastive_loss(logits, labels).backward()
    assert all(p.grad is not None for p in moco.encoder_q.parameters())
    assert all(p.grad is None for p in moco.encoder_k.parameters())


def test_moco_accepts_factory_and_rejects_bad_arguments():
    moco = MoCo(lambda: _TinyEncoder(4), dim=4, queue_size=4)
    assert isinstance(moco.encoder_q, _TinyEncoder) and moco.encoder_q is not moco.encoder_k
    with pytest.raises(ValueError, match="temperature"):
        MoCo(_TinyEncoder(), dim=4, queue_size=4, temperature=0)
    with pytest.raises(ValueError, match="momentum"):
        MoCo(_TinyEncoder(), dim=4, queue_size=4, momentum=1.5)
    with pytest.raises(TypeError):
        MoCo(3)


# ---------------------------------------------------------------- DASR


def test_degradation_encoder_shapes():
    enc = DegradationEncoder(n_feats=4, proj_dim=8)
    fea, q = enc(_rand(2, 3, 12, 12))
    assert fea.shape == (2, 16) and q.shape == (2, 8)
    torch.testing.assert_close(q.norm(dim=1), torch.ones(2))
    assert enc.body[2][0].stride == (2, 2) and enc.body[4][0].stride == (2, 2)  # layers 3 and 5 downsample


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_dasr_shapes_and_gradients(scale):
    """forward(lr) and forward_train(query, key) give (B, 3, h*s, w*s), finite; one backward of L1 + contrastive
    reaches the SR network and the query encoder, never the key encoder."""
    model = build_model(lambda: DASR(scale, **TINY), 0)
    lr_q, lr_k = _rand(2, 3, 8, 7, seed=1), _rand(2, 3, 8, 7, seed=2)
    out = model.forward_train(lr_q, lr_k)
    assert set(out) == {"sr", "logits", "labels", "fea"}
    assert out["sr"].shape == (2, 3, 8 * scale, 7 * scale) and torch.isfinite(out["sr"]).all()
    assert out["logits"].shape == (2, 1 + 8) and out["labels"].tolist() == [0, 0]
    assert out["fea"].shape == (2, 16)
    assert model.moco.queue_ptr.item() == 2
    hr = _rand(2, 3, 8 * scale, 7 * scale, seed=3)
    loss = F.l1_loss(out["sr"], hr) + model.contrastive_loss(out["logits"], out["labels"])
    loss.backward()
    for name, p in [*model.sr_net.named_parameters(), *model.moco.encoder_q.named_parameters()]:
        assert p.grad is not None, name
    assert any(p.grad.abs().sum() > 0 for p in model.moco.encoder_q.parameters())
    assert all(p.grad is None for p in model.moco.encoder_k.parameters())
    model.eval()
    with torch.no_grad():
        sr = model(lr_q)
    assert sr.shape == (2, 3, 8 * scale, 7 * scale) and torch.isfinite(sr).all()
    emb = model.embed(lr_q)
    assert emb["fea"].shape == (2, 16) and emb["q"].shape == (2, 8)


def test_dasr_test_time_uses_query_encoder_fea():
    """forward(lr) == sr_net(lr, encoder_q(lr).fea): the pre-MLP vector of the query encoder."""
    model = build_model(lambda: DASR(2, **TINY), 0).eval()
    with torch.no_grad():
        model.moco.encoder_k.body[0][0].weight.add_(1.0)  # a different key encoder must not matter
        lr = _rand(2, 3, 6, 6)
        fea, _ = model.moco.encoder_q(lr)
        torch.testing.assert_close(model(lr), model.sr_net(lr, fea))


def test_dasr_mean_shift_in_unit_range():
    """With the last conv zeroed, the SR network outputs exactly the DIV2K mean (added back after the tail)."""
    net = build_model(lambda: DASRNet(2, n_feats=C, n_groups=1, n_blocks=1, reduction=2, emb_dim=16), 0)
    with torch.no_grad():
        net.tail[-1].weight.zero_()
        net.tail[-1].bias.zero_()
        out = net(_rand(1, 3, 4, 4), _rand(1, 16))
    expected = torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    torch.testing.assert_close(out, expected)


def test_dasr_paper_size_parameter_count():
    """Paper sizes (n_feats 64, 5 x 5 DA blocks, encoder 64/128/256): trainable parameters = SR network + query
    encoder, against a hand formula; x4: 4,690,499 + 1,278,784 = 5,969,283 (paper Table 3: 5.8 M)."""
    conv = lambda cin, cout, k=3: k * k * cin * cout + cout  # noqa: E731
    da_conv = 64 * 64 + 64 * 64 * 9 + conv(64, 64, 1) + 64 * 8 + 8 * 64
    dab = 2 * da_conv + 2 * conv(64, 64)
    dag = 5 * dab + conv(64, 64)
    sr = 256 * 64 + conv(3, 64) + 5 * dag + conv(64, 64) + 2 * conv(64, 256) + conv(64, 3)
    enc_widths = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256)]
    enc = sum(conv(a, b) + 2 * b for a, b in enc_widths) + 2 * (256 * 256 + 256)
    assert (sr, enc) == (4_690_499, 1_278_784)
    with torch.device("meta"):
        model = DASR(4)
    assert count_parameters(model.sr_net) == sr
    assert count_parameters(model.moco.encoder_q) == enc
    assert count_parameters(model) == count_parameters(model.sr_parameters()) == sr + enc == 5_969_283
    assert model.moco.queue.shape == (256, 8192)


def test_dasr_bad_inputs():
    model = DASR(2, **TINY)
    with pytest.raises(ValueError, match="scale"):
        DASR(5, **TINY)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="fea of shape"):
        model.sr_net(torch.zeros(2, 3, 8, 8), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="not a multiple of the batch size 3"):
        model.forward_train(_rand(3, 3, 8, 8), _rand(3, 3, 8, 8))


def test_seeded_construction_is_deterministic():
    a, b = build_model(lambda: DASR(2, **TINY), 5), build_model(lambda: DASR(2, **TINY), 5)
    for (na, ta), (nb, tb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(ta, tb), na
