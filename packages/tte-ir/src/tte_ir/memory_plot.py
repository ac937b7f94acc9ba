"""The picture of a memory plan (``tte plan --plot``): where the arena's bytes go over the schedule.

:func:`arena_layout` is the data: each planned buffer as a rectangle (its lifetime in schedule
indices against its byte offset in the arena), with its *kind* derived from the tensors it holds and
the ops that write and read them; the live bytes at each node and the peak; where the backward
starts (at the ``softmax_ce`` loss node). :func:`memory_figure` draws it (matplotlib, Agg backend)
and :func:`plot_memory` writes the drawing as a PNG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tte_ir._ir import Graph, Op, TteError
from tte_ir.memory import ALIGN, Buffer, MemoryReport
from tte_ir.ops import node_roles
from tte_ir.serialize import atomic_write_bytes

__all__ = ["KINDS", "ArenaLayout", "ArenaRect", "arena_layout", "memory_figure", "plot_memory"]

KINDS = ("input", "saved", "activation", "mask", "gradient", "loss", "scratch")
"""Buffer kinds, in the order a buffer holding tensors of several kinds is named after:

- ``input``: the input image, where the plan keeps it in the arena;
- ``saved``: a forward tensor the backward reads (a trained conv's saved input channels, the head's input);
- ``activation``: a forward tensor dead before the backward;
- ``mask``: a forward op's 1-bit clamp mask, read by the backward;
- ``gradient``: a tensor the backward writes (float32 gradients);
- ``loss``: the loss value;
- ``scratch``: a kernel's scratch, live for its node only.
"""


@dataclass(frozen=True)
class ArenaRect:
    """One planned buffer: ``size`` (aligned) bytes at ``offset``, live from node ``start`` to ``end``
    (inclusive). ``tensor`` names the buffer; ``tensors`` are all the tensors sharing it in place."""

    tensor: str
    kind: str
    offset: int
    size: int
    start: int
    end: int
    tensors: tuple[str, ...]


@dataclass(frozen=True)
class ArenaLayout:
    """The arena as the planner laid it out, and the live bytes over the schedule."""

    graph: str
    planner: str
    arena_bytes: int
    rects: tuple[ArenaRect, ...]
    nodes: tuple[str, ...]
    ops: tuple[str, ...]
    live: tuple[int, ...]
    peak_index: int
    backward_start: int | None

    @property
    def peak_op(self) -> str:
        """The node where the live bytes are highest."""
        return self.nodes[self.peak_index]

    def live_by_kind(self) -> dict[str, list[int]]:
        """Live bytes of each kind present at each node (they sum to ``live``), in :data:`KINDS` order."""
        kinds = {kind: [0] * len(self.nodes) for kind in KINDS if any(r.kind == kind for r in self.rects)}
        for rect in self.rects:
            for i in range(rect.start, rect.end + 1):
                kinds[rect.kind][i] += rect.size
        return kinds


def _aligned(size: int) -> int:
    return (size + ALIGN - 1) // ALIGN * ALIGN


def _tensor_kinds(graph: Graph, backward_start: int) -> dict[str, str]:
    """The kind of every tensor a node writes, from its producer's op and position and its readers."""
    read_in_backward = {t for node in graph.nodes[backward_start + 1 :] for t in node.inputs}
    kinds = {t: "input" for t in graph.inputs}
    for i, node in enumerate(graph.nodes):
        _, outs = node_roles(node)
        for role, t in outs.items():
            if node.op is Op.SOFTMAX_CE and role == "loss":
                kinds[t] = "loss"
            elif i >= backward_start:
                kinds[t] = "gradient"
            elif role == "mask":
                kinds[t] = "mask"
            elif t in read_in_backward:
                kinds[t] = "saved"
            else:
                kinds[t] = "activation"
    return kinds


def _buffer_kind(buf: Buffer, kinds: dict[str, str]) -> str:
    if not buf.tensors:
        return "scratch"
    return min((kinds[t] for t in buf.tensors), key=KINDS.index)


def arena_layout(graph: Graph, report: MemoryReport) -> ArenaLayout:
    """The rectangles of ``report``'s plan of ``graph`` (every planned buffer once), with kinds and the peak."""
    names = tuple(n.name for n in graph.nodes)
    if not names:
        raise TteError(f"graph '{graph.name}' has no nodes: nothing to plan")
    if names != report.nodes:
        raise TteError(f"the memory report is of another schedule than graph '{graph.name}' (plan the graph again)")
    losses = [i for i, n in enumerate(graph.nodes) if n.op is Op.SOFTMAX_CE]
    backward_start = losses[0] if losses else None
    kinds = _tensor_kinds(graph, len(graph.nodes) if backward_start is None else backward_start)
    plan = report.plan
    rects = tuple(
        ArenaRect(
            buf.name,
            _buffer_kind(buf, kinds),
            plan.offsets[buf.name],
            _aligned(buf.size),
            buf.start,
            buf.end,
            buf.tensors,
        )
        for buf in plan.buffers
    )
    peak = names.index(report.peak_op) if report.peak_op in names else 0
    return ArenaLayout(
        graph.name,
        plan.planner,
        plan.arena_bytes,
        rects,
        names,
        tuple(n.op.name.lower() for n in graph.nodes),
        report.live,
        peak,
        backward_start,
    )


_COLOURS = {
    "input": "#7f7f7f",
    "saved": "#ff7f0e",
    "activation": "#1f77b4",
    "mask": "#2ca02c",
    "gradient": "#d62728",
    "loss": "#8c564b",
    "scratch": "#9467bd",
}
_KB = 1024
_FORWARD = "#e8f0fa"
_BACKWARD = "#fbeee6"


