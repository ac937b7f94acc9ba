"""ShuffleNet's channel ops from PyTorch: torch.cat(dim=1), x.chunk(2, dim=1), torch.split, x[:, a:b] and
the channel shuffle (torchvision's channel_shuffle function, which traces to view-transpose-view) import
into the float graph (equal to the torch model), quantize (a concat's inputs and output share one
quantization), simulate bit-exact with the reference, and a small ShuffleNetV2 block on digits compiles
to a training step."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from torch import nn  # noqa: E402

from tests.algo.test_sim_parity import assert_all_tensors_match  # noqa: E402
from tte_algo.data import load_digits  # noqa: E402
from tte_algo.floatgraph import FloatNet  # noqa: E402
from tte_algo.fx_import import UnsupportedModelError, import_fx  # noqa: E402
from tte_algo.ptq import quantize_model  # noqa: E402
from tte_ir import Op, Scheme, WeightUpdate, compile_training  # noqa: E402
from tte_ir.reference_train import initial_state, train_step  # noqa: E402


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """torchvision.models.shufflenetv2.channel_shuffle, verbatim."""
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    x = x.view(batchsize, -1, height, width)
    return x


def _branch(inp: int, out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, out, 1, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU(inplace=True),
        nn.Conv2d(out, out, 3, stride, 1, groups=out, bias=False),
        nn.BatchNorm2d(out),
        nn.Conv2d(out, out, 1, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU(inplace=True),
    )


class InvertedResidual(nn.Module):
    """torchvision's ShuffleNetV2 unit: stride 1 splits the input in halves, stride 2 runs two branches."""

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, half, 1, bias=False),
                nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
            )
        self.branch2 = _branch(inp if stride > 1 else half, half, stride)

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class TinyShuffleNet(nn.Module):
    """Stem conv + BN + ReLU + max pool, one stride-2 and one stride-1 unit, 1x1 conv, global pool, head."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.stage = nn.Sequential(InvertedResidual(8, 16, 2), InvertedResidual(16, 16, 1))
        self.conv5 = nn.Sequential(nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = self.stage(self.maxpool(self.conv1(x)))
        return self.fc(self.conv5(x).mean([2, 3]))


def _randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


class Slices(nn.Module):
    """torch.split by size and by sizes, x[:, a:b], a three-input cat and a shuffle by reshape + flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 12, 3, padding=1)
        self.mid = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        a, b, _c = torch.split(x, 4, dim=1)
        d, _ = x.split([5, 7], 1)
        x = torch.cat([a, torch.relu(self.mid(b)), d[:, 1:5]], 1)
        n, ch, h, w = x.shape
        x = x.reshape(n, 3, ch // 3, h, w).transpose(1, 2).flatten(1, 2)
        return self.fc(x.mean((2, 3)))


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return load_digits(32).codes


def test_the_float_graph_equals_the_torch_model() -> None:
    torch.manual_seed(0)
    for model in (_randomize_bn(TinyShuffleNet(), 1), Slices().eval()):
        fgraph = import_fx(model)
        kinds = [op.kind for op in fgraph.ops]
        assert Op.CONCAT in kinds and Op.CHANNEL_SHUFFLE in kinds and Op.CHANNEL_SPLIT in kinds
        x = torch.rand(3, 3, 32, 32) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(FloatNet(fgraph)(x), model(x), rtol=1e-5, atol=1e-5)


def test_splits_and_a_three_input_cat_become_ranges_and_two_concats(digits: torch.Tensor) -> None:
    torch.manual_seed(2)
    graph = quantize_model(Slices().eval(), digits[:32], head="fp32")
    splits = [dict(n.attrs) for n in graph.nodes if n.op is Op.CHANNEL_SPLIT]
    assert {"start": 0, "count": 4} in splits and {"start": 4, "count": 4} in splits
    assert {"start": 1, "count": 4} in splits  # d[:, 1:5] of the first 5 channels
    assert sum(n.op is Op.CONCAT for n in graph.nodes) == 2
    shuffle = next(n for n in graph.nodes if n.op is Op.CHANNEL_SHUFFLE)
    assert shuffle.attrs["groups"] == 3
    assert_all_tensors_match(graph, digits[40:43].numpy())


def test_a_concat_shares_one_quantization_with_its_inputs(digits: torch.Tensor) -> None:
    graph = quantize_model(_randomize_bn(TinyShuffleNet(), 2), digits[:64], head="int8")
    for node in graph.nodes:
        if node.op in (Op.CONCAT, Op.CHANNEL_SPLIT, Op.CHANNEL_SHUFFLE):
            quants = {graph.tensors[t].quant for t in (*node.inputs, *node.outputs)}
            assert len(quants) == 1, node.describe()
    # the stride-1 unit: the passed-through half and the branch's last conv were both requantized into it
    cat = [n for n in graph.nodes if n.op is Op.CONCAT][-1]
    producer = graph.producer(cat.inputs[1])
    assert producer.op is Op.CONV2D


def test_shufflenet_block_quantizes_simulates_bit_exact_and_compiles(digits: torch.Tensor) -> None:
    torch.manual_seed(0)
    graph = quantize_model(_randomize_bn(TinyShuffleNet(), 3), digits[:64], head="fp32")
    ops = [n.op for n in graph.nodes]
    assert ops.count(Op.CONCAT) == 2 and ops.count(Op.CHANNEL_SHUFFLE) == 2 and ops.count(Op.CHANNEL_SPLIT) == 2
    assert assert_all_tensors_match(graph, digits[100:104].numpy()) == 4 * (len(graph.nodes) + 1)
    convs = sum(n.op is Op.CONV2D for n in graph.nodes)
    scheme = Scheme(n_bias=convs, weights=(WeightUpdate(convs - 1, 1.0), WeightUpdate(2, 0.5)), head="fp32")
    training = compile_training(graph, scheme)
    backward = [n.op for n in training.nodes[[n.op for n in training.nodes].index(Op.SOFTMAX_CE) :]]
    assert Op.CHANNEL_SHUFFLE in backward and Op.CHANNEL_SPLIT in backward
    result = train_step(training, initial_state(training), digits[200:201].numpy(), 3)
    assert result.status == "ok" and np.isfinite(result.loss)


@pytest.mark.parametrize(
    ("forward", "message"),
    [
        (lambda m, x: torch.cat([m(x), m(x)], dim=2), r"along channels \(dim=1\)"),
        (lambda m, x: m(x).chunk(2, dim=3)[0], r"along channels \(dim=1\)"),
        (lambda m, x: m(x)[:, ::2], "step 1"),
        (lambda m, x: m(x).view(x.shape[0], 2, 2, 8, 8).permute(0, 2, 1, 3, 4), "channel shuffle"),
    ],
)
def test_unsupported_channel_patterns_are_refused(forward, message: str) -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(forward(self.conv, x).mean((2, 3)))

    with pytest.raises(UnsupportedModelError, match=message):
        import_fx(Model())
