"""``verify(graph)``: every structural invariant of a graph, checked in one place.

Each failure raises :class:`~tte_ir.VerifyError` naming the node, its op and the tensor at fault.
Sizes are bounded (:data:`MAX_RANK`, :data:`MAX_ELEMENTS`) so that no later stage allocates what a
microcontroller graph never needs; a compiled training graph's record (``metadata["training"]``) is
checked too, since the C code and the reference step read its names and numbers (:data:`MAX_LR`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from tte_ir._ir import DType, Graph, Node, Op, TensorSpec, VerifyError
from tte_ir.ops import ATTR_TYPES, MAX_RANK, OP_TABLE, node_attrs, node_roles

__all__ = ["MAX_ELEMENTS", "MAX_LR", "MAX_RANK", "verify"]

# 2^28 elements (1 GiB of float32) per tensor: far above any microcontroller graph, low enough that a
# damaged size is refused before the planner or the reference allocates it.
MAX_ELEMENTS = 2**28
# The largest learning rate a training record may carry: far above any useful rate, and lr * gradient
# stays inside float32 for every gradient the kernels accept.
MAX_LR = 1e3
_SEED_LIMIT = 2**32
# Keys only a compiled training graph's record has (tte_ir.autodiff.training_info); a forward graph may
# carry another kind of "training" record.
_TRAINING_NAMES = ("input", "label", "loss", "logits")


def verify(graph: Graph) -> Graph:
    """Check ``graph`` and return it unchanged; raise :class:`VerifyError` at the first violation.

    Invariants: tensor names are unique and every referenced tensor is declared; every tensor is
    written exactly once (graph input, constant, or one node output) before it is read (the node
    order is a valid schedule); constants match their declared shape and dtype; each node's operand
    count, attributes, shapes and dtypes agree with the op table; int8 tensors carry valid
    quantization; graph outputs exist; no declared tensor is left unused; an output that works in
    place on an input (the op table's ``inplace``) is the last reader of that input. Shapes have
    positive sizes within :data:`MAX_RANK` and :data:`MAX_ELEMENTS`; every attribute has the type and
    range of :data:`tte_ir.ops.ATTR_TYPES`; float constants are finite; a compiled training record
    names existing tensors and carries finite, bounded numbers.
    """
    for name, spec in graph.tensors.items():
        if spec.name != name:
            raise VerifyError(f"graph '{graph.name}': tensor key '{name}' holds a spec named '{spec.name}'")
        _check_shape(graph, spec)
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
        if spec.dtype is DType.FLOAT32 and not np.isfinite(array).all():
            raise VerifyError(f"graph '{graph.name}': constant '{name}' holds NaN or infinite values")
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
    _check_training(graph)
    return graph


def _check_shape(graph: Graph, spec: TensorSpec) -> None:
    numel = 1
    for d in spec.shape:
        numel *= d
    if not 1 <= len(spec.shape) <= MAX_RANK or min(spec.shape) < 1 or numel > MAX_ELEMENTS:
        raise VerifyError(
            f"graph '{graph.name}': tensor '{spec.name}' has shape {list(spec.shape)}: expected 1 to {MAX_RANK} "
            f"sizes >= 1 and at most {MAX_ELEMENTS} elements"
        )


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
    types = ATTR_TYPES[node.op]
    for key, value in attrs.items():
        problem = types[key].problem(value)
        if problem:
            raise VerifyError(f"{node.describe()}: attribute '{key}' is {_show(value)}: it {problem}")
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
        group = tile["group"]
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


def _show(value: Any) -> str:
    """A value as an error message shows it: its JSON-like text, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_training(graph: Graph) -> None:
    """A compiled training record: its tensor names exist and its numbers (the C code's) are in range."""
    info = graph.metadata.get("training")
    if not isinstance(info, Mapping) or not any(key in info for key in (*_TRAINING_NAMES, "state")):
        return
    where = f"graph '{graph.name}': training record"
    for key in _TRAINING_NAMES:
        name = info.get(key)
        if not isinstance(name, str) or name not in graph.tensors:
            raise VerifyError(f"{where}: '{key}' is {_show(name)}, not the name of a tensor of the graph")
    if info["input"] not in graph.inputs or info["label"] not in graph.inputs:
        raise VerifyError(f"{where}: 'input' and 'label' must name graph inputs")
    label = graph.tensors[info["label"]]
    if label.dtype is not DType.INT32 or label.shape != (1,):
        raise VerifyError(f"{where}: label '{label.name}' must be int32 [1]")
    state = info.get("state")
    if not isinstance(state, Mapping):
        raise VerifyError(f"{where}: 'state' must map each trained parameter to its next value")
    for param, nxt in state.items():
        if param not in graph.constants:
            raise VerifyError(f"{where}: state names '{param}', which is not a constant of the graph")
        if not isinstance(nxt, str) or nxt not in graph.outputs:
            raise VerifyError(f"{where}: the next value of '{param}' is {_show(nxt)}, not a graph output")
        if (graph.tensors[nxt].shape, graph.tensors[nxt].dtype) != (
            graph.tensors[param].shape,
            graph.tensors[param].dtype,
        ):
            raise VerifyError(f"{where}: '{nxt}' does not have the shape and dtype of '{param}'")
    scheme = info.get("scheme")
    if not isinstance(scheme, Mapping):
        raise VerifyError(f"{where}: 'scheme' must be the scheme's JSON object")
    for key in ("lr", "head_lr"):
        value = scheme.get(key)
        if not (_is_number(value) and 0 <= value <= MAX_LR):
            raise VerifyError(
                f"{where}: scheme '{key}' is {_show(value)}: it must be a finite number in [0, {MAX_LR:g}]"
            )
    seed = scheme.get("seed")
    if not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < _SEED_LIMIT):
        raise VerifyError(f"{where}: scheme 'seed' is {_show(seed)}: it must be an integer in [0, 2^32)")
