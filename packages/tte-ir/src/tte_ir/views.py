"""Where each tensor of a graph lives: in-place outputs and channel views share their input's storage.

The engine stores maps channels-last (``[H][W][C]``), so a channel range of a map is contiguous only
when the map has one pixel (a ``[1, C]`` vector, or ``[1, C, 1, 1]`` after global pooling). There, and
only there, the channel ops move no data:

- ``channel_split`` of a one-pixel map is a **view**: its output is the input's storage from byte
  ``start * itemsize``;
- ``concat`` of one-pixel maps is a **view** when its inputs can be written in place of its output:
  ``a``'s storage becomes the output's bytes ``[0, Ca * itemsize)`` and ``b``'s the bytes after them,
  so their producers write straight into the output (or, when ``a`` and ``b`` already lie next to
  each other in one storage, two splits of one map, the output is the storage they span).

Everything else is a copy, one kernel call: a concat or split of a map with ``P = H*W`` pixels reads
and writes each of its elements once (``P*C`` element copies, in ``P`` runs of ``Ca``/``Cb``/``count``
contiguous elements), a shuffle permutes ``P*C`` elements one by one, and both inputs and the output are
live at once during the call (no saving over the copy). A view is refused (and the node copies) when
the shared storage could be overwritten while one of its tensors is still read: the candidate view's
tensors are checked against every write into their bytes over their lifetimes (:func:`storage`), and
views never involve graph inputs, constants (parameters) or row-tiled nodes.

The memory planner (:func:`tte_ir.memory.arena_buffers`) plans one buffer per storage root, sized to
hold every tensor at its offset; the code generator points each tensor at its buffer plus its offset
and emits no call for a view node (``tte_codegen.emit``). The numpy reference, the simulation and the
engine's host runner run every node as its kernel call: a view and its copy compute the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tte_ir._ir import Graph, Node, Op
from tte_ir.ops import OP_TABLE, node_attrs, node_roles

__all__ = ["Storage", "storage"]


@dataclass(frozen=True)
class Storage:
    """Each tensor's storage root and byte offset in it, and the nodes that run as views (no call).

    Tensors absent from ``root`` are their own root at offset 0."""

    root: Mapping[str, str]
    offset: Mapping[str, int]
    views: frozenset[str]

    def of(self, tensor: str) -> tuple[str, int]:
        """``(root, byte offset)`` of ``tensor``."""
        return self.root.get(tensor, tensor), self.offset.get(tensor, 0)


def _pixels(graph: Graph, tensor: str) -> int:
    shape = graph.tensors[tensor].shape
    return shape[2] * shape[3] if len(shape) == 4 else 1


class _Planner:
    """Groups of tensors sharing one storage: ``groups[root] = {tensor: byte offset}``."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.n = len(graph.nodes)
        self.index = {node.name: i for i, node in enumerate(graph.nodes)}
        self.fixed = set(graph.constants) | set(graph.inputs)
        self.tiled = {t for node in graph.nodes if node.attrs.get("tile") for t in (*node.inputs, *node.outputs)}
        self.defined: dict[str, int] = {}
        self.last: dict[str, int] = {}
        self.writer: dict[str, Node] = {}
        for i, node in enumerate(graph.nodes):
            for t in node.outputs:
                self.defined.setdefault(t, i)
                self.writer[t] = node
            for t in node.inputs:
                self.last[t] = i
        for t in graph.outputs:
            self.last[t] = self.n
        self.inplace_outputs: dict[str, set[str]] = {}
        self.group_of: dict[str, str] = {}
        self.groups: dict[str, dict[str, int]] = {}
        self.views: set[str] = set()
        for node in graph.nodes:  # in-place outputs first: their groups are complete before any view joins
            ins, outs = node_roles(node)
            for out_role, in_role in OP_TABLE[node.op].inplace.items():
                if out_role in outs and in_role in ins:
                    self.inplace_outputs.setdefault(node.name, set()).add(outs[out_role])
                    self.join(outs[out_role], ins[in_role])

    def group(self, tensor: str) -> dict[str, int]:
        root = self.group_of.setdefault(tensor, tensor)
        return self.groups.setdefault(root, {tensor: 0})

    def join(self, tensor: str, into: str) -> None:
        """``tensor`` (and its group) shares ``into``'s storage at ``into``'s offset (an in-place output)."""
        target = self.group(into)
        moved = self.group(tensor)
        if moved is target:
            return
        shift = target[into] - moved[tensor]
        self.merge(self.group_of[into], {t: off + shift for t, off in moved.items()}, self.group_of[tensor])

    def merge(self, root: str, members: Mapping[str, int], old_root: str) -> None:
        self.groups.pop(old_root, None)
        self.groups.setdefault(root, {}).update(members)
        for t in members:
            self.group_of[t] = root

    def region(self, tensor: str, offset: int) -> tuple[int, int]:
        return offset, offset + self.graph.tensors[tensor].nbytes

    def safe(self, members: Mapping[str, int], extent: int, view: Node) -> bool:
        """Whether tensors sharing storage at these offsets (with ``view`` running as a view) never see
        their bytes overwritten while they are live (from the node defining them to their last reader)."""
        if any(t in self.fixed or t in self.tiled for t in members):
            return False
        regions = {t: self.region(t, off) for t, off in members.items()}
        if any(lo < 0 or hi > extent for lo, hi in regions.values()):
            return False
        for t, (t_lo, t_hi) in regions.items():
            writer = self.writer.get(t)
            if writer is None or writer is view or writer.name in self.views or writer.op is Op.RESHAPE:
                continue  # a view writes nothing
            j = self.index[writer.name]
            for m, (m_lo, m_hi) in regions.items():
                if m == t or m_hi <= t_lo or t_hi <= m_lo:
                    continue
                start, end = self.defined.get(m, -1), self.last.get(m, self.defined.get(m, -1))
                if start < j < end:
                    return False
                if j == end and t not in self.inplace_outputs.get(writer.name, ()):
                    return False
        return True

    def split_view(self, node: Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if _pixels(self.graph, x) != 1:
            return
        xs = self.group(x)
        ys = self.group(y)
        shift = xs[x] + node_attrs(node)["start"] * self.graph.tensors[x].dtype.itemsize - ys[y]
        members = {**xs, **{t: off + shift for t, off in ys.items()}}
        if self.safe(members, self.extent(xs), node):
            self.views.add(node.name)
            self.merge(self.group_of[x], members, self.group_of[y])

    def concat_view(self, node: Node) -> None:
        a, b = node.inputs
        y = node.outputs[0]
        if _pixels(self.graph, y) != 1:
            return
        a_bytes = self.graph.tensors[a].nbytes
        ga, gb, gy = self.group(a), self.group(b), self.group(y)
        if ga is gb:  # a and b side by side in one storage already: y spans them
            if gb[b] - ga[a] != a_bytes:
                return
            shift = ga[a] - gy[y]
            members = {**ga, **{t: off + shift for t, off in gy.items()}}
            if self.safe(members, self.extent(ga), node):
                self.views.add(node.name)
                self.merge(self.group_of[a], members, self.group_of[y])
            return
        members = dict(gy)
        members.update({t: off - ga[a] + gy[y] for t, off in ga.items()})
        members.update({t: off - gb[b] + gy[y] + a_bytes for t, off in gb.items()})
        if self.safe(members, self.extent(gy), node):
            self.views.add(node.name)
            root = self.group_of[y]
            for old in {self.group_of[a], self.group_of[b]}:
                self.groups.pop(old, None)
            self.merge(root, members, root)

    def extent(self, members: Mapping[str, int]) -> int:
        return max(off + self.graph.tensors[t].nbytes for t, off in members.items())


def storage(graph: Graph) -> Storage:
    """The storage of every tensor of ``graph`` (see the module docstring): in-place outputs on their
    inputs (the op table's ``inplace``), and the channel splits and concats of one-pixel maps that can
    run as views. Views are decided in schedule order, each on the storage the earlier ones left."""
    planner = _Planner(graph)
    for node in graph.nodes:
        if node.attrs.get("tile"):
            continue
        if node.op is Op.CHANNEL_SPLIT:
            planner.split_view(node)
        elif node.op is Op.CONCAT:
            planner.concat_view(node)
    root, offset = {}, {}
    for r, members in planner.groups.items():
        base = min(members.values())
        for t, off in members.items():
            if t != r or off != base:
                root[t] = r
                offset[t] = off - base
    return Storage(root, offset, frozenset(planner.views))
