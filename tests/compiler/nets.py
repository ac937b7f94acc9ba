"""Small int8 networks for the compiler tests, and a float64 twin of a training step's forward pass.

The twin evaluates the forward nodes of a *training* graph in float64 without rounding, with every
clamp decision taken from the int8 run's saved masks: masked-out outputs are constants. It is then
an exactly linear function of every activation and parameter near the recorded point, and its true
gradient is what NUMERICS.md §4 says the backward computes, so finite differences on it check the
backward of the whole network.
"""

from __future__ import annotations

import numpy as np

from tte_ir import DType, GraphBuilder, Op, QuantParams, node_attrs, node_multipliers
from tte_ir.ops import as_padding, as_pair, node_roles


def residual_net(head: str = "fp32", seed: int = 0, size: int = 8):
    """input[1,3,S,S] -> stem 3x3 -> inverted-residual block with skip add -> dw 3x3/s2 -> pool -> head(3)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("resnet-tiny")
    x = b.input("input", (1, 3, size, size), DType.INT8, QuantParams.per_tensor(1 / 127.5, 0))

    def conv(name, src, cout, k, stride=1, groups=1, y_scale=0.05, y_zero=-128, act=(-128, 127)):
        cin = b.spec(src).shape[1]
        w = rng.integers(-90, 91, size=(cout, cin // groups, k, k)).astype(np.int8)
        s_w = rng.uniform(0.004, 0.01, size=cout)
        wn = b.constant(f"{name}.w", w, QuantParams.per_channel(s_w))
        bias = b.constant(f"{name}.b", rng.integers(-300, 300, size=cout).astype(np.int32))
        h = (b.spec(src).shape[2] + 2 * ((k - 1) // 2) - k) // stride + 1
        y = b.tensor(f"{name}.y", (1, cout, h, h), DType.INT8, QuantParams.per_tensor(y_scale, y_zero))
        b.node(
            name,
            Op.CONV2D,
            (src, wn, bias),
            (y,),
            stride=stride,
            padding=(k - 1) // 2,
            groups=groups,
            act_min=act[0],
            act_max=act[1],
        )
        return y

    s = conv("stem", x, 4, 3, y_scale=0.03, y_zero=-20)
    p1 = conv("b.pw1", s, 8, 1, y_scale=0.04)
    d = conv("b.dw", p1, 8, 3, groups=8, y_scale=0.05)
    p2 = conv("b.pw2", d, 4, 1, y_scale=0.03, y_zero=5)
    a = b.tensor("b.add.y", (1, 4, size, size), DType.INT8, QuantParams.per_tensor(0.04, 3))
    b.node("b.add", Op.ADD, (s, p2), (a,))
    d2 = conv("dw2", a, 4, 3, stride=2, groups=4, y_scale=0.03, y_zero=-60)
    pool = b.tensor("pool.y", (1, 4, 1, 1), DType.INT8, QuantParams.per_tensor(0.02, -40))
    b.node("pool", Op.GLOBAL_AVG_POOL, (d2,), (pool,))
    flat = b.tensor("flat.y", (1, 4), DType.INT8, b.spec(pool).quant)
    b.node("flat", Op.RESHAPE, (pool,), (flat,), shape=[1, 4])
    if head == "fp32":
        hw = b.constant("head.w", rng.uniform(-0.5, 0.5, size=(3, 4)).astype(np.float32))
        hb = b.constant("head.b", rng.uniform(-0.1, 0.1, size=3).astype(np.float32))
        logits = b.tensor("logits", (1, 3), DType.FLOAT32)
    else:
        hw = b.constant(
            "head.w",
            rng.integers(-127, 128, size=(3, 4)).astype(np.int8),
            QuantParams.per_channel(rng.uniform(0.01, 0.02, size=3)),
        )
        hb = b.constant("head.b", rng.integers(-50, 50, size=3).astype(np.int32))
        logits = b.tensor("logits", (1, 3), DType.INT8, QuantParams.per_tensor(0.05, 0))
    b.node("head", Op.LINEAR, (flat, hw, hb), (logits,))
    b.output(logits)
    return b.build()


def random_input(graph, seed: int = 1) -> np.ndarray:
    shape = graph.tensors[graph.inputs[0]].shape
    return np.random.default_rng(seed).integers(-128, 128, size=shape).astype(np.int8)


def _unpack(packed, shape):
    count = int(np.prod(shape))
    return np.unpackbits(packed, bitorder="little")[:count].astype(bool).reshape(shape)


def _window(x, kh, kw, stride, padding, fill=0.0):
    """``x`` [C, H, W] padded (top, left, bottom, right) and a function of tap (u, v): its strided view."""
    (sh, sw), (top, left, bottom, right) = as_pair(stride), as_padding(padding)
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right)), constant_values=fill)
    ho, wo = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
    return lambda u, v: xp[:, u : u + sh * (ho - 1) + 1 : sh, v : v + sw * (wo - 1) + 1 : sw]


def _conv_f64(x, w, stride, padding, groups):
    o, cpg, kh, kw = w.shape
    tap_of = _window(x[0], kh, kw, stride, padding)
    opg = o // groups
    out = np.zeros((o, *tap_of(0, 0).shape[1:]))
    for oc in range(o):
        g = oc // opg
        for u in range(kh):
            for v in range(kw):
                out[oc] += np.tensordot(w[oc, :, u, v], tap_of(u, v)[g * cpg : (g + 1) * cpg], axes=(0, 0))
    return out[None]


def twin_loss(train_graph, values: dict, label: int, override: dict | None = None) -> float:
    """Loss of the float twin of ``train_graph``'s forward linearized at the recorded int8 ``values``
    (see the module docstring); ``override`` replaces activations or parameters (float arrays).

    Each node's output is its recorded value plus, where its mask is set, the change of its
    unrounded pre-activation between the recorded and the overridden inputs.
    """
    g = train_graph
    base = {k: np.asarray(a, dtype=np.float64) for k, a in values.items() if a.dtype != np.uint8}
    cur = dict(base)
    cur.update({k: np.asarray(a, dtype=np.float64) for k, a in (override or {}).items()})
    for node in g.nodes:
        if node.op is Op.SOFTMAX_CE:
            break
        ins, outs = node_roles(node)
        y = outs.get("y")
        if y is None or y in (override or {}):
            continue
        if node.op is Op.RESHAPE:
            x = cur[ins["x"]]
            if node_attrs(node)["order"] == "hwc" and x.ndim == 4:  # the engine's channels-last flatten
                x = x.transpose(0, 2, 3, 1)
            cur[y] = x.reshape(g.tensors[y].shape)
        elif node.op is Op.LINEAR and g.tensors[ins["w"]].dtype is DType.FLOAT32:
            xq = g.tensors[ins["x"]].quant
            cur[y] = (cur[ins["b"]] + cur[ins["w"]] @ (xq.tensor_scale * (cur[ins["x"]][0] - xq.zero_point)))[None]
        elif node.op in (Op.CONCAT, Op.CHANNEL_SPLIT, Op.CHANNEL_SHUFFLE):  # exact copies: linear in the codes
            cur[y] = _channel_op(node, [cur[t] for t in node.inputs])
        elif node.op is Op.MAX_POOL:  # the arg-max taps of the int8 run, held fixed like the masks
            cur[y] = _max_pool_at(cur[ins["x"]], values[outs["index"]], node_attrs(node))
        elif "mask" in outs:
            change = _pre(g, node, ins, cur) - _pre(g, node, ins, base)
            cur[y] = base[y] + np.where(_unpack(values[outs["mask"]], base[y].shape), change, 0.0)
    logits_name = g.metadata["training"]["logits"]
    f = cur[logits_name][0]
    q = g.tensors[logits_name].quant
    if q is not None:
        f = q.tensor_scale * (f - q.zero_point)
    m = f.max()
    return float(np.log(np.exp(f - m).sum()) - (f[label] - m))


def _channel_op(node, xs) -> np.ndarray:
    """A concat, channel split or channel shuffle of float64 values (the reference's, on floats)."""
    from tte_ir import reference

    attrs = node_attrs(node)
    if node.op is Op.CONCAT:
        return reference.concat(*xs)
    if node.op is Op.CHANNEL_SPLIT:
        return reference.channel_split(xs[0], attrs["start"], attrs["count"])
    return reference.channel_shuffle(xs[0], attrs["groups"])


def _pool_taps(x, attrs, fill=0.0) -> np.ndarray:
    """``x`` [1,C,H,W] -> [KH*KW, C, Ho, Wo]: tap ``u*KW + v`` of every pooling window, padded taps ``fill``."""
    kh, kw = attrs["kernel"]
    tap_of = _window(x[0], kh, kw, attrs["stride"], attrs["padding"], fill)
    return np.stack([tap_of(u, v) for u in range(kh) for v in range(kw)])


def _max_pool_at(x, index, attrs) -> np.ndarray:
    """The max pool of ``x`` read at the saved arg-max taps ``index`` (linear in ``x``)."""
    taps = _pool_taps(x, attrs)
    return np.take_along_axis(taps, index.astype(np.int64), axis=0)


def _pre(g, node, ins, v) -> np.ndarray:
    """The unrounded output (before the clamp) of an int8 node, in float64."""
    attrs = node_attrs(node)
    consts = node_multipliers(g, node)
    spec = g.tensors
    if node.op is Op.CONV2D:
        w = v[ins["w"]].copy()
        if "w_train" in ins:
            chans = list(attrs["channels"])
            if attrs["groups"] > 1:
                w[chans] = v[ins["w_train"]]
            else:
                w[:, chans] = v[ins["w_train"]]
        xz = spec[ins["x"]].quant.zero_point
        acc = _conv_f64(v[ins["x"]] - xz, w, attrs["stride"], attrs["padding"], attrs["groups"])
        return (acc + v[ins["b"]][None, :, None, None]) * np.float64(consts["multiplier"])[None, :, None, None]
    if node.op is Op.ADD:
        za, zb = spec[ins["a"]].quant.zero_point, spec[ins["b"]].quant.zero_point
        return np.float64(consts["m1"]) * (v[ins["a"]] - za) + np.float64(consts["m2"]) * (v[ins["b"]] - zb)
    if node.op is Op.GLOBAL_AVG_POOL:
        zx = spec[ins["x"]].quant.zero_point
        return (v[ins["x"]] - zx).sum(axis=(2, 3), keepdims=True) * np.float64(consts["multiplier"])
    if node.op is Op.AVG_POOL:
        from tte_ir.reference import pool_counts

        zx = spec[ins["x"]].quant.zero_point
        sums = _pool_taps(v[ins["x"]] - zx, attrs).sum(axis=0)[None]
        counts = pool_counts(
            spec[ins["x"]].shape[2:], kernel=attrs["kernel"], stride=attrs["stride"], padding=attrs["padding"],
            count_include_pad=attrs["count_include_pad"],
        )  # fmt: skip
        return sums * np.float64(consts["multiplier"])[counts]
    raise AssertionError(node.op)
