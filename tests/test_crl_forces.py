"""CRL-SR's CFR forces on the SR network, and arms that share their batches (issue 10, items 3 and 4).

* The LR pushing term of L_cond (:func:`srlib.losses.contrastive.conditional_logits`): with the text's reading
  (``lr_term="sr"``, the default) it acts on f_sr and so on the SR network; with the first implementation's form
  (``lr_term="hr"``: f_hr_i . f_lr_i) its gradient on every SR parameter is exactly zero (it reads only E_F of the HR
  and of the bicubic LR), so for the SR network ablation (b) is (c) reweighted by w_i plus a constant denominator term.
* Loss-internal sampling (the M locations) draws from ``batch.loss_generator``: variant (a) (no contrastive term)
  and (d) / (f) see the same batches at every step.
"""

from __future__ import annotations

import hashlib
import math

import pytest
import torch
import torch.nn.functional as F

from srlib.archs.crl_sr import CRLSR
from srlib.degradation import DegradationSpace
from srlib.losses import contrastive as C
from srlib.recipes import crl_sr
from srlib.train import Batch, TrainConfig, build_model, degraded_patches, train

E0, E1, NEG_E0 = (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)


def _t(*rows: tuple[float, float]) -> torch.Tensor:
    """Rows of 2-vectors -> (1, M, 2) float64 tensor."""
    return torch.tensor([rows], dtype=torch.float64)


# ------------------------------------------------------------------------------------------------ hand-computed value


@pytest.mark.parametrize("use_penalty", [True, False])
def test_conditional_loss_hand_value_both_readings(use_penalty):
    """M = 3 unit 2-vectors, tau = 0.5, every dot product written out by hand.

    f_hr = (0, 90, 180 deg), f_sr = (0, 0, 90 deg), f_lr = (90, 0, 0 deg):
      f_hr_i . f_sr_j = [[1, 1, 0], [0, 0, 1], [-1, -1, 0]]
      LR term, lr_term="sr": f_sr_i . f_lr_i = (0, 1, 0);  lr_term="hr": f_hr_i . f_lr_i = (0, 0, -1)
      d_i = ||f_hr_i - f_lr_i|| = (sqrt2, sqrt2, 2), w_i = d_i / mean(d)
    """
    tau = 0.5
    f_hr, f_sr, f_lr = _t(E0, E1, NEG_E0), _t(E0, E0, E1), _t(E1, E0, E0)
    mean_d = (2 * math.sqrt(2) + 2) / 3
    w = [math.sqrt(2) / mean_d, math.sqrt(2) / mean_d, 2 / mean_d] if use_penalty else [1.0, 1.0, 1.0]
    e = math.exp
    # row i: -log( e^{w_i G_ii / tau} / (e^{w_i G_ii / tau} + sum_{j != i} e^{G_ij / tau} + e^{w_i push_i / tau}) )
    sr = [
        -math.log(e(w[0] * 2) / (e(w[0] * 2) + e(2) + e(0) + e(w[0] * 0))),  # G_00 = 1; G_01 = 1, G_02 = 0; push 0
        -math.log(e(0) / (e(0) + e(0) + e(2) + e(w[1] * 2))),  # G_11 = 0; G_10 = 0, G_12 = 1; push 1
        -math.log(e(0) / (e(0) + e(-2) + e(-2) + e(w[2] * 0))),  # G_22 = 0; G_20 = -1, G_21 = -1; push 0
    ]
    hr = [
        -math.log(e(w[0] * 2) / (e(w[0] * 2) + e(2) + e(0) + e(0))),  # push 0
        -math.log(e(0) / (e(0) + e(0) + e(2) + e(0))),  # push 0
        -math.log(e(0) / (e(0) + e(-2) + e(-2) + e(-w[2] * 2))),  # push -1
    ]
    got_sr = C.conditional_contrastive_loss(f_hr, f_sr, f_lr, tau, use_penalty=use_penalty)  # the default reading
    got_hr = C.conditional_contrastive_loss(f_hr, f_sr, f_lr, tau, use_penalty=use_penalty, lr_term="hr")
    assert got_sr.item() == pytest.approx(sum(sr) / 3, abs=1e-12)
    assert got_hr.item() == pytest.approx(sum(hr) / 3, abs=1e-12)
    assert got_sr.item() != pytest.approx(got_hr.item(), abs=1e-3)
    logits = C.conditional_logits(f_hr, f_sr, f_lr, tau, use_penalty=use_penalty)
    assert logits.shape == (1, 3, 4)
    torch.testing.assert_close(logits[0, :, 3], torch.tensor([0.0, w[1] * 2, 0.0], dtype=torch.float64))


