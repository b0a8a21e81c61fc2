"""A notebook's set-up in one call: the profile, where results and runs go, the data root, widgets or static figures,
and the profile's runs of a paper on demand.

    from srlib.session import setup
    nb = setup(profile, data_root, results_dir, interactive, show="crl")
    trained = nb.train("crl-sr", method=("crl-a", "crl-d"))   # {RunId: TrainResult}, trains only what is missing
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from srlib import data as sdata
from srlib import profiles
from srlib.profiles import Profile
from srlib.runs import Results, select, train_all


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when present, else the CPU; otherwise the device named (a clear error for CUDA without one)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: this machine has no CUDA device (torch.cuda.is_available() is False)")
    return device


@dataclass(frozen=True)
class Session:
    """What every notebook cell needs.

    Attributes:
        profile: the resolved :class:`srlib.profiles.Profile`.
        results, figures, tables: ``results/<profile>/`` (or the pipeline's staging folder) and its sub-folders.
        runs: the runs folder (:func:`srlib.profiles.runs_dir`).
        data_root: the standard test/training sets' root, or None (embedded images).
        interactive: live widgets (True) or static figures (False).
        device: where missing runs train (``auto``: CUDA when present).
    """

    profile: Profile
    results: Path
    runs: Path
    data_root: Path | None
    interactive: bool
    device: torch.device

    @property
    def figures(self) -> Path:
        return self.results / "figures"

    @property
    def tables(self) -> Path:
        return self.results / "tables"

    def specs(self, paper: str, **fields) -> list:
        """The profile's runs of ``paper`` (``"crl-sr"``, ``"pcl-sr"``, ``"blind"``) whose ids match ``fields``: those
        ``srlib train`` trains (:func:`srlib.recipes.selected`: the profile's ``train_only`` when set)."""
        from srlib.recipes import PAPERS, selected

        if paper not in PAPERS:
            raise ValueError(f"unknown paper {paper!r}; choose from {list(PAPERS)}")
        return select(selected(self.profile, [paper]), **fields)

    def train(self, paper: str, progress: bool = True, **fields) -> Results:
        """Load the finished runs of ``paper`` matching ``fields`` and train the missing ones (``srlib train`` trains
        them outside the notebook): ``{RunId: TrainResult}``. Under the pipeline the runs returned are recorded for the
        manifest's provenance (:func:`srlib.provenance.record_runs`)."""
        return self._load(self.specs(paper, **fields), progress)

    def parents(self, paper: str, progress: bool = True, **fields) -> Results:
        """The runs that the profile's runs of ``paper`` matching ``fields`` start from (PCL-SR's pretrained bases,
        DASR's encoder warm-up), loaded or trained like :meth:`train`."""
        return self._load(list({s.parent.id: s.parent for s in self.specs(paper, **fields)
                                if s.parent is not None}.values()), progress)

    def _load(self, specs: list, progress: bool) -> Results:
        from srlib.provenance import record_runs

        results = train_all(specs, self.runs, self.data_root, self.device, progress)
        record_runs(specs, results, self.device)
        return results


def setup(profile: str | Profile | None = None, data_root: str | os.PathLike | None = None,
          results_dir: str | os.PathLike | None = None, interactive: bool | str | None = None,
          show: str | None = None, device: str = "auto") -> Session:
    """Resolve a notebook's parameters (None: ``$SRLIB_PROFILE``, ``$SRLIB_DATA``, ``$SRLIB_RESULTS``,
    ``$SRLIB_INTERACTIVE``), create the output folders, print one line saying what was resolved and, with ``show``
    (``"crl"``, ``"pcl"`` or ``"blind"``), the profile's sizes of that part."""
    from srlib.widgets import resolve_interactive

    prof = profiles.resolve(profile)
    session = Session(prof, profiles.results_dir(prof, results_dir), profiles.runs_dir(prof),
                      sdata.data_root(data_root), resolve_interactive(interactive), resolve_device(device))
    print(f"profile {prof.name}; seeds {prof.seeds}; precision {prof.precision}; results in {session.results}; "
          f"runs in {session.runs}; data root {session.data_root}; interactive {session.interactive}; "
          f"device {session.device}")
    if show:
        print(getattr(prof, show))
    return session
