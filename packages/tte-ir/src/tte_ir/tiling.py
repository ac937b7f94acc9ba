"""Tiled fused groups: schedules in which a wide intermediate tensor never exists whole.

A group is a run of consecutive nodes carrying the same ``tile`` attribute
``{"group": g, "axis": "rows" | "channels", "band": n, "tile": t}``; it runs as one loop over tiles.
A tensor written and read only inside the group (an *internal* tensor) holds one band: ``band`` rows
(axis ``rows``) or ``band`` channels (axis ``channels``) of it. Every other tensor the group touches
exists whole. The memory planner sizes internal tensors by their band and gives every node of the
group the group's time span (:mod:`tte_ir.memory`).

**Row tiles** (:func:`tile_frozen_rows`, the frozen forward prefix, after MCUNetV2's patch-based
inference): the group's last node computes its output ``tile`` rows at a time. For each tile, every
node of the group computes the rows of its output that its consumers inside the group read
(``(rows - 1) * sh + KH`` input rows for a conv, as many for an add), halo rows recomputed, into
its band buffer. Only the last node's output leaves the group. int8 kernels are exact, so recomputed
rows are bit-identical and the tiled result equals the untiled one.

**Channel tiles** (:func:`tile_backward_channels`, the backward through an inverted-residual
block): the pointwise input gradient into the expanded tensor, the depthwise backward and the
expansion conv's updates are channel-separable; they run ``band`` expanded channels at a time, and the
expansion conv's input gradient accumulates each chunk into its whole output. Every float sum keeps its
order (ascending output channel, NUMERICS.md §7), so the tiled result is bit-identical too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tte_ir._ir import Graph, Node, Op, TteError, as_padding, as_pair
from tte_ir.ops import node_attrs, node_macs, node_roles
from tte_ir.verify import verify

__all__ = [
    "CHANNEL_TILE",
    "RowBand",
    "input_rows",
    "recomputed_macs",
    "row_table",
    "tile_backward_channels",
    "tile_frozen_rows",
]

CHANNEL_TILE = 16  # expanded channels per backward tile: no recompute, so small chunks cost only calls


def _with_tile(node: Node, tile: dict[str, object]) -> Node:
    return Node(node.name, node.op, node.inputs, node.outputs, {**node.attrs, "tile": tile})


def _next_group(graph: Graph) -> int:
    groups = [int(n.attrs["tile"]["group"]) for n in graph.nodes if n.attrs.get("tile")]
    return max(groups, default=-1) + 1


def _readers(graph: Graph) -> dict[str, list[int]]:
    readers: dict[str, list[int]] = {}
    for i, node in enumerate(graph.nodes):
        for t in node.inputs:
            readers.setdefault(t, []).append(i)
    return readers


# -- forward row tiles ---------------------------------------------------------------------------


def _row_tilable(node: Node) -> bool:
    attrs = node_attrs(node)
    return node.op in (Op.CONV2D, Op.ADD) and not attrs["save_mask"] and not attrs.get("channels")


@dataclass(frozen=True)
class _RowGroup:
    start: int
    stop: int  # exclusive
    rows: int
    bands: dict[str, int]
    cost: int


def _row_inputs(node: Node) -> tuple[str, ...]:
    """The activation inputs of a row-tiled node (a conv's feature map, an add's two operands)."""
    return tuple(node.inputs[:2]) if node.op is Op.ADD else tuple(node.inputs[:1])


def input_rows(graph: Graph, node: Node, lo: int, hi: int) -> tuple[int, int]:
    """The input rows ``[lo', hi')`` that output rows ``[lo, hi)`` of a row-tiled node read: the halo.

    A conv reads ``[lo*sh - top, (hi-1)*sh - top + KH)`` (``sh`` its stride along H, ``top`` its top
    padding; the bottom padding only adds rows that are not stored), an add the same rows. Not clipped to the
    input: callers clip to ``[0, H)`` (padding rows are not stored). This is the one halo formula;
    the row bands the planner sizes, the row tables the code generator writes and the kernels' own
    check of a band (``tte_conv2d_row_window`` in the engine) all describe the same span.
    """
    if node.op is not Op.CONV2D:
        return lo, hi
    attrs = node_attrs(node)
    kh = graph.tensors[node.inputs[1]].shape[2]
    sh, top = as_pair(attrs["stride"])[0], as_padding(attrs["padding"])[0]
    return lo * sh - top, (hi - 1) * sh - top + kh


def _row_bands(graph: Graph, nodes: Sequence[Node], rows: int) -> dict[str, int]:
    """Rows of each internal tensor needed for ``rows`` rows of the last node's output (an interior
    tile, the largest: a border tile's halo is cut by the padding)."""
    inside = {n.outputs[0] for n in nodes[:-1]}
    need = {nodes[-1].outputs[0]: rows}
    for node in reversed(nodes):
        r = need.get(node.outputs[0], 0)
        first, stop = input_rows(graph, node, 0, r)
        for x in _row_inputs(node):
            if x in inside:
                need[x] = min(max(need.get(x, 0), stop - first), graph.tensors[x].shape[2])
    return {t: need[t] for t in inside}