def test_bad_lr_term_is_rejected():
    x = F.normalize(torch.ones(1, 2, 2), dim=-1)
    with pytest.raises(ValueError, match="lr_term must be one of"):
        C.conditional_contrastive_loss(x, x, x, lr_term="lr")
    with pytest.raises(ValueError, match="lr_term must be one of"):
        crl_sr.Variant("x", False, "cond", "lr")


# ------------------------------------------------------------------------------------- gradients on the SR network


def _model_features(seed: int = 0) -> tuple[CRLSR, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A small CFR model and its projected (1, M=6, S=8) features f_hr, f_sr, f_lr of one random pair."""
    model = build_model(lambda: CRLSR(2, n_feats=8, n_blocks=1, n_detail_blocks=1, proj_dim=8, cde=False, cfr=True,
                                      n_blocks_f=1), seed).double()
    g = torch.Generator().manual_seed(seed)
    lr = torch.rand(1, 3, 6, 6, generator=g, dtype=torch.float64)
    hr = torch.rand(1, 3, 12, 12, generator=g, dtype=torch.float64)
    out = model.forward_train(lr, hr)
    idx = C.sample_locations(6, 6, 6, g)
    f_hr, f_sr, f_lr = (model.proj_f(C.gather_locations(out[k], idx)) for k in ("f_f_hr", "f_f_sr", "f_f_lr"))
    return model, f_hr, f_sr, f_lr


def _sr_grads(model: CRLSR, value: torch.Tensor) -> list[torch.Tensor | None]:
    """Gradient of ``value`` w.r.t. every SR-network parameter (E_l, G, decoder); None where there is no path."""
    return list(torch.autograd.grad(value, model.sr_parameters(), retain_graph=True, allow_unused=True))


def test_lr_term_on_f_hr_never_reaches_the_sr_network():
    """The finding: f_hr_i . f_lr_i reads E_F(HR) and E_F(bicubic LR) only, so its gradient on every SR parameter
    is exactly zero (sliced from the concatenated logits: zeros; the term alone: no autograd path at all)."""
    model, f_hr, f_sr, f_lr = _model_features()
    lr_column = C.conditional_logits(f_hr, f_sr, f_lr, lr_term="hr")[..., -1].sum()
    assert lr_column.requires_grad  # it does train E_F and its projection head
    assert all(g is None or not g.any() for g in _sr_grads(model, lr_column))
    w = C.penalty_weights(f_hr, f_lr)
    alone = (w * (f_hr * f_lr).sum(-1) / 0.07).sum()  # the same column, written out
    assert all(g is None for g in _sr_grads(model, alone))


def test_lr_term_on_f_sr_reaches_the_sr_network():
    model, f_hr, f_sr, f_lr = _model_features()
    lr_column = C.conditional_logits(f_hr, f_sr, f_lr)[..., -1].sum()  # the default reading
    grads = [g for g in _sr_grads(model, lr_column) if g is not None]
    assert grads and max(float(g.abs().max()) for g in grads) > 1e-6


def _loss_with_constant_lr_column(f_hr, f_sr, f_lr, lr_term: str) -> torch.Tensor:
    """L_cond with its LR column detached: InfoNCE(f_hr, f_sr) reweighted by w_i plus a constant in the denominator,
    i.e. what ablation (c) becomes with (b)'s weights."""
    logits = C.conditional_logits(f_hr, f_sr, f_lr, lr_term=lr_term)
    logits = torch.cat([logits[..., :-1], logits[..., -1:].detach()], dim=-1)
    b, m, _ = logits.shape
    return F.cross_entropy(logits.reshape(b * m, -1), torch.arange(m).repeat(b))


@pytest.mark.parametrize("lr_term", ["sr", "hr"])
def test_b_differs_from_reweighted_c_only_with_the_text_reading(lr_term):
    """For the SR network, L_cond with lr_term="hr" is exactly (c) reweighted by w_i with a constant LR logit; with
    the default reading the LR term adds a force of its own."""
    model, f_hr, f_sr, f_lr = _model_features()
    full = _sr_grads(model, C.conditional_contrastive_loss(f_hr, f_sr, f_lr, lr_term=lr_term))
    const = _sr_grads(model, _loss_with_constant_lr_column(f_hr, f_sr, f_lr, lr_term))
    diff = max(float((a - b).abs().max()) for a, b in zip(full, const, strict=True))
    scale = max(float(a.abs().max()) for a in full)
    if lr_term == "hr":
        assert diff == 0.0
    else:
        assert diff > 1e-3 * scale
    plain = _sr_grads(model, C.infonce_refinement_loss(f_hr, f_sr))  # (c) itself differs in both readings (w_i)
    assert max(float((a - b).abs().max()) for a, b in zip(full, plain, strict=True)) > 1e-3 * scale


def test_recipe_b_variants_differ_on_the_sr_network():
    """crl_loss of (b) (text reading) and of b-hr give different SR gradients on the same batch and locations."""
    model = build_model(lambda: CRLSR(2, n_feats=8, n_blocks=1, n_detail_blocks=1, proj_dim=8, cde=False, cfr=True,
                                      n_blocks_f=1), 0)
    g = torch.Generator().manual_seed(1)
    lr, hr = torch.rand(2, 3, 6, 6, generator=g), torch.rand(2, 3, 12, 12, generator=g)

    def sr_grad(key: str) -> list[torch.Tensor]:
        v = {**crl_sr.VARIANTS, **crl_sr.LR_TERM_VARIANTS}[key]
        batch = Batch(lr, hr, [], torch.Generator(), loss_generator=torch.Generator().manual_seed(3))
        terms = crl_sr.crl_loss(v, 8, 0.01, 1.0, 1.0)(model, batch)
        return list(torch.autograd.grad(terms["cfr"], model.sr_parameters()))

    b, b_hr = sr_grad("b"), sr_grad("b-hr")
    assert crl_sr.VARIANTS["b"].lr_term == "sr" and crl_sr.LR_TERM_VARIANTS["b-hr"].lr_term == "hr"
    assert max(float((x - y).abs().max()) for x, y in zip(b, b_hr, strict=True)) > 0


def test_a_hand_built_batch_gets_a_fixed_loss_generator_apart_from_the_data_generator():
    """Batches made outside the trainer (FLOP counts, benchmarks) still have a seeded loss generator, never the data
    generator: the loss leaves ``batch.generator`` untouched."""
    model = build_model(lambda: CRLSR(2, n_feats=8, n_blocks=1, n_detail_blocks=1, proj_dim=8, cde=True, cfr=False,
                                      n_blocks_f=1), 0)
    data_g = torch.Generator().manual_seed(5)
    before = data_g.get_state().clone()
    lr, hr = torch.zeros(1, 3, 6, 6), torch.zeros(1, 3, 12, 12)
    batch, other = Batch(lr, hr, [], data_g), Batch(lr, hr, [], data_g)
    assert batch.loss_generator is not data_g and batch.loss_generator is not other.loss_generator
    assert torch.equal(batch.loss_generator.get_state(), other.loss_generator.get_state())
    crl_sr.crl_loss(crl_sr.VARIANTS["d"], 8, 0.01, 0.01, 1.0)(model, batch)
    assert torch.equal(data_g.get_state(), before)
    assert not torch.equal(batch.loss_generator.get_state(), other.loss_generator.get_state())


# --------------------------------------------------------------------------------------- arms share their batches


CFG = TrainConfig(scale=2, iterations=4, batch_size=2, lr_patch=8, lr=1e-3, checkpoint_every=4,
                  degradations=DegradationSpace(2, kernel="iso", noise_range=(0, 25)), seed=3)


def _batches_seen(variant: str, run_dir) -> list[str]:
    """Train ``variant`` for CFG.iterations steps; sha256 of every batch (LR, HR bytes and degradations) made."""
    seen: list[str] = []

    def make_batch(sampler, cfg, g):
        batch = degraded_patches(sampler, cfg, g)
        h = hashlib.sha256(batch.lr.numpy().tobytes())
        h.update(batch.hr.numpy().tobytes())
        h.update(repr(batch.degradations).encode())
        seen.append(h.hexdigest())
        return batch

    v = crl_sr.VARIANTS[variant]
    model = build_model(lambda: CRLSR(2, n_feats=8, n_blocks=1, n_detail_blocks=1, proj_dim=8, cde=v.cde,
                                      cfr=v.cfr is not None, n_blocks_f=1), CFG.seed)
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 40, 48), generator=g, dtype=torch.uint8) for _ in range(2)]
    train(model, crl_sr.crl_loss(v, 8, 0.01, 0.01, 1.0), images, CFG, run_dir, make_batch=make_batch,
          progress=False)
    return seen


def test_contrastive_terms_do_not_change_the_batches(tmp_path):
    """(a) draws no random number inside its loss, (d) and (f) draw M locations every step: with one seed all
    three see the same LR/HR batches and degradations at every step."""
    a = _batches_seen("a", tmp_path / "a")
    assert len(a) == CFG.iterations and len(set(a)) == CFG.iterations
    assert _batches_seen("d", tmp_path / "d") == a
    assert _batches_seen("f", tmp_path / "f") == a
