"""The users' model zoo (issue 12): LeNet-5, ResNet-8, MobileNetV3-small, ShuffleNetV2 x0.5, MobileNetV2 0.35
and MnasNet 0.5 import through torch.fx, quantize on digits resized to their input shape with the
simulation bit-exact against the numpy reference (every tensor, the logits included), and compile to a
training step under a last-k scheme; DS-CNN's 10x4 stem is refused in one line naming the layer."""

from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from tests.algo.test_sim_parity import assert_all_tensors_match  # noqa: E402
from tte_algo.data import load_digits  # noqa: E402
from tte_algo.floatgraph import FloatNet  # noqa: E402
from tte_algo.fx_import import UnsupportedModelError, import_fx  # noqa: E402
from tte_algo.ptq import quantize_model  # noqa: E402
from tte_algo.train import scheme_last_convs  # noqa: E402
from tte_algo.user_models import USER_MODELS, build  # noqa: E402
from tte_ir import Op, compile_training, memory_report  # noqa: E402
from tte_ir.cli import main  # noqa: E402
from tte_ir.reference_train import initial_state, train_step  # noqa: E402

SUPPORTED = [name for name in USER_MODELS if name != "ds-cnn"]

# the ops that show each model's new layers went through (not only the conv / add / pool family)
SIGNATURE = {
    "lenet5": {Op.MAX_POOL, Op.LINEAR},
    "resnet8": {Op.ADD},
    "mobilenetv3-small": {Op.MUL, Op.LUT},
    "shufflenetv2-x0.5": {Op.MAX_POOL, Op.CONCAT, Op.CHANNEL_SPLIT, Op.CHANNEL_SHUFFLE},
    "mobilenetv2-0.35": {Op.ADD},
    "mnasnet-0.5": {Op.ADD},
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


def test_ds_cnn_is_refused_naming_its_stem() -> None:
    with pytest.raises(UnsupportedModelError, match=r"module 'features\.0' .*kernel size \(10, 4\) is not square"):
        import_fx(build("ds-cnn"))


def test_tte_quantize_takes_a_user_model_factory(tmp_path, capsys) -> None:
    out = tmp_path / "lenet.tte"
    argv = ["quantize", "tte_algo.user_models:lenet5", "--input-shape", "1x32x32", "--data", "digits"]
    assert main([*argv, "--calib", "16", "-o", str(out)]) == 0, capsys.readouterr().err
    assert out.exists()
    argv = ["quantize", "tte_algo.user_models:ds_cnn", "--input-shape", "1x49x10", "--data", "digits"]
    assert main([*argv, "--calib", "16", "-o", str(tmp_path / "kws.tte")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(r"features\.0.*\(10, 4\) is not square", err), err


@pytest.mark.slow
def test_zoo_bench_prints_a_table_per_model_and_the_refusal(capsys) -> None:
    from tte_algo.zoo_bench import main as zoo

    assert zoo(["--models", "lenet5", "ds-cnn", "--no-firmware", "--epochs", "1", "--pretrain-epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"lenet5 .*\n  parameters +61,281\n  MACs/inference +[\d,]+\n", out), out
    assert re.search(r"planned memory +[\d,]+ B .*input image in the arena", out), out
    assert re.search(r"accuracy +[\d.]+% -> [\d.]+% held-out", out), out
    assert re.search(r"\[searched\] biases of the last \d+ convs; weights: .*; head\n    planned memory", out), out
    assert "refused: module 'features.0'" in out
    assert zoo(["--models", "lenet5", "--epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "zoo: error: --epochs must be an integer >= 1, got 0\n"
