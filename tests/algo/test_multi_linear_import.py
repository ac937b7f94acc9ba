"""Models with several linear layers, from torch.fx to training: LeNet-5 (conv, max pool, conv, max pool,
flatten, 120-84-10) and a two-layer MLP head on a pooled map. The hidden linear layers quantize to int8
with ReLU as their output range, the last one is the head (int8 or fp32); the simulation is bit-exact
with the reference; the compiler trains the head, the hidden layers' biases, and the last hidden
layer's weights (numbered as convs); the simulated training numbers them the same way."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from tests.algo.test_sim_parity import assert_all_tensors_match  # noqa: E402
from tte_algo.data import Dataset  # noqa: E402
from tte_algo.fx_import import import_fx  # noqa: E402
from tte_algo.ptq import quantize_model  # noqa: E402
from tte_algo.search.contrib import candidate_convs, split_graph  # noqa: E402
from tte_algo.sim import Int8Sim  # noqa: E402
from tte_algo.train import TrainConfig, scheme_last_convs, train_int8  # noqa: E402
from tte_ir import DType, Op, Scheme, WeightUpdate, compile_training, conv_nodes  # noqa: E402
from tte_ir.reference_train import bias_grad, initial_state, train_step  # noqa: E402


def lenet5() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    ).eval()  # fmt: skip


class PooledMlp(nn.Module):
    """conv -> global pool -> flatten -> Linear(8, 16) -> relu (functional) -> Linear(16, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1)
        return self.head(F.relu(self.fc(torch.flatten(x, 1))))


def pooled_mlp() -> nn.Module:
    torch.manual_seed(1)
    return PooledMlp().eval()


MODELS = {"lenet5": (lenet5, (1, 32, 32)), "pooled-mlp": (pooled_mlp, (3, 8, 8))}


def codes(kind: str, count: int, seed: int = 0) -> np.ndarray:
    shape = MODELS[kind][1]
    return np.random.default_rng(seed).integers(-128, 128, size=(count, *shape)).astype(np.int8)


def quantized(kind: str, head: str):
    return quantize_model(MODELS[kind][0](), torch.from_numpy(codes(kind, 16)), head=head)


def test_relu_after_a_linear_attaches_to_it() -> None:
    graph = import_fx(lenet5())
    linears = [op for op in graph.ops if op.kind is Op.LINEAR]
    assert [op.weight.shape for op in linears] == [(120, 400), (84, 120), (10, 84)]
    assert [op.act for op in linears] == ["relu", "relu", None]
    pooled = [op for op in import_fx(pooled_mlp()).ops if op.kind is Op.LINEAR]
    assert [op.act for op in pooled] == ["relu", None]


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("head", ["int8", "fp32"])
def test_hidden_linear_layers_quantize_to_int8_and_simulate_bit_exact(kind: str, head: str) -> None:
    graph = quantized(kind, head)
    *hidden, last = (n for n in graph.nodes if n.op is Op.LINEAR)
    assert last.outputs == graph.outputs
    assert graph.tensors[last.inputs[1]].dtype is (DType.INT8 if head == "int8" else DType.FLOAT32)
    for node in hidden:  # ReLU is the output range: zero point -128, the int8 clamp is the activation
        assert graph.tensors[node.inputs[1]].dtype is DType.INT8
        assert graph.tensors[node.outputs[0]].quant.zero_point == -128
    assert [n.name for n in conv_nodes(graph)][-len(hidden) :] == [n.name for n in hidden]
    assert assert_all_tensors_match(graph, codes(kind, 4, seed=1)) == 4 * (len(graph.nodes) + 1)


def test_lenet_hidden_layer_codes_are_never_below_the_relu() -> None:
    graph = quantized("lenet5", "int8")
    values = Int8Sim(graph).run_all(torch.from_numpy(codes("lenet5", 8, seed=2)))
    for name in ("7.y", "9.y"):
        assert values[name].min() >= -128 and (values[name] > -128).any()


LENET_SCHEMES = {  # LeNet's convs 0, 1 and linear layers fc120 = 2, fc84 = 3; the head is index 4
    "head-only": Scheme(),
    "biases": Scheme(n_bias=3),  # conv 1, fc120, fc84
    "fc84-weights": Scheme(n_bias=1, weights=(WeightUpdate(3, 0.25),)),
}


