"""Runs as data (srlib.runs, srlib.recipes): identity, fingerprints, dependency order, one trainer for all.

* A run's training-code fingerprint covers the code that shapes training (recipe, architectures, losses, trainer,
  degradation, sampler) and nothing else: editing a table/claims function leaves every run folder where it was,
  editing a recipe's loss moves the runs of that recipe (checked on copies of the package in subprocesses).
* The runs of a profile are unique, parents (DASR's warm-up, PCL's base) are trained first and once.
* ``srlib train`` trains what is missing and loads what exists; ``--list`` gives every run's FLOPs.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import srlib
from srlib import profiles, recipes
from srlib.runs import RunId, ordered, run_info, select, train_all
from srlib.train_command import listing, selected_runs

SMOKE = profiles.resolve("smoke")
FINGERPRINTS = """
import json, sys
import srlib
from srlib import profiles, recipes
assert srlib.__file__.startswith(sys.argv[1]), srlib.__file__
specs = recipes.all_runs(profiles.resolve("smoke"))
print(json.dumps({s.id.slug: str(s.folder("runs", "data")) for s in specs}))
"""


def _folders(package_root: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", FINGERPRINTS, str(package_root)], capture_output=True, text=True,
                         check=True, cwd=package_root, env={"PYTHONPATH": str(package_root), "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout)


def _copy(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(Path(srlib.__file__).parent, root / "srlib", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_fingerprints_cover_training_code_only(tmp_path):
    base = _folders(_copy(tmp_path, "base"))
    assert len(base) == len(set(base.values())) == len(recipes.all_runs(SMOKE))
    # analysis code: a docstring and the body of a claims function of every paper
    tables = _copy(tmp_path, "tables")
    _edit(tables / "srlib/methods/crl_sr.py", "The paper's ablation claims checked", "The ablation claims, checked")
    _edit(tables / "srlib/methods/blind_sr.py", 'pooled = np.nanmean(cells)', 'pooled = np.nanmedian(cells)')
    _edit(tables / "srlib/claims.py", "if effect.low > 0:", "if effect.low >= 0:")
    _edit(tables / "srlib/methods/pcl_sr.py", '"""Whether two models hold', '"""True when two models hold')
    _edit(tables / "srlib/evaluate.py", "def bicubic_upscaler(", "def bicubic_upscaler(  ")
    assert _folders(tables) == base
    # training code: CRL-SR's loss moves the CRL-SR runs and nothing else
    recipe = _copy(tmp_path, "recipe")
    _edit(recipe / "srlib/recipes/crl_sr.py", 'terms = {"l1": F.l1_loss(out["sr"], batch.hr)}',
          'terms = {"l1": 1.0 * F.l1_loss(out["sr"], batch.hr)}')
    moved = _folders(recipe)
    assert {k for k in base if moved[k] != base[k]} == {k for k in base if k.startswith("crl-sr-")}
    # the trainer shapes every run
    trainer = _copy(tmp_path, "trainer")
    _edit(trainer / "srlib/train.py", "def _optimised_sum(", "def _optimised_sum(  ")
    assert all(v != base[k] for k, v in _folders(trainer).items())


def test_profile_runs_are_unique_and_parents_come_first():
    specs = recipes.all_runs(SMOKE)
    ids = [s.id for s in specs]
    assert len(ids) == len(set(ids))
    order = ordered(specs)
    slugs = [s.id.slug for s in order]
    for s in order:
        if s.parent is not None:
            assert slugs.index(s.parent.id.slug) < slugs.index(s.id.slug)
    # PCL's arms share their base; DASR's warm-ups are separate runs
    assert len([s for s in order if s.id.method == "pcl-base"]) == len({(s.id.network, s.id.seed) for s in order
                                                                           if s.id.paper == "pcl-sr"})
    assert {s.id.stage for s in order if s.id.method == "dasr"} == {"warmup", "joint"}
    assert select(specs, method=("crl-a", "crl-f"), seed=0) == [s for s in specs if s.id.method in ("crl-a", "crl-f")]


def test_precision_and_world_size_are_part_of_a_run():
    (spec,) = select(recipes.crl_sr.runs(SMOKE), method="crl-a")
    bf16, ddp = spec.with_(precision="bf16"), spec.with_(world_size=2)
    folders = {s.folder("runs", "d") for s in (spec, bf16, ddp)}
    assert len(folders) == 3
    (dasr,) = select(recipes.blind_sr.runs(SMOKE), method="dasr", stage="joint", arm="dasr-n0-cd")
    assert dasr.with_(precision="bf16").parent.config.precision == "bf16"


def test_train_all_trains_missing_runs_once_and_writes_run_json(tmp_path):
    specs = select(recipes.pcl_sr.runs(SMOKE), network="EDSR-S", method=("pcl-l1", "pcl-pcl-haar-gen"))
    first = train_all(specs, tmp_path, progress=False)
    assert set(first) == {s.id for s in specs}  # the base is trained (once) but not returned
    bases = [p for p in tmp_path.iterdir() if p.name.startswith("pcl-sr-pcl-base-EDSR-S")]
    assert len(bases) == 1 and (bases[0] / "checkpoint.pt").exists()
    info = run_info(first[specs[0].id].run_dir)
    assert info["id"] == {"paper": "pcl-sr", "method": "pcl-l1", "network": "EDSR-S", "scale": 4, "seed": 0,
                          "stage": "finetune", "arm": "", "rung": ""}
    assert info["arch"]["name"] == "EDSR" and info["parent_folder"] == bases[0].name
    again = train_all(specs, tmp_path, progress=False)
    assert all(r.steps_run == 0 for r in again.values())
    for k in first:
        a, b = first[k].model.state_dict(), again[k].model.state_dict()
        assert all(torch.equal(a[n], b[n]) for n in a)
    assert again.one(method="pcl-l1").run_dir == first[specs[0].id].run_dir
    with pytest.raises(KeyError, match="2 runs match"):
        again.one(network="EDSR-S")


def test_bf16_run_trains_and_differs_from_fp32(tmp_path):
    (spec,) = select(recipes.crl_sr.runs(SMOKE), method="crl-a")
    fp32 = next(iter(train_all([spec], tmp_path, progress=False).values()))
    bf16 = next(iter(train_all([spec.with_(precision="bf16")], tmp_path, progress=False).values()))
    assert fp32.run_dir != bf16.run_dir and run_info(bf16.run_dir)["precision"] == "bf16"
    w32, w16 = fp32.model.state_dict(), bf16.model.state_dict()
    assert all(w16[k].dtype == torch.float32 for k in w16)  # master weights stay float32
    assert any(not torch.equal(w32[k], w16[k]) for k in w32)
    close = [torch.allclose(w32[k], w16[k], atol=5e-3) for k in w32]
    assert all(close)  # 12 steps apart by bf16 rounding only


def test_train_command_selects_by_glob_and_lists_flops():
    specs = selected_runs("smoke", papers=["blind"], only=["blind-cdsr-*"])
    assert [s.id.slug for s in specs] == ["blind-cdsr-CDSR-cdsr-n15-cd-x4-s0-joint"]
    assert selected_runs("smoke", only=["nothing-*"]) == []
    assert {s.config.precision for s in selected_runs("smoke", only=["crl-sr-crl-a-*"], precision="bf16")} == {"bf16"}
    table = listing(selected_runs("smoke", only=["crl-sr-crl-a-*", "crl-sr-crl-f-*"]))
    a, f = table.set_index("run")["GFLOP/step"].loc[["crl-sr-crl-a-CRLSR-x4-s0", "crl-sr-crl-f-CRLSR-x4-s0"]]
    assert 0 < a < f  # the full model adds E_h, E_F, D and the projections to the same SR network
    assert (table.PFLOP > 0).all()


def test_run_id_slug_names_everything():
    rid = RunId("blind", "dasr", "DASR", 4, 1, "joint", "cdsr-n15-cd")
    assert rid.slug == "blind-dasr-DASR-cdsr-n15-cd-x4-s1-joint"
    assert RunId("crl-sr", "crl-f", "CRLSR", 2, 0).slug == "crl-sr-crl-f-CRLSR-x2-s0"
    assert rid.matches(method="dasr", seed=(0, 1)) and not rid.matches(stage="warmup")
