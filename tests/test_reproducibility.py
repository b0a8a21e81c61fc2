"""Same seed, same CSV bytes: two independent trainings of a (smoke-size) CRL-SR model evaluated into tables."""

from dataclasses import replace

from srlib import data, profiles, tables
from srlib.degradation import preset
from srlib.evaluate import measure, model_upscaler, paper_table
from srlib.recipes import crl_sr as crl
from srlib.runs import train_all


def _table_bytes(tmp_path, name):
    cfg = profiles.resolve("smoke")
    cfg = replace(cfg, crl=replace(cfg.crl, iterations=4))
    (result,) = train_all([crl.variant_run("f", cfg, 4, 0)], tmp_path / name / "runs", progress=False).values()
    model = result.model
    test_set = data.embedded_set("test").subset(1)
    measured = measure({"CRL-SR": {0: model_upscaler(model)}}, [test_set], preset("crl-sv", 4)[2:],
                       cache=tmp_path / name / "cache")
    path = tables.save_table(paper_table(measured, "CRL-SR", "Table 2"), tmp_path / name / "t.csv")
    return path.read_bytes()


def test_same_seed_gives_the_same_csv_bytes(tmp_path):
    first = _table_bytes(tmp_path, "one")
    assert first == _table_bytes(tmp_path, "two")
    assert b"CRL-SR,embedded-test-first1,4,ramp0.2-4-n5-50,psnr," in first