@dataclass(frozen=True)
class RowBand:
    """One node's share of one row tile: it computes output rows ``[y_row, y_row + y_rows)`` from an
    input buffer holding rows ``[x_row, x_row + x_rows)`` (``tte_row_band`` in the engine)."""

    x_row: int
    x_rows: int
    y_row: int
    y_rows: int


def row_table(graph: Graph, nodes: Sequence[Node]) -> list[list[RowBand]]:
    """Per tile, per node of a row-tiled group: the rows it computes and the rows its input holds.

    An internal input holds its producer's band for that tile; an input from outside the group is
    whole. Raises :class:`TteError` when a tile needs more rows of a tensor than its band holds.
    """
    produced = {n.outputs[0] for n in nodes}
    internal = {t for t in produced if t != nodes[-1].outputs[0]}
    last = nodes[-1]
    height = graph.tensors[last.outputs[0]].shape[2]
    step = int(last.attrs["tile"]["tile"])
    table = []
    for top in range(0, height, step):
        need = {last.outputs[0]: (top, min(top + step, height))}
        for node in reversed(nodes):
            first, stop = input_rows(graph, node, *need[node.outputs[0]])
            for x in _row_inputs(node):
                if x in internal:
                    span = (max(0, first), min(graph.tensors[x].shape[2], stop))
                    old = need.get(x, span)
                    need[x] = (min(old[0], span[0]), max(old[1], span[1]))
        tile = []
        for node in nodes:
            lo, hi = need[node.outputs[0]]
            band = int(node.attrs["tile"]["band"])
            if node.outputs[0] in internal and hi - lo > band:
                raise TteError(f"{node.describe()}: a tile needs rows {lo}..{hi - 1}, more than its band of {band}")
            x = node.inputs[0]
            x_lo, x_hi = need[x] if x in internal else (0, graph.tensors[x].shape[2])
            tile.append(RowBand(x_lo, x_hi - x_lo, lo, hi - lo))
        table.append(tile)
    return table


def _row_group(graph: Graph, start: int, stop: int, rows: int) -> _RowGroup:
    nodes = graph.nodes[start:stop]
    bands = _row_bands(graph, nodes, rows)
    band_bytes = 0
    for t, r in bands.items():
        spec = graph.tensors[t]
        band_bytes += spec.shape[1] * r * spec.shape[3] * spec.dtype.itemsize
    produced = {n.outputs[0] for n in nodes}
    external = {x for n in nodes for x in n.inputs if x not in produced and x not in graph.constants}
    external -= set(graph.inputs)
    cost = band_bytes + graph.tensors[nodes[-1].outputs[0]].nbytes + sum(graph.tensors[x].nbytes for x in external)
    return _RowGroup(start, stop, rows, bands, cost)


