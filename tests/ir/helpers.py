"""Tiny graphs built by hand for the IR tests."""

from __future__ import annotations

import numpy as np

from tte_ir import DType, GraphBuilder, Op, QuantParams


def tiny_residual_graph():
    """input[1,2,4,4] -> conv 3x3 (2->2) -> add(input, conv) -> pool -> flatten -> int8 linear(2->3)."""
    b = GraphBuilder("tiny")
    x = b.input("x", (1, 2, 4, 4), DType.INT8, QuantParams.per_tensor(0.05, -3))
    w = b.constant("c.w", np.arange(-18, 18, dtype=np.int8).reshape(2, 2, 3, 3), QuantParams.per_channel([0.01, 0.02]))
    bias = b.constant("c.b", np.array([100, -(2**31)], dtype=np.int32))
    y = b.tensor("c.y", (1, 2, 4, 4), DType.INT8, QuantParams.per_tensor(0.1, 127))
    b.node("c", Op.CONV2D, (x, w, bias), (y,), padding=1)
    s = b.tensor("add.y", (1, 2, 4, 4), DType.INT8, QuantParams.per_tensor(0.12, -128))
    b.node("add", Op.ADD, (x, y), (s,))
    p = b.tensor("pool.y", (1, 2, 1, 1), DType.INT8, QuantParams.per_tensor(0.12, -128))
    b.node("pool", Op.GLOBAL_AVG_POOL, (s,), (p,))
    f = b.tensor("flat.y", (1, 2), DType.INT8, QuantParams.per_tensor(0.12, -128))
    b.node("flat", Op.RESHAPE, (p,), (f,), shape=[1, 2])
    hw = b.constant(
        "h.w", np.array([[1, 2], [3, -4], [127, -127]], dtype=np.int8), QuantParams.per_channel([0.1, 0.2, 0.3])
    )
    hb = b.constant("h.b", np.array([1, 2, 3], dtype=np.int32))
    logits = b.tensor("logits", (1, 3), DType.INT8, QuantParams.per_tensor(0.5, 0))
    b.node("h", Op.LINEAR, (f, hw, hb), (logits,))
    b.output(logits)
    return b
