"""CDSR (srlib.archs.cdsr): CSC attention and codebook span, DQA's zero gate, LPE shapes on 48x48 patches (4x4
patch tokens), CDSR shapes at x2/x3/x4, gradients (SR net and query encoder yes, key encoder no), embeddings, the
RDB, and the paper-size parameter count against a hand formula. Tiny widths (C <= 8, one block, 12x12 LR)."""


import pytest
import torch
import torch.nn.functional as F

from srlib.archs import CDSR, CSC, DQA, LPE, RRDBSFT, CDSREncoder, DQAConv, ResidualDenseBlock, count_parameters
from srlib.train import build_model

C = 8
TINY = {
    "n_feats": C,
    "n_blocks": 1,
    "growth": 4,
    "n_compress": 1,
    "enc_feats": 4,
    "emb_dim": 16,
    "codebook_size": 8,
    "proj_dim": 8,
    "queue_size": 8,
}


pytestmark = pytest.mark.usefixtures("native_conv")


def _rand(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------- CSC


def test_csc_attention_rows_sum_to_one_and_output_in_codebook_span():
    """L = 8 entries of dim 16: fea' = A C has a least-squares residual ~0 on the codebook rows; a generic vector
    (the input, or the projected keys' mix) does not."""
    csc = build_model(lambda: CSC(dim=16, codebook_size=8), 0).double()
    fea = _rand(5, 16, seed=1, dtype=torch.float64) - 0.5
    out, attn = csc(fea, return_attention=True)
    assert out.shape == (5, 16) and attn.shape == (5, 8)
    assert (attn >= 0).all()
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(csc.attention(fea), attn)
    codebook = csc.codebook.weight.detach()
    torch.testing.assert_close(out, attn @ codebook)

    def residual(v):
        coef = torch.linalg.lstsq(codebook.t(), v.t()).solution
        return (codebook.t() @ coef - v.t()).norm(dim=0)

    assert residual(out.detach()).max() < 1e-10
    assert residual(fea).min() > 1e-3  # a random 16-d vector is not in an 8-d span
    keys = csc.fc_k(codebook)  # what an (incorrect) attention over the projected keys would mix
    assert residual((attn @ keys).detach()).min() > 1e-3


def test_csc_attention_has_no_scaling():
    """softmax(q . k) exactly, with no 1/sqrt(d) or temperature."""
    csc = build_model(lambda: CSC(dim=16, codebook_size=8), 0)
    fea = _rand(2, 16, seed=3)
    logits = csc.fc_q(fea) @ csc.fc_k(csc.codebook.weight).t()
    torch.testing.assert_close(csc.attention(fea), torch.softmax(logits, dim=1))


# ---------------------------------------------------------------- DQA


def test_dqa_zero_gate_passes_embedding_through():
    dqa = build_model(lambda: DQA(C), 0)
    f, e = _rand(3, C, seed=1) - 0.5, _rand(3, C, seed=2) - 0.5
    assert dqa.gamma.item() == 0.0
    assert torch.equal(dqa(f, e), e)
    with torch.no_grad():
        dqa.gamma.fill_(0.7)
    out = dqa(f, e)
    assert not torch.allclose(out, e)
    # e' = gamma (v A^T) + e with A = softmax_row(q k), q = W_q f (column), k = W_k e (row), v = W_v e
    attn = torch.softmax(dqa.fc_q(f).unsqueeze(2) * dqa.fc_k(e).unsqueeze(1), dim=2)
    torch.testing.assert_close(attn.sum(dim=2), torch.ones(3, C))
    v = dqa.fc_v(e)
    expected = 0.7 * torch.einsum("bj,bij->bi", v, attn) + e
    torch.testing.assert_close(out, expected)


def test_dqa_conv_kernels_come_from_attended_embedding():
    """With the gate at 0 the DQA conv equals a DA conv on the raw embedding; opening the gate changes only the
    kernel branch (the channel attention keeps the raw embedding)."""
    conv = build_model(lambda: DQAConv(C, 3, reduction=2), 0)
    x, e = _rand(2, C, 5, 5, seed=1) - 0.5, _rand(2, C, seed=2)
    torch.testing.assert_close(conv(x, e), conv.branches(x, e, e))
    with torch.no_grad():
        conv.dqa.gamma.fill_(1.0)
    e_att = conv.dqa(x.mean(dim=(2, 3)), e)
    out = conv(x, e)
    torch.testing.assert_close(out, conv.branches(x, e_att, e))
    assert not torch.allclose(out, conv.branches(x, e, e))


# ---------------------------------------------------------------- LPE


def test_lpe_shapes_on_48x48_patches():
    lpe = LPE(n_feats=4, emb_dim=16)
    x = _rand(2, 3, 48, 48)
    assert lpe.pixel_features(x).shape == (2, 16, 24, 24)
    assert lpe.patch_tokens(x).shape == (2, 16, 4, 4)  # 12x12 patches, stride 12: 4x4 tokens
    assert lpe(x).shape == (2, 16)
    assert lpe.patch[0][0].kernel_size == (12, 12) and lpe.patch[0][0].stride == (12, 12)
    with pytest.raises(ValueError, match="smaller than one 12x12 patch"):
        lpe(_rand(2, 3, 11, 20))


def test_lpe_paper_widths():
    lpe = LPE()
    assert lpe.pixel[-1][0].out_channels == 256 and lpe.patch[-1][0].out_channels == 256
    assert lpe.mlp[0].in_features == 512 and lpe.mlp[-1].out_features == 256


def test_encoder_embeddings():
    """embed: pre-CSC fea, post-CSC fea' (= attn @ codebook), unit-norm q; forward returns (fea', q)."""
    enc = build_model(lambda: CDSREncoder(n_feats=4, emb_dim=16, codebook_size=8, proj_dim=8), 0)
    x = _rand(2, 3, 24, 24)
    emb = enc.embed(x)
    assert emb["fea"].shape == emb["fea_csc"].shape == (2, 16) and emb["attn"].shape == (2, 8)
    torch.testing.assert_close(emb["fea_csc"], emb["attn"] @ enc.csc.codebook.weight)
    torch.testing.assert_close(emb["q"].norm(dim=1), torch.ones(2))
    fea_csc, q = enc(x)
    torch.testing.assert_close(fea_csc, emb["fea_csc"])
    torch.testing.assert_close(q, emb["q"])


# ---------------------------------------------------------------- trunk blocks


def test_rdb_structure_and_init():
    rdb = build_model(lambda: ResidualDenseBlock(C, growth=4), 0)
    assert [c.in_channels for c in rdb.convs] == [8, 12, 16, 20, 24]
    assert [c.out_channels for c in rdb.convs] == [4, 4, 4, 4, 8]
    assert all(torch.count_nonzero(c.bias) == 0 for c in rdb.convs)  # ESRGAN init: zero biases, small weights
    fan_in = 9 * 24
    assert rdb.convs[-1].weight.std() < 0.5 * (2.0 / fan_in) ** 0.5
    x = _rand(1, C, 5, 5)
    with torch.no_grad():
        for c in rdb.convs:
            c.weight.zero_()
    torch.testing.assert_close(rdb(x), x)  # zero residual branch: identity


def test_rrdb_sft_shapes():
    block = build_model(lambda: RRDBSFT(C, growth=4, emb_dim=16, sft_hidden=16), 0)
    x, e = _rand(2, C, 6, 5), _rand(2, 16, seed=1)
    assert block(x, e).shape == (2, C, 6, 5)
    assert block.fuse.da_conv1.ca[0].out_features == C // 2  # reduction 2


# ---------------------------------------------------------------- CDSR


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_cdsr_shapes_and_gradients(scale):
    model = build_model(lambda: CDSR(scale, **TINY), 0)
    lr_q, lr_k = _rand(2, 3, 12, 13, seed=1), _rand(2, 3, 12, 13, seed=2)
    out = model.forward_train(lr_q, lr_k)
    assert set(out) == {"sr", "logits", "labels", "fea"}
    assert out["sr"].shape == (2, 3, 12 * scale, 13 * scale) and torch.isfinite(out["sr"]).all()
    assert out["logits"].shape == (2, 9) and out["labels"].tolist() == [0, 0] and out["fea"].shape == (2, 16)
    hr = _rand(2, 3, 12 * scale, 13 * scale, seed=3)
    loss = F.l1_loss(out["sr"], hr) + model.contrastive_loss(out["logits"], out["labels"])
    loss.backward()
    # every SR parameter except the DQA gates/value maps (gamma = 0 blocks their gradient at init)
    no_grad_expected = ("fc_q", "fc_k", "fc_v")
    for name, p in model.sr_net.named_parameters():
        assert p.grad is not None, name
        if ".dqa." not in name or not name.split(".dqa.")[1].startswith(no_grad_expected):
            assert p.grad.abs().sum() > 0, name
    for name, p in model.moco.encoder_q.named_parameters():
        assert p.grad is not None, name
    assert all(p.grad is None for p in model.moco.encoder_k.parameters())
    model.eval()
    with torch.no_grad():
        sr = model(lr_q)
        emb = model.embed(lr_q)
    assert sr.shape == (2, 3, 12 * scale, 13 * scale) and torch.isfinite(sr).all()
    assert set(emb) == {"fea", "fea_csc", "attn", "q"}
    torch.testing.assert_close(model.sr_net(lr_q, emb["fea_csc"]), sr)  # the SR net consumes the post-CSC fea'


def test_cdsr_freeze_encoder():
    model = CDSR(2, **TINY)
    model.freeze_encoder()
    assert count_parameters(model) == count_parameters(model.sr_net)


def test_cdsr_paper_size_parameter_count():
    """Paper sizes (64 channels, 10 RRDB-SFT blocks, growth 32, L = 1024): x4 SR network 10,318,738 + query encoder
    2,934,592 = 13,253,330 trainable parameters, against a hand formula."""
    conv = lambda cin, cout, k=3: k * k * cin * cout + cout  # noqa: E731
    lin = lambda cin, cout: cin * cout + cout  # noqa: E731
    dqa_conv = (64 * 64 + 64 * 576) + conv(64, 64, 1) + 2 * 64 * 32 + 3 * lin(64, 64) + 1
    fuse = 2 * dqa_conv + 2 * conv(64, 64)
    rdb = sum(conv(64 + 32 * i, 32) for i in range(4)) + conv(64 + 128, 64)
    block = lin(256, 256) + 1 + lin(256, 64) + fuse + 3 * rdb
    sr = 4 * (lin(256, 256) + 1) + conv(3, 64) + 10 * block + conv(64, 64) + conv(64, 48)
    cbn = lambda cin, cout, k: conv(cin, cout, k) + 2 * cout  # noqa: E731
    pixel = cbn(3, 64, 7) + cbn(64, 64, 1) + cbn(64, 128, 3) + cbn(128, 128, 1) + cbn(128, 256, 7) + cbn(256, 256, 1)
    patch = cbn(3, 64, 12) + cbn(64, 64, 3) + cbn(64, 128, 3) + cbn(128, 256, 3)
    enc = pixel + patch + lin(512, 256) + lin(256, 256) + 1024 * 256 + 2 * lin(256, 256) + 2 * lin(256, 256)
    assert (sr, enc) == (10_318_738, 2_934_592)
    with torch.device("meta"):
        model = CDSR(4)
    assert count_parameters(model.sr_net) == sr
    assert count_parameters(model.moco.encoder_q) == enc
    assert count_parameters(model) == count_parameters(model.sr_parameters()) == 13_253_330


def test_cdsr_bad_inputs():
    model = CDSR(2, **TINY)
    with pytest.raises(ValueError, match="smaller than 12x12"):
        model(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(2, 3, 12))
    with pytest.raises(ValueError, match="fea of shape"):
        model.sr_net(torch.zeros(2, 3, 12, 12), torch.zeros(2, 3))