def tile_frozen_rows(graph: Graph, *, fits: Callable[[Graph], bool] | None = None) -> Graph:
    """Row-tile the frozen forward prefix into fused groups that minimize its peak (see the module docstring).

    The prefix is the leading run of convs and adds that save nothing for backward. Groups are cut
    where exactly one tensor (the group's output) crosses the cut; a dynamic program picks the cuts
    that minimize the largest group footprint at one-row tiles, then each group takes the largest
    power-of-two tile height whose footprint stays within that bound (fewer recomputed halo rows).

    With ``fits`` (a memory budget: does this graph fit?), the budget is the knob between memory and
    time: tile heights then keep doubling, the group that saves the most recomputed MACs first, while
    the graph still fits, up to one tile per group (nothing recomputed). Without it the result is the
    smallest-peak schedule.
    """
    prefix = 0
    while prefix < len(graph.nodes) and _row_tilable(graph.nodes[prefix]):
        prefix += 1
    if prefix < 2:
        return graph
    readers = _readers(graph)

    def valid(start: int, stop: int) -> bool:
        escaping = {
            out
            for n in graph.nodes[start:stop]
            for out in n.outputs
            if out in graph.outputs or any(r >= stop for r in readers.get(out, []))
        }
        return escaping == {graph.nodes[stop - 1].outputs[0]}

    best: dict[int, tuple[int, int, list[_RowGroup]]] = {0: (0, 0, [])}  # stop -> (peak, groups, plan)
    for stop in range(1, prefix + 1):
        for start in range(stop):
            if start not in best or not valid(start, stop):
                continue
            group = _row_group(graph, start, stop, 1)
            peak, count, plan = best[start]
            candidate = (max(peak, group.cost), count + 1, [*plan, group])
            if stop not in best or candidate[:2] < best[stop][:2]:
                best[stop] = candidate
    end = max(best)
    bound, _, plan = best[end]
    groups = [group for group in plan if group.stop - group.start >= 2]
    heights = []
    for group in groups:
        height = graph.tensors[graph.nodes[group.stop - 1].outputs[0]].shape[2]
        rows = 1
        while rows * 2 <= height and _row_group(graph, group.start, group.stop, rows * 2).cost <= bound:
            rows *= 2
        heights.append(rows)
    tiled = _apply_row_tiles(graph, groups, heights)
    if fits is None:
        return tiled
    while True:  # spend the budget where it saves the most recomputed MACs
        recomputed = recomputed_macs(tiled)
        if recomputed == 0:
            return tiled
        chosen: tuple[int, int, Graph] | None = None
        for k, group in enumerate(groups):
            height = graph.tensors[graph.nodes[group.stop - 1].outputs[0]].shape[2]
            if heights[k] >= height:
                continue
            trial = _apply_row_tiles(graph, groups, [*heights[:k], min(2 * heights[k], height), *heights[k + 1 :]])
            # a doubling that saves nothing yet may open the next one: taken last, heights only grow
            saved = recomputed - recomputed_macs(trial)
            if (chosen is None or saved > chosen[0]) and fits(trial):
                chosen = (saved, k, trial)
        if chosen is None:
            return tiled
        _, k, tiled = chosen
        heights[k] = min(2 * heights[k], graph.tensors[graph.nodes[groups[k].stop - 1].outputs[0]].shape[2])


def _apply_row_tiles(graph: Graph, groups: Sequence[_RowGroup], heights: Sequence[int]) -> Graph:
    """``graph`` with each row group tiled ``heights[k]`` output rows at a time."""
    nodes = list(graph.nodes)
    group_id = _next_group(graph)
    for group, rows in zip(groups, heights, strict=True):
        chosen = _row_group(graph, group.start, group.stop, rows)
        for i in range(group.start, group.stop):
            out = nodes[i].outputs[0]
            band = chosen.bands.get(out, rows if i == group.stop - 1 else graph.tensors[out].shape[2])
            nodes[i] = _with_tile(nodes[i], {"group": group_id, "axis": "rows", "band": band, "tile": rows})
        group_id += 1
    return verify(graph.replace(nodes=nodes))


