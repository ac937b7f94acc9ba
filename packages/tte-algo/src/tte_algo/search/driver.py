"""``tte search`` as a function: a contribution table, a forward graph and budgets in; the best
scheme, the Pareto front and its plot out.

Memory is the compiler's exact plan (:class:`~tte_algo.search.cost.CompiledCost`), so the scheme's
``metadata.search.plan.total_bytes`` is what ``tte compile`` reports for it, to the byte.
"""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tte_algo.search.contrib import graph_digest
from tte_algo.search.cost import CompiledCost
from tte_algo.search.evolution import (
    Candidate,
    Contributions,
    Genome,
    SearchError,
    SearchResult,
    evolutionary_search,
)
from tte_ir import Graph, Scheme, conv_nodes
from tte_ir.serialize import atomic_write_bytes

__all__ = ["Budgets", "FrontPoint", "SearchOutcome", "front_points", "plot_front", "search_scheme"]


@dataclass(frozen=True)
class Budgets:
    """SRAM (total = arena + trainable + I/O), and optionally flash and training-step MACs."""

    memory: int
    flash: int | None = None
    macs: int | None = None

    def to_json(self) -> dict[str, int | None]:
        return {"memory_bytes": self.memory, "flash_bytes": self.flash, "macs": self.macs}


@dataclass(frozen=True)
class SearchOutcome:
    """The best scheme (with its plan in ``metadata['search']``), the search result and the costs."""

    scheme: Scheme
    result: SearchResult
    cost: CompiledCost
    budgets: Budgets

    def point(self, c: Candidate) -> dict[str, Any]:
        """One candidate as JSON: its genome, score (estimated accuracy gain) and plan."""
        return {
            "n_bias": c.genome.k,
            "weights": [{"conv": i, "ratio": r} for i, r in c.genome.ratios],
            "score": c.score,
            **self.cost(c.genome).to_json(),
        }

    def front_json(self) -> dict[str, Any]:
        """The Pareto front (feasible, by memory) and the best candidate, as one JSON object."""
        return {
            "format": "tte-pareto-front",
            "version": 1,
            "budgets": self.budgets.to_json(),
            "evaluations": self.result.evaluations,
            "best": self.point(self.result.best),
            "front": [self.point(c) for c in self.result.front],
        }

    def save_front(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_bytes(path, (json.dumps(self.front_json(), indent=1) + "\n").encode())
        return path


def _check_table(forward: Graph, contrib: Contributions) -> None:
    n = len(conv_nodes(forward))
    if contrib.n_convs != n:
        raise SearchError(
            f"the contribution table is of a model with {contrib.n_convs} convs; '{forward.name}' has {n} "
            "(run `tte analyze` on this model)"
        )
    measured = contrib.metadata.get("model_digest")
    if measured is not None and measured != graph_digest(forward):
        raise SearchError(
            f"the contribution table was measured on another model than '{forward.name}' "
            f"(digest {measured[:12]}, this model {graph_digest(forward)[:12]}); run `tte analyze` on this model"
        )
    if 0 not in contrib.dacc_bias:
        raise SearchError("the contribution table has no head-only entry (dacc_bias[0]); run `tte analyze` again")


def search_scheme(
    forward: Graph,
    contrib: Contributions,
    budgets: Budgets,
    *,
    population: int = 40,
    generations: int = 30,
    seed: int = 0,
    max_evaluations: int | None = None,
    on_generation: Callable[[int, Candidate], None] | None = None,
) -> SearchOutcome:
    """Search the scheme with the largest estimated gain whose compiled step fits ``budgets``.

    ``on_generation(index, best so far)`` is called as each generation starts (progress display).
    The scheme carries the analysis's training settings (lr, head lr, rounding) and, in
    ``metadata['search']``, the budgets, the score and its compiled plan. Raises
    :class:`SearchError` naming the smallest achievable plan when nothing fits.
    """
    _check_table(forward, contrib)
    analysis = contrib.metadata.get("settings", {})
    fields = {k: analysis[k] for k in ("lr", "head_lr", "rounding") if k in analysis}
    cost = CompiledCost(forward)

    def limits(genome: Genome) -> str | None:
        plan = cost(genome)
        if budgets.flash is not None and plan.flash_bytes > budgets.flash:
            return f"flash {plan.flash_bytes:,} B over the flash budget of {budgets.flash:,} B"
        if budgets.macs is not None and plan.macs > budgets.macs:
            return f"{plan.macs:,} MACs per step over the MAC budget of {budgets.macs:,}"
        return None

    smallest = cost(Genome(0))
    if smallest.total_bytes > budgets.memory:  # checked first: the whole search could end only in this
        raise SearchError(
            f"no scheme fits the budget of {budgets.memory:,} B: the smallest plan (head only) needs "
            f"{smallest.total_bytes:,} B (arena {smallest.arena_bytes:,} + trainable {smallest.trainable_bytes:,} "
            f"+ I/O {smallest.io_bytes:,})"
        )
    result = evolutionary_search(
        contrib,
        cost.memory,
        budgets.memory,
        population=population,
        generations=generations,
        seed=seed,
        max_evaluations=max_evaluations,
        on_generation=on_generation,
        limits=limits if budgets.flash is not None or budgets.macs is not None else None,
    )
    best = result.best
    scheme = best.genome.to_scheme(
        **fields,
        metadata={
            "search": {
                "budgets": budgets.to_json(),
                "score": best.score,
                "plan": cost(best.genome).to_json(),
                "evaluations": result.evaluations,
                "seed": seed,
                "model_digest": contrib.metadata.get("model_digest"),
            }
        },
    )
    return SearchOutcome(scheme, result, cost, budgets)


@dataclass(frozen=True)
class FrontPoint:
    """One evaluated candidate as the front plot shows it."""

    candidate: Candidate
    on_front: bool
    chosen: bool

    @property
    def feasible(self) -> bool:
        """Within every budget (memory, and flash and MACs where given)."""
        return self.candidate.feasible


def front_points(result: SearchResult) -> list[FrontPoint]:
    """Every evaluated candidate once, by memory: whether it is on the Pareto front and whether it is the
    chosen scheme (``result.best``)."""
    front = {c.genome for c in result.front}
    return [
        FrontPoint(c, c.genome in front, c.genome == result.best.genome)
        for c in sorted(result.evaluated, key=lambda c: (c.memory, -c.score))
    ]


def _describe(genome: Genome) -> str:
    weights = ", ".join(f"conv {i} @ {r:g}" for i, r in genome.ratios) or "no weights"
    return f"n_bias {genome.k}, {weights}"


def plot_front(outcome: SearchOutcome, path: str | Path, title: str = "") -> Path:
    """A PNG of every evaluated candidate (estimated gain against memory): feasible and infeasible
    points, the Pareto front (a staircase to the budget, drawn even for one point), the budget, and the
    chosen scheme labelled with its memory and score. Needs matplotlib (``tte-algo[plot]``)."""
    try:
        import matplotlib
    except ImportError:
        raise SearchError("plotting needs matplotlib: pip install 'tte-algo[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kb = 1024
    points = front_points(outcome.result)
    budget = outcome.budgets.memory / kb
    feasible = [p.candidate for p in points if p.feasible and not p.on_front]
    infeasible = [p.candidate for p in points if not p.feasible]
    front = [p.candidate for p in points if p.on_front]
    chosen = next(p.candidate for p in points if p.chosen)
    # the front lies within the budget: far outliers beyond 1.5x the budget would only squash it
    right = min(max([budget, *(p.candidate.memory / kb for p in points)]), 1.5 * budget) * 1.05
    beyond = sum(c.memory / kb > right for c in infeasible)
    fig, ax = plt.subplots(figsize=(10, 5.5))
    ax.scatter(
        [c.memory / kb for c in feasible],
        [100 * c.score for c in feasible],
        s=12,
        color="#1f77b4",
        alpha=0.5,
        label=f"feasible ({len(feasible) + len(front)})",
    )
    ax.scatter(
        [c.memory / kb for c in infeasible],
        [100 * c.score for c in infeasible],
        s=14,
        marker="x",
        color="#d62728",
        alpha=0.6,
        label=f"infeasible: over a budget ({len(infeasible)}"
        + (f";\n  {beyond} beyond {right:.0f} KB not shown)" if beyond else ")"),
    )
    xs = [c.memory / kb for c in front]
    ys = [100 * c.score for c in front]
    ax.step([*xs, max(budget, xs[-1])], [*ys, ys[-1]], where="post", color="black", lw=1.5, zorder=3)
    ax.plot(xs, ys, "o", color="black", ms=4, zorder=5, label=f"Pareto front ({len(front)})")
    ax.scatter(
        [chosen.memory / kb], [100 * chosen.score], marker="*", s=260, color="#ff7f0e", ec="black", zorder=4,
        label=textwrap.fill(f"chosen: {_describe(chosen.genome)}", 32, subsequent_indent="  "),
    )  # fmt: skip
    ax.axvline(budget, color="#d62728", ls="--", lw=1, label=f"memory budget {budget:.1f} KB")
    ax.set_xlim(0, right)
    # no feasible candidate lies above the chosen one (it has the best feasible score), and to its left
    # only feasible ones: label it above and to the left, unless it sits at the left edge
    where = chosen.memory / kb / right
    ax.annotate(
        f"chosen: {chosen.memory / kb:.1f} KB, gain {100 * chosen.score:+.2f}%",
        (chosen.memory / kb, 100 * chosen.score),
        xytext=(0, 12),
        textcoords="offset points",
        ha="left" if where < 0.25 else "right",
        va="bottom",
        fontsize=8,
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.5", "alpha": 0.9},
        zorder=5,
    )
    ax.set_xlabel("training-step SRAM, KB (arena + trainable + I/O, compiled plan)")
    ax.set_ylabel("estimated accuracy gain over head-only, %")
    ax.set_title(title or f"sparse-update search, budget {budget:.0f} KB", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.08, right=0.72, top=0.93, bottom=0.1)
    data = io.BytesIO()
    fig.savefig(data, format="png", dpi=110)
    plt.close(fig)
    path = Path(path)
    atomic_write_bytes(path, data.getvalue())
    return path
