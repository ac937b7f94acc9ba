"""Gradient checks: every rule against finite differences on a float twin, the whole backward of a
residual network, the skip path, and parity with the PyTorch simulation of tte-algo."""

from __future__ import annotations

import numpy as np
import pytest

from tte_ir import Op, Scheme, WeightUpdate, conv_nodes
from tte_ir.autodiff import build_training_graph
from tte_ir.ops import as_pair
from tte_ir.reference_train import (
    bias_grad,
    conv2d_bwd_x,
    conv2d_weight_grad,
    initial_state,
    mask_scale,
    softmax_ce,
    train_step,
)

from .nets import _conv_f64, random_input, residual_net, twin_loss

RTOL = 1e-4  # float32 kernels against float64 finite differences of a piecewise-linear function


def _fd(f, x: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        grad[i] = (f(up) - f(down)) / (2 * eps)
    return grad


def _close(actual, expected, rtol=RTOL):
    scale = max(np.abs(expected).max(), 1e-6)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


CONV_CASES = [
    # (C, O, kernel, stride, padding, groups, H x W); kernel and stride (along H, along W) or one int,
    # padding (top, left, bottom, right) or one int
    (3, 4, 3, 2, 1, 1, (7, 7)),  # dense, stride 2, padding, odd size
    (5, 5, 5, 2, 2, 5, (8, 8)),  # depthwise 5x5 / s2
    (6, 3, 1, 1, 0, 1, (5, 5)),  # pointwise
    (4, 4, 3, 1, 1, 4, (6, 6)),  # depthwise 3x3 / s1
    (1, 3, (10, 4), 2, (4, 1, 5, 1), 1, (13, 8)),  # DS-CNN's stem on one channel, TF SAME padding
    (3, 2, (2, 3), (1, 2), (0, 0, 1, 1), 1, (6, 7)),  # SAME: the extra row and column at the bottom/right
    (4, 4, (3, 1), (2, 1), (1, 0, 0, 0), 4, (7, 5)),  # depthwise 3x1, a stride per axis
    (4, 4, (1, 5), 1, (0, 2, 0, 2), 4, (5, 6)),  # depthwise 1x5 / s1
    (5, 3, 1, (2, 1), 0, 1, (5, 4)),  # pointwise strided along H only
]


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_rule_matches_finite_differences(case):
    c, o, k, stride, padding, groups, (h, wd) = case
    kh, kw = as_pair(k)
    rng = np.random.default_rng(abs(hash(case)))  # ints: the same hash in every run
    x = rng.integers(-128, 128, size=(1, c, h, wd)).astype(np.float64)
    w = rng.integers(-127, 128, size=(o, c // groups, kh, kw)).astype(np.float64)
    b = rng.integers(-500, 500, size=o).astype(np.float64)
    m = rng.uniform(0.001, 0.01, size=o).astype(np.float32)
    z_x, z_y = 7, -3
    coef = None

    def out(xv, wv, bv):
        return (_conv_f64(xv - z_x, wv, stride, padding, groups) + bv[None, :, None, None]) * np.float64(m)[
            None, :, None, None
        ] + z_y

    y = out(x, w, b)
    mask = (y > -40) & (y < 40)  # the clamp decision, held fixed like the saved mask
    coef = rng.normal(size=y.shape)

    def loss(xv, wv, bv):
        return float((coef * np.where(mask, out(xv, wv, bv), 0.0)).sum())

    gh = mask_scale(coef.astype(np.float32), mask, m)
    _close(
        conv2d_bwd_x(gh, w.astype(np.int8), size=(h, wd), stride=stride, padding=padding, groups=groups),
        _fd(lambda v: loss(v, w, b), x),
    )
    _close(bias_grad(gh), _fd(lambda v: loss(x, w, v), b))
    depthwise = groups > 1
    chans = sorted({0, c - 1}) if not depthwise else [1, o - 1]
    sel = x[:, chans].astype(np.int8)
    dw = conv2d_weight_grad(
        sel, gh, channels=chans, kernel=(kh, kw), stride=stride, padding=padding, x_zero=z_x, depthwise=depthwise
    )
    full = _fd(lambda v: loss(x, v, b), w)
    _close(dw, full[chans] if depthwise else full[:, chans])


def test_conv_bwd_x_accumulates_in_place():
    rng = np.random.default_rng(3)
    gh = rng.normal(size=(1, 4, 3, 3)).astype(np.float32)
    w = rng.integers(-127, 128, size=(4, 2, 3, 3)).astype(np.int8)
    acc = rng.normal(size=(1, 2, 5, 5)).astype(np.float32)
    fresh = conv2d_bwd_x(gh, w, size=(5, 5), stride=2, padding=1, groups=1)
    summed = conv2d_bwd_x(gh, w, size=(5, 5), stride=2, padding=1, groups=1, acc=acc)
    np.testing.assert_allclose(summed, acc + fresh, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("scale", [None, 0.07])
def test_softmax_ce_matches_finite_differences(scale):
    logits = (
        np.array([[0.3, -1.2, 2.0, 0.1]], dtype=np.float32)
        if scale is None
        else np.array([[5, -20, 31, 0]], dtype=np.int8)
    )
    zero = 2
    loss, g = softmax_ce(logits, 2, scale=scale, zero=zero)

    def f(v):
        real = v[0] if scale is None else scale * (v[0] - zero)
        m = real.max()
        return float(np.log(np.exp(real - m).sum()) - (real[2] - m))

    assert np.isclose(loss, f(logits.astype(np.float64)), rtol=1e-6)
    _close(g, _fd(f, logits.astype(np.float64)))


SCHEMES = {
    "full-fp32-head": Scheme(n_bias=5, weights=tuple(WeightUpdate(i, 1.0) for i in range(5)), head="fp32"),
    "sparse-int8-head": Scheme(n_bias=3, weights=(WeightUpdate(1, 0.5), WeightUpdate(2, 0.25)), head="int8"),
}


def _weight_grad(graph, values, node):
    """dL/dw of a ``conv2d_bwd_w_update`` node's trained slice, from the step's recorded values."""
    attrs = dict(node.attrs)
    return conv2d_weight_grad(
        values[node.inputs[0]],
        values[node.inputs[1]],
        channels=attrs["channels"],
        kernel=tuple(attrs["weight_shape"][2:]),
        stride=attrs.get("stride", 1),
        padding=attrs.get("padding", 0),
        x_zero=graph.tensors[node.inputs[0]].quant.zero_point,
        depthwise=attrs.get("groups", 1) > 1,
    )


@pytest.mark.parametrize("scheme_name", sorted(SCHEMES))
def test_whole_backward_matches_float_twin(scheme_name):
    """Every bias, trained-weight and activation gradient of a residual network against finite
    differences of the float twin of the whole forward (fixed masks)."""
    forward = residual_net(head="int8")
    graph = build_training_graph(forward, SCHEMES[scheme_name])
    x = random_input(forward)
    label = 1
    result = train_step(graph, initial_state(graph), x, label, return_all=True)
    values = result.values
    assert np.isclose(result.loss, twin_loss(graph, values, label), rtol=1e-5)
    checked = 0
    for node in graph.nodes:
        if node.op is Op.BIAS_UPDATE:
            b = node.inputs[1]
            expected = _fd(lambda v, b=b: twin_loss(graph, values, label, {b: v}), values[b])
            _close(bias_grad(values[node.inputs[0]]), expected)
            checked += 1
        if node.op is Op.CONV2D_BWD_W_UPDATE:
            wt = node.inputs[2]
            expected = _fd(lambda v, wt=wt: twin_loss(graph, values, label, {wt: v}), values[wt])
            grad = _weight_grad(graph, values, node)
            _close(grad, expected)
            checked += 1
    # the block input's gradient: the sum of the skip path and the conv path (fan-out)
    if any(n.name == "b.pw1.bwd_x" for n in graph.nodes):
        gx = values[graph.node("b.pw1.bwd_x").outputs[0]]
        expected = _fd(lambda v: twin_loss(graph, values, label, {"stem.y": v}), values["stem.y"])
        _close(gx, expected)
        checked += 1
    assert checked >= 3


def test_skip_path_gradient_is_summed():
    """Fails if the residual add's skip-path gradient is dropped (overwritten instead of summed)."""
    forward = residual_net(head="fp32")
    scheme = Scheme(n_bias=5, head="fp32")
    graph = build_training_graph(forward, scheme)
    bwd_x = graph.node("b.pw1.bwd_x")
    assert bwd_x.attrs.get("accumulate") is True
    add_bwd = graph.node("b.add.bwd")
    assert bwd_x.inputs[-1] == add_bwd.outputs[0]  # accumulates into the skip path's gradient
    x = random_input(forward)
    values = train_step(graph, initial_state(graph), x, 2, return_all=True).values
    with_skip = values[bwd_x.outputs[0]]
    conv_only = conv2d_bwd_x(values["b.pw1.gh"], values["b.pw1.w"], size=(8, 8), stride=1, padding=0, groups=1)
    skip = values[add_bwd.outputs[0]]
    assert np.abs(skip).max() > 0
    np.testing.assert_allclose(with_skip, skip + conv_only, rtol=1e-6, atol=1e-7)
    expected = _fd(lambda v: twin_loss(graph, values, 2, {"stem.y": v}), values["stem.y"])
    _close(with_skip, expected)
    assert not np.allclose(conv_only, expected, rtol=1e-3, atol=1e-6)


def test_parity_with_pytorch_simulation():
    """The reference backward against tte-algo's PyTorch simulation (NUMERICS.md §7: rtol 1e-5)."""
    torch = pytest.importorskip("torch")
    sim_module = pytest.importorskip("tte_algo.sim")
    forward = residual_net(head="fp32")
    n_convs = len(conv_nodes(forward))
    scheme = Scheme(n_bias=n_convs, weights=tuple(WeightUpdate(i, 1.0) for i in range(n_convs)), head="fp32")
    graph = build_training_graph(forward, scheme)
    x = random_input(forward)
    label = 0
    values = train_step(graph, initial_state(graph), x, label, return_all=True).values
    sim = sim_module.Int8Sim(forward)
    params = {
        name: torch.tensor(forward.constants[name], dtype=sim.constants[name].dtype, requires_grad=True)
        for name in forward.constants
    }
    logits = sim.forward(torch.tensor(x, dtype=torch.float32), params)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([label]))
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
