"""A torch model that flattens a spatial map into its Linear head quantizes into a graph the engine
runs (the flatten in channels-last order, the head's weights permuted), and the simulation, the
numpy reference and PyTorch's own flatten agree on it."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from torch import nn  # noqa: E402

from tests.algo.test_sim_parity import assert_all_tensors_match  # noqa: E402
from tte_algo.ptq import quantize_model  # noqa: E402
from tte_algo.sim import Int8Sim  # noqa: E402
from tte_ir import Op, Scheme, compile_training, kernel_call, reference  # noqa: E402
from tte_ir.reference_train import bias_grad, initial_state, train_step  # noqa: E402


class FunctionalFlatten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        x = torch.relu(self.conv(torch.relu(self.stem(x))))
        return self.fc(torch.flatten(x, 1))


def sequential() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8),
        nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5),
    )  # fmt: skip


def model(kind: str) -> nn.Module:
    torch.manual_seed(0)
    net = sequential() if kind == "sequential" else FunctionalFlatten()
    return net.eval()


def codes(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=(count, 3, 8, 8)).astype(np.int8)


def _flatten_and_head(graph):
    flatten = next(n for n in graph.nodes if n.op is Op.RESHAPE)
    return flatten, graph.consumers(flatten.outputs[0])[0]


@pytest.mark.parametrize("kind", ["sequential", "functional"])
@pytest.mark.parametrize("head", ["int8", "fp32"])
def test_flatten_into_linear_quantizes_and_simulates_bit_exact(kind: str, head: str) -> None:
    graph = quantize_model(model(kind), torch.from_numpy(codes(16)), head=head)
    flatten, _ = _flatten_and_head(graph)
    assert flatten.attrs["order"] == "hwc" and kernel_call(graph, flatten).kernel is None
    assert assert_all_tensors_match(graph, codes(4, seed=1)) == 4 * (len(graph.nodes) + 1)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_the_head_reads_the_map_in_pytorch_order(kind: str) -> None:
    """The fp32 head's logits are torch's Linear on torch's flatten of the (dequantized) map."""
    net = model(kind)
    graph = quantize_model(net, torch.from_numpy(codes(16)), head="fp32")
    flatten, head = _flatten_and_head(graph)
    fc = net[-1] if kind == "sequential" else net.fc
    q = graph.tensors[flatten.inputs[0]].quant
    for x in codes(3, seed=2):
        values = reference.run_forward(graph, x[None], return_all=True)
        real = q.tensor_scale * (values[flatten.inputs[0]].astype(np.float64) - q.zero_point)
        with torch.no_grad():
            flat = torch.flatten(torch.from_numpy(real), 1)
            expected = nn.functional.linear(flat, fc.weight.double(), fc.bias.double()).numpy()
        np.testing.assert_allclose(values[head.outputs[0]], expected, rtol=1e-5, atol=1e-5)


def test_training_gradients_match_the_simulation() -> None:
    """The compiled step's loss and last-conv bias gradient against autograd through the simulation's
    "hwc" flatten (NUMERICS.md §7: rtol 1e-5)."""
    forward = quantize_model(model("sequential"), torch.from_numpy(codes(16)), head="fp32")
    graph = compile_training(forward, Scheme(n_bias=1, head="fp32"))
    x, label = codes(1, seed=3), 2
    values = train_step(graph, initial_state(graph), x, label, return_all=True).values
    sim = Int8Sim(forward)
    params = {
        name: torch.tensor(forward.constants[name], dtype=sim.constants[name].dtype, requires_grad=True)
        for name in forward.constants
    }
    loss = nn.functional.cross_entropy(sim.forward(torch.from_numpy(x).float(), params), torch.tensor([label]))
    loss.backward()
    assert np.isclose(loss.item(), values["loss"][0], rtol=1e-5)
    (update,) = (n for n in graph.nodes if n.op is Op.BIAS_UPDATE)
    grad = params[update.inputs[1]].grad.numpy()
    assert np.abs(grad).max() > 0
    np.testing.assert_allclose(bias_grad(values[update.inputs[0]]), grad, rtol=1e-5, atol=1e-7)
