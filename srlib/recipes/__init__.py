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
