"""Tiled inference (srlib.inference): tiled output equals the whole-image output on every architecture, a too small
margin or per-tile pooling does not, blind models embed the whole image once, bounded uint8 assembly."""

import numpy as np
import pytest
import torch

from srlib import inference as I
from srlib.archs import DQA, ChannelAttention, build_arch

pytestmark = pytest.mark.usefixtures("native_conv")

TINY = {
    "EDSR": {"scale": 2, "n_feats": 8, "n_blocks": 2},
    "RCAN": {"scale": 2, "n_feats": 8, "n_groups": 2, "n_blocks": 2, "reduction": 4},
    "CRLSR": {"scale": 2, "n_feats": 8, "n_blocks": 2, "n_detail_blocks": 1, "proj_dim": 8, "n_blocks_f": 1},
    "DASR": {"scale": 2, "n_feats": 8, "n_groups": 1, "n_blocks": 2, "enc_feats": 4, "proj_dim": 8, "queue_size": 8},
    "NonBlindDASR": {"scale": 2, "n_feats": 8, "n_groups": 1, "n_blocks": 2, "enc_feats": 4},
    "CDSR": {"scale": 2, "n_feats": 8, "n_blocks": 1, "growth": 4, "n_compress": 1, "enc_feats": 4, "emb_dim": 16,
             "codebook_size": 8, "patch_size": 4, "proj_dim": 8, "queue_size": 8},
}


def tiny(name: str, seed: int = 0, **over) -> torch.nn.Module:
    """A tiny network with every parameter moved off its initialisation (seeded), so that no branch is inert (CDSR's
    DQA starts with gamma = 0, which would hide its global pooling from a tiling test)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_arch(name, {**TINY[name], **over})
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.2 * torch.randn_like(p) * (p.std() if p.numel() > 1 else 1.0))
    return model.eval()


def lr_image(h=29, w=37, seed=1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h, w, generator=g)
    return (0.5 * base + 0.5 * torch.linspace(0, 1, w).view(1, 1, 1, w)).clamp(0, 1)


def whole(model, lr):
    with torch.inference_mode():
        return model(lr)


def tiled_case(name: str, seed: int = 1, **over):
    """A tiny model, an LR image and a tile size such that the image has 4 x 4 tiles and the second tile of the
    second row reads a box (core + margin) that touches no image border: the margin, not the border, does the work.
    """
    model = tiny(name, **over)
    r = I.receptive_radius(model)
    tile = r + 2
    h, w = 3 * tile + 1, 3 * tile + 3
    t = I.tiles(h, w, tile, r)
    assert len(t) == 16 and t[5].core == (tile, 2 * tile, tile, 2 * tile)
    y0, y1, x0, x1 = t[5].box
    assert y0 > 0 and x0 > 0 and y1 < h and x1 < w
    return model, lr_image(h, w, seed), tile


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiled_equals_whole_image(name):
    model, lr, tile = tiled_case(name)
    ref = whole(model, lr)
    out = I.upscale(model, lr, I.TileSpec(tile=tile))
    assert out.shape == ref.shape == (1, 3, 2 * lr.shape[2], 2 * lr.shape[3])
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name,scale", [("EDSR", 3), ("CRLSR", 4), ("DASR", 4), ("CDSR", 3), ("RCAN", 4)])
def test_tiled_equals_whole_image_other_scales(name, scale):
    model, lr, tile = tiled_case(name, seed=2, scale=scale)
    torch.testing.assert_close(I.upscale(model, lr, I.TileSpec(tile=tile)), whole(model, lr), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(TINY))
def test_too_small_margin_shows_seams(name):
    """The equality above is not automatic: without the margin the tiles' borders differ from the whole image."""
    model, lr, tile = tiled_case(name)
    out = I.upscale(model, lr, I.TileSpec(tile=tile, overlap=1))
    assert (out - whole(model, lr)).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["RCAN", "CDSR"])
def test_per_tile_pooling_differs_and_exact_sweeps_fix_it(name):
    """RCAN's channel attention and CDSR's DQA pool over the whole map: per-tile pooling is not the whole-image
    network even with the full margin; the exact sweeps are."""
    model, lr, tile = tiled_case(name)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # strong attention, so that its pooling region matters
        for m in model.modules():
            if isinstance(m, ChannelAttention):
                for conv in (m.mlp[0], m.mlp[2]):
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 3)
            if isinstance(m, DQA):
                m.gamma.fill_(3.0)
                for fc in (m.fc_q, m.fc_k):
                    fc.weight.copy_(torch.randn(fc.weight.shape, generator=g) * 3)
    ref = whole(model, lr)
    per_tile = I.upscale(model, lr, I.TileSpec(tile=tile, global_stats="tile"))
    assert (per_tile - ref).abs().max() > 1e-4
    exact = I.upscale(model, lr, I.TileSpec(tile=tile, global_stats="exact"))
    torch.testing.assert_close(exact, ref, rtol=0, atol=1e-5)


