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
    """

    name: str
    eval_sets: tuple[str, ...]
    eval_scales: tuple[int, ...]
    max_images: int | None
    seeds: tuple[int, ...]
    cell_timeout: int

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "smoke": Profile("smoke", ("Set5",), (4,), 2, (0,), 300),
    "small": Profile("small", ("Set5", "Set14", "B100"), (2, 3, 4), None, (0,), 1800),
    "medium": Profile("medium", ("Set5", "Set14", "B100"), (2, 3, 4), None, (0, 1, 2), 4 * 3600),
    "paper": Profile("paper", ("Set5", "Set14", "B100", "Urban100", "Manga109"), (2, 3, 4), None, (0, 1, 2), 48 * 3600),
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
