"""A small residual network whose compiled training step uses every kind of generated code: a
row-tiled frozen prefix, channel-tiled backward groups through wide expanded gradients, trained
weight slices (pointwise and depthwise), a fan-out sum through the skip path, and an fp32 head."""

from __future__ import annotations

import numpy as np

from tte_ir import DType, Graph, GraphBuilder, Op, QuantParams, Scheme

# (input channels, expanded channels, output channels) of each inverted-residual block (stride 1, skip add)
BLOCKS = ((8, 24, 8), (8, 40, 8))


def tiled_residual_net(
    size: int = 16, classes: int = 4, seed: int = 0, head: str = "fp32", requant: str = "float"
) -> Graph:
    """input [1,3,S,S] -> stem 3x3 -> two inverted-residual blocks (pw, dw 3x3, pw, add) -> pool -> head
    (``fp32``, or ``int8`` with int8 logits); ``requant`` the forward's requantization (NUMERICS.md §2b)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("codegen-resnet", {"requant": requant})
    x = b.input("input", (1, 3, size, size), DType.INT8, QuantParams.per_tensor(1 / 127.5, 0))
    layers = [("stem", 3, 8, 3, 1)]
    for i, (cin, mid, cout) in enumerate(BLOCKS):
        layers += [(f"b{i}.pw1", cin, mid, 1, 1), (f"b{i}.dw", mid, mid, 3, mid), (f"b{i}.pw2", mid, cout, 1, 1)]
    block_input = None
    for name, cin, cout, k, groups in layers:
        w = rng.integers(-100, 101, size=(cout, cin // groups, k, k)).astype(np.int8)
        scales = rng.uniform(0.004, 0.012, size=cout)
        wt = b.constant(f"{name}.w", w, QuantParams.per_channel(scales))
        bt = b.constant(f"{name}.b", rng.integers(-400, 400, size=cout).astype(np.int32))
        zero = -128 if name.endswith(("pw1", "dw")) else int(rng.integers(-20, 20))
        y = b.tensor(f"{name}.y", (1, cout, size, size), DType.INT8, QuantParams.per_tensor(0.04, zero))
        b.node(name, Op.CONV2D, (x, wt, bt), (y,), padding=(k - 1) // 2, groups=groups)
        if name.endswith("pw1"):
            block_input = x
        x = y
        if name.endswith("pw2"):
            added = b.tensor(f"{name[:-4]}.add.y", (1, cout, size, size), DType.INT8, QuantParams.per_tensor(0.05, 2))
            b.node(f"{name[:-4]}.add", Op.ADD, (block_input, x), (added,))
            x = added
    channels = b.spec(x).shape[1]
    pool = b.tensor("pool.y", (1, channels, 1, 1), DType.INT8, QuantParams.per_tensor(0.03, -10))
    b.node("pool", Op.GLOBAL_AVG_POOL, (x,), (pool,))
    flat = b.tensor("flat.y", (1, channels), DType.INT8, b.spec(pool).quant)
    b.node("flat", Op.RESHAPE, (pool,), (flat,), shape=[1, channels])
    if head == "fp32":
        hw = b.constant("head.w", rng.uniform(-0.4, 0.4, size=(classes, channels)).astype(np.float32))
        hb = b.constant("head.b", rng.uniform(-0.1, 0.1, size=classes).astype(np.float32))
        logits = b.tensor("logits", (1, classes), DType.FLOAT32)
    else:
        w = rng.integers(-127, 128, size=(classes, channels)).astype(np.int8)
        hw = b.constant("head.w", w, QuantParams.per_channel(rng.uniform(0.01, 0.02, size=classes)))
        hb = b.constant("head.b", rng.integers(-50, 50, size=classes).astype(np.int32))
        logits = b.tensor("logits", (1, classes), DType.INT8, QuantParams.per_tensor(0.05, 0))
    b.node("head", Op.LINEAR, (flat, hw, hb), (logits,))
    b.output(logits)
    return b.build()


def scheme(
    lr: float = 0.02, weights: tuple[tuple[int, float], ...] = ((4, 0.5), (5, 0.5)), head: str = "fp32"
) -> Scheme:
    """Biases of the last 4 convs, ``weights`` as (conv, ratio) (default half the channels of the last
    block's pw1 and dw), and the head (trained in ``head`` precision)."""
    return Scheme.from_json(
        {
            "format": "tte-scheme",
            "version": 1,
            "n_bias": 4,
            "weights": [{"conv": conv, "ratio": ratio} for conv, ratio in weights],
            "head": head,
            "lr": lr,
            "head_lr": lr,
        }
    )


# Other paths through the generator: an int8 head trained as a 1x1 conv (int8 logits, softmax_ce_s8),
# a dense 3x3 conv (the stem) with a trained slice of input channels, and TFLite's fixed-point
# requantization (NUMERICS.md §2b) in every forward op, the int8 head's included.
VARIANTS = {
    "int8-head": (dict(head="int8"), dict(head="int8")),
    "requant-fixed": (dict(head="int8", requant="fixed"), dict(head="int8")),
    "dense-slice": ({}, dict(weights=((0, 0.5), (5, 1.0)))),
}


def variant(name: str) -> Graph:
    """The compiled training graph of one of :data:`VARIANTS`."""
    from tte_ir.compiler import compile_training

    net, trained = VARIANTS[name]
    return compile_training(tiled_residual_net(**net), scheme(**trained))


def images(graph: Graph, count: int, seed: int = 1) -> np.ndarray:
    """``count`` smooth random int8 images ``[count, C, H, W]`` (blurred noise, like real pictures)."""
    _, channels, height, width = graph.tensors[graph.inputs[0]].shape
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(count, channels, height + 2, width + 2))
    smooth = sum(noise[:, :, i : i + height, j : j + width] for i in range(3) for j in range(3)) / 3.0
    return np.clip(np.rint(smooth * 60), -128, 127).astype(np.int8)
