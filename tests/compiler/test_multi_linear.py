"""Several linear layers (LeNet's 120-84-10 head, a small MLP on a flattened spatial map): the scheme's
numbering (hidden linear layers count as convs), the training graph (every int8 linear layer as its 1x1
conv), gradients through the hidden layers against finite differences of the float twin, the PyTorch
simulation against the reference, and the generated C on the host against the reference."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tte_ir import DType, GraphBuilder, Op, QuantParams, Scheme, SchemeError, WeightUpdate, conv_nodes, reference
from tte_ir.autodiff import build_training_graph
from tte_ir.reference_train import bias_grad, initial_state, train_step

from .nets import random_input, twin_loss
from .test_gradients import _close, _fd, _weight_grad

Q_IN = QuantParams.per_tensor(1 / 127.5, 0)


def mlp_net(head: str = "int8", seed: int = 0) -> object:
    """input [1,3,8,8] -> conv 3x3/s2 (ReLU) -> conv 3x3/s2 (ReLU) -> "hwc" flatten of the 2x2 map ->
    fc1 24->12 (ReLU) -> fc2 12->8 (ReLU) -> head 8->3 (int8 or fp32). ReLU is each output's range
    (zero point -128), as tte quantize exports it."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("mlp-net")
    x = b.input("input", (1, 3, 8, 8), DType.INT8, Q_IN)

    def weights(name, shape):
        w = b.constant(f"{name}.w", rng.integers(-100, 101, shape).astype(np.int8),
                       QuantParams.per_channel(rng.uniform(0.004, 0.012, shape[0])))  # fmt: skip
        return w, b.constant(f"{name}.b", rng.integers(-400, 400, shape[0]).astype(np.int32))

    def conv(name, src, cout, y_scale):
        cin, h = b.spec(src).shape[1], b.spec(src).shape[2]
        w, bias = weights(name, (cout, cin, 3, 3))
        y = b.tensor(f"{name}.y", (1, cout, h // 2, h // 2), DType.INT8, QuantParams.per_tensor(y_scale, -128))
        b.node(name, Op.CONV2D, (src, w, bias), (y,), stride=2, padding=1)
        return y

    def linear(name, src, out, y_quant, dtype=DType.INT8):
        w, bias = weights(name, (out, b.spec(src).shape[1]))
        y = b.tensor(f"{name}.y" if name != "head" else "logits", (1, out), dtype, y_quant)
        b.node(name, Op.LINEAR, (src, w, bias), (y,))
        return y

    c0 = conv("c0", x, 4, 0.03)
    c1 = conv("c1", c0, 6, 0.04)
    flat = b.tensor("flat.y", (1, 24), DType.INT8, b.spec(c1).quant)
    b.node("flat", Op.RESHAPE, (c1,), (flat,), shape=[1, 24], order="hwc")
    f1 = linear("fc1", flat, 12, QuantParams.per_tensor(0.05, -128))
    f2 = linear("fc2", f1, 8, QuantParams.per_tensor(0.04, -128))
    if head == "int8":
        logits = linear("head", f2, 3, QuantParams.per_tensor(0.06, 2))
    else:
        hw = b.constant("head.w", rng.uniform(-0.1, 0.1, (3, 8)).astype(np.float32))
        hb = b.constant("head.b", rng.uniform(-0.1, 0.1, 3).astype(np.float32))
        logits = b.tensor("logits", (1, 3), DType.FLOAT32)
        b.node("head", Op.LINEAR, (f2, hw, hb), (logits,))
    b.output(logits)
    return b.build()


HEAD_ONLY = Scheme(head="int8")
BIASES = Scheme(n_bias=3, head="int8")  # c1, fc1, fc2 and the head
LAST_HIDDEN = Scheme(n_bias=1, weights=(WeightUpdate(3, 0.5),), head="int8")  # fc2's weights (half its inputs)
SCHEMES = {"head-only": HEAD_ONLY, "biases": BIASES, "last-hidden-weights": LAST_HIDDEN}


def _with_head(scheme: Scheme, head: str) -> Scheme:
    return Scheme.from_json({**scheme.to_json(), "head": head})


def test_hidden_linear_layers_count_as_convs() -> None:
    forward = mlp_net()
    assert [n.name for n in conv_nodes(forward)] == ["c0", "c1", "fc1", "fc2"]
    Scheme(n_bias=4, weights=(WeightUpdate(3, 1.0),)).validate_for(forward)
    with pytest.raises(SchemeError, match="conv 4 is out of range.*convs 0..3"):
        Scheme(weights=(WeightUpdate(4, 1.0),)).validate_for(forward)
    with pytest.raises(SchemeError, match="n_bias 5 exceeds the 4 convs"):
        Scheme(n_bias=5).validate_for(forward)


@pytest.mark.parametrize("head", ["int8", "fp32"])
def test_every_int8_linear_layer_becomes_its_1x1_conv(head: str) -> None:
    graph = build_training_graph(mlp_net(head), _with_head(LAST_HIDDEN, head))
    layers = graph.metadata["training"]["layers"]
    assert (layers["fc2"]["index"], layers["fc2"]["bias"], layers["fc2"]["head"]) == (3, True, False)
    assert len(layers["fc2"]["channels"]) == 6  # half of its 12 input features
    assert layers["head"]["index"] == 4 and layers["head"]["head"]
    for name in ("fc1", "fc2"):
        node = graph.node(name)
        assert node.op is Op.CONV2D and graph.tensors[node.inputs[1]].shape[2:] == (1, 1)
        assert graph.node(f"{name}.in").op is Op.RESHAPE and graph.node(f"{name}.out").op is Op.RESHAPE
    assert graph.node("head").op is (Op.CONV2D if head == "int8" else Op.LINEAR)
    assert graph.node("fc2.w_update").attrs["channels"] == layers["fc2"]["channels"]
    # fc1 trains nothing and nothing before it does: no backward past fc2's input
    assert not any(n.name.startswith(("fc1.", "c1.", "c0.")) and "bwd" in n.name for n in graph.nodes)


def test_forward_of_the_training_graph_is_the_forward_graph() -> None:
    """The 1x1 convs compute the linear layers' codes (reference.linear_s8 is a 1x1 conv)."""
    forward = mlp_net()
    graph = build_training_graph(forward, BIASES)
    x = random_input(forward)
    want = reference.run_forward(forward, x, return_all=True)
    got = train_step(graph, initial_state(graph), x, 0, return_all=True).values
    for name in ("fc1.y", "fc2.y", "logits"):
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize("head", ["int8", "fp32"])
@pytest.mark.parametrize("name", ["biases", "last-hidden-weights"])
def test_backward_through_hidden_linear_layers_matches_float_twin(name: str, head: str) -> None:
    """Bias, trained-weight and input gradients of the hidden linear layers (and of the conv before the
    flatten, reached through both of them) against finite differences of the float twin."""
    forward = mlp_net(head)
    graph = build_training_graph(forward, _with_head(SCHEMES[name], head))
    x = random_input(forward, seed=3)
    label = 1
    result = train_step(graph, initial_state(graph), x, label, return_all=True)
    values = result.values
    assert np.isclose(result.loss, twin_loss(graph, values, label), rtol=1e-5)
    checked = set()
    for node in graph.nodes:
        if node.op is Op.BIAS_UPDATE:
            b = node.inputs[1]
            expected = _fd(lambda v, b=b: twin_loss(graph, values, label, {b: v}), values[b])
            assert np.abs(expected).max() > 0, b
            _close(bias_grad(values[node.inputs[0]]), expected)
            checked.add(b)
        if node.op is Op.CONV2D_BWD_W_UPDATE:
            wt = node.inputs[2]
            expected = _fd(lambda v, wt=wt: twin_loss(graph, values, label, {wt: v}), values[wt])
            _close(_weight_grad(graph, values, node), expected)
            checked.add(wt)
    if name == "biases":
        assert {"c1.b", "fc1.b", "fc2.b"} <= checked
        # the gradient of the spatial map the flatten reads: through fc2's and fc1's transposed 1x1 convs
        flat_bwd = graph.node("flat.bwd")
        expected = _fd(lambda v: twin_loss(graph, values, label, {"c1.y": v}), values["c1.y"])
        _close(values[flat_bwd.outputs[0]], expected)
    else:
        assert {"fc2.b", "fc2.w_train"} <= checked


@pytest.mark.parametrize("head", ["int8", "fp32"])
def test_simulation_matches_the_reference(head: str) -> None:
    """The PyTorch simulation of the forward graph (int8 linear layers, no conversion) is bit-exact with
    the reference, and its autograd gives the compiled step's loss and hidden-layer gradients."""
    torch = pytest.importorskip("torch")
    from tte_algo.sim import Int8Sim

    forward = mlp_net(head)
    sim = Int8Sim(forward)
    xs = np.random.default_rng(4).integers(-128, 128, size=(4, 3, 8, 8)).astype(np.int8)
    got = sim.run_all(torch.tensor(xs, dtype=torch.float32))
    for i, x in enumerate(xs):
        want = reference.run_forward(forward, x[None], return_all=True)
        for name in ("c1.y", "flat.y", "fc1.y", "fc2.y"):
            np.testing.assert_array_equal(got[name][i : i + 1].numpy().astype(np.int8), want[name], err_msg=name)
    graph = build_training_graph(forward, _with_head(Scheme(n_bias=3, weights=(WeightUpdate(3, 1.0),)), head))
    x, label = xs[0], 2
    values = train_step(graph, initial_state(graph), x[None], label, return_all=True).values
    params = {
        name: torch.tensor(forward.constants[name], dtype=sim.constants[name].dtype, requires_grad=True)
        for name in ("c1.b", "fc1.b", "fc2.b", "fc2.w")
    }
    loss = torch.nn.functional.cross_entropy(sim.forward(torch.tensor(x[None], dtype=torch.float32), params),
                                             torch.tensor([label]))  # fmt: skip
    loss.backward()
    assert np.isclose(loss.item(), values["loss"][0], rtol=1e-5)
    for layer in ("c1", "fc1", "fc2"):
        grad = bias_grad(values[graph.node(f"{layer}.bias_update").inputs[0]])
        assert np.abs(grad).max() > 0
        np.testing.assert_allclose(grad, params[f"{layer}.b"].grad.numpy(), rtol=1e-5, atol=1e-7)
    dw = _weight_grad(graph, values, graph.node("fc2.w_update"))[:, :, 0, 0]
    np.testing.assert_allclose(dw, params["fc2.w"].grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "head"), [("head-only", "int8"), ("biases", "fp32"), ("last-hidden-weights", "int8")])
def test_generated_c_trains_like_the_reference(name: str, head: str, tmp_path) -> None:
    """Three training steps of the generated C on the host against the numpy reference (NUMERICS.md §7)."""
    for tool in ("cmake", "cc"):
        if shutil.which(tool) is None:
            pytest.skip(f"'{tool}' is not installed")
    from tests.codegen.parity import assert_params_close, reference_run
    from tte_codegen import HostModel, generate
    from tte_ir.compiler import compile_training

    training = compile_training(mlp_net(head), _with_head(SCHEMES[name], head))
    model = HostModel(generate(training, tmp_path / "model"))
    model.import_params(initial_state(training))
    xs = np.random.default_rng(9).integers(-128, 128, size=(3, 3, 8, 8)).astype(np.int8)
    labels = np.array([0, 2, 1])
    losses, states = reference_run(training, xs, labels)
    for t in range(3):
        np.testing.assert_allclose(model.train_step(xs[t], int(labels[t])), losses[t], rtol=1e-5)
        assert model.last_status == "ok"
        assert_params_close(model.export_params(), states[t])
    assert any(not np.array_equal(states[-1][k], v) for k, v in initial_state(training).items())
