"""Pooling layers from PyTorch: nn.MaxPool2d, nn.AvgPool2d, F.max_pool2d, F.avg_pool2d and
nn.AdaptiveAvgPool2d(1) import into the float graph (equal to the torch model), quantize (a max pool
keeps its input's quantization; an average pool over the whole map is the global pool), simulate
bit-exact with the reference, and a LeNet-5 on digits compiles to a training step."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from tests.algo.test_sim_parity import assert_all_tensors_match  # noqa: E402
from tte_algo.data import load_digits  # noqa: E402
from tte_algo.floatgraph import FloatNet  # noqa: E402
from tte_algo.fx_import import UnsupportedModelError, import_fx  # noqa: E402
from tte_algo.ptq import quantize_model  # noqa: E402
from tte_ir import Op, Scheme, WeightUpdate, compile_training  # noqa: E402
from tte_ir.reference_train import initial_state, train_step  # noqa: E402


class LeNet5(nn.Module):
    """LeNet-5 on 3x32x32: conv 5x5 - ReLU - max pool 2 - conv 5x5 - max pool 2 - ReLU - flatten - linear(s).

    The first ReLU comes before its pool, the second after (PyTorch's MNIST example): both import.
    ``linears=3`` is the classic 120-84-10 head."""

    def __init__(self, linears: int = 1, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        widths = [*[16 * 5 * 5, 120, 84][:linears], classes]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))

    def forward(self, x):
        x = self.pool1(F.relu(self.conv1(x)))
        x = F.relu(F.max_pool2d(self.conv2(x), kernel_size=2, stride=2))
        x = torch.flatten(x, 1)
        for fc in self.fcs[:-1]:
            x = F.relu(fc(x))
        return self.fcs[-1](x)


class Pools(nn.Module):
    """Every pooling form: module and functional, max and average, padding in and out of the divisor."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.functional = functional
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.mid = nn.Conv2d(8, 8, 3, padding=1)
        self.max = nn.MaxPool2d(3, stride=2, padding=1)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.avg2 = nn.AvgPool2d((2, 2))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.stem(x))
        if self.functional:
            x = F.max_pool2d(x, 3, 2, 1)
            x = F.avg_pool2d(self.mid(x), kernel_size=3, stride=1, padding=1, count_include_pad=False)
            x = F.relu(F.avg_pool2d(x, 2))
        else:
            x = F.relu(self.avg2(self.avg(self.mid(self.max(x)))))
        return self.fc(torch.flatten(self.gap(x), 1))


def _codes(count: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(-128, 128, (count, 3, size, size)).astype(np.int8))


@pytest.mark.parametrize("functional", [False, True])
def test_every_pooling_form_imports_quantizes_and_simulates_bit_exact(functional: bool) -> None:
    torch.manual_seed(1)
    model = Pools(functional).eval()
    x = _codes(4, 16).to(torch.float32) / 127.5
    with torch.no_grad():
        torch.testing.assert_close(FloatNet(import_fx(model))(x), model(x), rtol=1e-5, atol=1e-5)
    graph = quantize_model(model, _codes(32, 16), head="int8")
    ops = [n.op for n in graph.nodes]
    assert ops.count(Op.MAX_POOL) == 1 and ops.count(Op.AVG_POOL) == 2 and ops.count(Op.GLOBAL_AVG_POOL) == 1
    avg = [n for n in graph.nodes if n.op is Op.AVG_POOL]
    assert [n.attrs["count_include_pad"] for n in avg] == [False, True]
    assert [(n.attrs["kernel"], n.attrs["stride"], n.attrs["padding"]) for n in avg] == [
        ((3, 3), (1, 1), (1, 1, 1, 1)),
        ((2, 2), (2, 2), (0, 0, 0, 0)),
    ]
    assert_all_tensors_match(graph, _codes(3, 16, seed=2).numpy())


def test_a_max_pool_keeps_its_input_quantization() -> None:
    graph = quantize_model(Pools(False).eval(), _codes(16, 16), head="fp32")
    pool = next(n for n in graph.nodes if n.op is Op.MAX_POOL)
    assert graph.tensors[pool.outputs[0]].quant == graph.tensors[pool.inputs[0]].quant


class WholeMap(nn.Module):
    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.pool = pool
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(F.relu(self.conv(x))), 1))


