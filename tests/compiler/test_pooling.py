"""Max and average pooling through the compiler: shape rules, gradient rules against finite differences
(each rule alone and the whole backward of a network through both pools), the PyTorch simulation
against the reference, what the planner keeps for backward, and the generated C on the host."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tte_ir import DType, GraphBuilder, Op, QuantParams, Scheme, TteError, VerifyError, WeightUpdate, reference
from tte_ir.autodiff import build_training_graph
from tte_ir.kernels import kernel_call
from tte_ir.memory import arena_buffers
from tte_ir.ops import as_padding, as_pair, window_output_size
from tte_ir.quant import avg_pool_multipliers
from tte_ir.reference_train import avg_pool2d_bwd, bias_grad, initial_state, max_pool2d_bwd, train_step

from .nets import random_input, twin_loss
from .test_gradients import _close, _fd, _weight_grad

Q_IN = QuantParams.per_tensor(1 / 127.5, 0)


def pool_net(seed: int = 0, size: int = 12, classes: int = 3, nonsquare: bool = False) -> object:
    """input [1,3,S,S] -> conv 3x3 (ReLU) -> max pool 3/2 pad 1 -> conv 3x3 -> avg pool 3/1 pad 1 (padding not
    counted) -> avg pool 2/2 (PyTorch's divisor) -> global pool -> fp32 head.

    ``nonsquare``: the same chain on a 1-channel [1,1,13,9] input with every window non-square: conv 5x3
    at stride (2, 1), max pool 3x2 at stride (2, 1) with TFLite SAME padding (bottom and right only),
    conv 3x1, avg pool 2x3 at stride (1, 2) padded (1, 1, 0, 1), avg pool 2x1 at stride (2, 1)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("pool-net")
    x = b.input("input", (1, 1, 13, 9) if nonsquare else (1, 3, size, size), DType.INT8, Q_IN)

    def conv(name, src, cout, y_quant, kernel=3, stride=1, padding=1):
        cin = b.spec(src).shape[1]
        kh, kw = as_pair(kernel)
        w = b.constant(f"{name}.w", rng.integers(-90, 91, (cout, cin, kh, kw)).astype(np.int8),
                       QuantParams.per_channel(rng.uniform(0.004, 0.01, cout)))  # fmt: skip
        bias = b.constant(f"{name}.b", rng.integers(-300, 300, cout).astype(np.int32))
        out = window_output_size(b.spec(src).shape[2:], (kh, kw), as_pair(stride), as_padding(padding))
        y = b.tensor(f"{name}.y", (1, cout, *out), DType.INT8, y_quant)
        b.node(name, Op.CONV2D, (src, w, bias), (y,), stride=stride, padding=padding)
        return y

    def pool(name, op, src, kernel, stride, padding, quant, **attrs):
        _, c, *size_ = b.spec(src).shape
        out = window_output_size(size_, as_pair(kernel), as_pair(stride), as_padding(padding))
        y = b.tensor(f"{name}.y", (1, c, *out), DType.INT8, quant)
        b.node(name, op, (src,), (y,), kernel=kernel, stride=stride, padding=padding, **attrs)
        return y

    q0, q1 = QuantParams.per_tensor(0.03, -128), QuantParams.per_tensor(0.04, -10)
    qa, qa2 = QuantParams.per_tensor(0.03, -5), QuantParams.per_tensor(0.025, 3)
    if nonsquare:
        c0 = conv("c0", x, 6, q0, (5, 3), (2, 1), (2, 1, 2, 1))
        mp = pool("mp", Op.MAX_POOL, c0, (3, 2), (2, 1), (0, 0, 1, 1), b.spec(c0).quant)
        c1 = conv("c1", mp, 8, q1, (3, 1), 1, (1, 0, 1, 0))
        ap = pool("ap", Op.AVG_POOL, c1, (2, 3), (1, 2), (1, 1, 0, 1), qa, count_include_pad=False)
        ap2 = pool("ap2", Op.AVG_POOL, ap, (2, 1), (2, 1), (0, 0, 1, 0), qa2)
    else:
        c0 = conv("c0", x, 6, q0)
        mp = pool("mp", Op.MAX_POOL, c0, 3, 2, 1, b.spec(c0).quant)
        c1 = conv("c1", mp, 8, q1)
        ap = pool("ap", Op.AVG_POOL, c1, 3, 1, 1, qa, count_include_pad=False)
        ap2 = pool("ap2", Op.AVG_POOL, ap, 2, 2, 0, qa2)
    g = b.tensor("gap.y", (1, 8, 1, 1), DType.INT8, QuantParams.per_tensor(0.02, 0))
    b.node("gap", Op.GLOBAL_AVG_POOL, (ap2,), (g,))
    flat = b.tensor("flat.y", (1, 8), DType.INT8, b.spec(g).quant)
    b.node("flat", Op.RESHAPE, (g,), (flat,), shape=[1, 8])
    hw = b.constant("head.w", rng.uniform(-0.5, 0.5, (classes, 8)).astype(np.float32))
    hb = b.constant("head.b", rng.uniform(-0.1, 0.1, classes).astype(np.float32))
    logits = b.tensor("logits", (1, classes), DType.FLOAT32)
    b.node("head", Op.LINEAR, (flat, hw, hb), (logits,))
    b.output(logits)
    return b.build()


SCHEME = Scheme(n_bias=2, weights=(WeightUpdate(0, 1.0), WeightUpdate(1, 0.5)), head="fp32", lr=0.05, head_lr=0.05)


def _one_pool(op: Op, shape=(1, 2, 5, 5), y_quant=None, **attrs):
    b = GraphBuilder("one")
    x = b.input("x", shape, DType.INT8, Q_IN)
    y = b.tensor("y", (1, shape[1], 3, 3), DType.INT8, y_quant or Q_IN)
    b.node("p", op, (x,), (y,), **attrs)
    b.output(y)
    return b.build()


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"kernel": 3, "stride": 2, "padding": 2}, r"padding \[2, 2, 2, 2\] is more than half the kernel 3x3"),
        ({"kernel": (3, 1), "stride": 1, "padding": (1, 1, 0, 0)}, r"padding \[1, 1, 0, 0\] is more than half .* 3x1"),
        (
            {"kernel": (2, 3), "stride": (0, 1)},
            r"'stride' is \(0, 1\): it must be an integer or a list of 2 integers in \[1,",
        ),
        ({"kernel": (1, 2, 3), "stride": 1}, r"'kernel' is \(1, 2, 3\): it must be an integer or a list of 2"),
        ({"kernel": 17, "stride": 1}, r"more than 256 taps|'kernel' is 17: it must be an integer in \[1, 16\]"),
        ({"kernel": 7, "stride": 1}, "does not fit input 5x5"),
        ({"stride": 2}, "missing attribute 'kernel'"),
    ],
)
def test_shape_rules_refuse_bad_windows(attrs: dict, message: str) -> None:
    for op in (Op.MAX_POOL, Op.AVG_POOL):
        with pytest.raises(VerifyError, match=message):
            _one_pool(op, **attrs)


