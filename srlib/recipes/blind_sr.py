"""DASR's and CDSR's runs (notebook 04; the DASR rows of CRL-SR's tables in notebook 02).

Networks: :class:`srlib.archs.DASR` and :class:`srlib.archs.cdsr.CDSR` sized by ``profile.blind``. Both learn a
degradation embedding with MoCo (queue, momentum key encoder, T = 0.07) from pairs of LR patches.

**Pairs** (:func:`pair_batch`). Per training image two LR patches, the *query* (the SR target is its HR patch) and
the *positive key*, chosen as in CDSR Table 1 (:data:`POSITIVES`):

* ``"C&D"``: the same image (same augmentation, another random position) under the same degradation: DASR's and
  CDSR's choice (DASR ``SRMDPreprocessing``: one kernel and one noise level per image, shared by its two patches;
  the noise itself is drawn per patch);
* ``"D"``: another training image (another random one, never the query's when there are two or more) under the same
  degradation;
* ``"C"``: the same image under an independently drawn degradation.

**Training protocols** (:data:`PROTOCOLS`, :func:`training_space`), both on our trainer and MATLAB conventions:

* ``"dasr"`` (ours = DASR's, DESIGN.md): isotropic widths in DASR's per-scale range, MATLAB bicubic, noise
  U[0, ``noise``] (``noise=0``: noise-free, as DASR Table 2's models; ``noise=25``: DASR's noisy models and CRL-SR's
  training distribution);
* ``"cdsr"`` (CDSR's code, ``research/methods.md`` 1.2): anisotropic kernels with *variances* l1 ~ U[range],
  l2 ~ U[low, l1], theta ~ U[0, 180) (range [0.175 s, 2.5 s], :func:`srlib.degradation.cdsr_variance_range`),
  kernels shifted for s-fold decimation, noise U[0, ``noise``] with a 20% probability of a clean sample.

**Schedules.** DASR: an encoder-only stage (``warmup_iterations`` at ``warmup_lr``, contrastive loss only, the SR
network frozen; DASR ``epochs_encoder``: 1e-3 then x0.1 at 60% of the stage, here halved once at 60% because the
trainer's schedule halves) and then the joint stage (L1 + contrastive, ``iterations`` at ``lr`` halved every third),
started from the first stage's weights, queue and key encoder, with the generator seeded ``10_000 + seed`` (other
patches than stage 1's). The stages are two runs (the joint run's parent is the warm-up). CDSR: the joint stage from
the start (``epochs_encoder = -1``). Contrastive weight 1 in both.

**Controls** (ours, issue 10): DASR's non-blind same-trunk control (:func:`nonblind_run`, a constant embedding) and
the *encoder swap* (:func:`dasr_run` with ``encoder="cdsr"``): CDSR's encoder (LPE + CSC) feeding DASR's SR network,
trained exactly as DASR (same stages, batches and initial SR weights), so that swap - DASR is what CDSR's encoder
brings and CDSR - swap what CDSR's trunk (and single-stage schedule) brings.

**MoCo momentum** (:func:`moco_momentum`, ours; the papers fix m = 0.999 for runs of 100 k+ steps). The key encoder
is an exponential moving average of the query encoder with a time constant of 1 / (1 - m) steps, so with m = 0.999
it is still 0.999^N of its random initialisation after N steps (~50% after 700). Every stage that trains the encoder
(DASR's warm-up and joint stage, CDSR's only stage) therefore gets ``m = clip(1 - 10 / N, 0.9, 0.999)`` with N the
stage's steps: the key encoder lags ~N / 10 steps behind and forgets its initialisation within the stage (m^N ~
e^-10 for 100 <= N <= 10 000); runs of N >= 10 000 steps keep the papers' 0.999. The momentum is an architecture
argument (``arch_kwargs``), so it is part of the run's identity.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch import nn

from srlib.data import PatchSampler, crop_patches
from srlib.degradation import CDSR_CLEAN_PROB, DegradationSpace, apply_batch, cdsr_variance_range
from srlib.profiles import BlindSizes, Profile
from srlib.runs import RunId, RunSpec, TrainData, ladder
from srlib.train import Batch, TrainConfig

PAPER = "blind"
CODE = ("srlib.recipes.blind_sr", "srlib.archs.dasr", "srlib.archs.cdsr", "srlib.archs.moco")
PROTOCOLS = ("dasr", "cdsr")
POSITIVES = {
    "C&D": "same image, same degradation",
    "D": "different images, same degradation",
    "C": "same image, different degradation",
}
"""CDSR Table 1's choices of the positive key (the row names of the table)."""