def test_avg_pool_over_the_whole_map_is_the_global_pool() -> None:
    """AvgPool2d(8) and AdaptiveAvgPool2d(1) on an 8x8 map quantize to the same graph, bit for bit."""
    graphs = []
    for pool in (nn.AvgPool2d(8), nn.AdaptiveAvgPool2d(1)):
        torch.manual_seed(3)
        graphs.append(quantize_model(WholeMap(pool).eval(), _codes(16, 16), head="int8"))
    a, b = graphs
    assert [n.op for n in a.nodes] == [n.op for n in b.nodes] and Op.GLOBAL_AVG_POOL in [n.op for n in a.nodes]
    assert a.tensors == b.tensors
    assert all(np.array_equal(a.constants[k], b.constants[k]) for k in a.constants)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (nn.MaxPool2d(2, ceil_mode=True), "ceil_mode=True is not supported"),
        (nn.MaxPool2d(3, dilation=2), "dilated max_pool2d"),
        (nn.MaxPool2d((2, 3), padding=(0, 2)), r"padding \(0, 2\) is more than half the kernel \(2, 3\)"),
        (nn.MaxPool2d(2, padding=2), r"padding \(2, 2\) is more than half the kernel \(2, 2\)"),
        (nn.AvgPool2d(2, padding="same"), r"padding 'same' is not an int or a pair of ints"),
        (nn.AvgPool2d(2, divisor_override=3), "divisor_override"),
        (nn.AdaptiveMaxPool2d(1), "use MaxPool2d with a fixed kernel"),
    ],
)
def test_unsupported_pooling_is_refused_naming_the_module(layer: nn.Module, message: str) -> None:
    model = WholeMap(layer)
    with pytest.raises(UnsupportedModelError, match=message) as info:
        import_fx(model)
    assert "module 'pool'" in str(info.value)


def test_a_relu_after_a_max_pool_of_a_shared_tensor_is_refused() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            y = self.conv(x)
            z = F.relu(F.max_pool2d(y, 2))  # relu(max(y)) cannot fold into the conv: y is read again below
            return self.fc(z.mean((2, 3)) + y.mean((2, 3)))

    with pytest.raises(UnsupportedModelError, match="an activation after a max pool"):
        import_fx(Shared())


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return load_digits(32).codes


@pytest.mark.parametrize("head", ["fp32", "int8"])
def test_lenet5_quantizes_simulates_bit_exact_and_compiles(digits: torch.Tensor, head: str) -> None:
    torch.manual_seed(0)
    graph = quantize_model(LeNet5().eval(), digits[:64], head=head)
    ops = [n.op for n in graph.nodes]
    assert ops[:4] == [Op.CONV2D, Op.MAX_POOL, Op.CONV2D, Op.MAX_POOL]
    assert graph.tensors[graph.nodes[1].outputs[0]].shape == (1, 6, 14, 14)
    assert assert_all_tensors_match(graph, digits[100:104].numpy()) == 4 * (len(graph.nodes) + 1)
    scheme = Scheme(n_bias=2, weights=(WeightUpdate(0, 0.5), WeightUpdate(1, 1.0)), head=head)
    training = compile_training(graph, scheme)
    assert sum(n.op is Op.MAX_POOL_BWD for n in training.nodes) == 2
    result = train_step(training, initial_state(training), digits[200:201].numpy(), 3)
    assert result.status == "ok" and np.isfinite(result.loss)


def test_lenet5_with_three_linear_layers_quantizes_and_simulates_bit_exact(digits: torch.Tensor) -> None:
    """The classic 120-84-10 head with ReLUs between the linear layers (compiling it for training needs
    several linear layers in the compiler, outside pooling)."""
    torch.manual_seed(0)
    graph = quantize_model(LeNet5(linears=3).eval(), digits[:64], head="fp32")
    assert [n.op for n in graph.nodes].count(Op.LINEAR) == 3
    assert assert_all_tensors_match(graph, digits[300:303].numpy()) == 3 * (len(graph.nodes) + 1)


class _Padded(nn.Module):
    """A ZeroPad2d read by ``reader``, after a conv."""

    def __init__(self, pad: nn.Module, reader: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pad, self.reader = pad, reader
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.reader(self.pad(self.conv(x))), 1), 1))


def test_zero_pad_folds_into_the_conv_that_reads_it_and_same_padding_is_asymmetric() -> None:
    """ZeroPad2d (left, right, top, bottom) before a conv becomes the conv's (top, left, bottom, right) padding,
    added to its own; padding="same" of an even kernel puts the extra row and column after (PyTorch's rule)."""
    for reader, want in (
        (nn.Conv2d(4, 4, (4, 3), padding=(1, 0)), (1 + 3, 1, 1 + 0, 2)),
        (nn.Conv2d(4, 4, (4, 2), padding="same"), (1 + 3, 0 + 1, 2 + 0, 1 + 2)),
    ):
        model = _Padded(nn.ZeroPad2d((1, 2, 3, 0)), reader).eval()
        fgraph = import_fx(model)
        assert [op.padding for op in fgraph.ops if op.kind is Op.CONV2D][1] == want
        x = torch.rand(2, 3, 9, 7) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(FloatNet(fgraph)(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("pad", "reader"),
    [(nn.ZeroPad2d(1), nn.MaxPool2d(2)), (nn.ZeroPad2d((0, -1, 0, 0)), nn.Conv2d(4, 4, 1))],
    ids=["before-a-pool", "cropping"],
)
def test_zero_pad_elsewhere_is_refused_naming_it(pad: nn.Module, reader: nn.Module) -> None:
    with pytest.raises(UnsupportedModelError, match=r"module 'pad' .*ZeroPad2d is supported only"):
        import_fx(_Padded(pad, reader))