def test_shapes_follow_the_conv_formula() -> None:
    graph = _one_pool(Op.AVG_POOL, kernel=3, stride=2, padding=1)  # (5 + 2 - 3) // 2 + 1 = 3
    assert graph.tensors["y"].shape == (1, 2, 3, 3)
    with pytest.raises(VerifyError, match=r"declared \[1, 2, 2, 2\], the op gives \[1, 2, 3, 3\]"):
        b = GraphBuilder("bad")
        x = b.input("x", (1, 2, 5, 5), DType.INT8, Q_IN)
        y = b.tensor("y", (1, 2, 2, 2), DType.INT8, Q_IN)
        b.node("p", Op.MAX_POOL, (x,), (y,), kernel=3, stride=2, padding=1)
        b.output(y)
        b.build()


def test_max_pool_keeps_the_input_quantization() -> None:
    graph = _one_pool(Op.MAX_POOL, y_quant=QuantParams.per_tensor(0.5, 3), kernel=3, stride=2, padding=1)
    with pytest.raises(TteError, match="must keep the quantization of input 'x'"):
        kernel_call(graph, graph.nodes[0])


def _windows_f64(x, kernel, stride, padding, fill):
    (kh, kw), (sh, sw), (top, left, bottom, right) = as_pair(kernel), as_pair(stride), as_padding(padding)
    xp = np.pad(x[0], ((0, 0), (top, bottom), (left, right)), constant_values=fill)
    ho, wo = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
    span_h, span_w = sh * (ho - 1) + 1, sw * (wo - 1) + 1
    return np.stack([xp[:, u : u + span_h : sh, v : v + span_w : sw] for u in range(kh) for v in range(kw)])


