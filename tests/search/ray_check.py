"""The Ray path of `tte analyze` (run by `nox -s ray`, not by `nox -s tests`, whose environment has no Ray):
an analysis through Ray started on this machine (``--address local``) gives the same table as the local
executor, job for job."""

from __future__ import annotations

import json
from pathlib import Path

from .helpers import ANALYZE_ARGS, tte

REQUIRES = ("tte_algo", "torch", "ray")


def test_ray_analysis_equals_the_local_one(tiny_model: Path, tmp_path: Path) -> None:
    tables = {}
    for name, backend in (("ray", ("--address", "local")), ("local", ("--workers", "1"))):
        r = tte("analyze", str(tiny_model), "-o", f"{name}.json", "--cache", f"cache-{name}", "--quiet", *backend,
                *ANALYZE_ARGS, cwd=tmp_path, timeout=600)  # fmt: skip
        assert r.returncode == 0, r.stderr
        table = json.loads((tmp_path / f"{name}.json").read_text())
        assert table["metadata"]["jobs"]["ran"] == table["metadata"]["jobs"]["total"] > 0
        tables[name] = (table["dacc_bias"], table["dacc_weight"])
    assert tables["ray"] == tables["local"]
