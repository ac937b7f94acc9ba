"""Derived quantization constants (NUMERICS.md §1-2).

Each is computed once, in float64, from the float32 scales recorded in the graph, then rounded
once to float32. Every consumer (reference, simulator, code generator, engine binding) calls these
functions; nothing recomputes a multiplier on its own.
"""

from __future__ import annotations

import numpy as np

from tte_ir._ir import Graph, Node, Op, TteError

__all__ = [
    "add_multipliers",
    "conv_multiplier",
    "node_multipliers",
    "pool_multiplier",
]


def conv_multiplier(s_x: float, s_w: np.ndarray, s_y: float) -> np.ndarray:
    """``M[o] = float32(s_x * s_w[o] / s_y)`` for a conv or int8 linear layer."""
    s_w64 = np.asarray(s_w, dtype=np.float32).astype(np.float64)
    return (np.float64(s_x) * s_w64 / np.float64(s_y)).astype(np.float32)


def add_multipliers(s_1: float, s_2: float, s_y: float) -> tuple[np.float32, np.float32]:
    """``(float32(s_1/s_y), float32(s_2/s_y))`` for a quantized residual add."""
    return np.float32(np.float64(s_1) / np.float64(s_y)), np.float32(np.float64(s_2) / np.float64(s_y))


def pool_multiplier(s_x: float, s_y: float, hw: int) -> np.float32:
    """``float32(s_x / (s_y * H * W))`` for a global average pool."""
    return np.float32(np.float64(s_x) / (np.float64(s_y) * np.float64(hw)))


def node_multipliers(graph: Graph, node: Node) -> dict[str, np.ndarray | np.float32]:
    """The float32 constants a kernel needs for ``node``, from the graph's quantization.

    conv2d / int8 linear: ``{"multiplier": M[O]}``; add: ``{"m1", "m2"}``; pool: ``{"multiplier"}``.
    Ops without multipliers (reshape, fp32 linear) give an empty dict.
    """
    spec = graph.tensors
    if node.op in (Op.CONV2D, Op.LINEAR):
        x, w, _b = (spec[name] for name in node.inputs[:3])
        if w.dtype.name == "FLOAT32":
            return {}
        y = spec[node.outputs[0]]
        _require_quant(node, x.name, x.quant, y.quant, w.quant)
        return {"multiplier": conv_multiplier(x.quant.tensor_scale, w.quant.scale_array(), y.quant.tensor_scale)}
    if node.op is Op.ADD:
        a, b = (spec[name] for name in node.inputs)
        y = spec[node.outputs[0]]
        _require_quant(node, a.name, a.quant, b.quant, y.quant)
        m1, m2 = add_multipliers(a.quant.tensor_scale, b.quant.tensor_scale, y.quant.tensor_scale)
        return {"m1": m1, "m2": m2}
    if node.op is Op.GLOBAL_AVG_POOL:
        x = spec[node.inputs[0]]
        y = spec[node.outputs[0]]
        _require_quant(node, x.name, x.quant, y.quant)
        hw = x.shape[2] * x.shape[3]
        return {"multiplier": pool_multiplier(x.quant.tensor_scale, y.quant.tensor_scale, hw)}
    return {}


def _require_quant(node: Node, tensor: str, *quants: object) -> None:
    if any(q is None for q in quants):
        raise TteError(f"{node.describe()}: an int8 tensor around '{tensor}' has no quantization parameters")
