"""What is trained: each paper's runs as :class:`srlib.runs.RunSpec` lists (``runs(profile)``), with the losses and
batch constructors they use. What is measured on the trained models lives in :mod:`srlib.methods`; only these
modules (and the architectures, losses, trainer, degradation and sampler) enter a run's training-code fingerprint.
"""

from srlib.recipes import blind_sr, crl_sr, pcl_sr

PAPERS = {"crl-sr": crl_sr, "pcl-sr": pcl_sr, "blind": blind_sr}
"""Recipe module of each paper, by the name ``srlib train --paper`` takes."""


def all_runs(profile, papers=None) -> list:
    """Every run of ``profile`` for ``papers`` (names of :data:`PAPERS`; None: all), in the papers' order."""
    names = list(PAPERS) if papers is None else list(papers)
    unknown = sorted(set(names) - set(PAPERS))
    if unknown:
        raise ValueError(f"unknown paper(s) {unknown}; choose from {list(PAPERS)}")
    return [spec for name in names for spec in PAPERS[name].runs(profile)]


def selected(profile, papers=None, globs=None) -> list:
    """The runs of ``profile`` for ``papers`` whose :attr:`srlib.runs.RunId.slug` matches one of the shell-style
    ``globs`` (default: the profile's ``train_only``; all runs when that is empty), each once: what ``srlib train``
    trains and what notebooks ask for."""
    from srlib.runs import matching

    specs = all_runs(profile, papers)
    picked = [s for g in (globs or profile.train_only or [None]) for s in matching(specs, g)]
    return list({s.id: s for s in picked}.values())
