"""Static memory planning of a training graph, and its memory report.

Every tensor that is neither a constant nor a graph input lives in one static arena. Tensors an op
writes in place (the op table's ``inplace``) share one buffer, and so do the channel splits and concats
of one-pixel maps that run as views, each tensor at its byte offset (:mod:`tte_ir.views`); a buffer
lives from the node that first writes it to the node that last reads it, over the graph's schedule
(its node order). A row-tiled group
(:mod:`tte_ir.tiling`) runs as one loop, so its nodes share one time span, and a tensor produced and
consumed inside the group holds only one row band. Each kernel's scratch (:mod:`tte_ir.scratch`)
lives for its node only.

Planners assign offsets behind one small interface, :class:`Planner`:

- :class:`NaivePlanner`: every buffer at its own offset (the sum of all; no reuse).
- :class:`GreedyPlanner`: largest buffer first, each at the lowest offset (``first-fit``) or in the
  smallest gap (``best-fit``) that no buffer live at the same time occupies.

The report (ARCHITECTURE.md, "Memory accounting") gives the arena peak and the op at the peak (the
node where the live bytes are highest), the trainable state (trained weight slices, biases, fp32 head,
optimizer state: parameters that live in SRAM; with a mini-batch scheme also the float32 gradient
accumulators, reported on their own line next to the batch-1 figure), the I/O buffers (graph inputs:
image and label) and their total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tte_ir._ir import Graph, TteError
from tte_ir.autodiff import training_info
from tte_ir.scratch import scratch_bytes
from tte_ir.views import storage

__all__ = [
    "ALIGN",
    "Buffer",
    "GreedyPlanner",
    "MemoryReport",
    "NaivePlanner",
    "Plan",
    "Planner",
    "arena_buffers",
    "live_bytes",
    "memory_report",
]

ALIGN = 4  # bytes; float32 buffers need 4-byte alignment on Cortex-M


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Buffer:
    """One arena buffer: the tensors sharing it, its size and its inclusive life span in node indices;
    a channel view (:mod:`tte_ir.views`) lies at its byte offset in ``views``, every other tensor at 0."""

    name: str
    size: int
    start: int
    end: int
    tensors: tuple[str, ...] = ()
    views: tuple[tuple[str, int], ...] = ()  # (tensor, byte offset) of tensors not at the buffer's start

    def overlaps(self, other: Buffer) -> bool:
        """Whether the two buffers are live at a common node."""
        return self.start <= other.end and other.start <= self.end


@dataclass(frozen=True)
class Plan:
    """Offsets of every buffer and the arena size they need."""

    planner: str
    buffers: tuple[Buffer, ...]
    offsets: dict[str, int]
    arena_bytes: int


class Planner(Protocol):
    """Assigns an offset to each buffer; buffers live at a common node must not overlap."""

    name: str

    def plan(self, buffers: Sequence[Buffer]) -> Plan: ...


class NaivePlanner:
    """No reuse: buffers one after another."""

    name = "naive"

    def plan(self, buffers: Sequence[Buffer]) -> Plan:
        offsets: dict[str, int] = {}
        top = 0
        for buf in buffers:
            offsets[buf.name] = top
            top += _align(buf.size)
        return Plan(self.name, tuple(buffers), offsets, top)


_ORDERS = {
    "size": lambda b: (-b.size, b.start, b.name),
    "area": lambda b: (-b.size * (b.end - b.start + 1), b.start, b.name),
    "start": lambda b: (b.start, -b.size, b.name),
}


@dataclass
class GreedyPlanner:
    """Offsets by ``first-fit`` (lowest free offset) or ``best-fit`` (smallest free gap that fits);
    ``auto`` tries both.

    Buffers are placed one by one in each of three orders (largest first, largest size x lifetime
    first, earliest first); the smallest arena wins, and the plan names the fit and order used.
    """

    strategy: str = "auto"
    name: str = field(init=False)

    def __post_init__(self) -> None:
        if self.strategy not in ("auto", "first-fit", "best-fit"):
            raise TteError(f"planner strategy '{self.strategy}' is unknown (auto, first-fit or best-fit)")
        self.name = self.strategy

    def plan(self, buffers: Sequence[Buffer]) -> Plan:
        fits = ("first-fit", "best-fit") if self.strategy == "auto" else (self.strategy,)
        plans = [
            self._place(sorted(buffers, key=key), buffers, fit, f"{fit}/{order}")
            for fit in fits
            for order, key in _ORDERS.items()
        ]
        return min(plans, key=lambda p: p.arena_bytes)

    @staticmethod
    def _place(order: Sequence[Buffer], buffers: Sequence[Buffer], fit: str, name: str) -> Plan:
        placed: list[tuple[int, int, Buffer]] = []  # (offset, aligned size, buffer)
        offsets: dict[str, int] = {}
        for buf in order:
            size = _align(buf.size)
            busy = sorted((off, off + sz) for off, sz, other in placed if other.overlaps(buf))
            gaps: list[tuple[int, int]] = []  # (start, length) below the highest busy byte
            cursor = 0
            for lo, hi in busy:
                if lo > cursor:
                    gaps.append((cursor, lo - cursor))
                cursor = max(cursor, hi)
            fitting = [(start, length) for start, length in gaps if length >= size]
            if not fitting:
                offset = cursor
            elif fit == "first-fit":
                offset = fitting[0][0]
            else:
                offset = min(fitting, key=lambda g: (g[1], g[0]))[0]
            offsets[buf.name] = offset
            placed.append((offset, size, buf))
        top = max((off + sz for off, sz, _ in placed), default=0)
        return Plan(name, tuple(buffers), offsets, top)


def _group_spans(graph: Graph) -> list[tuple[int, int]]:
    """For each node, the span of node indices it runs in (its row-tiled group's, or its own)."""
    spans = [(i, i) for i in range(len(graph.nodes))]
    first: dict[int, int] = {}
    for i, node in enumerate(graph.nodes):
        tile = node.attrs.get("tile")
        if tile:
            first.setdefault(int(tile["group"]), i)
    last: dict[int, int] = {}
    for i, node in enumerate(graph.nodes):
        tile = node.attrs.get("tile")
        if tile:
            last[int(tile["group"])] = i
    for i, node in enumerate(graph.nodes):
        tile = node.attrs.get("tile")
        if tile:
            spans[i] = (first[int(tile["group"])], last[int(tile["group"])])
    return spans


def band_bytes(graph: Graph, tensor: str, axis: str, band: int) -> int:
    """Bytes of ``band`` rows (``axis="rows"``) or channels (``axis="channels"``) of ``[1, C, H, W]``."""
    spec = graph.tensors[tensor]
    _, channels, height, width = spec.shape
    if axis == "rows":
        return channels * min(band, height) * width * spec.dtype.itemsize
    return min(band, channels) * height * width * spec.dtype.itemsize


def arena_buffers(graph: Graph, *, use_engine: bool = True, input_in_arena: bool = False) -> list[Buffer]:
    """The arena buffers of ``graph``'s schedule (see the module docstring).

    With ``input_in_arena`` the input image is an arena buffer too, live from the first node to its
    last reader, so that its bytes serve later tensors (generated code writes the image into it).
    """
    spans = _group_spans(graph)
    image = training_info(graph)["input"] if input_in_arena else None
    outside = (set(graph.constants) | set(graph.inputs)) - {image}
    place = storage(graph)  # in-place outputs and channel views share their input's buffer (tte_ir.views)
    start: dict[str, int] = {} if image is None else {image: 0}
    end: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        lo, hi = spans[i]
        for t in node.outputs:
            start.setdefault(t, lo)
            end[t] = max(end.get(t, lo), hi)
        for t in node.inputs:
            end[t] = max(end.get(t, hi), hi)
    last = len(graph.nodes) - 1
    for t in graph.outputs:
        end[t] = last
    band = _band_sizes(graph)
    groups: dict[str, list[str]] = {}
    for t in start:
        groups.setdefault(place.of(t)[0], []).append(t)
    buffers = []
    for r, members in groups.items():
        if r in outside or any(m in outside for m in members):
            continue  # works in place on a parameter (SRAM state) or an input (I/O)
        size = max(place.of(m)[1] + band.get(m, graph.tensors[m].nbytes) for m in members)
        views = tuple(sorted((m, place.of(m)[1]) for m in members if place.of(m)[1]))
        buffers.append(
            Buffer(r, size, min(start[m] for m in members), max(end[m] for m in members), tuple(sorted(members)), views)
        )
    for i, node in enumerate(graph.nodes):
        scratch = scratch_bytes(graph, node, use_engine=use_engine)
        if scratch:
            buffers.append(Buffer(f"{node.name}.scratch", scratch, spans[i][0], spans[i][1]))
    return sorted(buffers, key=lambda b: (b.start, b.name))


def _band_sizes(graph: Graph) -> dict[str, int]:
    """Tensors written and read only inside one tiled group hold one band (:mod:`tte_ir.tiling`)."""
    group_of = {}
    for node in graph.nodes:
        tile = node.attrs.get("tile")
        if tile:
            for t in node.outputs:
                group_of[t] = (int(tile["group"]), tile["axis"], int(tile["band"]))
    sizes: dict[str, int] = {}
    for t, (group, axis, band) in group_of.items():
        consumers = graph.consumers(t)
        if t in graph.outputs or not consumers:
            continue
        if all((c.attrs.get("tile") or {}).get("group") == group for c in consumers):
            sizes[t] = band_bytes(graph, t, axis, band)
    return sizes


def live_bytes(buffers: Sequence[Buffer], n_nodes: int) -> list[int]:
    """Bytes live at each node (aligned sizes): the lower bound of any plan at that node."""
    live = [0] * n_nodes
    for buf in buffers:
        for i in range(buf.start, buf.end + 1):
            live[i] += _align(buf.size)
    return live


@dataclass(frozen=True)
class MemoryReport:
    """Every line of the memory accounting of one training graph."""

    graph: str
    planner: str
    arena_peak_bytes: int
    peak_live_bytes: int
    peak_op: str
    trainable_bytes: int
    io_bytes: int
    flash_bytes: int
    live: tuple[int, ...]
    nodes: tuple[str, ...]
    plan: Plan
    input_in_arena: bool = False
    accumulator_bytes: int = 0  # part of trainable_bytes: a mini-batch's float32 gradient accumulators
    batch: int = 1

    @property
    def layout(self) -> str:
        """Where the input image lives, in words (the report's label of its layout)."""
        if self.input_in_arena:
            return "input image inside the arena, as the generated code lays it out"
        return "input image outside the arena, counted as I/O"

    @property
    def total_bytes(self) -> int:
        """Arena + trainable state + I/O: the SRAM the training step needs besides code and stack."""
        return self.arena_peak_bytes + self.trainable_bytes + self.io_bytes

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON-ready object (``tte plan --json``)."""
        return {
            "graph": self.graph,
            "planner": self.planner,
            "arena_peak_bytes": self.arena_peak_bytes,
            "peak_live_bytes": self.peak_live_bytes,
            "peak_op": self.peak_op,
            "trainable_bytes": self.trainable_bytes,
            "io_bytes": self.io_bytes,
            "total_bytes": self.total_bytes,
            "flash_bytes": self.flash_bytes,
            "input_in_arena": self.input_in_arena,
            "batch": self.batch,
            "accumulator_bytes": self.accumulator_bytes,
        }

    def lines(self) -> list[str]:
        """The human-readable report."""
        kb = 1024
        batch = []
        if self.batch > 1:
            params = self.trainable_bytes - self.accumulator_bytes
            batch = [
                f"    of which batch-{self.batch} gradient accumulators {self.accumulator_bytes:,} B "
                f"(batch 1: trainable state {params:,} B, no accumulators)"
            ]
        return [
            f"memory of '{self.graph}' (planner {self.planner}; {self.layout}):",
            f"  arena peak      {self.arena_peak_bytes:>9,} B  {self.arena_peak_bytes / kb:7.1f} KB  "
            f"(live peak {self.peak_live_bytes:,} B at '{self.peak_op}')",
            f"  trainable state {self.trainable_bytes:>9,} B  {self.trainable_bytes / kb:7.1f} KB",
            *batch,
            f"  I/O             {self.io_bytes:>9,} B  {self.io_bytes / kb:7.1f} KB",
            f"  total           {self.total_bytes:>9,} B  {self.total_bytes / kb:7.1f} KB",
            f"  flash (frozen constants) {self.flash_bytes:,} B",
        ]


def memory_report(
    graph: Graph, planner: Planner | None = None, *, use_engine: bool = True, input_in_arena: bool = False
) -> MemoryReport:
    """Plan ``graph``'s arena with ``planner`` (:class:`GreedyPlanner` ``auto`` by default) and account for every byte.

    ``input_in_arena`` plans the input image inside the arena (:func:`arena_buffers`); the I/O line
    then holds the label only."""
    info = training_info(graph)
    planner = planner or GreedyPlanner()
    buffers = arena_buffers(graph, use_engine=use_engine, input_in_arena=input_in_arena)
    plan = planner.plan(buffers)
    live = live_bytes(buffers, len(graph.nodes))
    peak_index = max(range(len(live)), key=lambda i: (live[i], -i)) if live else 0
    accumulators = set(info.get("accumulators", {}))
    state = set(info["state"]) | accumulators  # both live in SRAM, outside the arena, across steps
    trainable = sum(graph.tensors[name].nbytes for name in state)
    io = sum(graph.tensors[name].nbytes for name in graph.inputs if not (input_in_arena and name == info["input"]))
    flash = sum(graph.tensors[name].nbytes for name in graph.constants if name not in state)
    return MemoryReport(
        graph.name,
        plan.planner,
        plan.arena_bytes,
        max(live, default=0),
        graph.nodes[peak_index].name if graph.nodes else "",
        trainable,
        io,
        flash,
        tuple(live),
        tuple(n.name for n in graph.nodes),
        plan,
        input_in_arena,
        sum(graph.tensors[name].nbytes for name in accumulators),
        int(info["scheme"].get("batch", 1)),
    )
