"""Per-layer summary of a graph (what ``tte inspect`` prints)."""

from __future__ import annotations

from dataclasses import dataclass

from tte_ir._ir import Graph, Op, as_pair
from tte_ir.ops import node_attrs, node_macs

__all__ = ["LayerRow", "summarize"]


@dataclass(frozen=True)
class LayerRow:
    """One node: its kind (conv variants are told apart), shapes and costs."""

    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    macs: int
    param_bytes: int
    activation_bytes: int


def _stride(attrs) -> str:  # type: ignore[no-untyped-def]
    sh, sw = as_pair(attrs["stride"])
    return f"s{sh}" if sh == sw else f"s{sh}x{sw}"


def _kind(graph: Graph, node) -> str:  # type: ignore[no-untyped-def]
    if node.op is Op.CONV2D:
        attrs = node_attrs(node)
        w = graph.tensors[node.inputs[1]].shape
        channels = graph.tensors[node.inputs[0]].shape[1]
        if attrs["groups"] == channels and w[1] == 1 and channels > 1:
            return f"conv2d dw {w[2]}x{w[3]}/{_stride(attrs)}"
        if w[2] == w[3] == 1:
            return f"conv2d pw/{_stride(attrs)}"
        return f"conv2d {w[2]}x{w[3]}/{_stride(attrs)}"
    if node.op is Op.LINEAR:
        return f"linear {graph.tensors[node.inputs[1]].dtype.name.lower()}"
    return node.op.name.lower()


def summarize(graph: Graph) -> list[LayerRow]:
    """One :class:`LayerRow` per node, in schedule order.

    ``param_bytes`` counts the node's constant operands (weights and biases) at their stored width;
    ``activation_bytes`` counts its output tensor.
    """
    rows = []
    for node in graph.nodes:
        params = sum(graph.tensors[n].nbytes for n in node.inputs if n in graph.constants)
        rows.append(
            LayerRow(
                node.name,
                _kind(graph, node),
                graph.tensors[node.inputs[0]].shape,
                graph.tensors[node.outputs[0]].shape,
                node_macs(graph, node),
                params,
                graph.tensors[node.outputs[0]].nbytes,
            )
        )
    return rows
