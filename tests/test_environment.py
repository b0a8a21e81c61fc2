"""environment.yml must agree with pyproject.toml: it delegates every Python dependency to the package."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_delegates_to_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    # conda provides only the interpreter and pip; everything else comes from pyproject via pip
    assert sorted(d.split("=")[0] for d in conda) == ["pip", "python"]
    extras = sorted(project["optional-dependencies"])
    assert pip == [f"-e .[{','.join(extras)}]"], "environment.yml must install the package with all its extras"
    python = next(d for d in conda if d.startswith("python"))
    version = python.split("=")[1]
    assert project["requires-python"] == f">={version},<3.{int(version.split('.')[1]) + 1}"


def test_torch_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps
