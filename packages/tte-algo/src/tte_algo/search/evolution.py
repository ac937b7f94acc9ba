"""Evolutionary search of sparse-update schemes under a memory budget (paper §2.2, Eq. 5).

The search maximises the contribution estimate ``dacc_bias[k] + sum_i dacc_weight[i, r_i]`` over
genomes ``(k, {conv i: ratio r_i})`` subject to ``memory(scheme) <= budget`` (and optionally a flash
and a MAC budget), where ``memory`` is whatever the caller passes: in tte it is the compiler's exact
plan, so the figure the search reports is the figure ``tte compile`` prints.

A weight update of conv ``i`` needs the gradient to reach conv ``i``, so every genome keeps
``k >= n_convs - min(i)``: the biases of all convs from the first trained weight on train too
(the seed paper's published schemes all satisfy this).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tte_ir import Scheme, TteError, WeightUpdate
from tte_ir.serialize import atomic_write_bytes

__all__ = [
    "Candidate",
    "Contributions",
    "Genome",
    "Limits",
    "SearchError",
    "SearchResult",
    "evolutionary_search",
    "pareto_front",
    "random_search",
]

RATIOS = (0.125, 0.25, 0.5, 1.0)


class SearchError(TteError):
    """No scheme meets the budget, or the contribution table does not fit the model."""


@dataclass(frozen=True)
class Contributions:
    """Measured accuracy gains (paper §2.2), the input of the search.

    ``dacc_bias[k]``: gain of training the last ``k`` biases (plus the head) over head-only.
    ``dacc_weight[(i, r)]``: extra gain of also training conv ``i``'s weights at ratio ``r`` over
    bias-only training. ``n_convs`` is the model's conv count (head excluded).
    """

    n_convs: int
    dacc_bias: Mapping[int, float]
    dacc_weight: Mapping[tuple[int, float], float]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def bias_grid(self) -> list[int]:
        return sorted(self.dacc_bias)

    @property
    def weight_convs(self) -> list[int]:
        return sorted({i for i, _ in self.dacc_weight})

    def score(self, genome: Genome) -> float:
        """The additive contribution estimate of a genome."""
        total = self.dacc_bias[genome.k]
        for conv, ratio in genome.ratios:
            total += self.dacc_weight[(conv, ratio)]
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "tte-contributions",
            "version": 1,
            "n_convs": self.n_convs,
            "dacc_bias": {str(k): v for k, v in sorted(self.dacc_bias.items())},
            "dacc_weight": [{"conv": i, "ratio": r, "dacc": v} for (i, r), v in sorted(self.dacc_weight.items())],
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "contributions") -> Contributions:
        if not isinstance(data, dict) or data.get("format") != "tte-contributions":
            raise SearchError(f"{source}: not a contribution table (written by `tte analyze`)")
        try:
            return cls(
                int(data["n_convs"]),
                {int(k): float(v) for k, v in data["dacc_bias"].items()},
                {(int(e["conv"]), float(e["ratio"])): float(e["dacc"]) for e in data["dacc_weight"]},
                data.get("metadata", {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SearchError(f"{source}: malformed contribution table ({type(exc).__name__}: {exc})") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_bytes(path, (json.dumps(self.to_json(), indent=1) + "\n").encode())
        return path

    @classmethod
    def load(cls, path: str | Path) -> Contributions:
        try:
            return cls.from_json(json.loads(Path(path).read_text()), str(path))
        except OSError as exc:
            raise SearchError(f"{path}: cannot read ({exc.strerror or exc})") from None
        except json.JSONDecodeError as exc:
            raise SearchError(f"{path}: invalid JSON ({exc})") from None


@dataclass(frozen=True, order=True)
class Genome:
    """``k`` trailing biases plus weight ratios per conv (sorted ``(conv, ratio)`` pairs)."""

    k: int
    ratios: tuple[tuple[int, float], ...] = ()

    def to_scheme(self, **settings: Any) -> Scheme:
        return Scheme(n_bias=self.k, weights=tuple(WeightUpdate(i, r) for i, r in self.ratios), **settings)


@dataclass(frozen=True)
class Candidate:
    """An evaluated genome: its score and its memory (bytes); ``feasible`` under the budgets."""

    genome: Genome
    score: float
    memory: int
    feasible: bool


@dataclass(frozen=True)
class SearchResult:
    best: Candidate
    evaluated: tuple[Candidate, ...]
    evaluations: int

    @property
    def front(self) -> list[Candidate]:
        return pareto_front(self.evaluated)


def pareto_front(candidates: tuple[Candidate, ...] | list[Candidate]) -> list[Candidate]:
    """Feasible candidates not beaten by another on both memory (lower) and score (higher), by memory."""
    feasible = sorted((c for c in candidates if c.feasible), key=lambda c: (c.memory, -c.score))
    front: list[Candidate] = []
    for c in feasible:
        if not front or c.score > front[-1].score:
            front.append(c)
    return front


Limits = Callable[[Genome], str | None]
"""Extra budgets (flash, MACs): ``None`` when a genome meets them, else why not (one phrase)."""


class _Evaluator:
    """Memoised scoring and memory of genomes, counting distinct evaluations; ``limits`` (optional)
    are the budgets besides memory, and a genome that misses one is infeasible."""

    def __init__(
        self, contrib: Contributions, memory: Callable[[Genome], int], budget: int, limits: Limits | None = None
    ) -> None:
        self.contrib = contrib
        self.memory = memory
        self.budget = budget
        self.limits = limits
        self.cache: dict[Genome, Candidate] = {}
        self.missed: dict[Genome, str] = {}

    def __call__(self, genome: Genome) -> Candidate:
        found = self.cache.get(genome)
        if found is None:
            mem = int(self.memory(genome))
            feasible = mem <= self.budget
            if feasible and self.limits is not None:
                reason = self.limits(genome)
                if reason is not None:
                    self.missed[genome] = reason
                    feasible = False
            found = Candidate(genome, self.contrib.score(genome), mem, feasible)
            self.cache[genome] = found
        return found


def _repair(contrib: Contributions, k: int, ratios: dict[int, float]) -> Genome:
    """Smallest grid ``k`` that covers every trained weight (see the module docstring)."""
    if ratios:
        need = contrib.n_convs - min(ratios)
        grid = contrib.bias_grid
        k = max(k, next((g for g in grid if g >= need), grid[-1]))
        if k < need:  # the grid stops short: drop weights the largest k cannot reach
            ratios = {i: r for i, r in ratios.items() if i >= contrib.n_convs - k}
    return Genome(k, tuple(sorted(ratios.items())))


def _random_genome(contrib: Contributions, rng: np.random.Generator, n_weights: int) -> Genome:
    """A random ``k`` and ``n_weights`` random convs at random ratios."""
    k = int(rng.choice(contrib.bias_grid))
    convs = contrib.weight_convs
    ratios = {}
    for conv in rng.choice(convs, size=min(n_weights, len(convs)), replace=False):
        options = [r for r in RATIOS if (int(conv), r) in contrib.dacc_weight]
        ratios[int(conv)] = float(rng.choice(options))
    return _repair(contrib, k, ratios)


def _mutate(contrib: Contributions, genome: Genome, rng: np.random.Generator, rate: float) -> Genome:
    """Move ``k`` one grid step, and re-draw each conv's ratio (0 included) with probability ``rate``;
    at least one gene always changes."""
    grid = contrib.bias_grid
    k = genome.k
    ratios = dict(genome.ratios)
    convs = contrib.weight_convs
    flips = [conv for conv in convs if rng.random() < rate]
    if rng.random() < 0.3:
        pos = grid.index(k) + int(rng.choice([-1, 1]))
        k = grid[min(max(pos, 0), len(grid) - 1)]
    elif not flips:
        flips = [int(rng.choice(convs))]
    for conv in flips:
        options = [0.0] + [r for r in RATIOS if (conv, r) in contrib.dacc_weight and r != ratios.get(conv)]
        choice = float(rng.choice(options))
        if choice == 0.0:
            ratios.pop(conv, None)
        else:
            ratios[conv] = choice
    return _repair(contrib, k, ratios)


def _crossover(contrib: Contributions, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
    ra, rb = dict(a.ratios), dict(b.ratios)
    ratios = {}
    for conv in contrib.weight_convs:
        src = ra if rng.random() < 0.5 else rb
        if conv in src:
            ratios[conv] = src[conv]
    return _repair(contrib, a.k if rng.random() < 0.5 else b.k, ratios)


def evolutionary_search(
    contrib: Contributions,
    memory: Callable[[Genome], int],
    budget: int,
    *,
    population: int = 40,
    generations: int = 30,
    mutation_rate: float | None = None,
    parent_ratio: float = 0.25,
    seed: int = 0,
    max_evaluations: int | None = None,
    limits: Limits | None = None,
    on_generation: Callable[[int, Candidate], None] | None = None,
) -> SearchResult:
    """Evolve schemes under ``budget`` bytes; ``memory(genome)`` gives a genome's bytes.

    Each generation keeps the best ``parent_ratio`` of the population (infeasible genomes rank below
    every feasible one, by how far over budget they are), then fills the rest half by mutation and
    half by crossover of random parents. ``mutation_rate`` is the per-conv re-draw probability
    (default: one conv per mutation on average). ``max_evaluations`` caps distinct memory evaluations
    (memoised), so searches are compared at equal cost. ``limits`` adds the flash and MAC budgets
    (see :data:`Limits`).
    """
    if not contrib.bias_grid:
        raise SearchError("the contribution table has no bias measurements")
    rng = np.random.default_rng(seed)
    evaluate = _Evaluator(contrib, memory, budget, limits)
    cap = max_evaluations or math.inf
    rate = mutation_rate if mutation_rate is not None else 1.0 / max(1, len(contrib.weight_convs))

    def rank(c: Candidate) -> tuple[int, float]:
        return (0, -c.score) if c.feasible else (1, max(0, c.memory - budget))

    # start from the cheapest genome (smallest k, no weights) plus sparse random ones: the paper's
    # good schemes train a handful of convs, and dense genomes are almost never within budget
    seeds = [Genome(contrib.bias_grid[0])]
    seeds += [_random_genome(contrib, rng, n_weights=i % 4) for i in range(population - 1)]
    pop = [evaluate(g) for g in seeds]
    n_parents = max(2, int(population * parent_ratio))
    for gen in range(generations):
        pop.sort(key=rank)
        if on_generation is not None:
            on_generation(gen, pop[0])
        parents = pop[:n_parents]
        children = []
        while len(parents) + len(children) < population and len(evaluate.cache) < cap:
            if rng.random() < 0.5:
                child = _mutate(contrib, parents[int(rng.integers(len(parents)))].genome, rng, rate)
            else:
                a, b = rng.choice(len(parents), size=2, replace=False)
                child = _crossover(contrib, parents[int(a)].genome, parents[int(b)].genome, rng)
            children.append(evaluate(child))
        pop = parents + children
        if len(evaluate.cache) >= cap:
            break
    return _result(evaluate, budget)


def random_search(
    contrib: Contributions,
    memory: Callable[[Genome], int],
    budget: int,
    *,
    evaluations: int,
    seed: int = 0,
    limits: Limits | None = None,
) -> SearchResult:
    """The baseline: ``evaluations`` distinct random genomes with 0 to 5 trained convs."""
    rng = np.random.default_rng(seed)
    evaluate = _Evaluator(contrib, memory, budget, limits)
    attempts = 0
    while len(evaluate.cache) < evaluations and attempts < evaluations * 20:
        evaluate(_random_genome(contrib, rng, n_weights=int(rng.integers(0, 6))))
        attempts += 1
    return _result(evaluate, budget)


def _result(evaluate: _Evaluator, budget: int) -> SearchResult:
    evaluated = tuple(evaluate.cache.values())
    feasible = [c for c in evaluated if c.feasible]
    if not feasible:
        smallest = min(evaluated, key=lambda c: (c.memory, c.genome))
        if smallest.memory <= budget:
            raise SearchError(
                f"no scheme within the memory budget of {budget:,} bytes meets the other budgets; the smallest plan "
                f"found (n_bias {smallest.genome.k}, {len(smallest.genome.ratios)} weight updates, "
                f"{smallest.memory:,} bytes) misses: {evaluate.missed[smallest.genome]}"
            )
        raise SearchError(
            f"no scheme fits the budget of {budget:,} bytes; the smallest plan found needs {smallest.memory:,} bytes "
            f"(n_bias {smallest.genome.k}, {len(smallest.genome.ratios)} weight updates)"
        )
    best = max(feasible, key=lambda c: (c.score, -c.memory))
    return SearchResult(best, evaluated, len(evaluated))
