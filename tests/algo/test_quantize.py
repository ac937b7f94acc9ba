"""Zoo, torch.fx import, BN folding and post-training quantization."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from tests.algo.test_sim_parity import assert_all_tensors_match  # noqa: E402
from tte_algo.data import dequantize_input, load_digits  # noqa: E402
from tte_algo.floatgraph import FloatNet  # noqa: E402
from tte_algo.fx_import import UnsupportedModelError, import_fx  # noqa: E402
from tte_algo.ptq import quantize_model  # noqa: E402
from tte_algo.sim import Int8Sim  # noqa: E402
from tte_algo.train import evaluate  # noqa: E402
from tte_algo.zoo import MCUNET_5FPS, PROXYLESS_W03, ZOO, build_model, mobilenetv2_blocks  # noqa: E402
from tte_ir import DType, Op, conv_nodes, load_seed_pkl, reference, verify  # noqa: E402


def randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so that folding is really exercised."""
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
    return model.eval()


@pytest.mark.shared
def test_zoo_block_lists_are_the_seed_models(seed_model_path) -> None:
    def blocks(name):
        rows = []
        for b in load_seed_pkl(seed_model_path(name))["blocks"]:
            pw1, dw, pw2 = b["pointwise1"], b["depthwise"], b["pointwise2"]
            cin = pw1["in_channel"] if pw1 else dw["in_channel"]
            rows.append(
                (
                    cin,
                    dw["in_channel"],
                    pw2["out_channel"],
                    dw["kernel_size"][0],
                    dw["stride"],
                    b["residual"] is not None,
                )
            )
        return rows

    as_rows = lambda specs: [(s.cin, s.mid, s.cout, s.kernel, s.stride, s.residual) for s in specs]  # noqa: E731
    assert as_rows(MCUNET_5FPS) == blocks("mcunet-5fps")
    assert as_rows(PROXYLESS_W03) == blocks("proxyless-w0.3")
    assert as_rows(mobilenetv2_blocks(0.35)[1]) == blocks("mbv2-w0.35")


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_models_fold_quantize_and_run_bit_exact(name: str) -> None:
    model = randomize_bn(build_model(name, 7, seed=1), seed=2)
    data = load_digits(32, None)
    x = dequantize_input(data.codes[:8])
    fgraph = import_fx(model, name)
    with torch.no_grad():
        torch.testing.assert_close(FloatNet(fgraph)(x), model(x), rtol=1e-4, atol=1e-4)  # BN folded exactly
    for head in ("fp32", "int8"):
        graph = verify(quantize_model(model, data.codes[:64], head=head, name=name))
        head_node = graph.producer(graph.outputs[0])
        assert head_node.op is Op.LINEAR
        assert graph.tensors[head_node.inputs[1]].dtype is (DType.FLOAT32 if head == "fp32" else DType.INT8)
        expected_convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
        assert len(conv_nodes(graph)) == expected_convs
    assert_all_tensors_match(graph, data.codes[:2].numpy())


def test_ptq_keeps_the_float_accuracy(pretrained_plain) -> None:
    """ReLU folded into the output quantization, per-channel weights: int8 accuracy within 2 points of float."""
    model, source = pretrained_plain
    with torch.no_grad():
        float_acc = float((model(dequantize_input(source.codes)).argmax(1) == source.labels).float().mean())
    graph = quantize_model(model, source.codes[:256])
    int8_acc = evaluate(Int8Sim(graph), source)
    assert float_acc > 0.9
    assert int8_acc >= float_acc - 0.02
    relu_outputs = [graph.tensors[n.outputs[0]].quant for n in conv_nodes(graph)]
    assert all(q.zero_point == -128 for q in relu_outputs)  # the int8 clamp is the activation
    # the reference interpreter agrees with the simulation on the exported graph
    logits = Int8Sim(graph)(source.codes[:3]).numpy()
    for i in range(3):
        np.testing.assert_allclose(
            reference.run_forward(graph, source.codes[i : i + 1].numpy()), logits[i : i + 1], rtol=1e-5, atol=1e-6
        )


class Functional(nn.Module):
    """Functional spellings of every supported pattern."""

    def __init__(self, pool_by_mean: bool) -> None:
        super().__init__()
        self.pool_by_mean = pool_by_mean
        self.a = nn.Conv2d(3, 8, 3, padding=1, bias=True)
        self.b = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.bn = nn.BatchNorm2d(8)
        self.c = nn.Conv2d(8, 8, 1, groups=2)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(8, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        x = F.relu(self.a(x))
        y = F.relu6(self.bn(self.b(x)))
        y = self.c(y)
        y += x
        y = torch.relu(y)
        y = y.mean((2, 3)) if self.pool_by_mean else torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)
        return self.out(F.relu(self.fc(self.drop(y))))


@pytest.mark.parametrize("pool_by_mean", [True, False])
def test_functional_patterns_import(pool_by_mean: bool) -> None:
    model = randomize_bn(Functional(pool_by_mean), 0)
    fgraph = import_fx(model)
    kinds = [op.kind.name.lower() for op in fgraph.ops]
    assert kinds == ["conv2d", "conv2d", "conv2d", "add", "global_avg_pool", "reshape", "linear", "linear"]
    assert [op.act for op in fgraph.ops] == ["relu", "relu6", None, "relu", None, None, "relu", None]
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(FloatNet(fgraph)(x), model(x), rtol=1e-5, atol=1e-5)
    graph = quantize_model(model, torch.randint(-128, 128, (16, 3, 8, 8), dtype=torch.int8), head="int8")
    assert_all_tensors_match(graph, np.random.default_rng(0).integers(-128, 128, (2, 3, 8, 8)).astype(np.int8))


class WithAdaptiveMaxPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(2))
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


class WithTanh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).mean((2, 3)))


def test_unsupported_layers_are_refused_by_path_and_type() -> None:
    with pytest.raises(UnsupportedModelError) as info:
        import_fx(WithAdaptiveMaxPool())
    message = str(info.value)
    assert "module 'features.2'" in message and "torch.nn.modules.pooling.AdaptiveMaxPool2d" in message
    assert "supported: Conv2d" in message and "Linear" in message
    with pytest.raises(UnsupportedModelError, match=r"'tanh' \(call_function torch.tanh\)"):
        import_fx(WithTanh())
    shared_relu_input = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(UnsupportedModelError, match="must end in a Linear"):
        import_fx(shared_relu_input)


class ThreeUnsupported(nn.Module):
    """GELU, a clamp to [0, 6] and a 2x2 adaptive average pool: three refusals, and a ReLU after the last."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)
        self.act = nn.GELU()
        self.conv = nn.Conv2d(4, 4, 1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(16, 2)

    def forward(self, x):
        x = torch.clamp(self.conv(self.act(self.stem(x))), 0, 6)
        return self.fc(torch.flatten(self.relu(self.pool(x)), 1))


def test_every_unsupported_layer_is_reported_at_once() -> None:
    with pytest.raises(UnsupportedModelError) as info:
        import_fx(ThreeUnsupported())
    message = str(info.value)
    assert message.startswith("3 unsupported layers: ") and "\n" not in message
    assert "module 'act' (torch.nn.modules.activation.GELU)" in message
    assert "'clamp' (call_function torch.clamp)" in message and "as nn.ReLU6" in message
    assert "module 'pool' (torch.nn.modules.pooling.AdaptiveAvgPool2d)" in message
    assert "use AdaptiveAvgPool2d(1)" in message
    assert "'relu'" not in message  # refused only because its input is: not listed again