def test_whole_image_spec_is_one_forward():
    model, lr = tiny("RCAN"), lr_image()
    assert torch.equal(I.upscale(model, lr, I.TileSpec(tile=0)), whole(model, lr))
    assert torch.equal(I.upscale(model, lr, I.TileSpec(tile=64)), whole(model, lr))


def test_receptive_radius_bounds_the_reach_of_one_pixel():
    """Change one LR pixel: the output changes only within receptive_radius LR pixels of it (and does change)."""
    for name in ("EDSR", "DASR", "CRLSR"):
        model, lr = tiny(name), lr_image(41, 41)
        s, r = model.scale, I.receptive_radius(model)
        emb = I.degradation_embedding(model, lr) if I.is_blind(model) else None
        lr2 = lr.clone()
        lr2[..., 20, 20] += 0.5
        a = I.upscale(model, lr, I.TileSpec(tile=0), embedding=emb)
        b = I.upscale(model, lr2, I.TileSpec(tile=0), embedding=emb)
        ys, xs = torch.nonzero((a - b).abs().amax(dim=(0, 1)) > 0, as_tuple=True)
        assert len(ys) > 0
        reach = max((ys // s - 20).abs().max().item(), (xs // s - 20).abs().max().item())
        assert 1 <= reach <= r, (name, reach, r)


def test_blind_embedding_is_computed_once_from_the_whole_image():
    model, lr = tiny("DASR"), lr_image()
    emb = I.degradation_embedding(model, lr)
    with torch.inference_mode():
        ref = model.embed(lr)
        assert torch.equal(emb.vector, ref["fea"]) and torch.equal(emb.vectors["q"], ref["q"])
        assert torch.equal(emb.vector, model.moco(lr))  # what forward(lr) feeds the SR network
    assert not emb.cropped and emb.to_dict()["region"] == [0, 29, 0, 37]
    cdsr = tiny("CDSR")
    e2 = I.degradation_embedding(cdsr, lr)
    with torch.inference_mode():
        assert e2.consumed == "fea_csc" and torch.equal(e2.vector, cdsr.moco(lr))


def test_large_images_embed_their_centre_crop():
    model, lr = tiny("DASR"), lr_image(29, 37)
    emb = I.degradation_embedding(model, lr, embed_crop=16)
    assert emb.cropped and emb.region == (6, 22, 10, 26)
    with torch.inference_mode():
        crop_fea = model.embed(lr[..., 6:22, 10:26])["fea"]
        ref = model.sr_net(lr, crop_fea)
    torch.testing.assert_close(emb.vector, crop_fea, rtol=0, atol=0)
    out = I.upscale(model, lr, I.TileSpec(tile=12, embed_crop=16))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_upscale_image_uint8_matches_rounded_float_output():
    model = tiny("EDSR")
    img = (lr_image(20, 30).numpy()[0].transpose(1, 2, 0) * 255).round().astype(np.uint8)
    out = I.upscale_image(model, img, I.TileSpec(tile=7))
    lr = torch.from_numpy(img.transpose(2, 0, 1).copy())[None].float() / 255.0
    ref = (whole(model, lr)[0].clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert out.dtype == np.uint8 and out.shape == (40, 60, 3)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    assert (out != ref).mean() < 1e-3  # float rounding can flip a value sitting on .5, nothing more


def test_clear_errors():
    from srlib.archs import PCLDiscriminator

    with pytest.raises(I.NotAnSRModel, match="PCLDiscriminator is not a super-resolution network"):
        I.upscale(PCLDiscriminator(), lr_image())
    with pytest.raises(I.NotAnSRModel, match="not a blind model"):
        I.upscale(tiny("EDSR"), lr_image(), embedding=torch.zeros(1, 16))
    with pytest.raises(ValueError, match=r"\(1, 3, h, w\)"):
        I.upscale(tiny("EDSR"), torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="tile must be"):
        I.TileSpec(tile=-1)
    with pytest.raises(ValueError, match="global_stats"):
        I.TileSpec(global_stats="fast")
    with pytest.raises(ValueError, match="unknown device"):
        I.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            I.resolve_device("cuda")
        assert I.resolve_device("auto") == torch.device("cpu")


def test_progress_bar_counts_every_tile_pass(capsys):
    model, lr = tiny("RCAN"), lr_image()
    I.upscale(model, lr, I.TileSpec(tile=12), progress=True, desc="rcan")
    err = capsys.readouterr().err
    n_sites = 4  # 2 groups x 2 RCABs, one channel attention each
    assert I.pooling_sites(model) == n_sites
    assert I.pooling_sites(tiny("CDSR")) == 2 and I.pooling_sites(tiny("DASR")) == 0  # 1 RRDB-SFT: 2 DQA convs
    assert f"{12 * (n_sites + 1)}/{12 * (n_sites + 1)}" in err and "rcan" in err