# square windows, then non-square kernels, strides per axis and padding per side (TFLite SAME)
POOL_WINDOWS = [(2, 2, 0), (3, 2, 1), (3, 1, 1), ((3, 2), (2, 1), (1, 0, 1, 1)), ((2, 3), 2, (0, 0, 1, 1))]


@pytest.mark.parametrize(("kernel", "stride", "padding"), [*POOL_WINDOWS, (5, 2, 2), ((1, 4), (1, 3), (0, 2, 0, 1))])
def test_max_pool_rule_matches_finite_differences(kernel: int, stride: int, padding: int) -> None:
    """The float max of distinct values (its arg-max does not move under a small step) against the rule."""
    rng = np.random.default_rng(abs(hash((kernel, stride, padding))))  # ints: the same hash in every run
    x = rng.permutation(np.arange(2 * 7 * 6, dtype=np.float64)).reshape(1, 2, 7, 6) - 40.0
    taps = _windows_f64(x, kernel, stride, padding, -np.inf)
    coef = rng.normal(size=taps.shape[1:])

    def loss(v):
        return float((coef * _windows_f64(v, kernel, stride, padding, -np.inf).max(axis=0)).sum())

    _, index = reference.max_pool2d(
        (x + 0).astype(np.int8), kernel=kernel, stride=stride, padding=padding, return_index=True
    )
    assert np.array_equal(index[0], taps.argmax(axis=0))
    grad = max_pool2d_bwd(
        coef[None].astype(np.float32), index, size=(7, 6), kernel=kernel, stride=stride, padding=padding
    )
    _close(grad, _fd(loss, x))


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize(("kernel", "stride", "padding"), POOL_WINDOWS)
def test_avg_pool_rule_matches_finite_differences(kernel, stride, padding, count_include_pad) -> None:
    rng = np.random.default_rng(abs(hash((kernel, stride, padding))))  # ints: the same hash in every run
    x = rng.integers(-128, 128, size=(1, 3, 6, 7)).astype(np.float64)
    m = avg_pool_multipliers(0.05, 0.02, kernel)
    counts = reference.pool_counts(
        (6, 7), kernel=kernel, stride=stride, padding=padding, count_include_pad=count_include_pad
    )
    z_x, z_y = 5, -7

    def out(v):
        return _windows_f64(v - z_x, kernel, stride, padding, 0.0).sum(axis=0) * np.float64(m)[counts] + z_y

    y = out(x)
    mask = (y > -60) & (y < 60)  # the clamp decision, held fixed like the saved mask
    coef = rng.normal(size=y.shape)

    def loss(v):
        return float((coef * np.where(mask, out(v), 0.0)).sum())

    grad = avg_pool2d_bwd(
        coef[None].astype(np.float32), mask[None], m, size=(6, 7), kernel=kernel, stride=stride, padding=padding,
        count_include_pad=count_include_pad,
    )  # fmt: skip
    _close(grad, _fd(loss, x))


@pytest.mark.parametrize("nonsquare", [False, True])
def test_whole_backward_through_both_pools_matches_float_twin(nonsquare: bool) -> None:
    """The first conv's bias and weight gradients pass through the max pool, a conv and two average
    pools: against finite differences of the float twin of the whole forward (fixed masks and arg-maxes)."""
    forward = pool_net(nonsquare=nonsquare)
    graph = build_training_graph(forward, SCHEME)
    x = random_input(forward)
    result = train_step(graph, initial_state(graph), x, 1, return_all=True)
    values = result.values
    assert np.isclose(result.loss, twin_loss(graph, values, 1), rtol=1e-5)
    bias = graph.node("c0.bias_update")
    expected = _fd(lambda v: twin_loss(graph, values, 1, {"c0.b": v}), values["c0.b"])
    _close(bias_grad(values[bias.inputs[0]]), expected)
    update = graph.node("c0.w_update")
    w_train = update.inputs[2]
    expected = _fd(lambda v: twin_loss(graph, values, 1, {w_train: v}), values[w_train])
    _close(_weight_grad(graph, values, update), expected)
    assert np.abs(expected).max() > 0


def test_training_graph_saves_an_index_and_masks() -> None:
    graph = build_training_graph(pool_net(), SCHEME)
    mp = graph.node("mp")
    assert mp.attrs["save_index"] is True and graph.tensors["mp.index"].dtype is DType.UINT8
    assert graph.node("mp.bwd").op is Op.MAX_POOL_BWD and graph.node("mp.bwd").inputs[1] == "mp.index"
    for name in ("ap", "ap2"):
        assert graph.node(name).attrs["save_mask"] is True
        assert graph.node(f"{name}.bwd").op is Op.AVG_POOL_BWD
    assert graph.node("ap.bwd").attrs["count_include_pad"] is False


