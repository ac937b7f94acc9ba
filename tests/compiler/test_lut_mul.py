"""Table activations (lut: hard-swish, hard-sigmoid, sigmoid) and the channel-wise multiply (mul,
squeeze-and-excite): the table formula, the shape rules, the backward kernels against finite
differences of a float twin, a whole hard-swish + SE block's backward against its float twin, parity
with the PyTorch simulation, and the generated C training 3 steps like the numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tte_ir import DType, GraphBuilder, Op, QuantParams, Scheme, VerifyError, WeightUpdate, conv_nodes, reference
from tte_ir.autodiff import build_training_graph
from tte_ir.ops import node_roles
from tte_ir.quant import LUT_FUNCTIONS, lut_function, lut_tables, node_multipliers
from tte_ir.reference_train import bias_grad, initial_state, lut_bwd, mul_bwd, train_step

from .nets import _pre, _unpack, random_input
from .test_gradients import _close, _fd, _weight_grad

X_SCALE = 0.047  # kinks of the hard activations at codes z_x +- 3/s_x = z_x +- 63.83: away from every integer


def se_net(seed: int = 0, size: int = 6):
    """input[1,3,S,S] -> conv 3x3 -> hard-swish -> dw 3x3 -> hard-swish -> SE (pool, 1x1 conv + ReLU,
    1x1 conv, hard-sigmoid, multiply) -> pointwise -> pool -> fp32 head(3)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("se-tiny")
    x = b.input("input", (1, 3, size, size), DType.INT8, QuantParams.per_tensor(1 / 127.5, 0))

    def conv(name, src, cout, k, groups=1, y_scale=0.05, y_zero=0, act=(-128, 127)):
        spec = b.spec(src)
        cin, h = spec.shape[1], spec.shape[2]
        w = rng.integers(-90, 91, size=(cout, cin // groups, k, k)).astype(np.int8)
        wn = b.constant(f"{name}.w", w, QuantParams.per_channel(rng.uniform(0.004, 0.01, size=cout)))
        bias = b.constant(f"{name}.b", rng.integers(-300, 300, size=cout).astype(np.int32))
        y = b.tensor(f"{name}.y", (1, cout, h, h), DType.INT8, QuantParams.per_tensor(y_scale, y_zero))
        b.node(name, Op.CONV2D, (src, wn, bias), (y,), padding=(k - 1) // 2, groups=groups, act_min=act[0],
               act_max=act[1])  # fmt: skip
        return y

    def lut(name, src, function, y_scale, y_zero):
        y = b.tensor(f"{name}.y", b.spec(src).shape, DType.INT8, QuantParams.per_tensor(y_scale, y_zero))
        b.node(name, Op.LUT, (src,), (y,), function=function)
        return y

    stem = lut("stem.hs", conv("stem", x, 4, 3, y_scale=X_SCALE, y_zero=-10), "hard_swish", 0.03, -100)
    dw = lut("dw.hs", conv("dw", stem, 4, 3, groups=4, y_scale=X_SCALE, y_zero=3), "hard_swish", 0.033, -110)
    pool = b.tensor("se.pool.y", (1, 4, 1, 1), DType.INT8, QuantParams.per_tensor(0.02, -60))
    b.node("se.pool", Op.GLOBAL_AVG_POOL, (dw,), (pool,))
    fc1 = conv("se.fc1", pool, 2, 1, y_scale=0.01, y_zero=-128)
    gate = lut("se.gate", conv("se.fc2", fc1, 4, 1, y_scale=X_SCALE, y_zero=5), "hard_sigmoid", 1 / 255, -128)
    mul = b.tensor("se.mul.y", (1, 4, size, size), DType.INT8, QuantParams.per_tensor(0.025, -90))
    b.node("se.mul", Op.MUL, (dw, gate), (mul,))
    pw = conv("pw", mul, 5, 1, y_scale=0.04, y_zero=2)
    pooled = b.tensor("pool.y", (1, 5, 1, 1), DType.INT8, QuantParams.per_tensor(0.02, -20))
    b.node("pool", Op.GLOBAL_AVG_POOL, (pw,), (pooled,))
    flat = b.tensor("flat.y", (1, 5), DType.INT8, b.spec(pooled).quant)
    b.node("flat", Op.RESHAPE, (pooled,), (flat,), shape=[1, 5])
    hw = b.constant("head.w", rng.uniform(-0.5, 0.5, size=(3, 5)).astype(np.float32))
    hb = b.constant("head.b", rng.uniform(-0.1, 0.1, size=3).astype(np.float32))
    logits = b.tensor("logits", (1, 3), DType.FLOAT32)
    b.node("head", Op.LINEAR, (flat, hw, hb), (logits,))
    b.output(logits)
    return b.build()


def full_scheme(graph) -> Scheme:
    n = len(conv_nodes(graph))
    return Scheme(n_bias=n, weights=tuple(WeightUpdate(i, 1.0) for i in range(n)), head="fp32")


# -- the table -------------------------------------------------------------------------------------


def _real(function: str, x: float) -> tuple[float, float]:
    """The activation and its derivative, written independently of tte_ir.quant (math, not numpy)."""
    if function == "hard_swish":
        return x * min(max(x + 3.0, 0.0), 6.0) / 6.0, 0.0 if x < -3 else (x / 3.0 + 0.5 if x <= 3 else 1.0)
    if function == "hard_sigmoid":
        return min(max(x + 3.0, 0.0), 6.0) / 6.0, 1.0 / 6.0 if -3 < x < 3 else 0.0
    f = 1.0 / (1.0 + math.exp(-x))
    return f, f * (1.0 - f)


@pytest.mark.parametrize("function", LUT_FUNCTIONS)
def test_tables_follow_the_numerics_formula(function):
    s_x, z_x, s_y, z_y = 0.047, -9, 0.021, -100
    table, slope = lut_tables(function, s_x, z_x, s_y, z_y)
    assert table.dtype == np.int8 and slope.dtype == np.float32 and table.shape == slope.shape == (256,)
    for q in range(-128, 128):
        f, d = _real(function, s_x * (q - z_x))
        r = round(f / s_y) + z_y  # Python's round() is round half to even
        assert table[q + 128] == min(max(r, -128), 127), q
        assert slope[q + 128] == (np.float32(d * s_x / s_y) if -128 <= r <= 127 else 0.0), q
    assert (slope == 0).any() or function == "sigmoid"


def test_clamped_codes_have_zero_slope():
    table, slope = lut_tables("hard_swish", 0.1, 0, 0.01, 0)  # hard_swish(12.7) = 12.7 -> code 1270: clamped
    assert table[-1] == 127 and slope[-1] == 0.0
    assert table[128] == 0 and slope[128] == np.float32(0.5 * 0.1 / 0.01)


def test_lut_forward_is_the_table():
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 4, 8, 8)
    table, _ = lut_tables("sigmoid", 0.05, 3, 1 / 255, -128)
    np.testing.assert_array_equal(reference.lut(x, table).ravel(), table)


def test_mul_forward_follows_the_numerics_order():
    a = np.array([[[[100]], [[-128]]]], np.int8)
    b = np.array([[[[127]], [[-128]]]], np.int8)
    m = np.float32(0.25)
    y, mask = reference.mul(a, b, m=m, a_zero=-28, b_zero=-128, y_zero=-2, return_mask=True)
    # (100+28)*(127+128) = 32640 -> 8160 -> clamped; (-128+28)*0 = 0 -> -2
    assert y.ravel().tolist() == [127, -2] and mask.ravel().tolist() == [False, True]


# -- shape rules -----------------------------------------------------------------------------------


def _mul_graph(b_shape, function="hard_sigmoid"):
    q = QuantParams.per_tensor(0.05, 0)
    b = GraphBuilder("bad")
    x = b.input("x", (1, 3, 4, 4), DType.INT8, q)
    g = b.tensor("g", b_shape, DType.INT8, q)
    b.constant("gate", np.zeros(b_shape, np.int8), q)
    b.node("act", Op.LUT, ("gate",), ("g",), function=function)
    y = b.tensor("y", (1, 3, 4, 4), DType.INT8, q)
    b.node("mul", Op.MUL, (x, g), (y,))
    b.output(y)
    return b.build()


def test_shape_rules():
    assert _mul_graph((1, 3, 1, 1)).tensors["y"].shape == (1, 3, 4, 4)
    with pytest.raises(VerifyError, match=r"node 'mul' \(mul\): input 'b' .* expected \[1, 3, 1, 1\]"):
        _mul_graph((1, 3, 2, 1))
    with pytest.raises(VerifyError, match="function"):
        _mul_graph((1, 3, 1, 1), function="tanh")


# -- backward kernels against finite differences -------------------------------------------------------


@pytest.mark.parametrize("function", LUT_FUNCTIONS)
def test_slope_table_matches_finite_differences_of_the_real_function(function):
    """dL/dx = g * slope[x] against central differences of the float twin y(x) = f(s_x (x - z_x)) / s_y
    (the real function, no rounding) at every code whose output is not clamped. The kinks of the hard
    functions (x_real = +-3) sit 0.17 codes from the nearest code, far beyond the 1e-3 step, so every
    difference is taken on one smooth piece."""
    s_x, z_x, s_y, z_y = X_SCALE, -9, 0.021, -100
    kinks = z_x + np.array([-3.0, 3.0]) / s_x
    codes = np.arange(-128, 128)
    assert np.abs(codes[:, None] - kinks[None]).min() > 0.1
    _, slope = lut_tables(function, s_x, z_x, s_y, z_y)
    g = np.random.default_rng(5).normal(size=256).astype(np.float32)
    x = codes.astype(np.int8).reshape(1, 256)
    got = lut_bwd(g.reshape(1, 256), x, slope)[0]

    def loss(xv):
        return float((g.astype(np.float64) * lut_function(function, s_x * (xv - z_x))[0] / s_y).sum())

    expected = _fd(loss, codes.astype(np.float64))
    live = slope != 0
    _close(got[live], expected[live])
    table, _ = lut_tables(function, s_x, z_x, s_y, z_y)
    assert np.all((table[~live] == -128) | (table[~live] == 127) | (expected[~live] == 0))


def test_mul_bwd_matches_finite_differences():
    rng = np.random.default_rng(2)
    a = rng.integers(-128, 128, size=(1, 3, 4, 5)).astype(np.float64)
    b = rng.integers(-128, 128, size=(1, 3, 1, 1)).astype(np.float64)
    m, z_a, z_b, z_y = np.float32(0.0021), -7, -128, 4
    pre = lambda av, bv: np.float64(m) * (av - z_a) * (bv - z_b) + z_y  # noqa: E731
    mask = np.abs(pre(a, b)) < 20  # the clamp decision, held fixed like the saved mask
    coef = rng.normal(size=a.shape)

    def loss(av, bv):
        return float((coef * np.where(mask, pre(av, bv), 0.0)).sum())

    ga, gb = mul_bwd(coef.astype(np.float32), mask, a.astype(np.int8), b.astype(np.int8), m=m, a_zero=z_a, b_zero=z_b)
    assert 0 < mask.mean() < 1
    _close(ga, _fd(lambda v: loss(v, b), a))
    _close(gb, _fd(lambda v: loss(a, v), b))


# -- the whole block ---------------------------------------------------------------------------------


def twin_loss(train_graph, values: dict, label: int, override: dict | None = None) -> float:
    """tests/compiler/nets.twin_loss with table activations and multiplies: a lut node follows the real
    function where its output is not clamped, y = y0 + (F(x) - F(x0)) with F(x) = f(s_x (x - z_x)) / s_y;
    a mul node is linearized like the other int8 ops (its saved mask fixed)."""
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
            cur[y] = cur[ins["x"]].reshape(g.tensors[y].shape)
        elif node.op is Op.LINEAR:
            xq = g.tensors[ins["x"]].quant
            cur[y] = (cur[ins["b"]] + cur[ins["w"]] @ (xq.tensor_scale * (cur[ins["x"]][0] - xq.zero_point)))[None]
        elif node.op is Op.LUT:
            xq, yq = g.tensors[ins["x"]].quant, g.tensors[y].quant
            live = node_multipliers(g, node)["slope"][values[ins["x"]].astype(np.int32) + 128] != 0

            def real(v, xq=xq, yq=yq, node=node):
                return lut_function(node.attrs["function"], xq.tensor_scale * (v - xq.zero_point))[0] / yq.tensor_scale

            cur[y] = base[y] + np.where(live, real(cur[ins["x"]]) - real(base[ins["x"]]), 0.0)
        elif node.op is Op.MUL:
            m = np.float64(node_multipliers(g, node)["m"])
            za, zb = (g.tensors[ins[r]].quant.zero_point for r in ("a", "b"))
            change = m * (cur[ins["a"]] - za) * (cur[ins["b"]] - zb) - m * (base[ins["a"]] - za) * (base[ins["b"]] - zb)
            cur[y] = base[y] + np.where(_unpack(values[outs["mask"]], base[y].shape), change, 0.0)
        elif "mask" in outs:
            change = _pre(g, node, ins, cur) - _pre(g, node, ins, base)
            cur[y] = base[y] + np.where(_unpack(values[outs["mask"]], base[y].shape), change, 0.0)
    f = cur[g.metadata["training"]["logits"]][0]
    top = f.max()
    return float(np.log(np.exp(f - top).sum()) - (f[label] - top))


def test_se_block_backward_matches_the_float_twin():
    """Every bias and weight gradient of a network with hard-swish and squeeze-excite against finite
    differences of its float twin: the map path (stem, dw: through mul's ga and the pool) and the gate
    path (se.fc1, se.fc2: through mul's gb and the hard-sigmoid's slopes)."""
    forward = se_net()
    graph = build_training_graph(forward, full_scheme(forward))
    assert {n.op for n in graph.nodes} >= {Op.LUT_BWD, Op.MUL_BWD}
    values = train_step(graph, initial_state(graph), random_input(forward), 1, return_all=True).values
    assert np.isclose(
        train_step(graph, initial_state(graph), random_input(forward), 1).loss, twin_loss(graph, values, 1)
    )
    checked = set()
    for node in graph.nodes:
        if node.op is Op.BIAS_UPDATE:
            b = node.inputs[1]
            expected = _fd(lambda v, b=b: twin_loss(graph, values, 1, {b: v}), values[b])
            got = bias_grad(values[node.inputs[0]])
            assert np.abs(got).max() > 0, b
            _close(got, expected)
            checked.add(b)
        if node.op is Op.CONV2D_BWD_W_UPDATE:
            wt = node.inputs[2]
            expected = _fd(lambda v, wt=wt: twin_loss(graph, values, 1, {wt: v}), values[wt])
            _close(_weight_grad(graph, values, node), expected)
            checked.add(wt)
    assert {"stem.b", "dw.b", "se.fc1.b", "se.fc2.b", "pw.b"} <= checked
    assert len(checked) == 10


def test_mul_gradient_reaches_only_the_inputs_that_need_it():
    """Only the last conv trains: no mul backward. se.fc2 trains too: the gate needs its gradient, the
    map (dw.hs.y, upstream of nothing trained) does not, and mul_bwd leaves ga out."""
    forward = se_net()
    assert Op.MUL_BWD not in {n.op for n in build_training_graph(forward, Scheme(n_bias=1, head="fp32")).nodes}
    graph = build_training_graph(forward, Scheme(n_bias=2, head="fp32"))
    (node,) = [n for n in graph.nodes if n.op is Op.MUL_BWD]
    assert node.attrs["grad_a"] is False and node.attrs["grad_b"] is True and len(node.outputs) == 1
    values = train_step(graph, initial_state(graph), random_input(forward), 2, return_all=True).values
    (update,) = [n for n in graph.nodes if n.op is Op.BIAS_UPDATE and n.inputs[1] == "se.fc2.b"]
    expected = _fd(lambda v: twin_loss(graph, values, 2, {"se.fc2.b": v}), values["se.fc2.b"])
    _close(bias_grad(values[update.inputs[0]]), expected)


def test_parity_with_pytorch_simulation():
    """The int8 simulation is bit-exact with the reference on every int8 tensor, and its gradients
    agree with the reference backward within NUMERICS.md §7 (rtol 1e-5)."""
    torch = pytest.importorskip("torch")
    sim_module = pytest.importorskip("tte_algo.sim")
    forward = se_net()
    graph = build_training_graph(forward, full_scheme(forward))
    x = random_input(forward)
    ref = reference.run_forward(forward, x, return_all=True)
    sim = sim_module.Int8Sim(forward)
    got = sim.run_all(torch.tensor(x, dtype=torch.float32))
    for name, spec in forward.tensors.items():
        if spec.dtype is DType.INT8 and name not in forward.constants:
            np.testing.assert_array_equal(got[name].numpy().astype(np.int8), ref[name], err_msg=name)
    values = train_step(graph, initial_state(graph), x, 0, return_all=True).values
    params = {
        name: torch.tensor(forward.constants[name], dtype=sim.constants[name].dtype, requires_grad=True)
        for name in forward.constants
    }
    loss = torch.nn.functional.cross_entropy(
        sim.forward(torch.tensor(x, dtype=torch.float32), params), torch.tensor([0])
    )
    loss.backward()
    assert np.isclose(loss.item(), values["loss"][0], rtol=1e-5)
    for node in graph.nodes:
        if node.op is Op.BIAS_UPDATE:
            b = node.inputs[1]
            np.testing.assert_allclose(bias_grad(values[node.inputs[0]]), params[b].grad.numpy(), rtol=1e-5, atol=1e-7)
        if node.op is Op.CONV2D_BWD_W_UPDATE:
            conv = graph.node(node.name.removesuffix(".w_update"))
            grad = _weight_grad(graph, values, node)
            np.testing.assert_allclose(grad, params[conv.inputs[1]].grad.numpy(), rtol=1e-5, atol=1e-6)


def test_twin_simulation_gradient_is_the_real_derivative():
    """The simulation's float twin differentiates the real activation: autograd through it equals
    finite differences of its own forward (hard-swish at codes away from the kinks, sigmoid)."""
    torch = pytest.importorskip("torch")
    sim_module = pytest.importorskip("tte_algo.sim")
    forward = se_net()
    twin = sim_module.Int8Sim(forward, twin=True)
    x = torch.tensor(random_input(forward), dtype=torch.float64)
    node = forward.node("stem.hs")
    base = twin.run({"input": x})[node.inputs[0]].detach().requires_grad_(True)
    y = twin.run({node.inputs[0]: base}, nodes=[node])[node.outputs[0]]
    coef = torch.randn_like(y, dtype=torch.float64)
    (coef * y).sum().backward()

    def loss(v):
        with torch.no_grad():
            out = twin.run({node.inputs[0]: torch.tensor(v)}, nodes=[node])[node.outputs[0]]
        return float((coef * out).sum())

    _close(base.grad.numpy(), _fd(loss, base.detach().numpy()))


# -- the generated C ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_generated_c_trains_like_the_reference(tmp_path):
    """A compiled training graph with hard-swish and squeeze-excite, as generated C on the host: 3 steps
    equal to the numpy reference within NUMERICS.md §7 (tests/codegen/parity.py)."""
    import shutil

    if shutil.which("cmake") is None or shutil.which("cc") is None:
        pytest.skip("cmake and a C compiler build the generated code")
    from tests.codegen.nets import images
    from tests.codegen.parity import assert_params_close, reference_run
    from tte_codegen import HostModel, generate
    from tte_ir.compiler import compile_training

    forward = se_net()
    training = compile_training(forward, full_scheme(forward))
    model = HostModel(generate(training, tmp_path / "model"))
    model.import_params(initial_state(training))
    xs = images(forward, 3)
    labels = np.arange(3) % 3
    losses, states = reference_run(training, xs, labels)
    for t in range(3):
        np.testing.assert_allclose(model.train_step(xs[t], int(labels[t])), losses[t], rtol=1e-5)
        assert model.last_status == "ok"
        assert_params_close(model.export_params(), states[t])
