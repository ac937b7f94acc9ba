"""The training-graph compiler pipeline: layout, autodiff, pruning, reordering, tiling, then memory planning.

Each pass returns a verified graph. ``compile_training`` is what ``tte compile`` runs.
"""

from __future__ import annotations

from tte_ir._ir import Graph
from tte_ir.autodiff import build_training_graph
from tte_ir.layout_passes import flatten_channels_last
from tte_ir.memory import memory_report
from tte_ir.scheme import Scheme
from tte_ir.tiling import tile_backward_channels, tile_frozen_rows

__all__ = ["compile_training"]


def compile_training(
    forward: Graph, scheme: Scheme, *, tiling: bool = True, budget: int | None = None, input_in_arena: bool = True
) -> Graph:
    """The training-step graph of ``forward`` under ``scheme``.

    :func:`~tte_ir.layout_passes.flatten_channels_last` first makes a flatten of a spatial map into a
    linear head a view in the engine's channels-last layout (the head's weights permuted);
    :func:`~tte_ir.autodiff.build_training_graph` derives the pruned backward with each update right
    after its gradient (fused weight gradient + update, in place); with ``tiling`` the frozen forward
    prefix runs as row-tiled fused groups and the backward through wide expanded gradients as
    channel-tiled groups (:mod:`tte_ir.tiling`).

    ``budget`` (bytes, the total of :func:`~tte_ir.memory.memory_report` with the input image planned
    as ``input_in_arena`` says) is the knob between memory and time: row tiles grow, recomputing fewer
    halo rows, while the step still fits it. Without a budget the schedule has the smallest peak.
    Whether the result fits is the caller's check (``tte compile --budget`` refuses one that does not).
    """
    graph = build_training_graph(flatten_channels_last(forward), scheme)
    if not tiling:
        return graph
    fits = None
    if budget is not None:

        def fits(candidate: Graph) -> bool:
            report = memory_report(tile_backward_channels(candidate), input_in_arena=input_in_arena)
            return report.total_bytes <= budget

    return tile_backward_channels(tile_frozen_rows(graph, fits=fits))
