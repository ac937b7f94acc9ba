"""A flatten of a spatial map into a linear head: the "hwc" reshape, the layout pass that permutes the
head's weights (tte_ir.layout_passes), its training graph, and the generated C."""

from __future__ import annotations

import numpy as np
import pytest

from tte_ir import DType, GraphBuilder, Op, QuantParams, Scheme, TteError, VerifyError, kernel_call, reference
from tte_ir.compiler import compile_training
from tte_ir.layout_passes import flatten_channels_last
from tte_ir.ops import node_roles
from tte_ir.reference_train import bias_grad, initial_state, train_step

from .nets import _pre, _unpack

CHANNELS, SIDE, CLASSES = 8, 4, 3
FEATURES = CHANNELS * SIDE * SIDE


def flatten_net(head: str = "int8", seed: int = 0, share: bool = False):
    """input [1,3,8,8] -> c1 3x3 -> c2 3x3/s2 [1,8,4,4] -> flatten [1,128] -> linear head (3 classes).
    ``share``: a second linear layer, on a pooled 1x1 map, reads the head's weight constant too."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("flatten-net")
    x = b.input("input", (1, 3, 8, 8), DType.INT8, QuantParams.per_tensor(1 / 127.5, 0))
    for name, cin, cout, stride, size, zero in (("c1", 3, 4, 1, 8, -20), ("c2", 4, CHANNELS, 2, SIDE, -5)):
        w = b.constant(
            f"{name}.w",
            rng.integers(-90, 91, size=(cout, cin, 3, 3)).astype(np.int8),
            QuantParams.per_channel(rng.uniform(0.004, 0.01, size=cout)),
        )
        bias = b.constant(f"{name}.b", rng.integers(-300, 300, size=cout).astype(np.int32))
        y = b.tensor(f"{name}.y", (1, cout, size, size), DType.INT8, QuantParams.per_tensor(0.04, zero))
        b.node(name, Op.CONV2D, (x, w, bias), (y,), stride=stride, padding=1)
        x = y
    if head == "fp32":
        hw = b.constant("head.w", rng.uniform(-0.1, 0.1, size=(CLASSES, FEATURES)).astype(np.float32))
        hb = b.constant("head.b", rng.uniform(-0.1, 0.1, size=CLASSES).astype(np.float32))
        logits = b.tensor("logits", (1, CLASSES), DType.FLOAT32)
    else:
        w = rng.integers(-127, 128, size=(CLASSES, FEATURES)).astype(np.int8)
        hw = b.constant("head.w", w, QuantParams.per_channel(rng.uniform(0.002, 0.004, size=CLASSES)))
        hb = b.constant("head.b", rng.integers(-50, 50, size=CLASSES).astype(np.int32))
        logits = b.tensor("logits", (1, CLASSES), DType.INT8, QuantParams.per_tensor(0.05, 0))
    if share:  # a second head on a pooled vector (a view already) with the same weights
        w = b.constant("c3.w", rng.integers(-90, 91, size=(FEATURES, CHANNELS, 1, 1)).astype(np.int8),
                       QuantParams.per_channel(rng.uniform(0.004, 0.01, size=FEATURES)))  # fmt: skip
        bias = b.constant("c3.b", rng.integers(-300, 300, size=FEATURES).astype(np.int32))
        c3 = b.tensor("c3.y", (1, FEATURES, SIDE, SIDE), DType.INT8, QuantParams.per_tensor(0.04, -5))
        b.node("c3", Op.CONV2D, (x, w, bias), (c3,))
        pool = b.tensor("pool.y", (1, FEATURES, 1, 1), DType.INT8, QuantParams.per_tensor(0.03, -10))
        b.node("pool", Op.GLOBAL_AVG_POOL, (c3,), (pool,))
        flat2 = b.tensor("flat2.y", (1, FEATURES), DType.INT8, b.spec(pool).quant)
        b.node("flat2", Op.RESHAPE, (pool,), (flat2,), shape=[1, FEATURES])
        other = b.tensor("aux.y", (1, CLASSES), b.spec(logits).dtype, b.spec(logits).quant)
        b.node("aux", Op.LINEAR, (flat2, hw, hb), (other,))
        b.output(other)
    flat = b.tensor("flat.y", (1, FEATURES), DType.INT8, b.spec(x).quant)
    b.node("flat", Op.RESHAPE, (x,), (flat,), shape=[1, FEATURES])
    b.node("head", Op.LINEAR, (flat, hw, hb), (logits,))
    b.output(logits)
    return b.build()


def inputs(count: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=(count, 1, 3, 8, 8)).astype(np.int8)


def nchw_logits(graph, conv_out: np.ndarray, head: str = "head") -> np.ndarray:
    """What PyTorch's flatten feeds the head of the original ``graph``: the map in (c, h, w) order."""
    node = graph.node(head)
    call = kernel_call(graph, node)
    w, b = (graph.constants[t] for t in node.inputs[1:])
    x = conv_out.reshape(1, -1)
    if call.kernel == "linear_fwd_f32":
        return reference.linear_f32(x, w, b, x_scale=call.params["x_scale"], x_zero=call.params["x_zero"])
    p = call.params
    multiplier = call.arg("multiplier").value
    return reference.linear_s8(x, w, b, multiplier, x_zero=p["x_zero"], y_zero=p["y_zero"])


