"""``tte search`` as a function: a contribution table, a forward graph and budgets in; the best
scheme, the Pareto front and its plot out.

Memory is the compiler's exact plan (:class:`~tte_algo.search.cost.CompiledCost`), so the scheme's
``metadata.search.plan.total_bytes`` is what ``tte compile`` reports for it, to the byte.
"""

from __future__ import annotations

import json
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

__all__ = ["Budgets", "SearchOutcome", "plot_front", "search_scheme"]


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
) -> SearchOutcome:
    """Search the scheme with the largest estimated gain whose compiled step fits ``budgets``.

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

    try:
        result = evolutionary_search(
            contrib,
            cost.memory,
            budgets.memory,
            population=population,
            generations=generations,
            seed=seed,
            max_evaluations=max_evaluations,
            limits=limits if budgets.flash is not None or budgets.macs is not None else None,
        )
    except SearchError as exc:
        smallest = cost(Genome(0))
        if smallest.total_bytes > budgets.memory:
            raise SearchError(
                f"no scheme fits the budget of {budgets.memory:,} B: the smallest plan (head only) needs "
                f"{smallest.total_bytes:,} B (arena {smallest.arena_bytes:,} + trainable {smallest.trainable_bytes:,} "
                f"+ I/O {smallest.io_bytes:,})"
            ) from None
        raise exc from None
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


def plot_front(outcome: SearchOutcome, path: str | Path, title: str = "") -> Path:
    """A PNG of every evaluated candidate (estimated gain vs memory), the front, the best and the budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kb = 1024
    evaluated = outcome.result.evaluated
    front = outcome.result.front
    best = outcome.result.best
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter(
        [c.memory / kb for c in evaluated],
        [100 * c.score for c in evaluated],
        s=8,
        c=["0.6" if c.feasible else "0.85" for c in evaluated],
        label=f"evaluated ({len(evaluated)})",
    )
    ax.step(
        [c.memory / kb for c in front], [100 * c.score for c in front], where="post", color="C0", lw=1.5, label="front"
    )
    ax.scatter([best.memory / kb], [100 * best.score], marker="*", s=180, color="C3", zorder=3, label="best")
    ax.axvline(outcome.budgets.memory / kb, color="C3", ls="--", lw=1, label="budget")
    ax.set_xlabel("training-step SRAM, KB (arena + trainable + I/O, compiled plan)")
    ax.set_ylabel("estimated accuracy gain over head-only, % (contribution sum)")
    ax.set_title(title or f"sparse-update search, budget {outcome.budgets.memory / kb:.0f} KB")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
