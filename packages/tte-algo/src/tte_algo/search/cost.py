"""The exact cost of a candidate scheme: the compiler's memory plan of its training step.

A genome becomes a scheme, :func:`tte_ir.compile_training` derives, prunes, reorders and tiles the
training step, and :func:`tte_ir.memory_report` plans its arena: the search's memory figure is the
``total_bytes`` (arena + trainable state + I/O) that ``tte compile`` prints for the same scheme, to
the byte. Flash (the frozen constants) and the step's MACs (forward, backward and updates) come from
the same compiled graph, for the optional flash and MAC budgets. Plans are memoised per genome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tte_algo.search.evolution import Genome
from tte_ir import Graph, compile_training, memory_report, node_macs

__all__ = ["CompiledCost", "PlanCost"]


@dataclass(frozen=True)
class PlanCost:
    """The compiled training step's memory lines (bytes) and its multiply-accumulates."""

    arena_bytes: int
    trainable_bytes: int
    io_bytes: int
    flash_bytes: int
    macs: int
    peak_op: str

    @property
    def total_bytes(self) -> int:
        """Arena + trainable state + I/O, as :attr:`tte_ir.MemoryReport.total_bytes`."""
        return self.arena_bytes + self.trainable_bytes + self.io_bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "total_bytes": self.total_bytes,
            "arena_bytes": self.arena_bytes,
            "trainable_bytes": self.trainable_bytes,
            "io_bytes": self.io_bytes,
            "flash_bytes": self.flash_bytes,
            "macs": self.macs,
            "peak_op": self.peak_op,
        }


class CompiledCost:
    """Memoised :class:`PlanCost` of genomes on ``forward``; ``settings`` are the scheme fields that
    shape the plan (head precision, momentum, rounding) and must match the scheme finally written."""

    def __init__(self, forward: Graph, settings: Mapping[str, Any] | None = None, *, tiling: bool = True) -> None:
        self.forward = forward
        self.settings = dict(settings or {})
        self.tiling = tiling
        self._cache: dict[Genome, PlanCost] = {}

    def __call__(self, genome: Genome) -> PlanCost:
        found = self._cache.get(genome)
        if found is None:
            graph = compile_training(self.forward, genome.to_scheme(**self.settings), tiling=self.tiling)
            report = memory_report(graph)
            found = PlanCost(
                report.arena_peak_bytes,
                report.trainable_bytes,
                report.io_bytes,
                report.flash_bytes,
                sum(node_macs(graph, node) for node in graph.nodes),
                report.peak_op,
            )
            self._cache[genome] = found
        return found

    def memory(self, genome: Genome) -> int:
        """The total SRAM bytes of ``genome``'s training step (the search's memory figure)."""
        return self(genome).total_bytes

    @property
    def plans(self) -> int:
        """Distinct genomes compiled so far."""
        return len(self._cache)
