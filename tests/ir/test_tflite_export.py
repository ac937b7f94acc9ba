"""tte export-tflite: trained weights back into a copy of the original .tflite.

An imported graph exported unchanged gives the original file byte for byte; a graph trained on the
host (the numpy reference's training step, trained channel slices and all) exports into a file whose
re-import holds exactly the trained weights, and TFLite's own interpreter (reference kernels) on it
gives tte's logits; a graph that does not match the file is refused in one line, exit 2, nothing
written.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tte_ir._ir
import tte_ir.quant
from tte_ir import OP_TABLE, Op, QuantParams, Scheme, TensorSpec, WeightUpdate, compile_training, reference, save
from tte_ir.cli import main as tte_main
from tte_ir.reference import effective_weight
from tte_ir.scheme import is_depthwise

pytest.importorskip("tflite", reason="the tflite package (tte-ir[tflite]) is not installed")

from tte_ir.tflite_export import TfliteExportError, export_tflite
from tte_ir.tflite_import import TfliteImportError, import_tflite

from .tflite_bytes import tiny_conv, tiny_depthwise

MODELS = (
    "lenet5",
    "lenet5_b1",
    "resnet8",
    "resnet8_b1",
    "dscnn",
    "dscnn_b1",
    "mobilenetv1_025_vww",
    "mobilenetv1_025_vww_b1",
)
NONSQUARE = hasattr(tte_ir._ir, "as_padding")  # the IR takes (top, left, bottom, right) padding
FIXED = any("fixed" in name for name in vars(tte_ir.quant))  # tte_ir.quant derives requant "fixed" parameters
LITERT = importlib.util.find_spec("ai_edge_litert") is not None


@pytest.fixture(scope="module")
def models_dir(shared_dir: Path) -> Path:
    return shared_dir / "models" / "tflite"


def _import(path: Path, **kwargs):
    try:
        return import_tflite(path, **kwargs)
    except TfliteImportError as exc:
        if not NONSQUARE and "padding" in str(exc):
            pytest.skip(f"{path.name} needs non-square geometry (branch nonsquare): {exc}")
        raise


def _small(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes({"tiny_conv": tiny_conv, "tiny_depthwise": tiny_depthwise}[name]())
    return path


@pytest.mark.parametrize("name", MODELS)
def test_unchanged_graph_exports_the_original_file(models_dir, tmp_path, name):
    path = models_dir / f"{name}.tflite"
    out = tmp_path / "same.tflite"
    summary = export_tflite(_import(path), path, out)
    assert out.read_bytes() == path.read_bytes()
    assert summary.changed == 0 and summary.tensors > 0


@pytest.mark.parametrize("name", ["tiny_conv", "tiny_depthwise"])
def test_unchanged_small_models_export_their_bytes(tmp_path, name):
    path = _small(tmp_path, name)
    export_tflite(import_tflite(path), path, tmp_path / "same.tflite")
    assert (tmp_path / "same.tflite").read_bytes() == path.read_bytes()


def _layers(graph):
    """Effective weights and biases of every conv / linear node, keyed by node name (tte layouts;
    a linear run as a 1x1 conv is given as [O, I])."""
    out = {}
    for node in graph.nodes:
        if node.op not in (Op.CONV2D, Op.LINEAR):
            continue
        roles = dict(zip(OP_TABLE[node.op].roles(node.attrs)[0], node.inputs, strict=False))
        w = graph.constants[roles["w"]]
        if node.op is Op.CONV2D:
            trained = graph.constants.get(roles.get("w_train", ""))
            depthwise = is_depthwise(graph, node)
            w = effective_weight(w, trained, node.attrs.get("channels"), depthwise)
            if roles["w"].endswith(".w4"):
                w = w.reshape(w.shape[0], -1)
        out[node.name] = (np.asarray(w), np.asarray(graph.constants[roles["b"]]))
    return out


def _train(graph, inputs: np.ndarray, labels: np.ndarray):
    """A few host training steps (numpy reference) of a sparse scheme: half the first conv's channels,
    all of the second layer's (when there is one), up to three biases and the int8 head."""
    convs = len(tte_ir.conv_nodes(graph))
    weights = (WeightUpdate(0, 0.5), WeightUpdate(1, 1.0))[:convs]
    scheme = Scheme(n_bias=min(3, convs), weights=weights, head="int8", lr=0.05, head_lr=0.05)
    training = compile_training(graph, scheme)
    state = tte_ir.initial_state(training)
    for step, (x, y) in enumerate(zip(inputs, labels, strict=True)):
        state = tte_ir.train_step(training, state, x[None], int(y), step=step).state
    return training.replace(constants={**training.constants, **state})


def _golden(models_dir: Path, path: Path, graph):
    if path.parent == models_dir:
        gold = np.load(models_dir / f"{path.stem}.golden.npz")
        return gold["input"], gold["labels"]
    shape = graph.tensors[graph.inputs[0]].shape
    rng = np.random.default_rng(0)
    nhwc = rng.integers(-128, 128, size=(16, shape[2], shape[3], shape[1])).astype(np.int8)
    return nhwc, rng.integers(0, graph.tensors[graph.outputs[0]].shape[1], size=16)


def _tflite_logits(path: Path, inputs: np.ndarray, logits_name: str | None) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    interpreter.allocate_tensors()
    if logits_name is None:
        index = interpreter.get_output_details()[0]["index"]
    else:
        index = next(d["index"] for d in interpreter.get_tensor_details() if d["name"] == logits_name)
    out = []
    for x in inputs:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[None])
        interpreter.invoke()
        out.append(interpreter.get_tensor(index).copy())
    return np.concatenate(out)