def test_planner_keeps_one_index_byte_per_max_pool_output() -> None:
    """What the planner holds for the pools' backward: the max pool's index (C*Ho*Wo bytes, a quarter
    of its input here) and the average pools' 1-bit masks, each live from its forward to its backward."""
    graph = build_training_graph(pool_net(), SCHEME)
    order = [n.name for n in graph.nodes]
    by_tensor = {t: buf for buf in arena_buffers(graph) for t in buf.tensors}
    index = by_tensor["mp.index"]
    assert index.size == 6 * 6 * 6 == graph.tensors["c0.y"].numel // 4
    assert (index.start, index.end) == (order.index("mp"), order.index("mp.bwd"))
    for name, numel in (("ap", 8 * 6 * 6), ("ap2", 8 * 3 * 3)):
        mask = by_tensor[f"{name}.mask"]
        assert mask.size == (numel + 7) // 8
        assert (mask.start, mask.end) == (order.index(name), order.index(f"{name}.bwd"))
    # the max pool's int8 input is not kept for its backward: it dies at its last forward reader
    c0 = by_tensor["c0.y"]
    assert c0.end == order.index("mp")


@pytest.mark.parametrize("nonsquare", [False, True])
def test_simulation_is_bit_exact_and_its_gradients_match(nonsquare: bool) -> None:
    torch = pytest.importorskip("torch")
    from tte_algo.sim import Int8Sim

    forward = pool_net(nonsquare=nonsquare)
    sim = Int8Sim(forward)
    rng = np.random.default_rng(5)
    xs = rng.integers(-128, 128, size=(6, *forward.tensors["input"].shape[1:])).astype(np.int8)
    xs[:2] = np.clip(xs[:2] // 64 * 64, -128, 127)  # coarse codes: many ties in the max pool
    got = sim.run_all(torch.tensor(xs, dtype=torch.float32))
    for i, x in enumerate(xs):
        want = reference.run_forward(forward, x[None], return_all=True)
        for name in ("c0.y", "mp.y", "c1.y", "ap.y", "ap2.y", "gap.y"):
            np.testing.assert_array_equal(got[name][i : i + 1].numpy().astype(np.int8), want[name], err_msg=name)
    graph = build_training_graph(forward, Scheme(n_bias=2, head="fp32"))
    x = xs[0]
    values = train_step(graph, initial_state(graph), x[None], 2, return_all=True).values
    params = {
        name: torch.tensor(forward.constants[name], dtype=sim.constants[name].dtype, requires_grad=True)
        for name in ("c0.b", "c1.b")
    }
    logits = sim.forward(torch.tensor(x[None], dtype=torch.float32), params)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([2]))
    loss.backward()
    assert np.isclose(loss.item(), values["loss"][0], rtol=1e-5)
    for conv in ("c0", "c1"):
        update = graph.node(f"{conv}.bias_update")
        grad = bias_grad(values[update.inputs[0]])
        assert np.abs(grad).max() > 0
        np.testing.assert_allclose(grad, params[f"{conv}.b"].grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("nonsquare", [False, True])
def test_generated_c_trains_like_the_reference(tmp_path, nonsquare: bool) -> None:
    """Three training steps of the generated C on the host against the numpy reference (NUMERICS.md §7)."""
    for tool in ("cmake", "cc"):
        if shutil.which(tool) is None:
            pytest.skip(f"'{tool}' is not installed")
    from tests.codegen.parity import assert_params_close, reference_run
    from tte_codegen import HostModel, generate
    from tte_ir.compiler import compile_training

    forward = pool_net(nonsquare=nonsquare)
    training = compile_training(forward, SCHEME)
    model = HostModel(generate(training, tmp_path / "model"))
    model.import_params(initial_state(training))
    rng = np.random.default_rng(9)
    xs = rng.integers(-128, 128, size=(3, *forward.tensors["input"].shape[1:])).astype(np.int8)
    labels = np.array([0, 2, 1])
    losses, states = reference_run(training, xs, labels)
    for t in range(3):
        np.testing.assert_allclose(model.train_step(xs[t], int(labels[t])), losses[t], rtol=1e-5)
        assert model.last_status == "ok"
        assert_params_close(model.export_params(), states[t])
