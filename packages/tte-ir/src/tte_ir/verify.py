"""``verify(graph)``: every structural invariant of a graph, checked in one place.

Each failure raises :class:`~tte_ir.VerifyError` naming the node, its op and the tensor at fault.
"""

from __future__ import annotations

import math

import numpy as np

from tte_ir._ir import DType, Graph, Node, Op, TensorSpec, VerifyError
from tte_ir.ops import OP_TABLE, node_attrs, node_roles

__all__ = ["verify"]


def verify(graph: Graph) -> Graph:
    """Check ``graph`` and return it unchanged; raise :class:`VerifyError` at the first violation.

    Invariants: tensor names are unique and every referenced tensor is declared; every tensor is
    written exactly once (graph input, constant, or one node output) before it is read (the node
    order is a valid schedule); constants match their declared shape and dtype; each node's operand
    count, attributes, shapes and dtypes agree with the op table; int8 tensors carry valid
    quantization; graph outputs exist; no declared tensor is left unused; an output that works in
    place on an input (the op table's ``inplace``) is the last reader of that input.
    """
    for name, spec in graph.tensors.items():
        if spec.name != name:
            raise VerifyError(f"graph '{graph.name}': tensor key '{name}' holds a spec named '{spec.name}'")
        _check_quant(graph, spec)
    written: set[str] = set()
    for name in graph.inputs:
        _require_declared(graph, None, name)
        if name in graph.constants:
            raise VerifyError(f"graph '{graph.name}': tensor '{name}' is both a graph input and a constant")
        written.add(name)
    for name, array in graph.constants.items():
        _require_declared(graph, None, name)
        spec = graph.tensors[name]
        if tuple(array.shape) != spec.shape or np.dtype(array.dtype) != spec.dtype.numpy:
            raise VerifyError(
                f"graph '{graph.name}': constant '{name}' is {array.dtype}{list(array.shape)}, "
                f"declared {spec.dtype.name.lower()}{list(spec.shape)}"
            )
        written.add(name)
    seen_nodes: set[str] = set()
    read: set[str] = set()
    for node in graph.nodes:
        if node.name in seen_nodes:
            raise VerifyError(f"graph '{graph.name}': two nodes are named '{node.name}'")
        seen_nodes.add(node.name)
        _check_node(graph, node, written)
        read.update(node.inputs)
        for out in node.outputs:
            if out in written:
                raise VerifyError(f"{node.describe()}: output tensor '{out}' is already written elsewhere")
            written.add(out)
    for name in graph.outputs:
        _require_declared(graph, None, name)
        if name not in written:
            raise VerifyError(f"graph '{graph.name}': output tensor '{name}' is never written")
    _check_inplace(graph)
    _check_tiles(graph)
    unused = sorted(set(graph.tensors) - read - set(graph.outputs))
    if unused:
        raise VerifyError(f"graph '{graph.name}': tensor '{unused[0]}' is declared but never used (dangling)")
    return graph


def _require_declared(graph: Graph, node: Node | None, name: str) -> None:
    if name not in graph.tensors:
        where = node.describe() if node else f"graph '{graph.name}'"
        raise VerifyError(f"{where}: tensor '{name}' is not declared (dangling reference)")


