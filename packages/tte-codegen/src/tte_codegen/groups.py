"""The schedule as C blocks: one node, or one tiled group of nodes as a loop over its tiles.

A group (``tile`` attribute, :mod:`tte_ir.tiling`) runs as one loop. Row-tiled groups (the frozen
forward prefix) read their per-tile row bands from a table that :func:`tte_ir.tiling.row_table`
computes (the one halo formula); channel-tiled groups (the backward through an inverted-residual
block) loop over bands of channels. Inside a tile each node is its ordinary kernel call
(:meth:`tte_codegen.emit.Emitter.emit`) with the band pointers filled in.
"""

from __future__ import annotations

from tte_codegen.cmodel import CodegenError
from tte_codegen.emit import Emitter, Tile
from tte_ir import Graph, Node, Op, TteError
from tte_ir.tiling import row_table

__all__ = ["channel_group", "emit_node", "row_group", "schedule_runs"]


def schedule_runs(graph: Graph) -> list[list[Node]]:
    """The schedule as runs: one node, or the consecutive nodes of one tiled group."""
    runs: list[list[Node]] = []
    for node in graph.nodes:
        tile = node.attrs.get("tile")
        previous = runs[-1][-1].attrs.get("tile") if runs else None
        if tile and previous and tile["group"] == previous["group"]:
            runs[-1].append(node)
        else:
            runs.append([node])
    return runs


def _internal(graph: Graph, nodes: list[Node]) -> frozenset[str]:
    """Tensors written and read only inside the group (they hold one band; tte_ir.memory)."""
    names = {n.name for n in nodes}
    produced = {t for n in nodes for t in n.outputs}
    return frozenset(
        t
        for t in produced
        if t not in graph.outputs and graph.consumers(t) and all(c.name in names for c in graph.consumers(t))
    )


def _indent(code: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line if line else line for line in code.split("\n"))


def emit_node(em: Emitter, node: Node, tile: Tile | None = None) -> str:
    """One node's C, headed by its description; inside a tile, with the tile's bands."""
    if tile is None:
        code = em.emit(node)
    elif tile.axis == "rows":
        code = _row_tile_call(em, node, tile)
    else:
        code = _channel_tile_call(em, node, tile)
    return f"/* {node.describe()} */\n{code}"


def _row_tile_call(em: Emitter, node: Node, tile: Tile) -> str:
    """A node's share of one row tile: output rows ``r[k]``, from where each operand's buffer starts."""
    k = tile.position[node.outputs[0]]
    y = node.outputs[0]
    row = em.elements_per_row(y)
    if node.op is Op.CONV2D:
        overrides = {"rows": f"&r[{k}]"}
        if y not in tile.internal:  # the group's output exists whole: write the tile's rows in place
            overrides["y"] = f"{em.ptr(y)} + r[{k}].y_row * {row}"
        return em.emit(node, tile, overrides)
    if node.op is Op.ADD:
        # An elementwise op on a row band: the same rows of every operand, each from where its buffer
        # starts, with the descriptor's size cut to the band.
        call = em.describe(node)
        operands = {}
        for name, tensor in (("x1", node.inputs[0]), ("x2", node.inputs[1]), ("y", y)):
            start = f"r[{tile.position[tensor]}].y_row" if tensor in tile.internal else "0"
            operands[name] = f"{em.ptr(tensor)} + (r[{k}].y_row - {start}) * {row}"
        desc = em.descriptor(node.name, call.params_type, call.params)
        statement = em.emit(node, tile, {"p": "&p", **operands})
        return f"{{\n    tte_add_params p = *{desc};\n    p.size = r[{k}].y_rows * {row};\n    {statement}\n}}"
    raise CodegenError(f"{node.describe()}: op '{node.op.name.lower()}' cannot run in a row tile")


def _channel_tile_call(em: Emitter, node: Node, tile: Tile) -> str:
    """A node's share of one channel band (``band``: the channels this pass covers)."""
    if node.op is Op.CONV2D_BWD_X:
        call = em.describe(node)
        gh, gx = call.arg("gh").reads, call.arg("gx").writes
        accumulate = call.arg("accumulate").value
        if gh in tile.internal and gx not in tile.internal and not accumulate:
            # the bands of gh add up into the whole gx, in ascending order
            return em.emit(node, tile, {"accumulate": "band.begin > 0"})
    return em.emit(node, tile)


def row_group(em: Emitter, nodes: list[Node], group: int) -> tuple[str, str]:
    """A row-tiled group: its row-band table (a declaration) and its loop."""
    internal = _internal(em.graph, nodes)
    position = {t: k for k, n in enumerate(nodes) for t in n.outputs}
    tile = Tile("rows", internal, position)
    try:
        table = row_table(em.graph, nodes)
    except TteError as error:
        raise CodegenError(str(error)) from error
    name = f"g{group}_rows"
    rows = ",\n".join(
        "    {" + ", ".join(f"{{{b.x_row}, {b.x_rows}, {b.y_row}, {b.y_rows}}}" for b in tile_rows) + "}"
        for tile_rows in table
    )
    decl = (
        f"/* Row bands of group {group} ({nodes[0].name} .. {nodes[-1].name}), per tile and node: "
        f"input rows held, output rows computed. */\n"
        f"static const tte_row_band {name}[{len(table)}][{len(nodes)}] = {{\n{rows}\n}};"
    )
    body = "\n".join(emit_node(em, node, tile) for node in nodes)
    code = (
        f"/* row-tiled group {group}: {len(nodes)} nodes, {len(table)} tiles of "
        f"{nodes[-1].attrs['tile']['tile']} output rows */\n"
        f"for (int32_t t = 0; t < {len(table)}; ++t) {{\n"
        f"    const tte_row_band *r = {name}[t];\n{_indent(body, 4)}\n}}"
    )
    return decl, code


def channel_group(em: Emitter, nodes: list[Node], group: int) -> str:
    """A channel-tiled group: a loop over bands of the expanded channels."""
    tile = Tile("channels", _internal(em.graph, nodes), {})
    channels = em.graph.tensors[nodes[0].outputs[0]].shape[1]
    band = int(nodes[0].attrs["tile"]["band"])
    body = "\n".join(emit_node(em, node, tile) for node in nodes)
    return (
        f"/* channel-tiled group {group}: {len(nodes)} nodes over {channels} channels in bands of {band} */\n"
        f"for (int32_t c = 0; c < {channels}; c += {band}) {{\n"
        f"    const tte_channel_band band = {{c, c + {band} <= {channels} ? {band} : {channels} - c}};\n"
        f"{_indent(body, 4)}\n}}"
    )