DEFAULT_NOISE = {"dasr": 0.0, "cdsr": 15.0}
"""Maximum training noise of each protocol when ``noise`` is not given: DASR Table 2's models are noise-free; our
CDSR-protocol models serve both noise levels of CDSR Table 2 (0 and 15; 20% of their samples are clean). Pass
``noise=25.0`` with ``protocol="dasr"`` for DASR's noisy models (CRL-SR's training distribution)."""

CONTRASTIVE_WEIGHT = 1.0

SWAP_METHOD = "dasr-cdsrenc"
"""The :attr:`srlib.runs.RunId.method` of the encoder swap (:func:`dasr_run` with ``encoder="cdsr"``)."""

PAPER_MOMENTUM = 0.999
"""MoCo's momentum in DASR's and CDSR's code (runs of 100 k+ steps): the upper bound of :func:`moco_momentum`."""
MIN_MOMENTUM = 0.9
"""The lower bound of :func:`moco_momentum` (stages of at most 100 steps)."""
MOMENTUM_HORIZON = 10.0
"""Time constants of the key encoder's moving average per stage: ``m = 1 - MOMENTUM_HORIZON / N``."""

RUNS = {
    "DASR-iso": "DASR, our protocol (isotropic, MATLAB bicubic, noise-free): DASR Table 2",
    "DASR": "DASR, CDSR's protocol (anisotropic variances, s-fold, noise U[0, 15] with 20% clean), C&D positives: "
            "CDSR Table 2's DASR row and Table 1's C&D row",
    "CDSR": "CDSR, CDSR's protocol: CDSR Table 2's CDSR row",
    "DASR D": "DASR, CDSR's protocol, positives from another image (same degradation): CDSR Table 1 (x4 only)",
    "DASR C": "DASR, CDSR's protocol, positives under another degradation (same image): CDSR Table 1 (x4 only)",
    "DASR-n25": "DASR, our protocol with noise U[0, 25] (CRL-SR's training distribution): the DASR rows of CRL-SR "
                "Tables 2-4",
    "DASR-iso const": "non-blind control of DASR-iso: DASR's SR network with a learned constant embedding, L1 only, "
                      "the same batches and initial SR weights as DASR-iso's joint stage: DASR Table 2",
    "DASR const": "non-blind control of DASR (CDSR's protocol), as DASR-iso const: CDSR Table 2",
    "DASR+CDSR enc": "the encoder swap (ours): DASR's SR network fed by CDSR's encoder (LPE + CSC), trained as DASR "
                     "(encoder warm-up, then joint) on CDSR's protocol with DASR's batches and initial SR weights: "
                     "CDSR Table 2, CDSR's modules apart from its trunk",
}
"""The runs of :func:`runs` per scale and seed (as ``RunId.arm``-independent names, see :func:`run_name`), and what
each is for."""


# ---------------------------------------------------------------------------------------------------------------------
# Training distributions and pairs
# ---------------------------------------------------------------------------------------------------------------------


