"""MobileNetV3's layers from PyTorch: hard-swish, hard-sigmoid and sigmoid (table activations) and
squeeze-and-excite (a map times its per-channel gate) import through torch.fx, quantize on the
digits, simulate bit-exact with the numpy reference, and compile into a training graph."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from tests.algo.test_sim_parity import assert_all_tensors_match  # noqa: E402
from tte_algo.data import load_digits  # noqa: E402
from tte_algo.fx_import import UnsupportedModelError, import_fx  # noqa: E402
from tte_algo.ptq import quantize_model  # noqa: E402
from tte_ir import Op, Scheme, TteError, WeightUpdate, compile_training, conv_nodes, memory_report  # noqa: E402
from tte_ir.reference_train import initial_state, train_step  # noqa: E402


class SqueezeExcite(nn.Module):
    """torchvision's SqueezeExcitation: pool, 1x1 conv, ReLU, 1x1 conv, gate, then ``gate * x``."""

    def __init__(self, channels: int, squeezed: int, gate: nn.Module) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.activation = nn.ReLU()
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.scale_activation = gate

    def forward(self, x):
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x))))) * x


def bn(c: int) -> nn.BatchNorm2d:
    layer = nn.BatchNorm2d(c)
    layer.running_mean.uniform_(-0.2, 0.2)
    layer.running_var.uniform_(0.5, 2.0)
    return layer


class MobileNetV3Block(nn.Module):
    """conv-BN-hardswish stem, depthwise-BN-hardswish, SE with hard-sigmoid, pointwise-BN, pool, linear."""

    def __init__(self, gate: nn.Module | None = None) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), bn(8), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), bn(8), nn.Hardswish())
        self.se = SqueezeExcite(8, 4, gate or nn.Hardsigmoid())
        self.pw = nn.Sequential(nn.Conv2d(8, 12, 1, bias=False), bn(12))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.pw(self.se(self.dw(self.stem(x))))), 1))


class FunctionalGates(nn.Module):
    """The functional spellings: F.hardswish, torch.sigmoid, x * gate with the map first, F.hardsigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.fc1 = nn.Conv2d(6, 3, 1)
        self.fc2 = nn.Conv2d(3, 6, 1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = F.hardswish(self.stem(x))
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        x = F.hardsigmoid(torch.mul(x, gate))
        return self.fc(x.mean((2, 3)))


def model(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "functional":
        return FunctionalGates().eval()
    return MobileNetV3Block(nn.Sigmoid() if kind == "sigmoid" else None).eval()


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return load_digits(16).codes[:48]


@pytest.mark.parametrize("kind", ["mobilenetv3", "sigmoid", "functional"])
def test_block_imports_quantizes_and_simulates_bit_exact(kind: str, digits: torch.Tensor) -> None:
    net = model(kind)
    graph = quantize_model(net, digits, head="fp32")
    ops = [n.op for n in graph.nodes]
    functions = sorted({n.attrs["function"] for n in graph.nodes if n.op is Op.LUT})
    assert Op.MUL in ops
    assert (
        functions
        == {
            "mobilenetv3": ["hard_sigmoid", "hard_swish"],
            "sigmoid": ["hard_swish", "sigmoid"],
            "functional": ["hard_sigmoid", "hard_swish", "sigmoid"],
        }[kind]
    )
    mul = next(n for n in graph.nodes if n.op is Op.MUL)
    assert graph.tensors[mul.inputs[1]].shape[2:] == (1, 1)  # the gate is b, whichever side torch had it
    assert assert_all_tensors_match(graph, digits[:6].numpy()) >= len(graph.nodes)
    # the int8 graph computes the float model closely: the logits of the two differ by little
    sim_logits = torch.from_numpy(np.stack([_logits(graph, x) for x in digits[:8].numpy()]))
    with torch.no_grad():
        float_logits = net(digits[:8].to(torch.float32) / 127.5)
    spread = float(float_logits.abs().max())
    assert float((sim_logits - float_logits).abs().max()) < 0.15 * spread


def _logits(graph, x: np.ndarray) -> np.ndarray:
    from tte_ir import reference

    return reference.run_forward(graph, x[None])[0]


def test_calibration_sees_every_new_tensor(digits: torch.Tensor) -> None:
    """Each table activation and the multiply get their own calibrated output range: a hard-sigmoid's
    lies inside [0, 1], the gate's and the product's quantization differ from their inputs'."""
    graph = quantize_model(model("mobilenetv3"), digits, head="fp32")
    gate = next(n for n in graph.nodes if n.op is Op.LUT and n.attrs["function"] == "hard_sigmoid")
    q = graph.tensors[gate.outputs[0]].quant
    assert q.zero_point == -128 and q.tensor_scale <= 1 / 255 + 1e-9
    mul = next(n for n in graph.nodes if n.op is Op.MUL)
    assert len({graph.tensors[t].quant for t in (*mul.inputs, mul.outputs[0])}) == 3


def test_block_compiles_and_trains(digits: torch.Tensor) -> None:
    graph = quantize_model(model("mobilenetv3"), digits, head="fp32")
    n = len(conv_nodes(graph))
    scheme = Scheme(n_bias=n, weights=(WeightUpdate(0, 0.5), WeightUpdate(n - 1, 1.0)), head="fp32")
    training = compile_training(graph, scheme)
    ops = {node.op for node in training.nodes}
    assert {Op.LUT_BWD, Op.MUL_BWD} <= ops
    report = memory_report(training)
    assert report.plan.arena_bytes > 0
    state = initial_state(training)
    for t in range(2):
        result = train_step(training, state, digits[t : t + 1].numpy(), t % 5, step=t)
        assert result.status == "ok" and np.isfinite(result.loss)
        state = result.state


def test_unsupported_multiplies_are_refused_in_one_line(digits: torch.Tensor) -> None:
    class Scalar(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc((self.conv(x) * 0.5).mean((2, 3)))

    class TwoMaps(Scalar):
        def forward(self, x):
            y = self.conv(x)
            return self.fc((y * y).mean((2, 3)))

    with pytest.raises(UnsupportedModelError, match=r"only a multiply of two tensors"):
        import_fx(Scalar().eval())
    fgraph = import_fx(TwoMaps().eval())
    assert [op.kind for op in fgraph.ops].count(Op.MUL) == 1
    with pytest.raises(TteError, match=r"multiply a \[N,C,H,W\] map by a \[N,C,1,1\] per-channel gate"):
        quantize_model(TwoMaps().eval(), digits)


def test_other_activations_name_the_supported_ones() -> None:
    with pytest.raises(UnsupportedModelError, match=r"Tanh.*Hardswish, Hardsigmoid and Sigmoid"):
        import_fx(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(4, 2)))