@pytest.mark.parametrize("name", sorted(LENET_SCHEMES))
@pytest.mark.parametrize("head", ["int8", "fp32"])
def test_lenet_compiles_and_its_gradients_match_the_simulation(name: str, head: str) -> None:
    """The compiled step's loss and bias / weight gradients of the hidden layers against autograd
    through the simulation of the forward graph (NUMERICS.md §7: rtol 1e-5)."""
    forward = quantized("lenet5", head)
    scheme = Scheme.from_json({**LENET_SCHEMES[name].to_json(), "head": head})
    graph = compile_training(forward, scheme)
    layers = graph.metadata["training"]["layers"]
    expected = {"head-only": {"11"}, "biases": {"3", "7", "9", "11"}, "fc84-weights": {"9", "11"}}[name]
    assert set(layers) == expected and layers["11"]["index"] == 4
    x, label = codes("lenet5", 1, seed=3), 4
    values = train_step(graph, initial_state(graph), x, label, return_all=True).values
    sim = Int8Sim(forward)
    params = {
        n: torch.tensor(forward.constants[n], dtype=sim.constants[n].dtype, requires_grad=True)
        for n in ("3.b", "7.b", "9.b", "9.w")
    }
    loss = F.cross_entropy(sim.forward(torch.from_numpy(x).float(), params), torch.tensor([label]))
    loss.backward()
    assert np.isclose(loss.item(), values["loss"][0], rtol=1e-5)
    for update in (n for n in graph.nodes if n.op is Op.BIAS_UPDATE and n.inputs[1] in params):
        want = params[update.inputs[1]].grad.numpy()
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(bias_grad(values[update.inputs[0]]), want, rtol=1e-5, atol=1e-7)
    if name == "fc84-weights":
        update = graph.node("9.w_update")
        channels = update.attrs["channels"]
        assert len(channels) == 30  # ceil(120 / 4) input features of fc84
        gh, x_saved = values[update.inputs[1]], values[update.inputs[0]]
        zero = graph.tensors[update.inputs[0]].quant.zero_point
        dw = gh[0, :, 0, 0, None] * (x_saved[0, :, 0, 0].astype(np.float64) - zero)[None]
        np.testing.assert_allclose(dw, params["9.w"].grad.numpy()[:, channels], rtol=1e-5, atol=1e-6)


def test_simulated_training_numbers_linear_layers_as_convs() -> None:
    """tte train's simulation trains fc84's selected input features (conv 3) and nothing else of it;
    ``scheme_last_convs(graph, 2)`` is fc120 and fc84."""
    graph = quantized("lenet5", "fp32")
    assert scheme_last_convs(graph, 2).weights == (WeightUpdate(2, 1.0), WeightUpdate(3, 1.0))
    data = Dataset(torch.from_numpy(codes("lenet5", 8, seed=4)), torch.arange(8) % 10, tuple(map(str, range(10))))
    scheme = Scheme(n_bias=1, weights=(WeightUpdate(3, 0.25),), rounding="nearest", lr=5.0)
    result = train_int8(graph, scheme, data, None, TrainConfig(epochs=1, batch_size=4))
    before, after = graph.constants["9.w"], result.graph.constants["9.w"]
    changed = np.flatnonzero((before != after).any(axis=0))
    channels = compile_training(graph, scheme).node("9.w_update").attrs["channels"]
    assert changed.size > 0 and set(changed) <= set(channels)
    np.testing.assert_array_equal(before[:, [c for c in range(120) if c not in channels]],
                                  after[:, [c for c in range(120) if c not in channels]])  # fmt: skip
    assert not np.array_equal(graph.constants["9.b"], result.graph.constants["9.b"])
    np.testing.assert_array_equal(graph.constants["7.b"], result.graph.constants["7.b"])


def test_the_search_counts_linear_layers_as_pointwise_convs() -> None:
    graph = quantized("lenet5", "int8")
    assert candidate_convs(graph, 3) == [2, 3]  # conv 1 is a dense 5x5; fc120 and fc84 train as 1x1 convs
    _, suffix, offset = split_graph(graph, 3)
    assert offset == 3 and conv_nodes(suffix)[0].name == conv_nodes(graph)[offset].name == "9"


def test_lenet_generated_c_trains_like_the_reference(tmp_path) -> None:
    """Three steps of the generated C on the host (int8 head; biases of conv 1, fc120 and fc84; a quarter
    of fc84's weights) against the numpy reference (NUMERICS.md §7)."""
    import shutil

    for tool in ("cmake", "cc"):
        if shutil.which(tool) is None:
            pytest.skip(f"'{tool}' is not installed")
    from tests.codegen.parity import assert_params_close, reference_run
    from tte_codegen import HostModel, generate

    scheme = Scheme(n_bias=3, weights=(WeightUpdate(3, 0.25),), head="int8")
    training = compile_training(quantized("lenet5", "int8"), scheme)
    model = HostModel(generate(training, tmp_path / "model"))
    model.import_params(initial_state(training))
    xs, labels = codes("lenet5", 3, seed=5), np.array([3, 7, 1])
    losses, states = reference_run(training, xs, labels)
    for t in range(3):
        np.testing.assert_allclose(model.train_step(xs[t], int(labels[t])), losses[t], rtol=1e-5)
        assert model.last_status == "ok"
        assert_params_close(model.export_params(), states[t])
    assert not np.array_equal(states[-1]["3.b"], initial_state(training)["3.b"])