def test_an_nchw_flatten_of_a_map_is_refused_in_one_line():
    graph = flatten_net()
    with pytest.raises(TteError, match=r"NCHW order would reorder data .* supported: a flatten only linear") as err:
        reference.run_forward(graph, inputs(1)[0])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("head", ["int8", "fp32"])
def test_the_pass_permutes_the_head_and_keeps_the_logits(head):
    graph = flatten_net(head)
    rewritten = flatten_channels_last(graph)
    assert rewritten.node("flat").attrs["order"] == "hwc"
    assert kernel_call(rewritten, rewritten.node("flat")).kernel is None  # a view in the engine
    w, permuted = graph.constants["head.w"], rewritten.constants["head.w"]
    # column (h*W + w)*C + c of the new weight is column (c*H + h)*W + w of the old one
    assert permuted[1, (2 * SIDE + 3) * CHANNELS + 5] == w[1, (5 * SIDE + 2) * SIDE + 3]
    assert permuted.dtype == w.dtype and rewritten.tensors["head.w"].quant == graph.tensors["head.w"].quant
    for x in inputs(4):
        values = reference.run_forward(rewritten, x, return_all=True)
        expected = nchw_logits(graph, values["c2.y"])
        if head == "int8":
            np.testing.assert_array_equal(values["logits"], expected)  # integer sums: bit-identical
        else:  # the float32 sum runs in the new column order
            np.testing.assert_allclose(values["logits"], expected, rtol=1e-5, atol=1e-6)


def test_a_shared_weight_gets_a_new_constant():
    graph = flatten_net("int8", share=True)
    rewritten = flatten_channels_last(graph)
    assert rewritten.node("head").inputs[1] == "head.w.hwc" and rewritten.node("aux").inputs[1] == "head.w"
    np.testing.assert_array_equal(rewritten.constants["head.w"], graph.constants["head.w"])
    assert rewritten.tensors["head.w.hwc"].quant == graph.tensors["head.w"].quant
    assert "order" not in rewritten.node("flat2").attrs  # a pooled vector is a view already
    values = reference.run_forward(rewritten, inputs(1)[0], return_all=True)
    np.testing.assert_array_equal(values["logits"], nchw_logits(graph, values["c2.y"]))
    np.testing.assert_array_equal(values["aux.y"], nchw_logits(graph, values["pool.y"], "aux"))


def test_a_flatten_that_is_not_only_read_by_linear_layers_stays_refused():
    graph = flatten_net("int8")
    head = ("head.w", "head.b", "logits")
    cut = graph.replace(  # the flattened map is the graph's output: nothing can absorb its order
        nodes=graph.nodes[:-1],
        outputs=("flat.y",),
        tensors={k: v for k, v in graph.tensors.items() if k not in head},
        constants={k: v for k, v in graph.constants.items() if k not in head},
    )
    rewritten = flatten_channels_last(cut)
    assert "order" not in rewritten.node("flat").attrs
    with pytest.raises(TteError, match="NCHW order"):
        kernel_call(rewritten, rewritten.node("flat"))


def test_reshape_orders_are_checked():
    def reshape(out_shape, order):
        b = GraphBuilder("reshape")
        x = b.input("input", (1, 4, 2, 2), DType.INT8, QuantParams.per_tensor(0.1, 0))
        y = b.tensor("y", out_shape, DType.INT8, QuantParams.per_tensor(0.1, 0))
        b.node("r", Op.RESHAPE, (x,), (y,), shape=list(out_shape), order=order)
        b.output(y)
        return b.build()

    with pytest.raises(VerifyError, match="order 'chw' is neither 'nchw' nor 'hwc'"):
        reshape((1, 16), "chw")
    with pytest.raises(VerifyError, match=r"an 'hwc' reshape goes between \[1,C,H,W\] and \[1,N\]"):
        reshape((1, 2, 4, 2), "hwc")
    graph = reshape((1, 16), "hwc")
    x = np.arange(16, dtype=np.int8).reshape(1, 4, 2, 2)
    np.testing.assert_array_equal(reference.run_forward(graph, x), x.transpose(0, 2, 3, 1).reshape(1, 16))


