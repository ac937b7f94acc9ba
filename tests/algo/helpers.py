"""Random small int8 graphs and a quickly pretrained float model for the tte-algo tests."""

from __future__ import annotations

import numpy as np

from tte_ir import DType, GraphBuilder, Op, QuantParams


def random_graph(seed: int, head: str = "int8", size: int = 6, requant: str = "float"):
    """input[1,C,size,size] -> dense conv (stride 1 or 2) -> pw expand -> depthwise -> pw project ->
    residual add (the block input is read twice) -> pool -> flatten -> head.

    Zero points, scales, activation ranges and biases (including dead +-2^31 channels) are random;
    ``requant`` is the graph's requantization (NUMERICS.md §2, §2b).
    """
    rng = np.random.default_rng(seed)
    b = GraphBuilder(f"random{seed}", {"requant": requant})

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


def every_op_graph(seed: int, size: int = 7, requant: str = "fixed"):
    """A small graph with every requantizing forward op (NUMERICS.md §2b): dense, depthwise and
    pointwise convs, a residual add, the three LUT activations, a squeeze-and-excite multiply (global
    pool -> sigmoid -> mul), a max pool, average pools that keep their input's quantization (TFLite's
    AVERAGE_POOL_2D, a rounded division; with padding, counting only the input pixels) and that change
    it, a global average pool and an int8 linear head. Scales, zero points, clamps and biases are random."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder(f"every_op{seed}", {"requant": requant})

    def act_quant():
        return QuantParams.per_tensor(float(rng.uniform(0.01, 0.2)), int(rng.integers(-128, 100)))

    def tensor(name, shape, quant=None):
        return b.tensor(name, shape, DType.INT8, quant or act_quant())

    def conv(name, x, cout, k, groups=1, act=(-128, 127)):
        cin, h, w = b.spec(x).shape[1:]
        weight = rng.integers(-127, 128, size=(cout, cin // groups, k, k)).astype(np.int8)
        wt = b.constant(f"{name}.w", weight, QuantParams.per_channel(rng.uniform(0.002, 0.02, size=cout)))
        bt = b.constant(f"{name}.b", rng.integers(-3000, 3000, size=cout).astype(np.int32))
        y = tensor(f"{name}.y", (1, cout, h, w))
        pad = (k - 1) // 2
        b.node(name, Op.CONV2D, (x, wt, bt), (y,), stride=1, padding=pad, groups=groups, act_min=act[0], act_max=act[1])
        return y

    def unary(name, op, x, shape, quant=None, **attrs):
        y = tensor(f"{name}.y", shape, quant)
        b.node(name, op, (x,), (y,), **attrs)
        return y

    x = b.input("input", (1, 3, size, size), DType.INT8, QuantParams.per_tensor(1 / 127.5, 0))
    c = int(rng.choice([4, 6]))
    x = conv("stem", x, c, 3, act=(int(rng.integers(-128, -90)), int(rng.integers(60, 128))))
    y = conv("dw", x, c, 3, groups=c)
    y = conv("pw", y, c, 1)
    s = tensor("add.y", (1, c, size, size))
    b.node("add", Op.ADD, (x, y), (s,), act_min=int(rng.integers(-128, -64)))
    s = unary("hswish", Op.LUT, s, (1, c, size, size), function="hard_swish")
    gate = unary("se_pool", Op.GLOBAL_AVG_POOL, s, (1, c, 1, 1))
    gate = unary("se_sigmoid", Op.LUT, gate, (1, c, 1, 1), QuantParams.per_tensor(1 / 256, -128), function="sigmoid")
    m = tensor("se_mul.y", (1, c, size, size))
    b.node("se_mul", Op.MUL, (s, gate), (m,), act_min=int(rng.integers(-128, -100)))
    m = unary("hsig", Op.LUT, m, (1, c, size, size), function="hard_sigmoid")
    half = (size - 2) // 2 + 1
    m = unary("maxpool", Op.MAX_POOL, m, (1, c, half, half), b.spec(m).quant, kernel=2, stride=2)
    m = unary("avg_same", Op.AVG_POOL, m, (1, c, half, half), b.spec(m).quant, kernel=3, stride=1, padding=1,
              count_include_pad=False)  # fmt: skip
    m = unary("avg_rescale", Op.AVG_POOL, m, (1, c, half - 1, half - 1), kernel=2, stride=1)
    p = unary("pool", Op.GLOBAL_AVG_POOL, m, (1, c, 1, 1))
    f = b.tensor("flat.y", (1, c), DType.INT8, b.spec(p).quant)
    b.node("flat", Op.RESHAPE, (p,), (f,), shape=[1, c])
    hw = b.constant("head.w", rng.integers(-127, 128, size=(5, c)).astype(np.int8),
                    QuantParams.per_channel(rng.uniform(0.005, 0.02, 5)))  # fmt: skip
    hb = b.constant("head.b", rng.integers(-500, 500, size=5).astype(np.int32))
    logits = b.tensor("logits", (1, 5), DType.INT8, QuantParams.per_tensor(0.05, int(rng.integers(-10, 10))))
    b.node("head", Op.LINEAR, (f, hw, hb), (logits,))
    b.output(logits)
    return b.build()


def gray_nonsquare_model(classes: int = 5, seed: int = 0):
    """A float CNN on a 1-channel non-square image [1, 28, 20] with every non-square geometry: TF SAME
    padding as ``nn.ZeroPad2d`` before a 10x4 stride-2 stem (folded into its padding), a 3x1 depthwise
    conv, a 3x2 max pool at stride (2, 1), a pointwise conv at stride (2, 1), an average pool (2x3,
    stride (1, 2), padding 1, without the padded taps), flatten and linear."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class GrayNonSquare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pad = nn.ZeroPad2d((1, 1, 4, 5))
            self.stem = nn.Conv2d(1, 6, (10, 4), stride=2)
            self.dw = nn.Conv2d(6, 6, (3, 1), padding=(1, 0), groups=6)
            self.pool = nn.MaxPool2d((3, 2), stride=(2, 1), padding=(1, 0))
            self.pw = nn.Conv2d(6, 8, 1, stride=(2, 1))
            self.avg = nn.AvgPool2d((2, 3), stride=(1, 2), padding=1, count_include_pad=False)
            self.fc = nn.Linear(8 * 5 * 5, classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.stem(self.pad(x)))
            x = self.pool(torch.relu(self.dw(x)))
            x = self.avg(torch.relu(self.pw(x)))
            return self.fc(torch.flatten(x, 1))

    return GrayNonSquare().eval()