def _kb(n: int) -> str:
    return f"{n:,} B" if n < _KB else f"{n / _KB:.1f} KB"


def _draw_arena(ax: Any, layout: ArenaLayout) -> None:
    """Each buffer a rectangle; named (with its size) where the name fits inside it."""
    from matplotlib.patches import Rectangle

    labels = []
    for rect in layout.rects:
        patch = Rectangle(
            (rect.start - 0.5, rect.offset / _KB),
            rect.end - rect.start + 1,
            rect.size / _KB,
            facecolor=_COLOURS[rect.kind],
            edgecolor="white",
            lw=0.6,
            zorder=2,
        )
        ax.add_patch(patch)
        text = ax.text(
            (rect.start + rect.end) / 2,
            (rect.offset + rect.size / 2) / _KB,
            f"{rect.tensor}\n{_kb(rect.size)}",
            ha="center",
            va="center",
            fontsize=7,
            color="white",
            zorder=4,
        )
        labels.append((patch, text))
    arena_kb = layout.arena_bytes / _KB
    ax.axhline(arena_kb, color="black", ls="--", lw=1, zorder=3)
    ax.set_xlim(-0.5, len(layout.nodes) - 0.5)
    ax.set_ylim(0, max(arena_kb, 0.001) * 1.04)
    ax.set_ylabel("arena offset, KB")
    renderer = ax.figure.canvas.get_renderer()
    for patch, text in labels:
        box, room = text.get_window_extent(renderer), patch.get_window_extent(renderer)
        if box.width > room.width - 4 or box.height > room.height - 2:
            text.remove()


def _draw_live(ax: Any, layout: ArenaLayout, by_kind: dict[str, list[int]]) -> None:
    """The live bytes at each node, stacked by kind, and the planned arena above them."""
    n = len(layout.nodes)
    edges = [i - 0.5 for i in range(n + 1)]
    base = [0.0] * n
    for kind, live in by_kind.items():
        level = [b + v / _KB for b, v in zip(base, live, strict=True)]
        ax.stairs(level, edges, baseline=base, fill=True, color=_COLOURS[kind], zorder=2)
        base = level
    ax.stairs([b / _KB for b in layout.live], edges, color="black", lw=1, zorder=3)
    arena_kb = layout.arena_bytes / _KB
    ax.axhline(arena_kb, color="black", ls="--", lw=1, zorder=3)
    ax.set_ylim(0, max(arena_kb, 0.001) * 1.1)
    ax.set_ylabel("live, KB")
    ax.set_xlabel("schedule index (node)")


def memory_figure(graph: Graph, report: MemoryReport) -> Any:
    """The matplotlib figure of ``report``'s arena plan of ``graph`` (needs ``tte-ir[plot]``: matplotlib).

    Top: each buffer a rectangle at its offset over its lifetime, coloured by kind; bottom: the live
    bytes by kind over the schedule. Forward and backward are shaded; the peak and its op are marked
    above the plot and the legend sits outside it, so neither hides the data.
    """
    try:
        import matplotlib
    except ImportError:
        raise TteError("plotting needs matplotlib: pip install 'tte-ir[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    layout = arena_layout(graph, report)
    n, peak, back = len(layout.nodes), layout.peak_index, layout.backward_start
    by_kind = layout.live_by_kind()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3], "hspace": 0.08}
    )
    fig.subplots_adjust(left=0.07, right=0.76, top=0.88, bottom=0.08)
    for ax in (top, bottom):
        ax.axvspan(-0.5, (n if back is None else back) - 0.5, color=_FORWARD, zorder=0)
        if back is not None:
            ax.axvspan(back - 0.5, n - 0.5, color=_BACKWARD, zorder=0)
        ax.axvline(peak, color="black", ls=":", lw=1, zorder=3)
    _draw_arena(top, layout)
    _draw_live(bottom, layout, by_kind)
    side = "right" if peak > 0.75 * n else "left" if peak < 0.25 * n else "center"
    top.annotate(
        f"live peak {_kb(layout.live[peak])} at node {peak}: '{layout.peak_op}' ({layout.ops[peak]})",
        (peak, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(0, 4),
        textcoords="offset points",
        ha=side,
        va="bottom",
        fontsize=8,
    )
    where = "inside the arena" if "input" in by_kind else "outside the arena (I/O)"
    fig.suptitle(
        f"{layout.graph}: arena {_kb(report.arena_peak_bytes)} (planner {layout.planner}) + trainable "
        f"{_kb(report.trainable_bytes)} + I/O {_kb(report.io_bytes)} = {_kb(report.total_bytes)}\n"
        f"input image {where}",
        fontsize=10,
    )
    handles = [Patch(facecolor=_COLOURS[k], label=f"{k}: {_kb(live[peak])} at peak") for k, live in by_kind.items()]
    handles += [Patch(facecolor=_FORWARD, label="forward")]
    if back is not None:
        handles += [Patch(facecolor=_BACKWARD, label=f"backward (from node {back}, the loss)")]
    handles += [
        Line2D([], [], color="black", ls="--", lw=1, label=f"planned arena {_kb(layout.arena_bytes)}"),
        Line2D([], [], color="black", ls=":", lw=1, label=f"live peak, node {peak}"),
    ]
    top.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig


def plot_memory(graph: Graph, report: MemoryReport, path: str | Path) -> Path:
    """Write :func:`memory_figure` of ``report``'s plan of ``graph`` to the PNG ``path`` (atomically)."""
    fig = memory_figure(graph, report)
    import matplotlib.pyplot as plt

    data = io.BytesIO()
    fig.savefig(data, format="png", dpi=110)
    plt.close(fig)
    path = Path(path)
    atomic_write_bytes(path, data.getvalue())
    return path
