"""The safe .tflite reader: the real models read as TFLite's own accessors read them, and damaged or
hostile files are refused in one line naming the file and what is wrong."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from tte_ir import TteError
from tte_ir.tflite_file import TfliteFormatError, parse_tflite, read_tflite

tflite = pytest.importorskip("tflite", reason="the tflite package (tte-ir[tflite]) is not installed")

MODELS = (
    "resnet8",
    "resnet8_b1",
    "dscnn",
    "dscnn_b1",
    "mobilenetv1_025_vww",
    "mobilenetv1_025_vww_b1",
    "lenet5",
    "lenet5_b1",
)


@pytest.fixture(scope="module")
def models_dir(shared_dir: Path) -> Path:
    return shared_dir / "models" / "tflite"


def _names(enum) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


@pytest.mark.parametrize("name", MODELS)
def test_real_model_reads_as_tflite_accessors_read_it(models_dir, name):
    path = models_dir / f"{name}.tflite"
    model = read_tflite(path)
    data = path.read_bytes()
    fb = tflite.Model.GetRootAs(data, 0)
    sub = fb.Subgraphs(0)
    assert model.version == fb.Version() == 3
    assert model.size == len(data) and len(model.digest) == 64
    assert model.description == fb.Description().decode()
    assert model.inputs == tuple(sub.InputsAsNumpy()) and model.outputs == tuple(sub.OutputsAsNumpy())
    assert len(model.tensors) == sub.TensorsLength()
    types = _names(tflite.TensorType)
    for i, tensor in enumerate(model.tensors):
        t = sub.Tensors(i)
        assert tensor.index == i and tensor.name == t.Name().decode()
        assert tensor.shape == tuple(t.ShapeAsNumpy()) and tensor.dtype == types[t.Type()]
        signature = t.ShapeSignatureAsNumpy()
        assert tensor.shape_signature == (tensor.shape if isinstance(signature, int) else tuple(signature))
        raw = fb.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(raw, int):
            assert tensor.data is None and tensor.data_offset is None
        else:
            assert tensor.data.tobytes() == raw.tobytes() and tensor.data.shape == tensor.shape
            assert not tensor.data.flags.writeable
            assert data[tensor.data_offset : tensor.data_offset + raw.size] == raw.tobytes()
        q = t.Quantization()
        if q is None or q.ScaleLength() == 0:
            assert tensor.quantization is None
        else:
            assert np.array_equal(tensor.quantization.scales, q.ScaleAsNumpy())
            assert tensor.quantization.scales.dtype == np.float32
            assert np.array_equal(tensor.quantization.zero_points, q.ZeroPointAsNumpy())
            assert tensor.quantization.zero_points.dtype == np.int64
            assert tensor.quantization.quantized_dimension == q.QuantizedDimension()
    ops = _names(tflite.BuiltinOperator)
    assert len(model.operators) == sub.OperatorsLength()
    for i, op in enumerate(model.operators):
        o = sub.Operators(i)
        code = fb.OperatorCodes(o.OpcodeIndex())
        assert op.opcode == ops[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        assert op.version == code.Version()
        assert op.inputs == tuple(o.InputsAsNumpy()) and op.outputs == tuple(o.OutputsAsNumpy())
    assert set(model.metadata) == {"min_runtime_version", "CONVERSION_METADATA"}


@pytest.mark.parametrize("name", ["lenet5", "dscnn_b1"])
def test_real_model_matches_its_golden_description(models_dir, name):
    """The op list, versions and tensor names the goldens' JSON records (written from TensorFlow)."""
    model = read_tflite(models_dir / f"{name}.tflite")
    record = json.loads((models_dir / f"{name}.json").read_text())
    assert [op.opcode for op in model.operators] == record["ops"]
    names = [t.name for t in model.tensors]
    for op, recorded in zip(model.operators, record["operators"], strict=True):
        assert op.version == recorded["version"]
        assert [names[i] for i in op.inputs if i >= 0] == recorded["inputs"]
        assert [names[i] for i in op.outputs] == recorded["outputs"]
    assert model.tensor(record["input_name"]).index == model.inputs[0]
    assert model.tensor(record["output_name"]).index == model.outputs[0]


def test_options_are_the_option_table_fields(models_dir):
    model = read_tflite(models_dir / "lenet5.tflite")
    conv, pool = model.operators[0], model.operators[1]
    assert conv.options_type == "Conv2DOptions"
    assert conv.options == {
        "padding": tflite.Padding.SAME,
        "stride_w": 1,
        "stride_h": 1,
        "fused_activation_function": tflite.ActivationFunctionType.RELU,
        "dilation_w_factor": 1,
        "dilation_h_factor": 1,
        "quantized_bias_type": 0,
    }
    assert (pool.opcode, pool.options["filter_width"], pool.options["stride_h"]) == ("MAX_POOL_2D", 2, 2)
    reshape = next(op for op in read_tflite(models_dir / "lenet5_b1.tflite").operators if op.opcode == "RESHAPE")
    assert reshape.options_type in ("", "ReshapeOptions")


def _refused(data: bytes, *fragments: str) -> str:
    with pytest.raises(TfliteFormatError) as info:
        parse_tflite(data, "m.tflite")
    message = str(info.value)
    assert isinstance(info.value, TteError) and "\n" not in message and message.startswith("m.tflite: ")
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_wrong_identifier_and_truncation_are_refused(models_dir):
    data = (models_dir / "lenet5_b1.tflite").read_bytes()
    _refused(b"", "too short")
    _refused(data[:4] + b"TFL2" + data[8:], "file identifier")
    _refused(data[: len(data) // 3], "m.tflite")
    _refused(b"\xff\xff\xff\x7fTFL3" + data[8:], "past the end")


def test_read_tflite_names_the_file(tmp_path):
    path = tmp_path / "bad.tflite"
    path.write_bytes(b"not a model at all")
    with pytest.raises(TfliteFormatError, match=r"bad\.tflite: not a TFLite flatbuffer"):
        read_tflite(path)
    with pytest.raises(TfliteFormatError, match=r"missing\.tflite: cannot read"):
        read_tflite(tmp_path / "missing.tflite")


def test_out_of_range_tensor_index_is_refused(models_dir):
    """An operator input rewritten to a tensor index the subgraph lacks."""
    path = models_dir / "lenet5_b1.tflite"
    data = bytearray(path.read_bytes())
    model = read_tflite(path)
    fb = tflite.Model.GetRootAs(bytes(data), 0)
    op = fb.Subgraphs(0).Operators(0)
    vector = op._tab.Vector(op._tab.Offset(6))  # Operator.inputs
    struct.pack_into("<i", data, vector, len(model.tensors) + 5)
    _refused(bytes(data), "operator 0 (CONV_2D) input refers to tensor", f"has {len(model.tensors)} tensors")
