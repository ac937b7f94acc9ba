"""`tte eval`: the reference forward of forward and training graphs over the --data forms, accuracy,
the output codes and a JSON summary; bad arguments in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tte_ir import Scheme, compile_training, save
from tte_ir.cli import main
from tte_ir.eval_cli import evaluate_graph, forward_of
from tte_ir.reference import run_forward

pytest.importorskip("tflite", reason="the tflite package (tte-ir[tflite]) is not installed")

from tte_ir.tflite_import import import_tflite


@pytest.fixture(scope="module")
def lenet(shared_dir: Path, tmp_path_factory):
    """The imported LeNet-5 (requant float: runs in every tte), its file, and its golden inputs as an .npz."""
    models = shared_dir / "models" / "tflite"
    if not models.is_dir():
        pytest.skip(f"{models} not found")
    folder = tmp_path_factory.mktemp("eval")
    graph = import_tflite(models / "lenet5.tflite", requant="float")
    path = folder / "lenet5.tte"
    save(graph, path)
    golden = np.load(models / "lenet5.golden.npz")
    data = folder / "golden.npz"
    np.savez(data, x=golden["input"].transpose(0, 3, 1, 2), y=golden["labels"])
    return graph, path, data, golden


def test_codes_and_json_of_int8_inputs(lenet, tmp_path, capsys):
    graph, path, data, golden = lenet
    codes, report = tmp_path / "codes.npz", tmp_path / "eval.json"
    assert main(["eval", str(path), "--data", str(data), "--codes", str(codes), "--json", str(report)]) == 0
    assert "32 inputs" in capsys.readouterr().out
    out = np.load(codes)
    assert out["codes"].dtype == np.int8 and out["codes"].shape == (32, 10)
    x = golden["input"].transpose(0, 3, 1, 2)
    for i in (0, 31):
        np.testing.assert_array_equal(out["logits"][i], run_forward(graph, x[i : i + 1])[0])
    np.testing.assert_array_equal(out["labels"], golden["labels"])
    figures = json.loads(report.read_text())
    expected = np.mean(np.argmax(out["logits"], axis=1) == golden["labels"])
    assert figures["inputs"] == 32 and figures["accuracy"] == pytest.approx(expected) and figures["softmax"]


def test_digits_are_pixel_codes(lenet, capsys):
    """Images fill the int8 input range (code = pixel - 128): LeNet-5 was trained on digits so scaled."""
    _, path, _, _ = lenet
    assert main(["eval", str(path), "--data", "digits", "--limit", "200"]) == 0
    accuracy = float(capsys.readouterr().out.rsplit(" ", 1)[1])
    assert accuracy > 0.9


def test_training_graph_forward_uses_its_parameters(lenet):
    graph, _, _, golden = lenet
    training = compile_training(graph, Scheme(n_bias=2, head="int8"))
    image, logits, nodes = forward_of(training)
    assert (image, logits) == (graph.inputs[0], graph.outputs[0]) and len(nodes) >= len(graph.nodes)
    x = golden["input"][:8].transpose(0, 3, 1, 2)
    before = evaluate_graph(training, x, golden["labels"][:8])
    np.testing.assert_array_equal(before.logits, evaluate_graph(graph, x, golden["labels"][:8]).logits)
    state = training.metadata["training"]["state"]
    bias = next(name for name in state if training.tensors[name].dtype.name == "INT32")
    constants = dict(training.constants)
    constants[bias] = constants[bias] + 5000
    after = evaluate_graph(training.replace(constants=constants), x, golden["labels"][:8])
    assert np.any(after.logits != before.logits)


def test_bad_arguments_are_one_line(lenet, tmp_path, capsys):
    _, path, data, _ = lenet
    cases = [
        (["--data", str(data), "--limit", "0"], "--limit must be an integer >= 1"),
        (["--data", str(tmp_path / "none.npz")], "none.npz: no such file"),
        (["--data", str(data), "--codes", str(tmp_path / "x.npz"), "--json", str(tmp_path / "x.npz")], "both name"),
    ]
    for extra, message in cases:
        assert main(["eval", str(path), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((2, 3, 8, 8), np.int8), y=np.zeros(2, np.int64))
    assert main(["eval", str(path), "--data", str(wrong)]) == 2
    assert "the model takes [N, 1, 28, 28]" in capsys.readouterr().err


def test_an_fp32_head_gives_float_logits(lenet, shared_dir, tmp_path, capsys):
    _, _, data, _ = lenet
    graph = import_tflite(shared_dir / "models" / "tflite" / "lenet5.tflite", num_classes=10, head="fp32")
    path, codes = tmp_path / "fp32.tte", tmp_path / "codes.npz"
    save(graph, path)
    assert main(["eval", str(path), "--data", str(data), "--codes", str(codes)]) == 0
    out = np.load(codes)
    assert out["codes"].dtype == np.float32 and out["codes"].shape == (32, 10) and "logits" not in out.files
    assert "codes float32[32, 10]" in capsys.readouterr().out
