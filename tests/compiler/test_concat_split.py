"""Channel concat, split and shuffle (ShuffleNet) through the compiler: shape rules, the gradient rules
against finite differences of the float twin, which nodes the planner runs as views, the PyTorch
simulation against the reference, and the generated C of a ShuffleNet unit training on the host."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tte_ir import DType, GraphBuilder, Op, QuantParams, Scheme, TteError, VerifyError, WeightUpdate, reference
from tte_ir.autodiff import build_training_graph
from tte_ir.kernels import kernel_call
from tte_ir.memory import arena_buffers
from tte_ir.reference_train import bias_grad, channel_insert, initial_state, train_step
from tte_ir.views import storage

from .nets import random_input, twin_loss
from .test_gradients import _close, _fd, _weight_grad

Q_IN = QuantParams.per_tensor(1 / 127.5, 0)
Q_MAP = QuantParams.per_tensor(0.03, -128)  # the unit's shared quantization (ReLU outputs)
Q_VEC = QuantParams.per_tensor(0.02, -128)


def shuffle_net(seed: int = 0, size: int = 8, classes: int = 3) -> object:
    """input [1,3,S,S] -> conv 3x3 (8, ReLU) -> a ShuffleNetV2 unit (split 4 | 4, the second half through
    pointwise -> depthwise 3x3 -> pointwise, concat, shuffle 2 groups) -> global pool [1,8,1,1] -> split
    2 | 6 of that one-pixel map, each half through a pointwise conv, concat (views) -> flatten -> fp32 head."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("shuffle-net")
    x = b.input("input", (1, 3, size, size), DType.INT8, Q_IN)

    def conv(name, src, cout, quant, k=1, groups=1):
        cin, h = b.spec(src).shape[1], b.spec(src).shape[2]
        w = b.constant(f"{name}.w", rng.integers(-90, 91, (cout, cin // groups, k, k)).astype(np.int8),
                       QuantParams.per_channel(rng.uniform(0.004, 0.01, cout)))  # fmt: skip
        bias = b.constant(f"{name}.b", rng.integers(-300, 300, cout).astype(np.int32))
        y = b.tensor(f"{name}.y", (1, cout, h, h), DType.INT8, quant)
        b.node(name, Op.CONV2D, (src, w, bias), (y,), padding=k // 2, groups=groups)
        return y

    def split(name, src, start, count):
        shape = b.spec(src).shape
        y = b.tensor(f"{name}.y", (1, count, *shape[2:]), DType.INT8, b.spec(src).quant)
        b.node(name, Op.CHANNEL_SPLIT, (src,), (y,), start=start, count=count)
        return y

    def concat(name, a, c):
        shape = b.spec(a).shape
        y = b.tensor(f"{name}.y", (1, shape[1] + b.spec(c).shape[1], *shape[2:]), DType.INT8, b.spec(a).quant)
        b.node(name, Op.CONCAT, (a, c), (y,))
        return y

    c0 = conv("c0", x, 8, Q_MAP, k=3)
    x1, x2 = split("s1", c0, 0, 4), split("s2", c0, 4, 4)
    p1 = conv("p1", x2, 4, QuantParams.per_tensor(0.04, -128))
    dw = conv("dw", p1, 4, QuantParams.per_tensor(0.05, 3), k=3, groups=4)
    p2 = conv("p2", dw, 4, Q_MAP)
    cat = concat("cat", x1, p2)
    shuf = b.tensor("shuf.y", (1, 8, size, size), DType.INT8, Q_MAP)
    b.node("shuf", Op.CHANNEL_SHUFFLE, (cat,), (shuf,), groups=2)
    gap = b.tensor("gap.y", (1, 8, 1, 1), DType.INT8, QuantParams.per_tensor(0.02, -100))
    b.node("gap", Op.GLOBAL_AVG_POOL, (shuf,), (gap,))
    v1, v2 = split("v1", gap, 0, 2), split("v2", gap, 2, 6)
    q1, q2 = conv("q1", v1, 4, Q_VEC), conv("q2", v2, 4, Q_VEC)
    feats = concat("feats", q1, q2)
    flat = b.tensor("flat.y", (1, 8), DType.INT8, Q_VEC)
    b.node("flat", Op.RESHAPE, (feats,), (flat,), shape=[1, 8])
    hw = b.constant("head.w", rng.uniform(-0.5, 0.5, (classes, 8)).astype(np.float32))
    hb = b.constant("head.b", rng.uniform(-0.1, 0.1, classes).astype(np.float32))
    logits = b.tensor("logits", (1, classes), DType.FLOAT32)
    b.node("head", Op.LINEAR, (flat, hw, hb), (logits,))
    b.output(logits)
    return b.build()


# c0 (0), p1 (1), dw (2), p2 (3), q1 (4), q2 (5): every conv's bias, and weights of c0, p1 and q2
SCHEME = Scheme(
    n_bias=6, weights=(WeightUpdate(0, 1.0), WeightUpdate(1, 0.5), WeightUpdate(5, 1.0)), head="fp32", lr=0.05,
    head_lr=0.05,
)  # fmt: skip


def _one(op: Op, shapes, out_shape, quants=None, dtype=DType.INT8, **attrs):
    b = GraphBuilder("one")
    quants = quants or [Q_IN] * (len(shapes) + 1)
    q = (lambda i: quants[i]) if dtype is DType.INT8 else (lambda i: None)
    ins = [b.input(f"x{i}", shape, dtype, q(i)) for i, shape in enumerate(shapes)]
    y = b.tensor("y", out_shape, dtype, q(len(shapes)))
    b.node("n", op, ins, (y,), **attrs)
    b.output(y)
    return b.build()


@pytest.mark.parametrize(
    ("op", "shapes", "out", "attrs", "message"),
    [
        (Op.CONCAT, [(1, 2, 4, 4), (1, 3, 4, 5)], (1, 5, 4, 4), {}, "differ beyond channels"),
        (Op.CHANNEL_SPLIT, [(1, 6, 2, 2)], (1, 3, 2, 2), {"start": 4, "count": 3}, r"channels \[4, 7\)"),
        (Op.CHANNEL_SHUFFLE, [(1, 6, 2, 2)], (1, 6, 2, 2), {"groups": 4}, "groups 4 does not divide the 6"),
        (Op.CHANNEL_SPLIT, [(1, 6, 2, 2)], (1, 2, 2, 2), {"start": 0}, "missing attribute 'count'"),
    ],
)
def test_shape_rules_refuse_bad_operands(op, shapes, out, attrs, message) -> None:
    with pytest.raises(VerifyError, match=message):
        _one(op, shapes, out, **attrs)


def test_shapes_and_dtypes_follow_the_inputs() -> None:
    graph = _one(Op.CONCAT, [(1, 2, 3, 3), (1, 5, 3, 3)], (1, 7, 3, 3), dtype=DType.FLOAT32)
    assert kernel_call(graph, graph.nodes[0]).kernel == "concat_f32"
    graph = _one(Op.CHANNEL_SPLIT, [(1, 6)], (1, 2), start=4, count=2)  # a [1, C] vector is one pixel
    assert kernel_call(graph, graph.nodes[0]).params == {"pixels": 1, "in_c": 6, "start": 4, "count": 2}
    with pytest.raises(VerifyError, match=r"declared \[1, 6, 3, 3\], the op gives \[1, 7, 3, 3\]"):
        _one(Op.CONCAT, [(1, 2, 3, 3), (1, 5, 3, 3)], (1, 6, 3, 3))


def test_int8_channel_ops_copy_codes_of_one_quantization() -> None:
    other = QuantParams.per_tensor(0.5, 3)
    graph = _one(Op.CONCAT, [(1, 2, 3, 3), (1, 5, 3, 3)], (1, 7, 3, 3), quants=[Q_IN, other, Q_IN])
    with pytest.raises(TteError, match="must share one scale and zero point"):
        kernel_call(graph, graph.nodes[0])
    graph = _one(Op.CHANNEL_SHUFFLE, [(1, 4, 2, 2)], (1, 4, 2, 2), quants=[Q_IN, other], groups=2)
    with pytest.raises(TteError, match="must share one scale and zero point"):
        kernel_call(graph, graph.nodes[0])


def test_shuffle_is_pytorchs_and_its_inverse_has_c_over_g_groups() -> None:
    x = np.arange(12).reshape(1, 12, 1, 1)
    y = reference.channel_shuffle(x, 3)  # view(1, 3, 4).transpose(1, 2): channel i*4 + j -> j*3 + i
    assert y[0, :, 0, 0].tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    np.testing.assert_array_equal(reference.channel_shuffle(y, 4), x)


def test_channel_rules_match_finite_differences() -> None:
    """Each op alone: a fixed linear loss of its output, differentiated by its gradient rule's ops."""
    rng = np.random.default_rng(3)
    a, c = rng.normal(size=(1, 3, 2, 4)), rng.normal(size=(1, 5, 2, 4))
    coef = rng.normal(size=(1, 8, 2, 4))
    grad_a = reference.channel_split(coef, 0, 3)  # concat's rule: each input's range of g
    _close(grad_a, _fd(lambda v: float((coef * reference.concat(v, c)).sum()), a))
    _close(reference.channel_split(coef, 3, 5), _fd(lambda v: float((coef * reference.concat(a, v)).sum()), c))
    part = coef[:, 2:6]
    grad_x = channel_insert(part.astype(np.float32), 2, 8)  # split's rule: g into its range, 0 elsewhere
    x = coef * 0.5
    _close(grad_x, _fd(lambda v: float((part * reference.channel_split(v, 2, 4)).sum()), x))
    grad_s = reference.channel_shuffle(coef, 4)  # shuffle's rule: the inverse shuffle (8/2 groups)
    _close(grad_s, _fd(lambda v: float((coef * reference.channel_shuffle(v, 2)).sum()), x))


def test_whole_backward_through_the_unit_matches_float_twin() -> None:
    forward = shuffle_net()
    graph = build_training_graph(forward, SCHEME)
    x = random_input(forward)
    result = train_step(graph, initial_state(graph), x, 1, return_all=True)
    values = result.values
    assert np.isclose(result.loss, twin_loss(graph, values, 1), rtol=1e-5)
    for conv in ("c0", "p1", "q2"):
        bias = graph.node(f"{conv}.bias_update")
        expected = _fd(lambda v, conv=conv: twin_loss(graph, values, 1, {f"{conv}.b": v}), values[f"{conv}.b"])
        _close(bias_grad(values[bias.inputs[0]]), expected)
        assert np.abs(expected).max() > 0, conv
        update = graph.node(f"{conv}.w_update")
        w_train = update.inputs[2]
        expected = _fd(lambda v, w=w_train: twin_loss(graph, values, 1, {w: v}), values[w_train])
        _close(_weight_grad(graph, values, update), expected)


def test_training_graph_routes_gradients_by_the_inverse_ops() -> None:
    graph = build_training_graph(shuffle_net(), SCHEME)
    assert graph.node("shuf.bwd").op is Op.CHANNEL_SHUFFLE and graph.node("shuf.bwd").attrs["groups"] == 4
    assert graph.node("cat.bwd_b").op is Op.CHANNEL_SPLIT  # x1 needs a gradient too: c0 trains
    assert graph.node("cat.bwd_a").attrs == {"start": 0, "count": 4}
    # the two halves of c0 (x.chunk(2)) give c0's gradient as one concat of theirs
    assert graph.node("s1.bwd").op is Op.CONCAT
    assert not [n for n in graph.nodes if n.op is Op.CHANNEL_INSERT]


def test_a_lone_split_inserts_its_gradient() -> None:
    """A split that does not tile its input with another: its gradient is written into zeros."""
    b = GraphBuilder("lone")
    x = b.input("input", (1, 3, 4, 4), DType.INT8, Q_IN)
    w = b.constant("c.w", np.ones((6, 3, 1, 1), np.int8), QuantParams.per_channel([0.01] * 6))
    bias = b.constant("c.b", np.arange(6, dtype=np.int32) * 40)
    y = b.tensor("c.y", (1, 6, 4, 4), DType.INT8, Q_MAP)
    b.node("c", Op.CONV2D, (x, w, bias), (y,))
    s = b.tensor("s.y", (1, 2, 4, 4), DType.INT8, Q_MAP)
    b.node("s", Op.CHANNEL_SPLIT, (y,), (s,), start=3, count=2)
    g = b.tensor("g.y", (1, 2, 1, 1), DType.INT8, Q_VEC)
    b.node("g", Op.GLOBAL_AVG_POOL, (s,), (g,))
    flat = b.tensor("flat", (1, 2), DType.INT8, Q_VEC)
    b.node("flat", Op.RESHAPE, (g,), (flat,), shape=[1, 2])
    hw = b.constant("head.w", np.ones((2, 2), np.float32))
    hb = b.constant("head.b", np.zeros(2, np.float32))
    logits = b.tensor("logits", (1, 2), DType.FLOAT32)
    b.node("head", Op.LINEAR, (flat, hw, hb), (logits,))
    b.output(logits)
    graph = build_training_graph(b.build(), Scheme(n_bias=1, head="fp32"))
    insert = graph.node("s.bwd0")
    assert insert.op is Op.CHANNEL_INSERT and dict(insert.attrs) == {"start": 3, "channels": 6}
    values = train_step(graph, initial_state(graph), random_input(graph), 0, return_all=True).values
    gx = values[insert.outputs[0]]
    assert np.all(gx[:, [0, 1, 2, 5]] == 0) and np.array_equal(gx[:, 3:5], values[insert.inputs[0]])


def test_one_pixel_splits_and_concats_are_views_and_the_rest_copies() -> None:
    forward = shuffle_net()
    views = storage(forward).views
    assert views == {"v1", "v2", "feats"}  # the one-pixel map's halves and their concat
    graph = build_training_graph(forward, SCHEME)
    place = storage(graph)
    # forward: v1/v2 inside gap.y; q1/q2 written straight into feats
    assert {"v1", "v2", "feats"} <= place.views
    assert place.of("v2.y") == (place.of("gap.y")[0], 2)
    assert place.of("q2.y") == (place.of("feats.y")[0], 4)
    # backward: the concat's gradient split into q1's and q2's (float32, 4 bytes per element) is a view
    assert {"feats.bwd_a", "feats.bwd_b"} <= place.views
    for copy in ("s1", "s2", "cat", "shuf", "shuf.bwd", "cat.bwd_a", "cat.bwd_b", "s1.bwd"):
        assert copy not in place.views
    buffers = {t: buf for buf in arena_buffers(graph) for t in buf.tensors}
    feats = buffers["feats.y"]
    assert feats is buffers["q1.y"] is buffers["q2.y"] and dict(feats.views)["q2.y"] == 4
    assert feats.size == graph.tensors["feats.y"].nbytes


def test_a_view_that_would_be_overwritten_stays_a_copy() -> None:
    """concat(x1, f(x2)) of two halves of one one-pixel map: x2's bytes would be where f writes."""
    b = GraphBuilder("clash")
    x = b.input("input", (1, 4, 1, 1), DType.INT8, Q_IN)
    w = b.constant("c.w", np.ones((4, 4, 1, 1), np.int8), QuantParams.per_channel([0.01] * 4))
    bias = b.constant("c.b", np.zeros(4, np.int32))
    y = b.tensor("c.y", (1, 4, 1, 1), DType.INT8, Q_MAP)
    b.node("c", Op.CONV2D, (x, w, bias), (y,))
    h1 = b.tensor("h1", (1, 2, 1, 1), DType.INT8, Q_MAP)
    h2 = b.tensor("h2", (1, 2, 1, 1), DType.INT8, Q_MAP)
    b.node("s1", Op.CHANNEL_SPLIT, (y,), (h1,), start=0, count=2)
    b.node("s2", Op.CHANNEL_SPLIT, (y,), (h2,), start=2, count=2)
    w2 = b.constant("f.w", np.ones((2, 2, 1, 1), np.int8), QuantParams.per_channel([0.01] * 2))
    b2 = b.constant("f.b", np.zeros(2, np.int32))
    f = b.tensor("f.y", (1, 2, 1, 1), DType.INT8, Q_MAP)
    b.node("f", Op.CONV2D, (h2, w2, b2), (f,))
    out = b.tensor("out", (1, 4, 1, 1), DType.INT8, Q_MAP)
    b.node("cat", Op.CONCAT, (h1, f), (out,))
    b.output(out)
    place = storage(b.build())
    assert place.views == {"s1", "s2"}


def test_simulation_is_bit_exact_and_its_gradients_match() -> None:
    torch = pytest.importorskip("torch")
    from tte_algo.sim import Int8Sim

    forward = shuffle_net()
    sim = Int8Sim(forward)
    rng = np.random.default_rng(5)
    xs = rng.integers(-128, 128, size=(4, 3, 8, 8)).astype(np.int8)
    got = sim.run_all(torch.tensor(xs, dtype=torch.float32))
    for i, x in enumerate(xs):
        want = reference.run_forward(forward, x[None], return_all=True)
        for name in ("s1.y", "s2.y", "p2.y", "cat.y", "shuf.y", "v2.y", "feats.y"):
            np.testing.assert_array_equal(got[name][i : i + 1].numpy().astype(np.int8), want[name], err_msg=name)
    graph = build_training_graph(forward, Scheme(n_bias=6, head="fp32"))
    x = xs[0]
    values = train_step(graph, initial_state(graph), x[None], 2, return_all=True).values
    names = ("c0.b", "p1.b", "q1.b", "q2.b")
    params = {n: torch.tensor(forward.constants[n], dtype=sim.constants[n].dtype, requires_grad=True) for n in names}
    logits = sim.forward(torch.tensor(x[None], dtype=torch.float32), params)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([2]))
    loss.backward()
    assert np.isclose(loss.item(), values["loss"][0], rtol=1e-5)
    for name in names:
        update = graph.node(f"{name[:-2]}.bias_update")
        grad = bias_grad(values[update.inputs[0]])
        assert np.abs(grad).max() > 0, name
        np.testing.assert_allclose(grad, params[name].grad.numpy(), rtol=1e-5, atol=1e-7)


def test_generated_c_trains_like_the_reference(tmp_path) -> None:
    """Three training steps of the generated C of the ShuffleNet unit (copies) and the one-pixel views,
    on the host, against the numpy reference (NUMERICS.md §7)."""
    for tool in ("cmake", "cc"):
        if shutil.which(tool) is None:
            pytest.skip(f"'{tool}' is not installed")
    from tests.codegen.parity import assert_params_close, reference_run
    from tte_codegen import HostModel, generate
    from tte_ir.compiler import compile_training

    training = compile_training(shuffle_net(), SCHEME)
    assert {"v1", "feats", "feats.bwd_b"} <= storage(training).views
    project = generate(training, tmp_path / "model")
    source = (project.path / "model.c").read_text()
    assert "tte_channel_shuffle_s8(" in source and "tte_concat_f32(" in source and "a channel view" in source
    model = HostModel(project)
    model.import_params(initial_state(training))
    rng = np.random.default_rng(9)
    xs = rng.integers(-128, 128, size=(3, 3, 8, 8)).astype(np.int8)
    labels = np.array([0, 2, 1])
    losses, states = reference_run(training, xs, labels)
    for t in range(3):
        np.testing.assert_allclose(model.train_step(xs[t], int(labels[t])), losses[t], rtol=1e-5)
        assert model.last_status == "ok"
        assert_params_close(model.export_params(), states[t])
