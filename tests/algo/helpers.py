"""Random small int8 graphs and a quickly pretrained float model for the tte-algo tests."""

from __future__ import annotations

import numpy as np

from tte_ir import DType, GraphBuilder, Op, QuantParams


def random_graph(seed: int, head: str = "int8", size: int = 6):
    """input[1,C,size,size] -> dense conv (stride 1 or 2) -> pw expand -> depthwise -> pw project ->
    residual add (the block input is read twice) -> pool -> flatten -> head.

    Zero points, scales, activation ranges and biases (including dead +-2^31 channels) are random.
    """
    rng = np.random.default_rng(seed)
    b = GraphBuilder(f"random{seed}")

    def act_quant():
        return QuantParams.per_tensor(float(rng.uniform(0.01, 0.2)), int(rng.integers(-128, 100)))

    def conv(name, x, cout, k, stride, groups, act=None):
        cin = b.spec(x).shape[1]
        _, _, h, w = b.spec(x).shape
        weight = rng.integers(-127, 128, size=(cout, cin // groups, k, k)).astype(np.int8)
        scales = rng.uniform(0.002, 0.02, size=cout)
        bias = rng.integers(-3000, 3000, size=cout).astype(np.int64)
        if cout > 2:
            bias[rng.integers(cout)] = rng.choice([-(2**31), 2**31 - 1])
        wt = b.constant(f"{name}.w", weight, QuantParams.per_channel(scales))
        bt = b.constant(f"{name}.b", bias.astype(np.int32))
        pad = (k - 1) // 2
        shape = (1, cout, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)
        y = b.tensor(f"{name}.y", shape, DType.INT8, act_quant())
        extra = {} if act is None else {"act_min": act[0], "act_max": act[1]}
        b.node(name, Op.CONV2D, (x, wt, bt), (y,), stride=stride, padding=pad, groups=groups, **extra)
        return y

    x = b.input("input", (1, 3, size, size), DType.INT8, QuantParams.per_tensor(1 / 127.5, 0))
    c = int(rng.choice([4, 6]))
    x = conv("stem", x, c, 3, int(rng.choice([1, 2])), 1, act=(-128, int(rng.integers(60, 128))))
    y = conv("pw1", x, 2 * c, 1, 1, 1, act=(int(rng.integers(-128, -100)), 127))
    y = conv("dw", y, 2 * c, 3, 1, 2 * c)
    y = conv("grouped", y, c, 3, 1, 2)
    s = b.tensor("add.y", b.spec(x).shape, DType.INT8, act_quant())
    b.node("add", Op.ADD, (x, y), (s,), act_min=int(rng.integers(-128, -64)))
    p = b.tensor("pool.y", (1, c, 1, 1), DType.INT8, act_quant())
    b.node("pool", Op.GLOBAL_AVG_POOL, (s,), (p,))
    f = b.tensor("flat.y", (1, c), DType.INT8, b.spec(p).quant)
    b.node("flat", Op.RESHAPE, (p,), (f,), shape=[1, c])
    if head == "int8":
        hw = b.constant(
            "head.w",
            rng.integers(-127, 128, size=(5, c)).astype(np.int8),
            QuantParams.per_channel(rng.uniform(0.005, 0.02, 5)),
        )
        hb = b.constant("head.b", rng.integers(-500, 500, size=5).astype(np.int32))
        logits = b.tensor("logits", (1, 5), DType.INT8, QuantParams.per_tensor(0.05, int(rng.integers(-10, 10))))
    else:
        hw = b.constant("head.w", rng.normal(size=(5, c)).astype(np.float32))
        hb = b.constant("head.b", rng.normal(size=5).astype(np.float32))
        logits = b.tensor("logits", (1, 5), DType.FLOAT32)
    b.node("head", Op.LINEAR, (f, hw, hb), (logits,))
    b.output(logits)
    return b.build()
