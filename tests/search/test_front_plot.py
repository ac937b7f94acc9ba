"""`tte search --plot`: which evaluated points are feasible, on the Pareto front and chosen, and the PNG."""

from __future__ import annotations

import contextlib
import sys

import pytest

from tests.compiler.nets import residual_net

REQUIRES = ("tte_algo",)  # the search on a compiled model needs tte-ir and numpy, not torch

with contextlib.suppress(ImportError):
    from tte_algo.search import Budgets, Candidate, CompiledCost, Contributions, Genome, SearchError, SearchResult
    from tte_algo.search.driver import front_points, plot_front, search_scheme
    from tte_ir import conv_nodes


def _result(*points: tuple[int, float, int, bool], best: int) -> SearchResult:
    evaluated = tuple(Candidate(Genome(k), score, memory, ok) for k, score, memory, ok in points)
    return SearchResult(evaluated[best], evaluated, len(evaluated))


def test_points_feasible_front_and_chosen():
    result = _result(
        (0, 0.00, 100, True),
        (1, 0.02, 120, True),
        (2, 0.01, 130, True),  # dominated by k=1
        (3, 0.03, 140, True),
        (4, 0.09, 300, False),  # over the budget: never on the front
        (5, 0.02, 150, True),  # dominated by k=3
        best=3,
    )
    points = front_points(result)
    assert sorted(p.candidate.genome.k for p in points) == [0, 1, 2, 3, 4, 5]
    assert [p.candidate.memory for p in points] == sorted(p.candidate.memory for p in points)
    assert [p.candidate.genome.k for p in points if p.on_front] == [0, 1, 3]
    assert [p.candidate.genome.k for p in points if not p.feasible] == [4]
    assert [p.candidate.genome.k for p in points if p.chosen] == [3]
    assert all(p.feasible for p in points if p.on_front)


def test_a_front_of_one_point():
    points = front_points(_result((0, 0.0, 100, True), (1, 0.05, 400, False), (2, 0.07, 500, False), best=0))
    assert [(p.candidate.genome.k, p.on_front, p.chosen) for p in points if p.feasible] == [(0, True, True)]


@pytest.fixture(scope="module")
def problem():
    graph = residual_net(size=16)
    n = len(conv_nodes(graph))
    contrib = Contributions(
        n,
        {k: 0.01 * k for k in range(n + 1)},
        {(i, r): 0.004 * (i + 1) * r**0.5 for i in range(n) for r in (0.25, 0.5, 1.0)},
    )
    cost = CompiledCost(graph)
    smallest = cost(Genome(0)).total_bytes
    full = cost(Genome(n, tuple((i, 1.0) for i in range(n)))).total_bytes
    return graph, contrib, smallest, full


@pytest.mark.parametrize("where", ["between", "smallest"])
def test_searched_front_and_its_png(problem, tmp_path, where):
    pytest.importorskip("matplotlib")
    graph, contrib, smallest, full = problem
    budget = (smallest + full) // 2 if where == "between" else smallest
    outcome = search_scheme(graph, contrib, Budgets(budget), population=12, generations=3)
    points = front_points(outcome.result)
    assert len(points) == len(outcome.result.evaluated)
    assert [p.candidate for p in points if p.on_front] == outcome.result.front
    assert all(p.feasible == (p.candidate.memory <= budget) for p in points)
    (chosen,) = [p.candidate for p in points if p.chosen]
    assert chosen == outcome.result.best and chosen.score == max(p.candidate.score for p in points if p.feasible)
    if where == "smallest":
        assert [p.candidate.genome for p in points if p.on_front] == [Genome(0)]
    png = plot_front(outcome, tmp_path / "plots" / "front.png", "resnet-tiny")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in png.parent.iterdir()] == ["front.png"]  # written atomically, no leftovers


def test_without_matplotlib_one_clear_error(problem, tmp_path, monkeypatch):
    graph, contrib, smallest, _ = problem
    outcome = search_scheme(graph, contrib, Budgets(smallest), population=4, generations=1)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SearchError, match="plotting needs matplotlib"):
        plot_front(outcome, tmp_path / "front.png")
    assert not (tmp_path / "front.png").exists()
