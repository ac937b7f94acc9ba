"""The evolutionary search on a synthetic, model-shaped problem (no training involved)."""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
import pytest

REQUIRES = ("tte_algo",)  # no torch: the search itself needs only tte-ir and numpy

# a missing package: the autouse fixture of conftest.py skips, or fails under TTE_REQUIRE_QEMU=1
with contextlib.suppress(ImportError):
    from tte_algo.search import (
        Contributions,
        Genome,
        JobCache,
        LocalExecutor,
        SearchError,
        evolutionary_search,
        job_key,
        pareto_front,
        random_search,
    )

N_CONVS = 30


def synthetic_problem(seed: int = 0):
    """Gains and costs shaped like the paper's: activation cost falls and weight cost grows with depth."""
    rng = np.random.default_rng(seed)
    grid = [2, 4, 6, 8, 10, 14, 18, 22, 26, 30]
    dacc_bias = {k: 4.0 * (1 - np.exp(-k / 8)) for k in grid}
    dacc_weight = {}
    act_cost, weight_cost = {}, {}
    for conv in range(6, N_CONVS):
        base = rng.uniform(0.0, 1.5) * (1 if conv % 3 else 0.2)  # "depthwise" convs contribute little
        act_cost[conv] = int(60_000 * np.exp(-conv / 8))
        weight_cost[conv] = int(200 * conv**2)
        for r in (0.125, 0.25, 0.5, 1.0):
            dacc_weight[(conv, r)] = base * r**0.4
    contrib = Contributions(N_CONVS, dacc_bias, dacc_weight)

    def memory(genome: Genome) -> int:
        total = 20_000 + 300 * genome.k
        if genome.ratios:
            total += max(act_cost[c] for c, _ in genome.ratios)
        return total + sum(int(weight_cost[c] * r) for c, r in genome.ratios)

    return contrib, memory


def test_every_candidate_respects_bias_coverage_and_budget():
    contrib, memory = synthetic_problem()
    result = evolutionary_search(contrib, memory, 60_000, seed=1)
    assert result.best.feasible and result.best.memory <= 60_000
    for c in result.evaluated:
        if c.genome.ratios:
            assert c.genome.k >= N_CONVS - min(i for i, _ in c.genome.ratios)
    assert result.best.memory == memory(result.best.genome)
    assert result.best.score == pytest.approx(contrib.score(result.best.genome))


def test_beats_random_search_at_equal_evaluations():
    wins = 0
    for seed in range(8):
        contrib, memory = synthetic_problem(seed)
        evo = evolutionary_search(contrib, memory, 60_000, seed=seed, max_evaluations=400)
        rnd = random_search(contrib, memory, 60_000, evaluations=evo.evaluations, seed=seed)
        assert rnd.evaluations == evo.evaluations
        wins += evo.best.score > rnd.best.score
    assert wins >= 6


def test_larger_budget_never_scores_lower():
    contrib, memory = synthetic_problem()
    scores = [evolutionary_search(contrib, memory, b, seed=0).best.score for b in (40_000, 80_000, 200_000)]
    assert scores == sorted(scores)


def test_unmeetable_budget_reports_the_smallest_plan():
    contrib, memory = synthetic_problem()
    with pytest.raises(
        SearchError, match=r"no scheme fits the budget of 1,000 bytes; the smallest plan found needs 20,600 bytes"
    ):
        evolutionary_search(contrib, memory, 1_000, generations=3)


def test_pareto_front_is_monotone():
    contrib, memory = synthetic_problem()
    front = pareto_front(evolutionary_search(contrib, memory, 100_000, seed=2).evaluated)
    assert all(a.memory <= b.memory and a.score < b.score for a, b in itertools.pairwise(front))


def test_contributions_round_trip(tmp_path):
    contrib, _ = synthetic_problem()
    assert Contributions.load(contrib.save(tmp_path / "c.json")) == Contributions(
        contrib.n_convs, contrib.dacc_bias, contrib.dacc_weight, {}
    )
    scheme = Genome(8, ((24, 0.5),)).to_scheme(rounding="nearest")
    assert scheme.n_bias == 8 and scheme.ratio_of(24) == 0.5 and scheme.rounding == "nearest"


def _square(x: int) -> int:
    return x * x


def test_local_executor_and_cache(tmp_path):
    results = dict(LocalExecutor(2).imap_unordered(_square, [1, 2, 3, 4]))
    assert results == {0: 1, 1: 4, 2: 9, 3: 16}
    cache = JobCache(tmp_path / "cache")
    key = job_key(model="abc", k=3)
    assert cache.get(key) is None
    cache.put(key, {"acc": 0.5})
    assert JobCache(tmp_path / "cache").get(key) == {"acc": 0.5}
    assert job_key(k=3, model="abc") == key
