"""``srlib status`` (issue 13): a committed table is stale, with the reason, when the code or data behind it changed.

The results folders here are fabricated: tiny table/figure files and a manifest whose provenance is made by the same
functions the pipeline uses (:func:`srlib.provenance.notebook_provenance`), from the smoke profile's real run specs and
the real notebooks, so that no notebook runs and nothing trains. Code changes are made in a copy of the package and
the notebooks, and ``python -m srlib status`` runs in that copy (cwd and PYTHONPATH point at it), as CI runs it.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import srlib
from srlib import profiles
from srlib import provenance as P
from srlib import status as S
from srlib.recipes import crl_sr
from srlib.runs import select

SMOKE = profiles.resolve("smoke")
REPO = Path(srlib.__file__).parent.parent
CRL_RUNS = ("crl-sr-crl-a-CRLSR-x4-s0", "crl-sr-crl-d-CRLSR-x4-s0")
# what each fabricated notebook "wrote" (the real notebooks' names; contents are placeholders)
OUTPUTS = {
    "00_degradation_explorer": {"tables/bicubic_baseline.csv": "method,psnr\nbicubic,28.43\n",
                                "figures/00_kernels_iso.png": "png 00"},
    "01_cde_training": {"tables/crl_cde_invariance.csv": "model,ratio\nd,0.93\n",
                        "figures/01_embedding_pca.png": "png 01"},
    "06_tables": {"figures/06_bicubic_baseline.png": "png 06"},
}


def _fabricate(root: Path, profile=SMOKE) -> Path:
    """``root/results/smoke`` as the pipeline would leave it after running 00, 01 and 06 on this code."""
    results = root / "results" / profile.name
    runs_of = {"01_cde_training": select(crl_sr.runs(profile), method=("crl-a", "crl-d"))}
    assert sorted(s.id.slug for s in runs_of["01_cde_training"]) == list(CRL_RUNS)
    data = P.data_summary(profile, None)
    manifest = {"git": {"commit": "0" * 40}, "notebooks": {}}
    for name, files in OUTPUTS.items():
        staging = root / "staging" / name
        for rel, text in files.items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).write_text(text)
        runs_file = root / "staging" / f"{name}.provenance.json"
        runs_file.write_text(json.dumps({"runs": {s.id.slug: P.run_record(s, "given images")
                                                  for s in runs_of.get(name, [])}, "devices": ["cpu"]}))
        inputs = P.input_files(results, name)
        prov = P.notebook_provenance(root / "notebooks" / f"{name}.ipynb", profile, data, runs_file, inputs, staging)
        for rel in files:
            (results / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(staging / rel, results / rel)
        manifest["notebooks"][name] = {"status": "ok", "outputs": sorted(files), "provenance": prov}
    (results / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return results


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A copy of the package and the notebooks with a fabricated, current ``results/smoke``."""
    root = tmp_path_factory.mktemp("base")
    shutil.copytree(REPO / "srlib", root / "srlib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (root / "pyproject.toml").write_text("[project]\nname = 'srlib-copy'\n")
    mp = pytest.MonkeyPatch()
    mp.delenv("SRLIB_DATA", raising=False)
    try:
        _fabricate(root)
    finally:
        mp.undo()
    return root


@pytest.fixture
def copy(base, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(base, root)
    return root


def _status(root: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m srlib status --profile smoke`` run in the copy at ``root`` (its srlib, its notebooks)."""
    code = f"import sys, srlib; assert srlib.__file__.startswith({str(root)!r}), srlib.__file__; " \
           "from srlib.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "SRLIB_RUNS": str(root / "runs"), "HOME": str(root)}
    return subprocess.run([sys.executable, "-c", code, "status", "--profile", "smoke", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_unchanged_code_is_current(copy):
    res = _status(copy)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "results/smoke" in res.stdout and "current: no table or figure is stale" in res.stdout
    # the notebooks that never ran for the profile are reported, but make no committed file stale
    assert "never run for this profile" in res.stdout and "02_cfr_training" in res.stdout


def test_training_code_change_fails_the_check_naming_the_stale_tables(copy):
    _edit(copy / "srlib/recipes/crl_sr.py", 'terms = {"l1": F.l1_loss(out["sr"], batch.hr)}',
          'terms = {"l1": 1.0 * F.l1_loss(out["sr"], batch.hr)}')
    res = _status(copy)
    assert res.returncode == 1, res.stdout + res.stderr
    out = res.stdout
    assert f"training code of runs {', '.join(CRL_RUNS)} changed (srlib/recipes/crl_sr.py)" in out
    for rel in OUTPUTS["01_cde_training"]:
        assert f"      {rel}\n" in out + "\n"
    # notebook 06 reads every table, so its figures are stale too; notebook 00 uses no run and stays current
    assert "06_tables: reads the results of notebook 01_cde_training, which is stale" in out
    assert "figures/06_bicubic_baseline.png" in out
    assert "bicubic_baseline.csv" not in out and "00_kernels_iso.png" not in out
    assert "stale results: smoke" in res.stderr
    assert not (copy / "runs").exists()  # nothing trained


def test_table_code_edit_marks_only_its_notebooks_tables_and_retrains_nothing(copy):
    _edit(copy / "srlib/methods/crl_sr.py", "The paper's ablation claims checked", "The ablation claims, checked")
    res = _status(copy, "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    (report,) = json.loads(res.stdout)
    assert set(report["stale"]) == {*OUTPUTS["01_cde_training"], *OUTPUTS["06_tables"]}
    assert report["notebooks"]["01_cde_training"] == [
        "table code of notebook 01_cde_training changed (srlib/methods/crl_sr.py)"]
    assert not any("training code" in r for rs in report["notebooks"].values() for r in rs)  # no run moved
    assert "00_degradation_explorer" not in report["notebooks"]
    assert not (copy / "runs").exists()


def test_a_notebook_cell_edit_marks_that_notebook(copy, monkeypatch):
    monkeypatch.delenv("SRLIB_DATA", raising=False)  # the fabricated results were made with the embedded images
    nb = copy / "notebooks" / "00_degradation_explorer.ipynb"
    _edit(nb, "bicubic_baseline(cfg, data_root=data_root)", "bicubic_baseline(cfg, data_root=data_root)  # same")
    status = S.check("smoke", root=copy)  # in-process (this package, the copy's notebooks)
    assert status.notebooks["00_degradation_explorer"] == (
        "table code of notebook 00_degradation_explorer changed (notebooks/00_degradation_explorer.ipynb)",)
    assert "reads the results of notebook 00_degradation_explorer, which is stale" in status.notebooks["06_tables"]
    for rel in (*OUTPUTS["00_degradation_explorer"], *OUTPUTS["06_tables"]):
        assert rel in status.stale


def test_data_profile_and_edited_files_are_reasons(copy, tmp_path, monkeypatch):
    monkeypatch.delenv("SRLIB_DATA", raising=False)
    results = copy / "results" / "smoke"
    # standard sets in the data root now, where the results were made with the embedded images
    (tmp_path / "data" / "Set5" / "HR").mkdir(parents=True)
    (tmp_path / "data" / "Set5" / "HR" / "a.png").write_bytes(b"not decoded: only hashed")
    status = S.check("smoke", root=copy, data_root=tmp_path / "data")
    assert status.notebooks["00_degradation_explorer"] == (
        f"data differs: made with the embedded images; the data root {tmp_path / 'data'} now provides Set5",)
    # a table changed by hand after its notebook wrote it
    (results / "tables" / "bicubic_baseline.csv").write_text("method,psnr\nbicubic,99\n")
    # a profile whose sizes changed since the results were made
    other = profiles.resolve("smoke")
    from dataclasses import replace

    changed = replace(other, crl=replace(other.crl, iterations=other.crl.iterations + 1), cell_timeout=1)
    monkeypatch.setitem(profiles.PROFILES, "smoke", changed)
    status = S.check("smoke", root=copy)
    assert status.stale["tables/bicubic_baseline.csv"] == (
        "00_degradation_explorer: profile smoke changed since it ran (crl.iterations)",
        "00_degradation_explorer: not the file 00_degradation_explorer wrote (changed after its run)")
    # the crl-sr runs' folder keys moved with the iterations: a configuration change, not a code change
    assert f"runs {', '.join(CRL_RUNS)}: configuration changed" in " ".join(status.notebooks["01_cde_training"])


def test_the_run_selection_is_a_reason_and_the_cell_timeout_is_not(copy, monkeypatch):
    """The notebooks ask for the runs ``train_only`` selects (Session.specs): a changed selection can add rows (a
    claim's arm), so it makes the results stale; papermill's cell timeout changes no output."""
    from dataclasses import replace

    monkeypatch.delenv("SRLIB_DATA", raising=False)
    smoke = profiles.resolve("smoke")
    monkeypatch.setitem(profiles.PROFILES, "smoke", replace(smoke, cell_timeout=smoke.cell_timeout + 1))
    assert not S.check("smoke", root=copy).stale
    monkeypatch.setitem(profiles.PROFILES, "smoke", replace(smoke, train_only=("crl-sr-*",)))
    assert S.check("smoke", root=copy).stale["tables/bicubic_baseline.csv"] == (
        "00_degradation_explorer: profile smoke changed since it ran (train_only)",)


def test_manifest_without_provenance_is_stale_and_an_allowance_accepts_it(copy):
    results = copy / "results" / "smoke"
    manifest = json.loads((results / "manifest.json").read_text())
    for entry in manifest["notebooks"].values():
        del entry["provenance"]
    (results / "manifest.json").write_text(json.dumps(manifest))
    (results / "tables" / "orphan.md").write_text("made by hand")
    status = S.check("smoke", root=copy)
    assert set(status.stale) == {rel for files in OUTPUTS.values() for rel in files} | {"tables/orphan.md"}
    assert status.stale["tables/orphan.md"] == (S.NO_PROVENANCE,)
    assert status.stale["tables/crl_cde_invariance.csv"] == (f"01_cde_training: {S.NO_PROVENANCE}",)
    assert status.failed()
    # the explicit, machine-readable allowance: listed, printed, accepted (exit 0) unless --strict
    (results / S.ALLOWANCE).write_text("Made by commit a1406a4's training code; regenerating takes hours.\n")
    res = _status(copy)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "STALE.md (accepted):\n    Made by commit a1406a4's training code" in res.stdout
    assert "tables/crl_cde_invariance.csv" in res.stdout
    status = S.check("smoke", root=copy)
    assert status.allowance.startswith("Made by commit a1406a4") and not status.failed() and status.failed(strict=True)


def test_committed_profiles_are_the_tracked_manifests():
    assert {"small", "medium"} <= set(S.committed_profiles(REPO))
    assert "smoke" not in S.committed_profiles(REPO)  # git-ignored, never committed