def _check_node(graph: Graph, node: Node, written: set[str]) -> None:
    row = OP_TABLE.get(node.op)
    if row is None:
        raise VerifyError(f"{node.describe()}: op has no entry in the op table")
    unknown = set(node.attrs) - set(row.defaults) - set(row.required)
    if unknown:
        raise VerifyError(f"{node.describe()}: unknown attribute '{sorted(unknown)[0]}'")
    for key in row.required:
        if key not in node.attrs:
            raise VerifyError(f"{node.describe()}: missing attribute '{key}'")
    attrs = node_attrs(node)
    in_roles, out_roles = row.roles(attrs)
    if len(node.inputs) != len(in_roles) or len(node.outputs) != len(out_roles):
        raise VerifyError(
            f"{node.describe()}: takes inputs ({', '.join(in_roles)}) and outputs "
            f"({', '.join(out_roles)}), got {len(node.inputs)} inputs and {len(node.outputs)} outputs"
        )
    for role, name in zip(in_roles, node.inputs, strict=False):
        _require_declared(graph, node, name)
        if name not in written:
            raise VerifyError(f"{node.describe()}: input '{role}' tensor '{name}' is read before it is written")
    for name in node.outputs:
        _require_declared(graph, node, name)
    ins = {role: graph.tensors[name] for role, name in zip(in_roles, node.inputs, strict=False)}
    inferred = row.infer(node, ins, attrs)
    for role, name, (shape, dtype) in zip(out_roles, node.outputs, inferred, strict=False):
        spec = graph.tensors[name]
        if spec.shape != shape:
            raise VerifyError(
                f"{node.describe()}: output '{role}' tensor '{name}' is declared {list(spec.shape)}, the op gives {list(shape)}"
            )
        if spec.dtype is not dtype:
            raise VerifyError(
                f"{node.describe()}: output '{role}' tensor '{name}' is declared {spec.dtype.name.lower()}, "
                f"the op gives {dtype.name.lower()}"
            )
    if node.op in (Op.RESHAPE, Op.GATHER_CHANNELS) and ins["x"].quant != graph.tensors[node.outputs[0]].quant:
        raise VerifyError(
            f"{node.describe()}: output '{node.outputs[0]}' must keep the quantization of '{node.inputs[0]}'"
        )


def _check_inplace(graph: Graph) -> None:
    """An output that reuses an input's buffer overwrites it: nothing may read the input afterwards."""
    last_read: dict[str, int] = {}
    for index, node in enumerate(graph.nodes):
        for name in node.inputs:
            last_read[name] = index
    for index, node in enumerate(graph.nodes):
        ins, outs = node_roles(node)
        for out_role, in_role in OP_TABLE[node.op].inplace.items():
            if out_role not in outs or in_role not in ins:
                continue
            source = ins[in_role]
            if last_read[source] > index or source in graph.outputs:
                reader = graph.nodes[last_read[source]].name if last_read[source] > index else "a graph output"
                raise VerifyError(
                    f"{node.describe()}: output '{outs[out_role]}' overwrites '{source}' in place, "
                    f"but {reader} reads '{source}' afterwards"
                )


def _check_tiles(graph: Graph) -> None:
    """Nodes of one tiled group (tte_ir.tiling) are consecutive and agree on the tiled axis."""
    seen: dict[int, tuple[int, str]] = {}
    previous = None
    for index, node in enumerate(graph.nodes):
        tile = node.attrs.get("tile")
        if not tile:
            previous = None
            continue
        if not isinstance(tile, dict) or set(tile) != {"group", "axis", "band", "tile"}:
            raise VerifyError(f"{node.describe()}: attribute 'tile' must be {{group, axis, band, tile}}")
        if tile["axis"] not in ("rows", "channels") or int(tile["band"]) < 1 or int(tile["tile"]) < 1:
            raise VerifyError(f"{node.describe()}: tile axis must be rows or channels, band and tile >= 1")
        group = int(tile["group"])
        if group in seen and (previous != group or seen[group][1] != tile["axis"]):
            raise VerifyError(f"{node.describe()}: tiled group {group} is not one run of consecutive nodes")
        seen.setdefault(group, (index, tile["axis"]))
        previous = group


def _check_quant(graph: Graph, spec: TensorSpec) -> None:
    q = spec.quant
    where = f"graph '{graph.name}': tensor '{spec.name}'"
    if spec.dtype is DType.INT8 and q is None:
        raise VerifyError(f"{where} is int8 but has no quantization parameters")
    if q is None:
        return
    if not q.scale or not all(math.isfinite(s) and s > 0 for s in q.scale):
        raise VerifyError(f"{where} has a scale that is not finite and positive")
    if not -128 <= q.zero_point <= 127:
        raise VerifyError(f"{where} has zero point {q.zero_point} outside [-128, 127]")
    if q.axis is None:
        if len(q.scale) != 1:
            raise VerifyError(f"{where} is per-tensor but has {len(q.scale)} scales")
    else:
        if not 0 <= q.axis < len(spec.shape) or len(q.scale) != spec.shape[q.axis]:
            raise VerifyError(
                f"{where} has {len(q.scale)} per-channel scales along axis {q.axis} of shape {list(spec.shape)}"
            )
        if q.zero_point != 0:
            raise VerifyError(f"{where} is a symmetric per-channel weight but has zero point {q.zero_point}")
