"""EDSR (srlib.archs.edsr): output shapes, parameter counts against the hand formula (EDSR-S x2/x3/x4, EDSR-L x4),
structure (blocks, res_scale, long skip), errors, determinism. Tiny widths except the EDSR-S count (built once)."""


import pytest
import torch

from srlib.archs import EDSR, ResBlock, count_parameters
from srlib.archs.edsr import EDSR_L, EDSR_S

pytestmark = pytest.mark.usefixtures("native_conv")


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _expected_params(scale: int, c: int, n_blocks: int) -> int:
    """By hand: head 3->C conv; n_blocks x (two CxC convs); body CxC conv; upsampler; tail C->3 conv."""
    conv = lambda cin, cout: 9 * cin * cout + cout  # noqa: E731  3x3 weights + bias
    up = conv(c, 9 * c) if scale == 3 else (scale.bit_length() - 1) * conv(c, 4 * c)
    return conv(3, c) + n_blocks * 2 * conv(c, c) + conv(c, c) + up + conv(c, 3)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes(scale):
    """(B, 3, h, w) -> (B, 3, h*s, w*s) for a tiny EDSR."""
    model = EDSR(scale, n_feats=8, n_blocks=2)
    with torch.no_grad():
        assert model(_rand(2, 3, 5, 7)).shape == (2, 3, 5 * scale, 7 * scale)


def test_edsr_s_x4_default_shape_and_count():
    """The default is EDSR-S; x4 has the hand-computed 1,517,571 trainable parameters:
    head 3*64*9+64 = 1,792; 16 blocks x 2*(9*64*64+64) = 1,181,696; body conv 36,928;
    upsampler 2 x (9*64*256+256) = 295,424; tail 9*64*3+3 = 1,731."""
    model = EDSR(4)
    hand = 1_792 + 16 * 2 * (9 * 64 * 64 + 64) + (9 * 64 * 64 + 64) + 2 * (9 * 64 * 256 + 256) + (9 * 64 * 3 + 3)
    assert hand == 1_517_571 == _expected_params(4, EDSR_S["n_feats"], EDSR_S["n_blocks"])
    assert count_parameters(model) == hand
    assert sum(isinstance(m, ResBlock) for m in model.modules()) == 16
    with torch.no_grad():
        assert model(_rand(1, 3, 6, 5)).shape == (1, 3, 24, 20)


@pytest.mark.parametrize("scale", [2, 3])
def test_edsr_s_counts_other_scales(scale):
    """EDSR-S x2: 1,369,859; x3: 1,554,499 (one conv C -> 9C before PixelShuffle(3))."""
    expected = {2: 1_369_859, 3: 1_554_499}[scale]
    assert _expected_params(scale, 64, 16) == expected
    with torch.device("meta"):
        assert count_parameters(EDSR(scale, **EDSR_S)) == expected


def test_edsr_l_count():
    """EDSR-L x4 (256 feats, 32 blocks, res_scale 0.1): 43,089,923 parameters, built on the meta device."""
    with torch.device("meta"):
        model = EDSR(4, **EDSR_L)
    assert count_parameters(model) == _expected_params(4, 256, 32) == 43_089_923
    blocks = [m for m in model.modules() if isinstance(m, ResBlock)]
    assert len(blocks) == 32 and all(b.res_scale == 0.1 for b in blocks)


def test_long_skip_and_res_scale():
    """res_scale 0 turns every block into the identity; with the body's last conv also zeroed the body adds nothing,
    so only the long skip is left: SR = tail(head(x))."""
    torch.manual_seed(0)
    model = EDSR(2, n_feats=8, n_blocks=2, res_scale=0.0)
    lr = _rand(1, 3, 4, 4)
    with torch.no_grad():
        last = model.body[-1]
        last.weight.zero_()
        last.bias.zero_()
        feat = model.head(lr)
        assert torch.allclose(model(lr), model.tail(feat), atol=1e-6)
        assert torch.allclose(model.body[0](feat), feat)


def test_gradients_and_determinism():
    """Every parameter receives a gradient; construction under the same seed gives identical weights."""

    def build():
        with torch.random.fork_rng():
            torch.manual_seed(3)
            return EDSR(3, n_feats=8, n_blocks=1)

    a, b = build(), build()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    a(_rand(1, 3, 4, 4)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in a.parameters())


def test_errors():
    with pytest.raises(ValueError, match="scale"):
        EDSR(5)
    with pytest.raises(ValueError, match="n_feats"):
        EDSR(2, n_feats=0)
    model = EDSR(2, n_feats=8, n_blocks=1)
    with pytest.raises(ValueError, match=r"\(B, 3, h, w\)"):
        model(torch.zeros(1, 1, 4, 4))
