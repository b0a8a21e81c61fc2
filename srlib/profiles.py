"""Run profiles: the sizes every notebook reads (DESIGN.md, "Profiles"), and where a run's files go.

The same code runs in every profile; only sizes change. A notebook's ``parameters`` cell holds ``profile = None``;
the next cell calls :func:`resolve`, which falls back to the ``SRLIB_PROFILE`` environment variable (default
``small``), so papermill injects ``-p profile smoke`` and nbval runs with ``SRLIB_PROFILE=smoke``.

| profile | budget (2 CPU cores)                         | purpose                                     |
| ------- | -------------------------------------------- | ------------------------------------------- |
| smoke   | every notebook < 60 s, whole pipeline < 5 min | the pipeline runs end to end (CI, nbval)    |
| small   | whole pipeline <= 30 min                      | every table regenerated with tiny models    |
| medium  | a few hours, >= 3 seeds                       | checks the direction of each paper claim    |
| paper   | GPU                                          | the papers' own sizes and schedules         |
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class CRLSizes:
    """CRL-SR and its RCAN baseline in one profile (paper sizes in the ``paper`` profile).

    Attributes:
        scales: scales a model is trained for (table cells of other scales keep the paper value only).
        n_feats, n_blocks: width and residual blocks of the encoders E_l / E_h (paper: 64, 15).
        n_detail_blocks: residual blocks of the detail generator G; n_blocks_f: of the CFR feature net E_F.
        proj_dim: S, the projection dimension (paper: 256); m_locations: M, locations per image in the losses.
        iterations, batch_size, lr_patch: training length, patches per step, LR patch size (paper: 32 x 48x48).
        lr: Adam learning rate (paper: 1e-4, halved every 200 epochs; here halved every third of the run).
        lambda_cde, lambda_c, lambda_hr: loss weights of CDE, the conditional/InfoNCE term and L_HR (paper: lost).
        rcan_groups, rcan_blocks: size of the non-blind RCAN baseline (paper: 10 x 20).
    """

    scales: tuple[int, ...]
    n_feats: int
    n_blocks: int
    n_detail_blocks: int
    n_blocks_f: int
    proj_dim: int
    m_locations: int
    iterations: int
    batch_size: int
    lr_patch: int
    lr: float = 1e-4
    lambda_cde: float = 0.01
    lambda_c: float = 0.01
    lambda_hr: float = 1.0
    rcan_groups: int = 2
    rcan_blocks: int = 4


@dataclass(frozen=True)
class PCLSizes:
    """PCL-SR's runs in one profile (notebooks 03, 05): base networks, the pretrain / fine-tune schedule and the
    discriminator (paper sizes in the ``paper`` profile).

    Each run pretrains a base network with L1 (standing in for the official checkpoints we cannot download), then
    fine-tunes copies of it for ``finetune_iterations`` in each arm (L1 control, PCL as released, PCL, the Table 4
    configurations).

    Attributes:
        edsr_feats, edsr_blocks: EDSR-S (paper: 64, 16).
        rcan_feats, rcan_groups, rcan_blocks: RCAN (paper: 64, 10 x 20).
        pretrain_iterations, finetune_iterations: the two stages (official fine-tuning: 600 k iterations).
        batch_size, lr_patch: patches per step and LR patch size (official: 16 x 48, HR 192).
        pretrain_lr: Adam learning rate of the base, halved every third of the stage.
        finetune_lr: constant fine-tuning learning rate of the SR network and the discriminator (official: 5e-5).
        alpha: weight of L_CL in L_SR = L1 + alpha L_CL with L1 on the 0..255 scale (paper Eq. 11: 1; the released
            RCAN script: 5); on our [0, 1] images the term is weighted alpha / 255 (``srlib.methods.pcl_sr.RGB_RANGE``).
        d_channels: width of the discriminator's first block (official: 64; :class:`PCLDiscriminator`).
        taps: discriminator blocks whose features form the embedding (paper: the first four, (0, 2, 4, 6)).
        n_sharp, n_blur: sharpened positives and blurred negatives per sample (official: 3 and 3).
        vgg_layers: VGG16 ReLU outputs of the VCL ablation (Table 4 config 2; the paper does not name them).
        networks: base networks of notebook 03 (Table 4 always uses RCAN, the paper's backbone there).
    """

    edsr_feats: int
    edsr_blocks: int
    rcan_feats: int
    rcan_groups: int
    rcan_blocks: int
    pretrain_iterations: int
    finetune_iterations: int
    batch_size: int
    lr_patch: int
    pretrain_lr: float = 4e-4
    finetune_lr: float = 1e-4
    alpha: float = 1.0
    d_channels: int = 16
    taps: tuple[int, ...] = (0, 2, 4, 6)
    n_sharp: int = 3
    n_blur: int = 3
    vgg_layers: tuple[str, ...] = ("relu1_2", "relu2_2")
    networks: tuple[str, ...] = ("EDSR-S", "RCAN")


@dataclass(frozen=True)
class BlindSizes:
    """DASR and CDSR in one profile (notebook 04; the DASR rows of notebook 02's tables).

    Attributes:
        scales: scales trained (table cells of other scales keep the paper value only).
        n_feats: SR trunk width (paper: 64); enc_feats: degradation-encoder width (paper: 64).
        dasr_groups, dasr_blocks: DASR's DA groups x DA blocks (paper: 5 x 5).
        cdsr_blocks: CDSR's RRDB-SFT blocks (paper: 10); codebook_size: CSC entries L (paper: 1024).
        queue_size: MoCo queue length K (paper: 8192; a multiple of batch_size).
        warmup_iterations: DASR's encoder-only contrastive stage (paper: 100 epochs ~ 97 k iterations; CDSR: none).
        iterations: joint L1 + contrastive stage; batch_size, lr_patch: images per step (two LR patches each) and
            LR patch size (paper: 32 x 48).
        lr: Adam learning rate of the joint stage, halved every third of it (paper: 1e-4, halved every 125 epochs);
            warmup_lr: of the encoder stage (paper: 1e-3).
        eval_sets: test sets of notebook 04's tables (None: the profile's ``eval_sets``).
        eval_kernels: CDSR test kernels evaluated per setting (None: the profile's ``max_settings``).
    """

    scales: tuple[int, ...]
    n_feats: int
    enc_feats: int
    dasr_groups: int
    dasr_blocks: int
    cdsr_blocks: int
    codebook_size: int
    queue_size: int
    warmup_iterations: int
    iterations: int
    batch_size: int
    lr_patch: int
    lr: float = 4e-4
    warmup_lr: float = 1e-3
    eval_sets: tuple[str, ...] | None = None
    eval_kernels: int | None = None


@dataclass(frozen=True)
class Profile:
    """Sizes of one run.

    Attributes:
        name: profile name.
        eval_sets: standard test sets to evaluate on, read from the data root (``SRLIB_DATA``); when none of them
            is present the embedded test set (scikit-image images) stands in.
        eval_scales: upscaling factors evaluated.
        max_images: images per test set (the first ones in sorted order); ``None`` = all.
        seeds: training/evaluation seeds; every table cell reports mean and spread over them.
        cell_timeout: papermill's per-cell timeout in seconds.
        max_settings: test settings evaluated per table (evenly spaced over the table's settings, first and last
            included); None = all. Keeps the smoke profile within its budget.
        train_sets: training HR sets read from the data root (T91 + BSD200 = the classic "291" set); the embedded
            training set stands in when none is present.
        crl: sizes of CRL-SR (notebooks 01, 02, 05).
        pcl: sizes of PCL-SR (notebooks 03, 05).
        blind: sizes of DASR and CDSR (notebooks 02, 04).
        precision: training precision of every run (``"fp32"``; ``"bf16"``: autocast with float32 master weights,
            :mod:`srlib.train`); ``srlib train --precision`` overrides it. Evaluation is always float32.
        train_only: globs of run folder names (:attr:`srlib.runs.RunId.slug`) that ``srlib train`` trains when no
            ``--only`` is given and that notebooks ask for (:meth:`srlib.session.Session.specs`; empty: every run
            of the profile).
        ladder: budgets (stable-phase steps) of a budget-ladder profile: each recipe then lists, instead of its
            table runs, the arms of its paper's claims as ladder branches (:func:`srlib.runs.ladder`), and the
            pipeline runs only ``notebooks``. Empty: the profile trains each run on its own schedule.
        notebooks: name prefixes of the notebooks ``make reproduce`` runs for this profile (None: all).
    """

    name: str
    eval_sets: tuple[str, ...]
    eval_scales: tuple[int, ...]
    max_images: int | None
    seeds: tuple[int, ...]
    cell_timeout: int
    max_settings: int | None
    train_sets: tuple[str, ...]
    crl: CRLSizes
    pcl: PCLSizes
    blind: BlindSizes
    precision: str = "fp32"
    train_only: tuple[str, ...] = ()
    ladder: tuple[int, ...] = ()
    notebooks: tuple[str, ...] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


_TRAIN_291 = ("T91", "BSD200")
_STANDARD = ("Set5", "Set14", "B100")

PROFILES = {
    "smoke": Profile(
        "smoke", ("Set5",), (4,), 2, (0,), 300, 2, ("embedded-train",),
        CRLSizes((4,), 16, 2, 1, 1, 32, 32, iterations=12, batch_size=4, lr_patch=16, lr=4e-4,
                 rcan_groups=1, rcan_blocks=1),
        PCLSizes(16, 1, 16, 1, 1, pretrain_iterations=10, finetune_iterations=4, batch_size=2, lr_patch=16,
                 d_channels=8, n_sharp=1, n_blur=1, vgg_layers=("relu1_2",)),
        BlindSizes((4,), 16, 16, 1, 1, 1, 16, 8, warmup_iterations=4, iterations=8, batch_size=2, lr_patch=24),
    ),
    "small": Profile(
        "small", _STANDARD, (2, 3, 4), None, (0,), 1800, None, _TRAIN_291,
        CRLSizes((4,), 32, 4, 2, 2, 64, 128, iterations=300, batch_size=8, lr_patch=24, lr=4e-4),
        # VGG16 to relu2_2 on 72 patches per step costs ~1.5 s on 2 cores: the VCL ablation taps relu1_2 only
        PCLSizes(32, 4, 32, 2, 4, pretrain_iterations=300, finetune_iterations=100, batch_size=8, lr_patch=24,
                 vgg_layers=("relu1_2",)),
        # notebook 04 evaluates 3 of the 9 CDSR test kernels on Set5 and Set14 (~5 min in all)
        BlindSizes((4,), 32, 32, 2, 2, 2, 128, 256, warmup_iterations=100, iterations=250, batch_size=8, lr_patch=24,
                   eval_sets=("Set5", "Set14"), eval_kernels=3),
    ),
    "medium": Profile(
        "medium", _STANDARD, (2, 3, 4), None, (0, 1, 2), 4 * 3600, None, _TRAIN_291,
        # small's networks trained 2.7x longer, three seeds: the 18 Table 1 runs take ~40 min on 2 cores
        CRLSizes((4,), 32, 4, 2, 2, 64, 128, iterations=800, batch_size=8, lr_patch=24, lr=4e-4),
        # small's networks, a longer pretraining and fine-tuning, three seeds
        # three seeds of EDSR-S base / control / released / +PCL (~20 min on 2 cores)
        PCLSizes(32, 4, 32, 2, 4, pretrain_iterations=800, finetune_iterations=400, batch_size=8, lr_patch=24,
                 vgg_layers=("relu1_2",), networks=("EDSR-S",)),
        # small's networks trained longer, three seeds; 5 of the 9 CDSR test kernels on Set5 and Set14 (~30 min)
        BlindSizes((4,), 32, 32, 2, 2, 2, 128, 256, warmup_iterations=200, iterations=500, batch_size=8, lr_patch=24,
                   eval_sets=("Set5", "Set14"), eval_kernels=5),
        # bf16 since 2026-12-02: 2-3x faster steps on this CPU (benchmarks/results/training_cpu_2cores.md) and
        # within 0.01 dB of fp32 on a `large` run (benchmarks/results/bf16_parity_large.md)
        precision="bf16",
    ),
    # Claims against compute on 2 CPU cores (notebook 07): small's networks in bf16, three seeds, each claim's arms
    # laddered from one warmup-stable-decay trajectory per arm and seed (budgets 100, 400, 1,600 steps, 16x, each
    # cooled down over a tenth of its budget, EMA weights; PCL's base pretrained 3,000 steps first). Measured
    # 2026-12-02, summed run time of single-thread processes sharing the 2 cores (steps' `seconds` in each run's
    # losses.csv): `srlib train --profile large --paper P` CRL-SR 42 min (variants a, b, d, f 32 min; c 10 min),
    # blind 53 min, PCL-SR 52 min; notebook 07 then measures every rung in 14 min.
    "large": Profile(
        "large", _STANDARD, (4,), None, (0, 1, 2), 4 * 3600, None, _TRAIN_291,
        CRLSizes((4,), 32, 4, 2, 2, 64, 128, iterations=1600, batch_size=8, lr_patch=24, lr=4e-4),
        PCLSizes(32, 4, 32, 2, 4, pretrain_iterations=3000, finetune_iterations=1600, batch_size=8, lr_patch=24,
                 vgg_layers=("relu1_2",), networks=("EDSR-S",)),
        BlindSizes((4,), 32, 32, 2, 2, 2, 128, 256, warmup_iterations=400, iterations=1600, batch_size=8, lr_patch=24,
                   eval_sets=("Set5", "Set14"), eval_kernels=3),
        precision="bf16",
        ladder=(100, 400, 1600),
        notebooks=("07",),
    ),
    "paper": Profile(
        "paper", (*_STANDARD, "Urban100", "Manga109"), (2, 3, 4), None, (0, 1, 2), 48 * 3600, None, ("DF2K",),
        CRLSizes((2, 3, 4), 64, 15, 4, 4, 256, 256, iterations=300_000, batch_size=32, lr_patch=48,
                 rcan_groups=10, rcan_blocks=20),
        PCLSizes(64, 16, 64, 10, 20, pretrain_iterations=300_000, finetune_iterations=600_000, batch_size=16,
                 lr_patch=48, pretrain_lr=1e-4, finetune_lr=5e-5, d_channels=64,
                 vgg_layers=("relu1_2", "relu2_2", "relu3_3", "relu4_3")),
        BlindSizes((2, 3, 4), 64, 64, 5, 5, 10, 1024, 8192, warmup_iterations=97_000, iterations=485_000,
                   batch_size=32, lr_patch=48, lr=1e-4),
    ),
    # One current data-centre GPU (estimates from srlib.flops at 100 TFLOP/s sustained: `srlib train --profile gpu
    # --list`): the papers' networks at x4, each key run about an hour: CRL-SR (f) 100 k steps x 2.46 TFLOP = 0.7 h,
    # RCAN 50 k x 7.0 = 1.0 h, DASR 20 k warm-up + 100 k joint x 2.0 = 0.6 h, CDSR 80 k x 4.1 = 0.9 h, PCL EDSR-S
    # 200 k pretraining x 0.44 = 0.25 h + 200 k fine-tuning x 1.38 = 0.8 h per contrastive arm. bf16, DF2K streamed.
    "gpu": Profile(
        "gpu", (*_STANDARD, "Urban100", "Manga109"), (4,), None, (0, 1, 2), 48 * 3600, None, ("DF2K",),
        CRLSizes((4,), 64, 15, 4, 4, 256, 256, iterations=100_000, batch_size=32, lr_patch=48, rcan_groups=10,
                 rcan_blocks=20),
        PCLSizes(64, 16, 64, 10, 20, pretrain_iterations=200_000, finetune_iterations=200_000, batch_size=16,
                 lr_patch=48, pretrain_lr=1e-4, finetune_lr=5e-5, d_channels=64, networks=("EDSR-S",),
                 vgg_layers=("relu1_2", "relu2_2", "relu3_3", "relu4_3")),
        BlindSizes((4,), 64, 64, 5, 5, 10, 1024, 8192, warmup_iterations=20_000, iterations=100_000,
                   batch_size=32, lr_patch=48, lr=1e-4),
        precision="bf16",
    ),
    # ~5 minutes on one GPU: 200 steps of one run per method at the papers' sizes (bf16); `srlib train --profile
    # gpu-check` prints steps/s, achieved TFLOP/s and peak memory per run. Not for tables.
    "gpu-check": Profile(
        "gpu-check", ("Set5",), (4,), None, (0,), 3600, None, ("DF2K",),
        CRLSizes((4,), 64, 15, 4, 4, 256, 256, iterations=200, batch_size=32, lr_patch=48, rcan_groups=10,
                 rcan_blocks=20),
        PCLSizes(64, 16, 64, 10, 20, pretrain_iterations=200, finetune_iterations=200, batch_size=16, lr_patch=48,
                 pretrain_lr=1e-4, finetune_lr=5e-5, d_channels=64, networks=("EDSR-S",)),
        BlindSizes((4,), 64, 64, 5, 5, 10, 1024, 8192, warmup_iterations=100, iterations=200, batch_size=32,
                   lr_patch=48, lr=1e-4),
        precision="bf16",
        train_only=("crl-sr-crl-f-*", "crl-sr-rcan-*", "pcl-sr-pcl-pcl-haar-gen-EDSR-S-*", "blind-dasr-*-dasr-n0-cd-*",
                    "blind-cdsr-*"),
    ),
}

DEFAULT_PROFILE = "small"


def resolve(profile: str | Profile | None = None) -> Profile:
    """The :class:`Profile` named ``profile``, else ``$SRLIB_PROFILE``, else ``small``."""
    if isinstance(profile, Profile):
        return profile
    name = profile or os.environ.get("SRLIB_PROFILE") or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {sorted(PROFILES)}")
    return PROFILES[name]


def subsample(items: list, n: int | None) -> list:
    """``n`` evenly spaced items (first and last included); all of them when ``n`` is None or >= len(items)."""
    if n is None or n >= len(items):
        return list(items)
    if n == 1:
        return [items[0]]
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def repo_root(start: Path | None = None) -> Path | None:
    """The srlib checkout containing ``start`` (default: the working directory), found by walking up to the folder
    that holds both ``pyproject.toml`` and ``notebooks/``; ``None`` outside a checkout."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "notebooks").is_dir():
            return d
    return None


def results_dir(profile: str | Profile | None = None, override: str | os.PathLike | None = None) -> Path:
    """Folder a run writes to: ``override`` > ``$SRLIB_RESULTS`` > ``<checkout>/results/<profile>``.

    Creates ``tables/`` and ``figures/`` inside it.
    """
    prof = resolve(profile)
    if override is None and os.environ.get("SRLIB_RESULTS"):
        override = os.environ["SRLIB_RESULTS"]
    if override is not None:
        out = Path(override)
    else:
        root = repo_root() or Path.cwd()
        out = root / "results" / prof.name
    for sub in ("tables", "figures"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    return out


def runs_dir(profile: str | Profile | None = None, override: str | os.PathLike | None = None) -> Path:
    """Training runs (checkpoints, loss logs), shared by all notebooks of a profile and reused when the configuration
    and code are unchanged: ``override`` > ``$SRLIB_RUNS/<profile>`` > ``<checkout>/.runs/<profile>`` >
    ``~/.cache/srlib/runs/<profile>``."""
    prof = resolve(profile)
    if override is None and os.environ.get("SRLIB_RUNS"):
        override = Path(os.environ["SRLIB_RUNS"]) / prof.name
    if override is None:
        root = repo_root()
        override = (root / ".runs" if root else Path.home() / ".cache" / "srlib" / "runs") / prof.name
    path = Path(override)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Cache of generated test LR images.

    ``override`` > ``$SRLIB_CACHE`` > ``<checkout>/.cache`` > ``~/.cache/srlib``.
    """
    if override is None:
        override = os.environ.get("SRLIB_CACHE")
    if override is None:
        root = repo_root()
        override = root / ".cache" if root else Path.home() / ".cache" / "srlib"
    path = Path(override)
    path.mkdir(parents=True, exist_ok=True)
    return path
