"""`tte import-tflite`: TensorFlow's int8 models import with their quantization and names, their forward
gives TFLite's reference-kernel codes (0 differing under fixed requantization), and what tte cannot
express is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tte_ir import DType, Op, Scheme, compile_training, load
from tte_ir.cli import main
from tte_ir.eval_cli import evaluate_graph
from tte_ir.reference import run_forward
from tte_ir.tflite_import import TfliteImportError, activation_range, import_tflite, same_padding, softmax_int8

tflite = pytest.importorskip("tflite", reason="the tflite package (tte-ir[tflite]) is not installed")

from .tflite_bytes import Operator, Tensor, build_tflite, tiny_conv  # noqa: E402  (needs tflite)

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


@pytest.fixture(scope="module")
def models_dir(shared_dir: Path) -> Path:
    path = shared_dir / "models" / "tflite"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


def _golden(models_dir: Path, name: str):
    return np.load(models_dir / f"{name}.golden.npz"), json.loads((models_dir / f"{name}.json").read_text())


def _nchw(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 3, 1, 2) if a.ndim == 4 else a


def _intermediates(graph, golden, prefix: str) -> dict[str, tuple[float, int]]:
    """Share of differing codes and max difference of every golden tensor of the first image that the
    graph computes (the int32 shape arithmetic and the softmax output are not graph tensors)."""
    values = run_forward(graph, _nchw(golden["input"][:1]), return_all=True)
    result = {}
    for key in golden.files:
        if key.startswith(prefix + "/") and key[len(prefix) + 1 :] in values:
            got = values[key[len(prefix) + 1 :]].astype(np.int64)
            diff = np.abs(got - _nchw(golden[key]).astype(np.int64))
            result[key] = (float(np.mean(diff > 0)), int(diff.max()))
    return result


@pytest.mark.parametrize("name", MODELS)
def test_import_keeps_tflite_names_shapes_and_quantization(models_dir, name):
    golden, info = _golden(models_dir, name)
    graph = import_tflite(models_dir / f"{name}.tflite")
    assert graph.metadata["requant"] == "fixed"
    assert graph.metadata["source_sha256"] and graph.metadata["source"] == f"{name}.tflite"
    assert sum(graph.metadata["tflite_ops"].values()) == len(info["operators"])
    assert graph.metadata["provenance"]["min_runtime_version"] == "1.14.0"
    assert graph.metadata["provenance"]["CONVERSION_METADATA"].endswith(" 2.21.0")  # TensorFlow's version
    assert graph.metadata["softmax"]["output"] == info["output_name"]
    x = graph.tensors[graph.inputs[0]]
    assert x.name == info["input_name"] and x.quant.zero_point == info["input_zero_point"]
    assert x.shape == (1, info["input_shape"][3], *info["input_shape"][1:3])
    computed = 0
    for tname, meta in info["intermediate_tensors_first_image"].items():
        if meta["dtype"] != "int8" or tname == info["output_name"]:
            continue
        spec = graph.tensors[tname]
        shape = meta["shape"]
        assert spec.shape == (tuple(shape) if len(shape) == 2 else (1, shape[3], shape[1], shape[2]))
        assert (spec.quant.tensor_scale, spec.quant.zero_point) == (np.float32(meta["scale"][0]), meta["zero_point"][0])
        computed += 1
    assert computed == len(_intermediates(graph, golden, "ref_tensor"))
    convs = [n for n in graph.nodes if n.op in (Op.CONV2D, Op.LINEAR)]
    assert len(convs) == len(info["per_channel_weight_tensors"])
    assert all(graph.tensors[n.inputs[1]].quant.axis == 0 for n in convs)


@pytest.mark.parametrize("name", MODELS)
def test_float_requant_is_close_to_tflite(models_dir, name):
    """requant float (tte's float32 rounding) differs from TFLite's integer arithmetic by one rounding in
    the first layer (the differences then grow with depth: MobileNet's reach tens of codes), and classifies
    the golden images as TFLite does but for at most one."""
    golden, _ = _golden(models_dir, name)
    graph = import_tflite(models_dir / f"{name}.tflite", requant="float")
    first = f"ref_tensor/{graph.nodes[0].outputs[0]}"
    assert _intermediates(graph, golden, "ref_tensor")[first][1] <= 1
    result = evaluate_graph(graph, _nchw(golden["input"]), golden["labels"])
    agree = np.mean(np.argmax(result.logits, axis=1) == np.argmax(golden["output_ref"], axis=1))
    assert agree >= 1 - 1 / 32


@pytest.mark.parametrize("name", MODELS)
def test_fixed_requant_equals_tflite_reference_kernels(models_dir, name):
    golden, _ = _golden(models_dir, name)
    graph = import_tflite(models_dir / f"{name}.tflite")
    differing = {key: v for key, v in _intermediates(graph, golden, "ref_tensor").items() if v[1]}
    assert differing == {}
    result = evaluate_graph(graph, _nchw(golden["input"]), golden["labels"])
    np.testing.assert_array_equal(result.codes, golden["output_ref"])


@pytest.mark.parametrize("name", MODELS)
def test_softmax_int8_equals_tflite_on_the_golden_logits(models_dir, name):
    golden, info = _golden(models_dir, name)
    softmax = next(op for op in info["operators"] if op["op"] == "SOFTMAX")
    logits = softmax["inputs"][0]
    scale = info["intermediate_tensors_first_image"][logits]["scale"][0]
    got = softmax_int8(golden[f"ref_tensor/{logits}"], input_scale=scale)
    np.testing.assert_array_equal(got, golden[f"ref_tensor/{info['output_name']}"])


def test_softmax_int8_is_within_a_code_of_the_real_softmax():
    rng = np.random.default_rng(0)
    for scale in (0.02, 0.1, 0.5):
        logits = rng.integers(-128, 128, size=(64, 10)).astype(np.int8)
        real = np.exp(scale * (logits.astype(np.float64) - logits.max(axis=1, keepdims=True)))
        expected = np.clip(np.rint(real / real.sum(axis=1, keepdims=True) * 256) - 128, -128, 127)
        got = softmax_int8(logits, input_scale=scale)
        assert np.abs(got.astype(np.int64) - expected).max() <= 1


def test_dynamic_batch_flatten_folds_to_the_static_graph(models_dir):
    dynamic = import_tflite(models_dir / "lenet5.tflite")
    static = import_tflite(models_dir / "lenet5_b1.tflite")
    assert [n.op for n in dynamic.nodes] == [n.op for n in static.nodes]
    flatten = next(n for n in dynamic.nodes if n.op is Op.RESHAPE)
    assert flatten.attrs["order"] == "hwc" and flatten.attrs["shape"] == [1, 400]
    assert {"SHAPE", "STRIDED_SLICE", "PACK"} <= set(dynamic.metadata["folded_at_import"])
    golden, _ = _golden(models_dir, "lenet5")
    x = _nchw(golden["input"][:4])
    for i in range(4):
        np.testing.assert_array_equal(run_forward(dynamic, x[i : i + 1]), run_forward(static, x[i : i + 1]))


@pytest.mark.parametrize("head", ["int8", "fp32"])
def test_new_head_replaces_the_last_fully_connected_and_compiles(models_dir, head):
    graph = import_tflite(models_dir / "lenet5.tflite", num_classes=5, head=head, seed=3)
    last = graph.nodes[-1]
    assert last.op is Op.LINEAR and last.name == "head" and graph.outputs == ("logits",)
    assert graph.tensors["logits"].shape == (1, 5)
    assert graph.tensors["head.w"].dtype is (DType.INT8 if head == "int8" else DType.FLOAT32)
    assert "softmax" not in graph.metadata and graph.metadata["num_classes"] == 5
    again = import_tflite(models_dir / "lenet5.tflite", num_classes=5, head=head, seed=3)
    np.testing.assert_array_equal(graph.constants["head.w"], again.constants["head.w"])
    training = compile_training(graph, Scheme(n_bias=2, head=head))
    assert training.metadata["training"]["logits"]


def test_cli_writes_a_graph_inspect_shows(models_dir, tmp_path, capsys):
    out = tmp_path / "lenet5.tte"
    assert main(["import-tflite", str(models_dir / "lenet5.tflite"), "-o", str(out), "--requant", "float"]) == 0
    assert "CONV_2D v3 x2" in capsys.readouterr().out
    graph = load(out)
    assert graph.metadata["requant"] == "float"
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "conv_2d_0" in text and "totals: 2 convs, 3 linear layers" in text
    assert "requant float" in text and f"source_sha256: {graph.metadata['source_sha256']}" in text
    assert "tflite_ops: CONV_2D v3=2" in text and "min_runtime_version=1.14.0" in text


def test_same_padding_and_activation_ranges_follow_tflite():
    assert same_padding(32, 3, 2) == (0, 1)  # stride 2: the extra row goes after
    assert same_padding(49, 10, 2) == (4, 5) and same_padding(10, 4, 2) == (1, 1)
    assert same_padding(28, 5, 1) == (2, 2) and same_padding(10, 1, 2) == (0, 0)
    assert activation_range("relu", 0.05, 5) == (5, 127)
    assert activation_range("relu6", 0.05, 5) == (5, 125)
    assert activation_range("relu6", 0.01, -128) == (-128, 127)  # 6 / 0.01 is past the int8 range
    assert activation_range("relu_n1_to_1", 0.01, 0) == (-100, 100)
    assert activation_range("none", 0.05, 5) == (-128, 127)


def test_tiny_conv_padding_and_fused_relu(tmp_path):
    path = tmp_path / "conv.tflite"
    path.write_bytes(tiny_conv())
    graph = import_tflite(path, requant="float")
    conv = graph.nodes[0]
    assert conv.attrs["padding"] == (1, 1, 1, 1) and conv.attrs["stride"] == (1, 1)
    assert (conv.attrs["act_min"], conv.attrs["act_max"]) == (5, 127)  # RELU on zero point 5
    w = graph.constants["conv/weights"]
    assert w.shape == (3, 2, 3, 3)  # OHWI -> OIHW


def _pad_conv_model(pad: bool) -> bytes:
    """A 3x3 conv of a 1x5x5x2 map with one pixel of padding: a PAD then a VALID conv, or a SAME conv."""
    rng = np.random.default_rng(1)
    weights = rng.integers(-127, 128, size=(4, 3, 3, 2), dtype=np.int8).tobytes()
    tensors = [
        Tensor("input", (1, 5, 5, 2), scales=(0.02,), zero_points=(7,)),
        Tensor("w", (4, 3, 3, 2), data=weights, scales=(0.01, 0.02, 0.03, 0.04), zero_points=(0, 0, 0, 0)),
        Tensor("b", (4,), "INT32", np.array([1, 2, 3, 4], "<i4").tobytes()),
        Tensor("y", (1, 5, 5, 4), scales=(0.07,), zero_points=(-1,)),
        Tensor("paddings", (4, 2), "INT32", np.array([[0, 0], [1, 1], [1, 1], [0, 0]], "<i4").tobytes()),
        Tensor("padded", (1, 7, 7, 2), scales=(0.02,), zero_points=(7,)),
    ]
    conv = {"stride_w": 1, "stride_h": 1, "fused_activation_function": 0}
    if not pad:
        ops = [Operator("CONV_2D", (0, 1, 2), (3,), 3, "Conv2DOptions", {**conv, "padding": tflite.Padding.SAME})]
        return build_tflite(tensors[:4], ops, (0,), (3,))
    ops = [
        Operator("PAD", (0, 4), (5,), 1),
        Operator("CONV_2D", (5, 1, 2), (3,), 3, "Conv2DOptions", {**conv, "padding": tflite.Padding.VALID}),
    ]
    return build_tflite(tensors, ops, (0,), (3,))


def test_pad_folds_into_the_next_conv(tmp_path):
    graphs = []
    for pad in (True, False):
        path = tmp_path / f"pad{pad}.tflite"
        path.write_bytes(_pad_conv_model(pad))
        graphs.append(import_tflite(path, requant="float"))
    folded, same = graphs
    assert [n.op for n in folded.nodes] == [Op.CONV2D] and folded.nodes[0].attrs["padding"] == (1, 1, 1, 1)
    x = np.random.default_rng(2).integers(-128, 128, size=(1, 2, 5, 5)).astype(np.int8)
    np.testing.assert_array_equal(run_forward(folded, x), run_forward(same, x))


def _refusal(tmp_path, capsys, data: bytes, *extra: str) -> str:
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    out = tmp_path / "m.tte"
    assert main(["import-tflite", str(path), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and str(path) in err
    assert not out.exists()
    return err


def test_unsupported_op_and_version_are_refused_by_name(tmp_path, capsys):
    err = _refusal(tmp_path, capsys, tiny_conv("CONV_3D"))
    assert "op #0 CONV_3D (version 3) is not supported" in err and "supported: CONV_2D" in err
    err = _refusal(tmp_path, capsys, tiny_conv(version=7))
    assert "op #0 CONV_2D version 7 is newer than the versions tte knows (1-6)" in err


def test_what_the_ops_cannot_express_is_refused(tmp_path, capsys):
    assert "dilated convolutions are not supported" in _refusal(tmp_path, capsys, tiny_conv(dilation_h_factor=2))
    assert "fused activation 4 is not supported" in _refusal(tmp_path, capsys, tiny_conv(fused_activation_function=4))
    assert "--classes replaces the last FULLY_CONNECTED" in _refusal(tmp_path, capsys, tiny_conv(), "--classes", "3")


def test_an_op_without_its_inputs_is_refused(tmp_path, capsys):
    """Found by the reader's fuzz (the importer indexed a missing input): an op's arity is checked first."""
    tensors = [Tensor("input", (1, 4, 4, 2), scales=(0.02,), zero_points=(0,)), Tensor("y", (1, 4, 4, 3))]
    ops = [Operator("CONV_2D", (0,), (1,), 3, "Conv2DOptions", {"stride_w": 1, "stride_h": 1})]
    err = _refusal(tmp_path, capsys, build_tflite(tensors, ops, (0,), (1,)))
    assert "op #0 CONV_2D has inputs [0] and outputs [1]; it needs 2 inputs and one output" in err


def test_damaged_file_is_one_line(tmp_path, capsys):
    data = bytearray(tiny_conv())
    _refusal(tmp_path, capsys, bytes(data[: len(data) // 2]))


def test_bad_arguments_are_refused(tmp_path):
    path = tmp_path / "conv.tflite"
    path.write_bytes(tiny_conv())
    with pytest.raises(TfliteImportError, match="--classes must be at least 1"):
        import_tflite(path, num_classes=0)
    with pytest.raises(TfliteImportError, match="requant must be"):
        import_tflite(path, requant="exact")


def _every_op_model() -> bytes:
    """A small model through every op the importer maps but PAD (tested above): float input, QUANTIZE,
    CONV_2D + RELU6, HARD_SWISH, MEAN, LOGISTIC, MUL by the gate, ADD, CONCATENATION, DEPTHWISE_CONV_2D,
    AVERAGE_POOL_2D, MAX_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX, DEQUANTIZE."""
    rng = np.random.default_rng(4)

    def codes(*shape):
        return rng.integers(-127, 128, size=shape, dtype=np.int8).tobytes()

    s_in, s_w, s_dw, s_fc = 0.02, (0.01, 0.02, 0.015, 0.03), tuple(0.01 + 0.002 * i for i in range(8)), (0.02,) * 3
    s_map, s_dwo = 0.05, 0.06
    bias = lambda n, scales: Tensor(n, (len(scales),), "INT32", rng.integers(-300, 300, len(scales)).astype("<i4").tobytes(),  # noqa: E731
                                    scales=scales, zero_points=(0,) * len(scales))  # fmt: skip
    q = lambda n, shape, s, z: Tensor(n, shape, scales=(s,), zero_points=(z,))  # noqa: E731
    tensors = [
        Tensor("image", (1, 4, 4, 3), "FLOAT32"),
        q("image_q", (1, 4, 4, 3), s_in, -10),
        Tensor("conv/w", (4, 1, 1, 3), data=codes(4, 1, 1, 3), scales=s_w, zero_points=(0,) * 4),
        bias("conv/b", tuple(s_in * s for s in s_w)),
        q("conv", (1, 4, 4, 4), s_map, 3),
        q("hswish", (1, 4, 4, 4), 0.04, -20),
        Tensor("axes", (2,), "INT32", np.array([1, 2], "<i4").tobytes()),
        q("mean", (1, 1, 1, 4), 0.03, 0),
        q("gate", (1, 1, 1, 4), 1 / 256, -128),
        q("mul", (1, 4, 4, 4), s_map, 3),
        q("add", (1, 4, 4, 4), s_map, 3),
        q("cat", (1, 4, 4, 8), s_map, 3),
        Tensor("dw/w", (1, 3, 3, 8), data=codes(1, 3, 3, 8), scales=s_dw, zero_points=(0,) * 8, axis=3),
        bias("dw/b", tuple(s_map * s for s in s_dw)),
        q("dw", (1, 4, 4, 8), s_dwo, -5),
        q("avg", (1, 2, 2, 8), s_dwo, -5),
        q("max", (1, 1, 1, 8), s_dwo, -5),
        Tensor("shape", (2,), "INT32", np.array([1, 8], "<i4").tobytes()),
        q("flat", (1, 8), s_dwo, -5),
        Tensor("fc/w", (3, 8), data=codes(3, 8), scales=s_fc, zero_points=(0,) * 3),
        bias("fc/b", tuple(s_dwo * s for s in s_fc)),
        q("logits", (1, 3), 0.08, 2),
        q("probs", (1, 3), 1 / 256, -128),
        Tensor("probs_f", (1, 3), "FLOAT32"),
    ]
    same, valid = tflite.Padding.SAME, tflite.Padding.VALID
    conv = {"stride_w": 1, "stride_h": 1}
    pool = lambda k: {"padding": valid, "stride_w": k, "stride_h": k, "filter_width": k, "filter_height": k}  # noqa: E731
    ops = [
        Operator("QUANTIZE", (0,), (1,)),
        Operator("CONV_2D", (1, 2, 3), (4,), 3, "Conv2DOptions", {**conv, "padding": valid, "fused_activation_function": 3}),
        Operator("HARD_SWISH", (4,), (5,)),
        Operator("MEAN", (5, 6), (7,), 2, "ReducerOptions", {"keep_dims": True}),
        Operator("LOGISTIC", (7,), (8,), 2),
        Operator("MUL", (4, 8), (9,), 2, "MulOptions", {}),
        Operator("ADD", (9, 4), (10,), 2, "AddOptions", {}),
        Operator("CONCATENATION", (10, 4), (11,), 2, "ConcatenationOptions", {"axis": 3}),
        Operator("DEPTHWISE_CONV_2D", (11, 12, 13), (14,), 3, "DepthwiseConv2DOptions",
                 {**conv, "padding": same, "depth_multiplier": 1, "fused_activation_function": 1}),
        Operator("AVERAGE_POOL_2D", (14,), (15,), 2, "Pool2DOptions", pool(2)),
        Operator("MAX_POOL_2D", (15,), (16,), 2, "Pool2DOptions", pool(2)),
        Operator("RESHAPE", (16, 17), (18,)),
        Operator("FULLY_CONNECTED", (18, 19, 20), (21,), 4, "FullyConnectedOptions", {}),
        Operator("SOFTMAX", (21,), (22,), 2, "SoftmaxOptions", {"beta": 1.0}),
        Operator("DEQUANTIZE", (22,), (23,), 2),
    ]  # fmt: skip
    return build_tflite(tensors, ops, (0,), (23,))


def test_every_op_against_tflite_reference_kernels(tmp_path):
    """The model above through TFLite's interpreter (reference kernels) and through the imported graph:
    every activation within a few codes under requant float, equal under fixed."""
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert (TFLite's interpreter) is absent")
    path = tmp_path / "every_op.tflite"
    path.write_bytes(_every_op_model())
    interpreter = litert.Interpreter(
        model_path=str(path), experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )  # fmt: skip
    interpreter.allocate_tensors()
    names = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    for requant in ("float", "fixed"):
        graph = import_tflite(path, requant=requant)
        assert graph.inputs == ("image_q",) and graph.metadata["float_input"]["name"] == "image"
        ops = {n.op for n in graph.nodes}
        assert ops == {Op.CONV2D, Op.LUT, Op.GLOBAL_AVG_POOL, Op.MUL, Op.ADD, Op.CONCAT, Op.AVG_POOL, Op.MAX_POOL,
                       Op.RESHAPE, Op.LINEAR}  # fmt: skip
        for seed in range(4):
            image = np.random.default_rng(seed).uniform(-2.0, 2.5, size=(1, 4, 4, 3)).astype(np.float32)
            interpreter.set_tensor(names["image"], image)
            interpreter.invoke()
            values = run_forward(graph, _nchw(interpreter.get_tensor(names["image_q"])), return_all=True)
            for name in ("conv", "hswish", "mean", "gate", "mul", "add", "cat", "dw", "avg", "max", "flat", "logits"):
                diff = np.abs(
                    values[name].astype(np.int64) - _nchw(interpreter.get_tensor(names[name])).astype(np.int64)
                )
                assert diff.max() <= (0 if requant == "fixed" else 4), (requant, name, diff.max())
            probs = softmax_int8(values["logits"], input_scale=0.08)
            if requant == "fixed":
                np.testing.assert_array_equal(probs, interpreter.get_tensor(names["probs"]))


def _dense_model(kind: str) -> bytes:
    """A per-channel int8 CONV_2D (1x1 on 32x32x8) or FULLY_CONNECTED (8 -> 16) with random weights."""
    rng = np.random.default_rng(5)
    out = 16
    scales = tuple(float(v) for v in rng.uniform(0.005, 0.02, out))
    shape = (out, 1, 1, 8) if kind == "conv" else (out, 8)
    tensors = [
        Tensor("x", (1, 32, 32, 8) if kind == "conv" else (1, 8), scales=(0.02,), zero_points=(-3,)),
        Tensor("w", shape, data=rng.integers(-127, 128, size=shape, dtype=np.int8).tobytes(), scales=scales,
               zero_points=(0,) * out),
        Tensor("b", (out,), "INT32", rng.integers(-500, 500, out).astype("<i4").tobytes()),
        Tensor("y", (1, 32, 32, out) if kind == "conv" else (1, out), scales=(0.03,), zero_points=(2,)),
    ]  # fmt: skip
    if kind == "conv":
        options = {"padding": tflite.Padding.VALID, "stride_w": 1, "stride_h": 1}
        ops = [Operator("CONV_2D", (0, 1, 2), (3,), 3, "Conv2DOptions", options)]
    else:
        ops = [Operator("FULLY_CONNECTED", (0, 1, 2), (3,), 4, "FullyConnectedOptions", {})]
    return build_tflite(tensors, ops, (0,), (3,))


def _differing_codes(tmp_path: Path, kind: str, inputs: int) -> int:
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert (TFLite's interpreter) is absent")
    path = tmp_path / f"{kind}.tflite"
    path.write_bytes(_dense_model(kind))
    graph = import_tflite(path)
    interpreter = litert.Interpreter(
        model_path=str(path), experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF
    )
    interpreter.allocate_tensors()
    x_detail, y_detail = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    rng = np.random.default_rng(6)
    differing = 0
    for _ in range(inputs):
        x = rng.integers(-128, 128, size=x_detail["shape"]).astype(np.int8)
        interpreter.set_tensor(x_detail["index"], x)
        interpreter.invoke()
        differing += int(
            np.count_nonzero(run_forward(graph, _nchw(x)) != _nchw(interpreter.get_tensor(y_detail["index"])))
        )
    return differing


def test_fixed_conv_equals_tflite_on_random_inputs(tmp_path):
    """65,536 outputs of a per-channel conv: TFLite's CONV_2D rounds twice (gemmlowp), as requant fixed does."""
    assert _differing_codes(tmp_path, "conv", 4) == 0


def test_fixed_fully_connected_equals_tflite_on_random_inputs(tmp_path):
    """32,000 outputs of a per-channel FC: TFLite's FULLY_CONNECTED rounds once ((acc * qm + 2^(30 - shift)) >>
    (31 - shift) in int64), as a requant fixed linear does (the conv's two roundings miss some by 1)."""
    assert _differing_codes(tmp_path, "fc", 2000) == 0
