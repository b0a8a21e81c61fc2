"""Network architectures: shapes, LR-grid alignment, parameter counts, global residual, errors, gradients, RCAN's
channel attention, deterministic construction. Tiny sizes only (C <= 16, 1-2 blocks, 16x16 LR or smaller)."""

import itertools

import pytest
import torch

from srlib.archs import (
    CRLSR,
    RCAN,
    ChannelAttention,
    Decoder,
    Encoder,
    ProjectionHead,
    ResBlock,
    Upsampler,
    count_parameters,
)
from srlib.degradation import imresize
from srlib.train import build_model

C = 8  # tiny width for every test
TINY = {"n_feats": C, "n_blocks": 1, "n_detail_blocks": 1, "proj_dim": 16, "n_blocks_f": 1}
COMBOS = list(itertools.product([False, True], repeat=2))  # (cde, cfr)


pytestmark = pytest.mark.usefixtures("native_conv")


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("cde,cfr", COMBOS)
def test_crlsr_shapes(scale, cde, cfr):
    """forward gives (B, 3, h*s, w*s); forward_train returns exactly the keys its variant needs, with their shapes."""
    h, w = 8, 6
    model = CRLSR(scale, cde=cde, cfr=cfr, **TINY)
    lr, hr = _rand(2, 3, h, w), _rand(2, 3, h * scale, w * scale, seed=1)
    with torch.no_grad():
        assert model(lr).shape == (2, 3, h * scale, w * scale)
        out = model.forward_train(lr, hr)
    keys = {"sr", "up", "f_l"} | ({"f_h"} if cde else set())
    keys |= {"f_f_hr", "f_f_sr", "f_f_lr", "hr_recon"} if cfr else set()
    assert set(out) == keys
    img, feat = (2, 3, h * scale, w * scale), (2, C, h, w)  # features lie on the LR grid (h, w)
    for k in keys:
        assert out[k].shape == (img if k in {"sr", "up", "hr_recon"} else feat), k
    assert hasattr(model, "encoder_h") == hasattr(model, "proj_l") == hasattr(model, "proj_h") == cde
    assert hasattr(model, "feature_net") == hasattr(model, "proj_f") == hasattr(model, "hr_decoder") == cfr


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_encoder_decoder_upsampler_shapes(scale):
    enc, dec, up = Encoder(scale, C, 1), Decoder(scale, C), Upsampler(scale, C)
    x = _rand(1, 3, 4 * scale, 5 * scale)
    with torch.no_grad():
        f = enc(x)
        assert f.shape == (1, C, 4, 5)
        assert dec(f).shape == (1, 3, 4 * scale, 5 * scale)
        assert up(f).shape == (1, C, 4 * scale, 5 * scale)


def test_projection_head_is_unit_norm():
    """(B, M, C) -> (B, M, S) with unit L2 norm per vector (CRL-SR Sec. 3.3)."""
    head = ProjectionHead(C, 16)
    z = head(_rand(2, 5, C))
    assert z.shape == (2, 5, 16)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(2, 5))


def test_encoder_feature_map_is_aligned_with_lr_grid():
    """Changing the s x s HR block of LR pixel (i, j) changes E's features only around (i, j) (receptive field of a
    0-block encoder: head and tail conv3x3 on the LR grid -> radius 2), and certainly at (i, j)."""
    s, i, j = 3, 2, 4
    enc = Encoder(s, C, n_blocks=0)
    x = _rand(1, 3, 8 * s, 8 * s)
    y = x.clone()
    y[..., s * i : s * i + s, s * j : s * j + s] += 1.0
    with torch.no_grad():
        d = (enc(y) - enc(x)).abs().sum(1)[0]
    assert d[i, j] > 0
    rows, cols = torch.nonzero(d > 0, as_tuple=True)
    assert (rows - i).abs().max() <= 2 and (cols - j).abs().max() <= 2


# ---------------------------------------------------------------- parameter counts


def test_resblock_parameter_count_hand_formula():
    for c in (8, 16, 64):
        assert count_parameters(ResBlock(c)) == 2 * (9 * c * c + c)


def test_sr_network_same_size_in_every_variant():
    """CDE and CFR add training-time modules only: the test-time network (E_l, G, decoder) never changes."""
    counts = {combo: count_parameters(CRLSR(4, cde=combo[0], cfr=combo[1], **TINY).sr_parameters()) for combo in COMBOS}
    assert len(set(counts.values())) == 1, counts
    base = CRLSR(4, cde=False, cfr=False, **TINY)
    assert count_parameters(base) == counts[(False, False)]  # the baseline holds nothing else
    # Hand count of the SR network: E_l (head 3*16 -> C, 1 block, tail), G (1 block), decoder (conv, 2 up-stages, out).
    conv = lambda cin, cout: 9 * cin * cout + cout  # noqa: E731
    block = 2 * conv(C, C)
    expected = (conv(48, C) + block + conv(C, C)) + block + (conv(C, C) + 2 * conv(C, 4 * C) + conv(C, 3))
    assert counts[(False, False)] == expected