def training_space(protocol: str, scale: int, noise: float | None = None) -> DegradationSpace:
    """The training degradation distribution of a protocol (:data:`PROTOCOLS`) at ``scale``.

    Args:
        noise: maximum noise level (0..255 scale): U[0, noise] per image; None = :data:`DEFAULT_NOISE`.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown training protocol {protocol!r}; choose from {PROTOCOLS}")
    noise = DEFAULT_NOISE[protocol] if noise is None else float(noise)
    if protocol == "dasr":
        return DegradationSpace(scale, kernel="iso", noise_range=(0.0, noise))
    return DegradationSpace(scale, kernel="aniso", aniso_range=cdsr_variance_range(scale), noise_range=(0.0, noise),
                            clean_prob=CDSR_CLEAN_PROB, resize="sfold", convention="cdsr")


def pair_batch(space: DegradationSpace, positive: str = "C&D"):
    """Batch constructor of DASR / CDSR: per image a query patch and its positive key (see :data:`POSITIVES`).

    Draw order (all from the run's generator, the same for every choice of positive, so the three choices see the
    same query patches and degradations): image indices (B), offsets to another image (B), query top/left and key
    top/left positions (4 x B, float64), query and other-image dihedral transforms (2 x B), the query degradations
    (B), a second set of degradations (B, used by "C"), then the noise of the 2B LR patches.

    Returns:
        ``make(sampler, cfg, g) -> Batch`` with ``lr``/``hr`` the query patches (B, 3, p, p) / (B, 3, ps, ps) in
        [0, 1], ``degradations`` the query's, and ``extras``: ``lr_key`` (B, 3, p, p), ``hr_key``,
        ``key_degradations``, ``image`` and ``key_image`` (the training-image indices); on ``sampler.device``.
    """
    if positive not in POSITIVES:
        raise ValueError(f"unknown positive {positive!r}; choose from {list(POSITIVES)}")

    def make(sampler: PatchSampler, cfg: TrainConfig, g: torch.Generator) -> Batch:
        images, p, b = sampler.images, sampler.patch_size, sampler.batch_size
        n = len(images)
        idx = torch.randint(n, (b,), generator=g)
        offset = torch.randint(max(1, n - 1), (b,), generator=g)
        other = (idx + 1 + offset) % n if n > 1 else idx
        u = torch.rand(4, b, generator=g, dtype=torch.float64)
        ts = torch.randint(8, (2, b), generator=g) if sampler.augment else torch.zeros(2, b, dtype=torch.int64)
        degs_q = space.sample_batch(b, g)
        degs_other = space.sample_batch(b, g)
        key_idx, key_t = (other, ts[1]) if positive == "D" else (idx, ts[0])
        degs_k = degs_other if positive == "C" else degs_q
        hr_q = crop_patches(images, p, idx, u[0], u[1], ts[0]).to(sampler.device)
        hr_k = crop_patches(images, p, key_idx, u[2], u[3], key_t).to(sampler.device)
        lr = apply_batch(torch.cat([hr_q, hr_k]), degs_q + degs_k, g) / 255.0
        batch = Batch(lr[:b].contiguous(), hr_q / 255.0, degs_q, g)
        batch.extras.update(lr_key=lr[b:].contiguous(), hr_key=hr_k / 255.0, key_degradations=degs_k, image=idx,
                            key_image=key_idx)
        return batch

    return make


# ---------------------------------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------------------------------


def _top1(logits: torch.Tensor) -> torch.Tensor:
    """Fraction of queries whose positive key beats every queued negative (a diagnostic)."""
    return (logits.detach().argmax(dim=1) == 0).float().mean()


def encoder_loss(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    """DASR's first stage: MoCo's InfoNCE on (query, key) only (``forward_encoder``: momentum update, enqueue)."""
    out = model.forward_encoder(batch.lr, batch.extras["lr_key"].to(batch.lr.device))
    return {"contrastive": model.contrastive_loss(out["logits"], out["labels"]), "_top1": _top1(out["logits"])}


def joint_loss(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    """Joint stage (DASR's second, CDSR's only): L1(SR(query), HR) + 1.0 * InfoNCE (``forward_train``)."""
    out = model.forward_train(batch.lr, batch.extras["lr_key"].to(batch.lr.device))
    return {
        "l1": F.l1_loss(out["sr"], batch.hr),
        "contrastive": CONTRASTIVE_WEIGHT * model.contrastive_loss(out["logits"], out["labels"]),
        "_top1": _top1(out["logits"]),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------------------------------


def dasr_kwargs(scale: int, sizes: BlindSizes) -> dict:
    """DASR at the profile's size: ``dasr_groups`` x ``dasr_blocks`` DA blocks of ``n_feats`` channels, encoder width
    ``enc_feats`` (fea = 4 x enc_feats), MoCo queue ``queue_size`` (paper: 5 x 5 x 64, 64, 8192)."""
    return {"scale": scale, "n_feats": sizes.n_feats, "n_groups": sizes.dasr_groups, "n_blocks": sizes.dasr_blocks,
            "enc_feats": sizes.enc_feats, "queue_size": sizes.queue_size}


def cdsr_kwargs(scale: int, sizes: BlindSizes) -> dict:
    """CDSR at the profile's size: ``cdsr_blocks`` RRDB-SFT blocks of ``n_feats`` channels with RDB growth
    n_feats / 2, LPE width ``enc_feats`` and embedding 4 x enc_feats, codebook ``codebook_size`` (paper: 10 blocks,
    64 channels, growth 32, LPE 64, embedding 256, L = 1024, K = 8192)."""
    return {"scale": scale, "n_feats": sizes.n_feats, "n_blocks": sizes.cdsr_blocks,
            "growth": max(1, sizes.n_feats // 2), "enc_feats": sizes.enc_feats, "emb_dim": 4 * sizes.enc_feats,
            "codebook_size": sizes.codebook_size, "queue_size": sizes.queue_size}


def moco_momentum(steps: int) -> float:
    """MoCo momentum of a stage of ``steps`` steps that trains the encoder: ``clip(1 - 10 / N, 0.9, 0.999)``.

    The key encoder averages the query encoder with weight 1 - m per step (time constant 1 / (1 - m) steps), so it
    keeps m^N of its random initialisation after N steps: 0.999^700 ~ 0.5, while with ``m = 1 - 10 / N`` it keeps
    ~e^-10 and lags ~N / 10 steps behind. Examples: N = 100 -> 0.9, 1000 -> 0.99, 5000 -> 0.998, N >= 10 000 ->
    0.999 (the papers' value, which their 100 k+ step runs keep).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"moco_momentum: steps must be a positive integer, got {steps!r}")
    return max(MIN_MOMENTUM, min(PAPER_MOMENTUM, 1.0 - MOMENTUM_HORIZON / steps))


def _slug(positive: str) -> str:
    return {"C&D": "cd", "D": "d", "C": "c"}[positive]


def _training_sizes(s: BlindSizes) -> dict:
    """The sizes that shape a trained model (evaluation-only fields, ``eval_*``, do not enter a run's key)."""
    return {k: v for k, v in asdict(s).items() if not k.startswith("eval_")}


def _check_sizes(s: BlindSizes) -> None:
    if s.queue_size % s.batch_size:
        raise ValueError(f"profile.blind: the MoCo queue ({s.queue_size}) must be a multiple of the batch size "
                         f"({s.batch_size})")


def swap_kwargs(scale: int, sizes: BlindSizes) -> dict:
    """The encoder swap (``DASR(encoder="cdsr")``): :func:`dasr_kwargs` with CDSR's encoder of the profile's size
    (LPE width ``enc_feats``, embedding 4 x enc_feats, codebook ``codebook_size``)."""
    return {**dasr_kwargs(scale, sizes), "encoder": "cdsr", "codebook_size": sizes.codebook_size}


METHODS = {"dasr": ("DASR", dasr_kwargs), "cdsr": ("CDSR", cdsr_kwargs), SWAP_METHOD: ("DASR", swap_kwargs)}
"""Each blind method's :attr:`srlib.runs.RunId.method` -> (architecture, its keyword arguments at a profile's
size)."""


def _spec(method: str, profile: Profile, scale: int, seed: int, protocol: str, positive: str, noise: float | None,
          stage: str, cfg: TrainConfig, loss, parent: RunSpec | None = None, freeze=()) -> RunSpec:
    s = profile.blind
    _check_sizes(s)
    space = training_space(protocol, scale, noise)
    arm = f"{protocol}-n{space.noise_range[1]:g}-{_slug(positive)}"
    arch, sized = METHODS[method]
    kwargs = sized(scale, s)
    kwargs["momentum"] = moco_momentum(cfg.iterations)  # every blind stage trains the encoder
    return RunSpec(
        id=RunId(PAPER, method, arch, scale, seed, stage, arm),
        arch=arch,
        arch_kwargs=kwargs,
        config=cfg,
        recipe={"method": method, "protocol": protocol, "positive": positive, "sizes": _training_sizes(s)},
        objective=lambda: (loss, None),
        data=TrainData(profile.train_sets, s.lr_patch * scale),
        make_batch=pair_batch(space, positive),
        parent=parent,
        freeze=freeze,
        code=CODE,
        desc=f"{method.upper()} {protocol} {positive} x{scale} s{seed}" + (f": {stage}" if arch == "DASR" else ""),
    )


def _joint_config(profile: Profile, scale: int, space: DegradationSpace, seed: int) -> TrainConfig:
    s = profile.blind
    return TrainConfig(scale=scale, iterations=s.iterations, batch_size=s.batch_size, lr_patch=s.lr_patch, lr=s.lr,
                       lr_halve_every=max(1, s.iterations // 3), degradations=space, seed=seed,
                       checkpoint_every=max(1, s.iterations // 5), precision=profile.precision)


def dasr_run(profile: Profile, scale: int, seed: int, protocol: str = "dasr", positive: str = "C&D",
             noise: float | None = None, encoder: str = "dasr") -> RunSpec:
    """DASR's joint stage, whose parent is the encoder warm-up (when ``warmup_iterations`` > 0).

    Stage 1: the SR network is frozen and the encoder learns from the contrastive loss alone at ``warmup_lr``
    (halved once at 60% of the stage). Stage 2: everything trains on L1 + contrastive at ``lr`` halved every third of
    ``iterations``, from stage 1's weights, queue and key encoder, with the generator seeded ``10_000 + seed``.

    Args:
        protocol, noise: training distribution (:func:`training_space`); CRL-SR's tables use ``protocol="dasr",
            noise=25.0``.
        positive: the positive key (:data:`POSITIVES`).
        encoder: ``"dasr"`` or ``"cdsr"``: the encoder swap (:func:`swap_kwargs`, method :data:`SWAP_METHOD`), whose
            two stages draw exactly DASR's batches and start from DASR's initial SR-network weights.
    """
    if encoder not in ("dasr", "cdsr"):
        raise ValueError(f"dasr_run: encoder must be 'dasr' or 'cdsr', got {encoder!r}")
    method = "dasr" if encoder == "dasr" else SWAP_METHOD
    s = profile.blind
    space = training_space(protocol, scale, noise)
    warm = None
    if s.warmup_iterations > 0:
        warm_cfg = TrainConfig(scale=scale, iterations=s.warmup_iterations, batch_size=s.batch_size,
                               lr_patch=s.lr_patch, lr=s.warmup_lr,
                               lr_halve_every=max(1, math.ceil(0.6 * s.warmup_iterations)), degradations=space,
                               seed=seed, checkpoint_every=max(1, s.warmup_iterations // 5),
                               precision=profile.precision)
        warm = _spec(method, profile, scale, seed, protocol, positive, noise, "warmup", warm_cfg, encoder_loss,
                     freeze=("sr_net",))
    return _spec(method, profile, scale, seed, protocol, positive, noise, "joint",
                 _joint_config(profile, scale, space, 10_000 + seed), joint_loss, parent=warm)


def cdsr_run(profile: Profile, scale: int, seed: int, protocol: str = "cdsr", positive: str = "C&D",
             noise: float | None = None) -> RunSpec:
    """CDSR: joint L1 + contrastive from the first step (CDSR's ``epochs_encoder = -1``), ``lr`` halved every third of
    ``iterations``. Arguments as :func:`dasr_run`."""
    space = training_space(protocol, scale, noise)
    return _spec("cdsr", profile, scale, seed, protocol, positive, noise, "joint",
                 _joint_config(profile, scale, space, seed), joint_loss)


def l1_loss(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    """The non-blind control's loss: L1(SR(query), HR) (the key patches of the shared batches are not used)."""
    return {"l1": F.l1_loss(model(batch.lr), batch.hr)}


def nonblind_run(profile: Profile, scale: int, seed: int, protocol: str = "dasr") -> RunSpec:
    """The non-blind, same-trunk control of DASR (:class:`srlib.archs.NonBlindDASR`): DASR's SR network with a learned
    constant embedding, trained on L1 alone with the joint stage's schedule, batch constructor and seed (``10_000 +
    seed``), so it sees exactly the batches of DASR's joint stage and starts from DASR's initial SR-network weights.
    What DASR gains over it is what its degradation encoder contributes at this budget."""
    s = profile.blind
    _check_sizes(s)
    space = training_space(protocol, scale)
    kwargs = {k: v for k, v in dasr_kwargs(scale, s).items() if k not in ("proj_dim", "queue_size")}
    return RunSpec(
        id=RunId(PAPER, "dasr-const", "DASR", scale, seed, "joint", f"{protocol}-n{space.noise_range[1]:g}-none"),
        arch="NonBlindDASR",
        arch_kwargs=kwargs,
        config=_joint_config(profile, scale, space, 10_000 + seed),
        recipe={"method": "dasr-const", "protocol": protocol, "sizes": _training_sizes(s)},
        objective=lambda: (l1_loss, None),
        data=TrainData(profile.train_sets, s.lr_patch * scale),
        make_batch=pair_batch(space),
        code=CODE,
        desc=f"DASR non-blind control {protocol} x{scale} s{seed}",
    )


RUN_BUILDERS = {
    "DASR-iso": lambda p, sc, sd: dasr_run(p, sc, sd, protocol="dasr"),
    "DASR": lambda p, sc, sd: dasr_run(p, sc, sd, protocol="cdsr"),
    "CDSR": lambda p, sc, sd: cdsr_run(p, sc, sd, protocol="cdsr"),
    "DASR D": lambda p, sc, sd: dasr_run(p, sc, sd, protocol="cdsr", positive="D"),
    "DASR C": lambda p, sc, sd: dasr_run(p, sc, sd, protocol="cdsr", positive="C"),
    "DASR-n25": lambda p, sc, sd: dasr_run(p, sc, sd, protocol="dasr", noise=25.0),
    "DASR-iso const": lambda p, sc, sd: nonblind_run(p, sc, sd, protocol="dasr"),
    "DASR const": lambda p, sc, sd: nonblind_run(p, sc, sd, protocol="cdsr"),
    "DASR+CDSR enc": lambda p, sc, sd: dasr_run(p, sc, sd, protocol="cdsr", encoder="cdsr"),
}
"""How each run of :data:`RUNS` is built at (profile, scale, seed)."""


def run_name(run_id: RunId) -> str:
    """The :data:`RUNS` name of a blind run id (``"DASR"``, ``"DASR D"``, ``"CDSR"``, ...)."""
    protocol, noise, positive = run_id.arm.split("-")
    if run_id.method == "cdsr":
        return "CDSR"
    if run_id.method == SWAP_METHOD:
        return "DASR+CDSR enc"
    if run_id.method == "dasr-const":
        return "DASR-iso const" if protocol == "dasr" else "DASR const"
    if protocol == "dasr":
        return "DASR-n25" if noise == "n25" else "DASR-iso"
    return {"cd": "DASR", "d": "DASR D", "c": "DASR C"}[positive]


LADDER_RUNS = ("DASR", "CDSR", "DASR const", "DASR+CDSR enc")
"""The runs of claims D1 (CDSR > DASR on CDSR's anisotropic protocol), D0 (DASR > its non-blind same-trunk
control) and D3 / D4 (the encoder swap: CDSR's encoder in DASR's trunk against DASR, and CDSR against it), laddered
in a ``ladder`` profile (DASR's encoder warm-up trains on its own schedule first)."""


def runs(profile: Profile) -> list[RunSpec]:
    """Every blind run of ``profile``: :data:`RUNS` for ``profile.blind.scales`` x ``profile.seeds`` (the Table 1
    runs "DASR D" / "DASR C" at x4 only; "DASR-n25" at the scales CRL-SR also trains). In a ladder profile: the
    joint stages of :data:`LADDER_RUNS` at x4 laddered, for every seed."""
    if profile.ladder:
        return [b for seed in profile.seeds for name in LADDER_RUNS
                for b in ladder(RUN_BUILDERS[name](profile, 4, seed), profile.ladder)]
    out = []
    for scale in profile.blind.scales:
        for seed in profile.seeds:
            for name, build in RUN_BUILDERS.items():
                if name in ("DASR D", "DASR C") and scale != 4:
                    continue
                if name == "DASR-n25" and scale not in profile.crl.scales:
                    continue
                out.append(build(profile, scale, seed))
    return out