@pytest.mark.parametrize("name", ["lenet5_b1", "tiny_depthwise"])
def test_round_trip_after_host_training(models_dir, tmp_path, capsys, name):
    path = models_dir / f"{name}.tflite" if name.startswith("lenet") else _small(tmp_path, name)
    graph = _import(path)
    nhwc, labels = _golden(models_dir, path, graph)
    inputs = nhwc.transpose(0, 3, 1, 2)
    trained = _train(graph, inputs[:8], labels[:8])
    saved = save(trained, tmp_path / "trained.tte")
    out = tmp_path / "trained.tflite"
    assert tte_main(["export-tflite", str(saved), "--like", str(path), "-o", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {out}: ") and "changed" in line and "\n" not in line

    back = import_tflite(out)
    expected, got = _layers(trained), _layers(back)
    assert expected.keys() == got.keys()
    moved = 0
    for layer, (w, b) in expected.items():
        assert np.array_equal(got[layer][0], w) and np.array_equal(got[layer][1], b), layer
        moved += int(not np.array_equal(_layers(graph)[layer][0], w))
    assert moved >= 2, "training changed the weights of a conv and of the head at least"

    if not LITERT:
        pytest.skip("ai_edge_litert (TFLite's interpreter) is not installed: the interpreter check did not run")
    softmax = back.metadata.get("softmax")
    theirs = _tflite_logits(out, nhwc, softmax["input"] if softmax else None)
    ours = np.concatenate([reference.run_forward(back, x[None]) for x in inputs])
    diff = np.abs(ours.astype(np.int64) - theirs)
    with capsys.disabled():
        print(f"\n{name} round trip, requant {back.metadata['requant']} ({'fixed' if FIXED else 'float'} arithmetic): "
              f"{np.count_nonzero(diff)}/{diff.size} logit codes differ from TFLite's, max {diff.max()}")  # fmt: skip
    if FIXED:
        assert diff.max() == 0
    else:
        assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.05 * diff.size
        assert np.mean(ours.argmax(1) == theirs.argmax(1)) >= 0.9


def test_trained_forward_graph_exports(tmp_path):
    """A forward graph whose constants changed (as `tte train` writes one) goes back as it is."""
    path = _small(tmp_path, "tiny_depthwise")
    graph = import_tflite(path)
    constants = dict(graph.constants)
    constants["dw/weights"] = np.clip(constants["dw/weights"].astype(np.int16) + 3, -127, 127).astype(np.int8)
    constants["fc/bias"] = constants["fc/bias"] - 17
    summary = export_tflite(graph.replace(constants=constants), path, tmp_path / "t.tflite")
    assert (summary.tensors, summary.changed, summary.max_change) == (4, 2, 17)
    back = import_tflite(tmp_path / "t.tflite")
    assert np.array_equal(back.constants["dw/weights"], constants["dw/weights"])
    assert np.array_equal(back.constants["fc/bias"], constants["fc/bias"])


def _refused(graph, like: Path, out: Path, *fragments: str) -> None:
    with pytest.raises(TfliteExportError) as info:
        export_tflite(graph, like, out)
    message = str(info.value)
    assert "\n" not in message and not out.exists()
    for fragment in fragments:
        assert fragment in message, message


def test_graphs_that_do_not_fit_the_file_are_refused(tmp_path):
    path = _small(tmp_path, "tiny_depthwise")
    out = tmp_path / "out.tflite"
    graph = import_tflite(path)
    _refused(
        import_tflite(path, num_classes=5), path, out, "linear 'head' (weights 'head.w')", "new head from --classes"
    )
    fp32 = compile_training(graph, Scheme(n_bias=1, head="fp32"))
    _refused(fp32, path, out, "fc/weights' is float32 in the graph and INT8 in the file", "--head int8")

    spec = graph.tensors["dw/weights"]
    scaled = TensorSpec(spec.name, spec.shape, spec.dtype, QuantParams.per_channel([0.5] * 4, 0))
    _refused(graph.replace(tensors={**graph.tensors, spec.name: scaled}), path, out, "'dw/weights' has scales")
    x = graph.tensors["input"]
    moved = TensorSpec(x.name, x.shape, x.dtype, QuantParams.per_tensor(0.02, -127))
    _refused(graph.replace(tensors={**graph.tensors, "input": moved}), path, out, "activation 'input' has zero point")

    other = _small(tmp_path, "tiny_conv")
    _refused(graph, other, out, "imported from tiny_depthwise.tflite", "not from this file")
    anonymous = graph.replace(metadata={k: v for k, v in graph.metadata.items() if k != "source_sha256"})
    _refused(anonymous, other, out, "weights 'dw/weights') has no operator of the file with those weights")


def test_cli_refusals_are_one_line(tmp_path, capsys):
    path = _small(tmp_path, "tiny_depthwise")
    graph = save(import_tflite(path, num_classes=2), tmp_path / "new-head.tte")
    out = tmp_path / "out.tflite"
    assert tte_main(["export-tflite", str(graph), "--like", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(graph) in err and "new head" in err and not out.exists()
    assert tte_main(["export-tflite", str(graph), "--like", str(path), "-o", str(path)]) == 2
    assert "\n" not in capsys.readouterr().err.strip()
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"TFL3" * 3)
    assert tte_main(["export-tflite", str(graph), "--like", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "bad.tflite" in err and not out.exists()
