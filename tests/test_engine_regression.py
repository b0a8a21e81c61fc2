"""CPU runs of the run-spec engine are bit-identical to the trainer before it (issue 9's guarantee).

The sha256 of every parameter and buffer of one smoke run per method, trained by the pre-run-spec code (commit 95c714c:
``methods.crl_sr.train_crl`` & co.) on the embedded training images, recorded on the project's machine kind (x86-64
with AVX-512, 2 threads: oneDNN picks its kernels by ISA and splits reductions by thread, so other CPUs give other,
equally valid bits). The same runs trained now through ``srlib.runs.train_all`` must give the same bytes. A change that
moves training on purpose updates these digests in the same commit and says why:

* issue 10 (commits a21e67f, 1ac7d56): ``crl-f`` moved because CRL-SR's M locations come from the loss generator and
  the CFR's LR term acts on f_sr; ``dasr-cdsr`` and ``cdsr`` because the MoCo momentum follows the stage length (smoke:
  0.9 instead of 0.999). The other five are still the pre-engine trainer's bytes.
"""

import hashlib

import pytest
import torch

from srlib import profiles, recipes
from srlib.runs import select, train_all

EXPECTED = {
    "crl-a": "cd9235ec71c2ca0fc9099ef07579571eb73b6d2e709663278b0780a7546913ba",
    "crl-f": "9dcbf5a1061e2430ea49cbd2290c019bde4327901cd242d1634f9e37d777b74c",  # issue 10
    "rcan": "d42315be0dee8e5b6b5eab4389cfde296f64a42c1eb12f8be92f459ad3f78014",
    "dasr-cdsr": "e3422ac62bd39140f08079f397486a3bc9e025318652a31ad16e9e01744a7287",  # issue 10
    "cdsr": "909ef939a6240fc12063ad538d5c67aeedc2bb09816259b450482f4f2e5fc68f",  # issue 10
    "pcl-base": "06f94971e58d6cc89df5f011333431ec8efb1c702756c8e57b04529f78fcec2a",
    "pcl-control": "cf9c9fc5f914f20c0b17519204d8b5f9229ca31887deb6fb2cb7a34082ff1f52",
    "pcl-pcl": "069ad4729bcbd38cd6a4597436df3ef6ff9a9c7e4ca30cd660cfe68ccecfd613",
}

pytestmark = pytest.mark.same_cpu_kind


def _digest(model) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


SELECT = {
    "crl-a": {"method": "crl-a"},
    "crl-f": {"method": "crl-f"},
    "rcan": {"method": "rcan"},
    "dasr-cdsr": {"method": "dasr", "stage": "joint", "arm": "cdsr-n15-cd"},
    "cdsr": {"method": "cdsr"},
    "pcl-base": {"method": "pcl-base", "network": "EDSR-S"},
    "pcl-control": {"method": "pcl-l1", "network": "EDSR-S"},
    "pcl-pcl": {"method": "pcl-pcl-haar-gen", "network": "EDSR-S"},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    specs = recipes.all_runs(profiles.resolve("smoke"))
    chosen = {name: select(specs, **fields) for name, fields in SELECT.items()}
    assert all(len(v) == 1 for v in chosen.values()), chosen
    results = train_all([v[0] for v in chosen.values()], tmp_path_factory.mktemp("runs"), progress=False)
    return {name: results[v[0].id].model for name, v in chosen.items()}


@pytest.mark.parametrize("name", list(SELECT))
def test_weights_equal_the_pre_engine_trainer(trained, name):
    assert torch.get_num_threads() == 2
    assert _digest(trained[name]) == EXPECTED[name]