def recomputed_macs(graph: Graph) -> int:
    """MACs the row-tiled groups spend recomputing halo rows: every output row a node computes more
    than once, over all tiles, times that row's MACs (0 for a graph without row tiles)."""
    runs: dict[object, list[Node]] = {}
    for node in graph.nodes:
        tile = node.attrs.get("tile")
        if tile and tile["axis"] == "rows":
            runs.setdefault(tile["group"], []).append(node)
    total = 0
    for nodes in runs.values():
        table = row_table(graph, nodes)
        for k, node in enumerate(nodes):
            height = graph.tensors[node.outputs[0]].shape[2]
            computed = sum(tile[k].y_rows for tile in table)
            total += (computed - height) * (node_macs(graph, node) // height)
    return total


# -- backward channel tiles ------------------------------------------------------------------------


def _is_depthwise_bwd(graph: Graph, node: Node) -> bool:
    attrs = node_attrs(node)
    w = graph.tensors[node.inputs[1]].shape
    return attrs["groups"] > 1 and w[1] == 1 and attrs["groups"] == w[0]


def _chunk_group(graph: Graph, nodes: Sequence[Node], first: int) -> tuple[int, list[int], list[int]] | None:
    """Extend a channel-tiled group from the pointwise input-gradient node ``first``.

    Returns the exclusive end of the scanned run, the indices of the group's nodes and of the
    updates that do not touch the chunked tensors (they move after the group: they only read
    whole tensors, and the group's readers of their parameter come first), or None when nothing
    would be chunked.
    """
    chunked = {nodes[first].outputs[0]}
    members = [first]
    deferred: list[int] = []
    stop = first + 1
    while stop < len(nodes):
        node = nodes[stop]
        ins, outs = node_roles(node)
        reads = [r for r, t in ins.items() if t in chunked]
        if not reads:
            if node.op in (Op.BIAS_UPDATE, Op.CONV2D_BWD_W_UPDATE, Op.BIAS_ACCUMULATE, Op.CONV2D_BWD_W_ACCUMULATE):
                deferred.append(stop)
                stop += 1
                continue
            break
        if node.op is Op.MASK_SCALE and reads == ["g"]:
            chunked.add(outs["gh"])
        elif node.op is Op.CONV2D_BWD_X and reads == ["gh"] and _is_depthwise_bwd(graph, node):
            if node_attrs(node)["accumulate"]:
                break
            chunked.add(outs["gx"])
        elif node.op not in (
            Op.BIAS_UPDATE,
            Op.CONV2D_BWD_W_UPDATE,
            Op.BIAS_ACCUMULATE,
            Op.CONV2D_BWD_W_ACCUMULATE,
            Op.CONV2D_BWD_X,
        ) or reads != ["gh"]:
            break
        # a dense or pointwise input gradient reduces over the chunk: its output stays whole
        members.append(stop)
        stop += 1
    while deferred and deferred[-1] > members[-1]:
        deferred.pop()
    stop = members[-1] + 1 if not deferred else max(members[-1], deferred[-1]) + 1
    readers: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for t in node.inputs:
            readers[t] = i
    if len(members) < 2 or any(readers.get(t, 0) >= stop or t in graph.outputs for t in chunked):
        return None
    return stop, members, deferred


def tile_backward_channels(graph: Graph, tile: int = CHANNEL_TILE) -> Graph:
    """Channel-tile each backward chain through a wide expanded gradient (see the module docstring)."""
    nodes = list(graph.nodes)
    group_id = _next_group(graph)
    i = 0
    while i < len(nodes):
        node = nodes[i]
        if node.op is not Op.CONV2D_BWD_X or _is_depthwise_bwd(graph, node) or node_attrs(node)["accumulate"]:
            i += 1
            continue
        found = _chunk_group(graph, nodes, i) if graph.tensors[node.outputs[0]].shape[1] > tile else None
        if found is None:
            i += 1
            continue
        stop, members, deferred = found
        attrs = {"group": group_id, "axis": "channels", "band": tile, "tile": tile}
        nodes[i:stop] = [_with_tile(nodes[k], attrs) for k in members] + [nodes[k] for k in deferred]
        group_id += 1
        i = stop
    return verify(graph.replace(nodes=nodes))