def _scheme(head: str) -> Scheme:
    """The head and the last conv's bias."""
    return Scheme(n_bias=1, head=head, lr=0.02, head_lr=0.02)


def _twin_loss(graph, values, label: int, override: dict | None = None) -> float:
    """tests/compiler/nets.twin_loss for a graph with "hwc" reshapes: the forward in float64 with the
    int8 run's clamp decisions fixed, so finite differences of it are the backward's exact gradient."""
    base = {k: np.asarray(a, dtype=np.float64) for k, a in values.items() if a.dtype != np.uint8}
    cur = {**base, **{k: np.asarray(a, dtype=np.float64) for k, a in (override or {}).items()}}
    for node in graph.nodes:
        if node.op is Op.SOFTMAX_CE:
            break
        ins, outs = node_roles(node)
        y = outs.get("y")
        if y is None or y in (override or {}):
            continue
        if node.op is Op.RESHAPE:
            x = cur[ins["x"]]
            hwc = node.attrs.get("order") == "hwc" and x.ndim == 4
            cur[y] = (x.transpose(0, 2, 3, 1) if hwc else x).reshape(graph.tensors[y].shape)
        elif node.op is Op.LINEAR:
            xq = graph.tensors[ins["x"]].quant
            cur[y] = (cur[ins["b"]] + cur[ins["w"]] @ (xq.tensor_scale * (cur[ins["x"]][0] - xq.zero_point)))[None]
        elif "mask" in outs:
            change = _pre(graph, node, ins, cur) - _pre(graph, node, ins, base)
            cur[y] = base[y] + np.where(_unpack(values[outs["mask"]], base[y].shape), change, 0.0)
    name = graph.metadata["training"]["logits"]
    f, q = cur[name][0], graph.tensors[name].quant
    if q is not None:
        f = q.tensor_scale * (f - q.zero_point)
    return float(np.log(np.exp(f - f.max()).sum()) - (f[label] - f.max()))


def _fd(f, x: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    grad = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        up, down = x.astype(np.float64), x.astype(np.float64)
        up[i] += eps
        down[i] -= eps
        grad[i] = (f(up) - f(down)) / (2 * eps)
    return grad


@pytest.mark.parametrize("head", ["int8", "fp32"])
def test_training_through_the_flatten_matches_the_float_twin(head):
    forward = flatten_net(head)
    graph = compile_training(forward, _scheme(head))
    reshapes = {n.name: n.attrs.get("order", "nchw") for n in graph.nodes if n.op is Op.RESHAPE}
    assert reshapes["flat"] == "hwc" and reshapes["flat.bwd"] == "hwc"  # the gradient unflattens "hwc"
    label = 2
    result = train_step(graph, initial_state(graph), inputs(1)[0], label, return_all=True)
    values = result.values
    assert np.isclose(result.loss, _twin_loss(graph, values, label), rtol=1e-5)
    gx = values[graph.node("flat.bwd").outputs[0]]  # dL/d(c2.y): through the head and the unflatten
    assert np.abs(gx).max() > 0
    expected = _fd(lambda v: _twin_loss(graph, values, label, {"c2.y": v}), values["c2.y"])
    np.testing.assert_allclose(gx, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    g_bias = bias_grad(values[graph.node("c2.bias_update").inputs[0]])
    expected = _fd(lambda v: _twin_loss(graph, values, label, {"c2.b": v}), values["c2.b"])
    np.testing.assert_allclose(g_bias, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("head", ["int8", "fp32"])
def test_generated_c_trains_like_the_reference(head, tmp_path):
    """The generated project on the host: inference and 3 training steps against the numpy reference
    (NUMERICS.md §7)."""
    from tests.codegen.conftest import _host_tools
    from tests.codegen.parity import assert_params_close, reference_run
    from tte_codegen import HostModel, build, generate

    _host_tools()
    forward = flatten_net(head)
    graph = compile_training(forward, _scheme(head))
    project = generate(graph, tmp_path / "model")
    build(project, "host")
    model = HostModel(project)
    model.import_params(initial_state(graph))
    xs = inputs(3, seed=5)[:, 0]
    for x in xs:
        expected = reference.run_forward(flatten_channels_last(forward), x[None])[0]
        np.testing.assert_allclose(model.infer(x), expected, rtol=1e-5, atol=1e-6)
    labels = np.array([0, 2, 1])
    losses, states = reference_run(graph, xs, labels)
    for t in range(3):
        np.testing.assert_allclose(model.train_step(xs[t], int(labels[t])), losses[t], rtol=1e-5)
        assert model.last_status == "ok"
        assert_params_close(model.export_params(), states[t])
