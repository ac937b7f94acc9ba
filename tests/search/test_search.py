"""`tte search` end to end: the searched scheme compiles within its budget and the compiler's plan is
the search's own figure to the byte; the front and plot; unmeetable budgets and bad inputs exit 2."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from .helpers import ANALYZE_ARGS, tte

REQUIRES = ("tte_algo", "torch", "matplotlib")


@pytest.fixture(scope="module")
def analysed(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A contribution table of the tiny model (written by `tte analyze`)."""
    folder = tmp_path_factory.mktemp("analysed")
    r = tte("analyze", str(tiny_model), "-o", "contrib.json", "--workers", "1", "--quiet", *ANALYZE_ARGS, cwd=folder)
    assert r.returncode == 0, r.stderr
    return folder / "contrib.json"


def _plans(model: Path):
    from tte_algo.search import CompiledCost, Genome
    from tte_ir import conv_nodes, load

    graph = load(model)
    cost = CompiledCost(graph)
    n = len(conv_nodes(graph))
    return cost(Genome(0)), cost(Genome(n, tuple((i, 1.0) for i in range(n))))


def test_searched_scheme_compiles_within_budget_to_the_byte(tiny_model: Path, analysed: Path, tmp_path: Path) -> None:
    smallest, full = _plans(tiny_model)
    budget = (smallest.total_bytes + full.total_bytes) // 2
    r = tte("search", str(tiny_model), "--contrib", str(analysed), "--budget", str(budget), "-o", "scheme.json",
            "--front", "front.json", "--plot", "front.png", "--generations", "8", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    scheme = json.loads((tmp_path / "scheme.json").read_text())
    searched = scheme["metadata"]["search"]["plan"]
    assert searched["total_bytes"] <= budget

    # the search prices the smallest-peak schedule: compiled without a budget it is that plan, to the byte
    c = tte("compile", str(tiny_model), "--scheme", "scheme.json", "-o", "train.tte", cwd=tmp_path)
    assert c.returncode == 0, c.stderr
    p = tte("plan", "train.tte", "--json", "--input-outside-arena", cwd=tmp_path)  # the search plans it so
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    for key in ("total_bytes", "trainable_bytes", "io_bytes", "flash_bytes"):
        assert plan[key] == searched[key], key
    assert plan["arena_peak_bytes"] == searched["arena_bytes"]
    # with the budget, the compiler spends what is left of it on fewer recomputed rows, and still fits
    c = tte("compile", str(tiny_model), "--scheme", "scheme.json", "--budget", str(budget), "--input-outside-arena",
            "-o", "fast.tte", cwd=tmp_path)  # fmt: skip
    assert c.returncode == 0, c.stderr
    fast = json.loads(tte("plan", "fast.tte", "--json", "--input-outside-arena", cwd=tmp_path).stdout)
    assert fast["total_bytes"] <= budget and fast["recomputed_macs"] <= plan["recomputed_macs"]

    front = json.loads((tmp_path / "front.json").read_text())
    assert front["format"] == "tte-pareto-front" and front["best"]["total_bytes"] == searched["total_bytes"]
    points = front["front"]
    assert all(a["total_bytes"] <= b["total_bytes"] and a["score"] < b["score"] for a, b in itertools.pairwise(points))
    assert all(pt["total_bytes"] <= budget for pt in points)
    assert (tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mac_budget_and_flash_budget_bind(tiny_model: Path, analysed: Path, tmp_path: Path) -> None:
    from tte_algo.search import Budgets, Contributions, search_scheme
    from tte_ir import load

    graph = load(tiny_model)
    measured = Contributions.load(analysed)
    # every measured weight made worth training, so the unconstrained best trains weights
    contrib = Contributions(measured.n_convs, measured.dacc_bias, {key: 0.05 for key in measured.dacc_weight})
    _, full = _plans(tiny_model)
    free = search_scheme(graph, contrib, Budgets(full.total_bytes), generations=8)
    plan = free.cost(free.result.best.genome)
    assert free.result.best.genome.ratios
    tight = search_scheme(graph, contrib, Budgets(full.total_bytes, macs=plan.macs - 1), generations=8)
    assert tight.cost(tight.result.best.genome).macs < plan.macs
    assert tight.result.best.score < free.result.best.score
    r = tte("search", str(tiny_model), "--contrib", str(analysed), "--budget", str(full.total_bytes),
            "--flash-budget", "1", "-o", "s.json", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2 and "over the flash budget of 1 B" in r.stderr, r.stderr


def test_unmeetable_budget_names_the_smallest_plan(tiny_model: Path, analysed: Path, tmp_path: Path) -> None:
    smallest, _ = _plans(tiny_model)
    budget = smallest.total_bytes - 1
    r = tte(
        "search", str(tiny_model), "--contrib", str(analysed), "--budget", str(budget), "-o", "s.json", cwd=tmp_path
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"no scheme fits the budget of {budget:,} B" in lines[0]
    assert f"the smallest plan (head only) needs {smallest.total_bytes:,} B" in lines[0]
    assert not (tmp_path / "s.json").exists()


def test_search_refusals(tiny_model: Path, analysed: Path, tmp_path: Path) -> None:
    other = json.loads(analysed.read_text())
    other["metadata"]["model_digest"] = "0" * 64
    (tmp_path / "other.json").write_text(json.dumps(other))
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "wrong.json").write_text('{"format": "tte-scheme"}')
    for args, message in [
        (("--contrib", "other.json", "--budget", "1MB"), "measured on another model"),
        (("--contrib", "bad.json", "--budget", "1MB"), "invalid JSON"),
        (("--contrib", "wrong.json", "--budget", "1MB"), "not a contribution table"),
        (("--contrib", "missing.json", "--budget", "1MB"), "cannot read"),
        (("--contrib", str(analysed), "--budget", "lots"), "cannot read 'lots' as a size"),
        (("--contrib", str(analysed), "--budget", "1MB", "--population", "1"), "--population must be at least 2"),
    ]:
        r = tte("search", str(tiny_model), *args, "-o", "s.json", cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "s.json").exists()