def test_count_parameters_skips_frozen_and_shared():
    m = torch.nn.Linear(3, 2)
    assert count_parameters(m) == 8
    assert count_parameters([m.weight, m.weight, m.bias]) == 8
    m.bias.requires_grad_(False)
    assert count_parameters(m) == 6 and count_parameters(m, trainable_only=False) == 8


# ---------------------------------------------------------------- global residual


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_global_residual_is_matlab_bicubic(scale):
    """With the decoder's last conv zeroed, CRLSR(lr) is exactly MATLAB bicubic upsampling of lr."""
    model = CRLSR(scale, **TINY)
    with torch.no_grad():
        model.decoder.last_conv.weight.zero_()
        model.decoder.last_conv.bias.zero_()
        lr = _rand(2, 3, 16, 16)
        expected = imresize(lr, scale)
        assert torch.equal(model(lr), expected)
        out = model.forward_train(lr, _rand(2, 3, 16 * scale, 16 * scale))
        assert torch.equal(out["sr"], expected) and torch.equal(out["up"], expected)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("scale", [5, 6, 1, 0])
def test_upsampler_rejects_unsupported_scale(scale):
    with pytest.raises(ValueError, match=f"scale={scale}"):
        Upsampler(scale, C)
    with pytest.raises(ValueError, match="scale"):
        CRLSR(scale, **TINY)
    with pytest.raises(ValueError, match="scale"):
        RCAN(scale, n_feats=C, n_groups=1, n_blocks=1, reduction=4)


def test_encoder_rejects_input_not_multiple_of_scale():
    enc = Encoder(4, C, 1)
    with pytest.raises(ValueError, match=r"17x16.*scale 4"):
        enc(_rand(1, 3, 17, 16))


def test_bad_inputs_are_clear_errors():
    model = CRLSR(2, **TINY)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(_rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"does not match lr"):
        model.forward_train(_rand(1, 3, 8, 8), _rand(1, 3, 15, 16))
    with pytest.raises(ValueError, match="reduction"):
        ChannelAttention(8, 16)


# ---------------------------------------------------------------- gradients


def test_gradients_reach_every_parameter():
    """Full model: backward through every forward_train output and the three projection heads (as the loss code
    uses them) leaves a gradient on every parameter; the heads are the only modules forward_train does not call."""
    model = CRLSR(2, **TINY)
    lr, hr = _rand(2, 3, 8, 8), _rand(2, 3, 16, 16, seed=1)
    out = model.forward_train(lr, hr)
    total = sum(v.sum() for v in out.values())
    total.backward(retain_graph=True)
    heads = ("proj_l.", "proj_h.", "proj_f.")
    missing = [n for n, p in model.named_parameters() if p.grad is None and not n.startswith(heads)]
    assert not missing, missing

    vec = lambda f: f.flatten(2).transpose(1, 2)[:, :5]  # noqa: E731  (B, M=5, C)
    z = model.proj_l(vec(out["f_l"])) + model.proj_h(vec(out["f_h"])) + model.proj_f(vec(out["f_f_sr"]))
    z.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.sr_parameters())


# ---------------------------------------------------------------- RCAN


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_rcan_shape(scale):
    model = RCAN(scale, n_feats=C, n_groups=2, n_blocks=1, reduction=4)
    with torch.no_grad():
        assert model(_rand(1, 3, 16, 16)).shape == (1, 3, 16 * scale, 16 * scale)


def test_channel_attention_matches_hand_computation():
    """CA(x) = x * sigmoid(W_u relu(W_d avgpool(x) + b_d) + b_u) (RCAN Sec. 3.3), computed with plain tensor ops."""
    ca = ChannelAttention(16, reduction=4)
    x = _rand(2, 16, 5, 7) - 0.3
    down, up = ca.mlp[0], ca.mlp[2]
    pooled = x.mean(dim=(2, 3))  # (B, C)
    hidden = torch.relu(pooled @ down.weight[:, :, 0, 0].T + down.bias)  # (B, C/r)
    weights = torch.sigmoid(hidden @ up.weight[:, :, 0, 0].T + up.bias)  # (B, C)
    with torch.no_grad():
        torch.testing.assert_close(ca(x), x * weights[:, :, None, None])


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize(
    "factory",
    [lambda: CRLSR(2, **TINY), lambda: RCAN(2, n_feats=C, n_groups=1, n_blocks=1, reduction=4)],
    ids=["crlsr", "rcan"],
)
def test_seeded_construction_is_deterministic(factory):
    a, b = build_model(factory, 0), build_model(factory, 0)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = build_model(factory, 1)
    assert any(not torch.equal(sa[k], c.state_dict()[k]) for k in sa)


def test_table1_variants_cover_every_module_combination():
    """The six ablation rows a-f (srlib.methods.crl_sr.VARIANTS): a has neither module, f both."""
    from srlib.methods.crl_sr import VARIANTS

    assert (VARIANTS["a"].cde, VARIANTS["a"].cfr) == (False, None)
    assert (VARIANTS["f"].cde, VARIANTS["f"].cfr) == (True, "cond")
    assert {(v.cde, v.cfr is not None) for v in VARIANTS.values()} == set(COMBOS)
