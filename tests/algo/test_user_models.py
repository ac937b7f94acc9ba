"""The users' model zoo (issue 12): LeNet-5, ResNet-8, MobileNetV3-small, ShuffleNetV2 x0.5, MobileNetV2 0.35,
MnasNet 0.5 and DS-CNN (a 10x4 stride-2 stem with TF SAME padding on a 1x49x10 input) import through
torch.fx, quantize on digits resized to their input shape with the simulation bit-exact against the numpy
reference (every tensor, the logits included), and compile to a training step under a last-k scheme."""

from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from tests.algo.test_sim_parity import assert_all_tensors_match  # noqa: E402
from tte_algo.data import load_digits  # noqa: E402
from tte_algo.floatgraph import FloatNet  # noqa: E402
from tte_algo.fx_import import import_fx  # noqa: E402
from tte_algo.ptq import quantize_model  # noqa: E402
from tte_algo.train import scheme_last_convs  # noqa: E402
from tte_algo.user_models import USER_MODELS, build  # noqa: E402
from tte_ir import Op, compile_training, memory_report  # noqa: E402
from tte_ir.cli import main  # noqa: E402
from tte_ir.reference_train import initial_state, train_step  # noqa: E402

SUPPORTED = list(USER_MODELS)

# the ops that show each model's new layers went through (not only the conv / add / pool family)
SIGNATURE = {
    "lenet5": {Op.MAX_POOL, Op.LINEAR},
    "resnet8": {Op.ADD},
    "mobilenetv3-small": {Op.MUL, Op.LUT},
    "shufflenetv2-x0.5": {Op.MAX_POOL, Op.CONCAT, Op.CHANNEL_SPLIT, Op.CHANNEL_SHUFFLE},
    "mobilenetv2-0.35": {Op.ADD},
    "mnasnet-0.5": {Op.ADD},
    "ds-cnn": {Op.CONV2D, Op.GLOBAL_AVG_POOL},
}


@pytest.fixture(scope="module", params=SUPPORTED)
def quantized(request):
    """(name, int8 graph, digits codes at the model's input shape) for each supported model."""
    name = request.param
    digits = load_digits(USER_MODELS[name][1]).codes
    return name, quantize_model(build(name), digits[:32], head="int8", name=name), digits


def test_the_float_graph_equals_the_torch_model() -> None:
    for name in SUPPORTED:
        model = build(name)
        x = torch.rand(2, *USER_MODELS[name][1]) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(FloatNet(import_fx(model))(x), model(x), rtol=1e-4, atol=1e-4, msg=name)


def test_quantizes_bit_exact_and_compiles_last_k(quantized) -> None:
    name, graph, digits = quantized
    ops = {n.op for n in graph.nodes}
    assert SIGNATURE[name] <= ops, (name, sorted(o.value for o in ops))
    assert assert_all_tensors_match(graph, digits[40:42].numpy()) == 2 * (len(graph.nodes) + 1)
    logits = graph.tensors[graph.outputs[0]]
    assert logits.shape == (1, 10)
    training = compile_training(graph, scheme_last_convs(graph, 2))
    report = memory_report(training, input_in_arena=True)
    assert 0 < report.total_bytes < 512 * 1024, (name, report.total_bytes)


@pytest.mark.slow
def test_one_reference_training_step_is_finite(quantized) -> None:
    name, graph, digits = quantized
    training = compile_training(graph, scheme_last_convs(graph, 2))
    result = train_step(training, initial_state(training), digits[100:101].numpy(), 3)
    assert result.status == "ok" and np.isfinite(result.loss), name


def test_ds_cnn_keeps_its_stem_geometry() -> None:
    """The 10x4 stride-2 stem takes the ZeroPad2d before it as its padding (4 rows above, 5 below, 1 column
    each side: TensorFlow's SAME on 49x10), and AvgPool2d((25, 5)) over the 25x5 map is the global pool."""
    graph = quantize_model(build("ds-cnn"), load_digits((1, 49, 10)).codes[:16], head="int8", name="ds-cnn")
    stem = graph.nodes[0]
    assert graph.tensors[stem.inputs[1]].shape == (64, 1, 10, 4)
    assert (stem.attrs["stride"], stem.attrs["padding"]) == ((2, 2), (4, 1, 5, 1))
    assert graph.tensors[stem.outputs[0]].shape == (1, 64, 25, 5)
    assert [n.op for n in graph.nodes].count(Op.GLOBAL_AVG_POOL) == 1


def test_tte_quantize_takes_a_user_model_factory(tmp_path, capsys) -> None:
    out = tmp_path / "lenet.tte"
    argv = ["quantize", "tte_algo.user_models:lenet5", "--input-shape", "1x32x32", "--data", "digits"]
    assert main([*argv, "--calib", "16", "-o", str(out)]) == 0, capsys.readouterr().err
    assert out.exists()
    argv = ["quantize", "tte_algo.user_models:ds_cnn", "--input-shape", "1x49x10", "--data", "digits"]
    assert main([*argv, "--calib", "16", "-o", str(tmp_path / "kws.tte")]) == 0, capsys.readouterr().err
    assert (tmp_path / "kws.tte").exists()


@pytest.mark.slow
def test_zoo_bench_prints_a_table_per_model(capsys) -> None:
    from tte_algo.zoo_bench import main as zoo

    assert zoo(["--models", "lenet5", "ds-cnn", "--no-firmware", "--epochs", "1", "--pretrain-epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"lenet5 .*\n  parameters +61,281\n  MACs/inference +[\d,]+\n", out), out
    assert re.search(r"planned memory +[\d,]+ B .*input image in the arena", out), out
    assert re.search(r"accuracy +[\d.]+% -> [\d.]+% held-out", out), out
    assert re.search(r"\[searched\] biases of the last \d+ convs; weights: .*; head\n    planned memory", out), out
    assert re.search(r"ds-cnn .*input 1x49x10\n  parameters +[\d,]+\n  MACs/inference +[\d,]+\n", out), out
    assert "refused" not in out
    assert zoo(["--models", "lenet5", "--epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "zoo: error: --epochs must be an integer >= 1, got 0\n"
