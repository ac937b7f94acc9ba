"""The safe .tflite reader: the real models read as TFLite's own accessors read them, and damaged or
hostile files are refused in one line naming the file and what is wrong."""

from __future__ import annotations

import json
import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from tte_ir import TteError
from tte_ir.tflite_file import MAX_ELEMENTS, MAX_RANK, TfliteFormatError, parse_tflite, read_tflite

tflite = pytest.importorskip("tflite", reason="the tflite package (tte-ir[tflite]) is not installed")

from .tflite_bytes import (  # noqa: E402  (needs the tflite package checked above)
    Operator,
    Tensor,
    build_tflite,
    field_position,
    shared_buffer_model,
    shared_vector_model,
    tiny_conv,
)

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


@pytest.fixture(scope="module")
def lenet(models_dir) -> bytes:
    return (models_dir / "lenet5_b1.tflite").read_bytes()


def _patched(data: bytes, position: int, fmt: str, value) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, position, value)
    return bytes(out)


def _root(data: bytes):
    return tflite.Model.GetRootAs(data, 0)


def test_hostile_offsets_are_refused(lenet):
    model = _root(lenet)
    root = struct.unpack_from("<I", lenet, 0)[0]
    # the root table's vtable placed before the start of the file
    _refused(_patched(lenet, root, "<i", root + 100), "model", "outside the file")
    # a vtable whose size runs past the end (of a file smaller than 64 KB)
    small = tiny_conv()
    small_root = struct.unpack_from("<I", small, 0)[0]
    vtable = small_root - struct.unpack_from("<i", small, small_root)[0]
    _refused(_patched(small, vtable, "<H", 0xFFFE), "model", "bad vtable")
    _refused(_patched(small, vtable, "<H", 3), "model", "bad vtable")
    _refused(_patched(small, vtable + 2, "<H", 0xFFFE), "model", "runs past the end")
    sub = model.Subgraphs(0)
    tensors_field = field_position(sub, 0)
    _refused(_patched(lenet, tensors_field, "<I", 0xFFFFFFF0), "subgraph 0 tensors", "past the end of the file")
    vector = tensors_field + struct.unpack_from("<I", lenet, tensors_field)[0]
    _refused(_patched(lenet, vector, "<I", 0x7FFFFFFF), "subgraph 0 tensors", "2147483647 elements")
    # a reference to itself (flatbuffer offsets only point forward, so this is the only loop one can write)
    subgraphs = field_position(model, 2)
    element = subgraphs + struct.unpack_from("<I", lenet, subgraphs)[0] + 4
    _refused(_patched(lenet, element, "<I", 0), "model subgraphs[0]")
    # a field whose offset leaves its table
    op_vtable = sub.Operators(0)._tab.Pos - struct.unpack_from("<i", lenet, sub.Operators(0)._tab.Pos)[0]
    _refused(_patched(lenet, op_vtable + 2, "<H", 4), "operator 0", "outside its table")


def test_out_of_range_indices_are_refused(lenet):
    model = _root(lenet)
    sub = model.Subgraphs(0)
    buffers = model.BuffersLength()
    _refused(_patched(lenet, field_position(sub.Tensors(1), 2), "<I", buffers), f"refers to buffer {buffers}")
    codes = model.OperatorCodesLength()
    last = sub.OperatorsLength() - 1
    at = field_position(sub.Operators(last), 0)
    assert at, "the last operator's opcode_index is not its default 0"
    _refused(_patched(lenet, at, "<I", codes), f"operator {last} uses operator code {codes}; the file has {codes}")
    outputs = sub._tab.Vector(sub._tab.Offset(8))
    _refused(_patched(lenet, outputs, "<i", -1), "subgraph output refers to tensor -1")


def test_optional_inputs_and_unknown_opcodes_read():
    """-1 is TFLite's absent optional input; a code newer than the tflite package gets a name to refuse by."""
    data = tiny_conv()
    fb = _root(data)
    inputs = fb.Subgraphs(0).Operators(0)._tab.Vector(fb.Subgraphs(0).Operators(0)._tab.Offset(6))
    assert parse_tflite(_patched(data, inputs + 8, "<i", -1)).operators[0].inputs == (0, 1, -1)
    code = field_position(fb.OperatorCodes(0), 3)
    op = parse_tflite(_patched(data, code, "<i", 999)).operators[0]
    assert (op.opcode, op.version) == ("BUILTIN_999", 3)
    assert parse_tflite(tiny_conv("GELU", 1)).operators[0].opcode == "GELU"


def _model(*tensors: Tensor) -> bytes:
    return build_tflite(list(tensors), [], (0,), (0,))


def test_absurd_shapes_are_refused():
    _refused(_model(Tensor("x", (1 << 20, 1 << 20))), "'x'", f"more than {MAX_ELEMENTS} elements")
    _refused(_model(Tensor("x", (1, -3, 4))), "'x'", "negative dimension")
    _refused(_model(Tensor("x", (1,) * (MAX_RANK + 1))), f"rank {MAX_RANK + 1}")
    _refused(_model(Tensor("x", (1, 4), signature=(-1, 5))), "shape_signature [-1, 5] does not fit shape [1, 4]")
    _refused(_model(Tensor("x", (3, 3), data=bytes(5))), "holds 5 bytes; shape [3, 3] INT8 needs 9")
    _refused(
        build_tflite([Tensor(f"t{i}", (1 << 27,)) for i in range(9)], [], (0,), (0,)),
        f"{9 << 27} elements in all",
    )


def test_bad_quantization_is_refused():
    _refused(_model(Tensor("w", (4, 2), scales=(0.1, 0.2, 0.3), axis=0)), "3 per-channel scales along dimension 0")
    _refused(_model(Tensor("w", (4, 2), scales=(0.1, 0.2), axis=5)), "along dimension 5")
    _refused(_model(Tensor("x", (2,), scales=(0.1,), zero_points=(200,))), "zero point lies outside the INT8 range")
    _refused(_model(Tensor("x", (2,), scales=(float("nan"),))), "zero, negative or not finite")
    _refused(_model(Tensor("x", (2,), scales=(0.0,))), "zero, negative or not finite")
    _refused(_model(Tensor("w", (2, 1), scales=(0.1, -0.1), axis=0)), "zero, negative or not finite")
    _refused(_model(Tensor("x", (2,), scales=(0.1, 0.1), zero_points=(0,), axis=0)), "2 scales but 1 zero points")
    q = parse_tflite(_model(Tensor("w", (4, 2), scales=(0.1, 0.2, 0.3, 0.4), zero_points=(0, 1, 2, 3)))).tensors[0]
    assert q.quantization.per_channel and q.quantization.zero_points.tolist() == [0, 1, 2, 3]


def test_bad_values_are_refused():
    data = tiny_conv()
    fb = _root(data)
    _refused(_patched(data, field_position(fb.Subgraphs(0).Tensors(0), 1), "<b", 100), "unknown tensor type 100")
    _refused(_patched(data, field_position(fb, 0), "<I", 2), "schema version 2")
    name = fb.Subgraphs(0).Tensors(0)._tab.Vector(fb.Subgraphs(0).Tensors(0)._tab.Offset(10))
    _refused(_patched(data, name, "<B", 0xFF), "tensor 0 name is not UTF-8")
    version = field_position(fb.OperatorCodes(0), 2)
    _refused(_patched(data, version, "<i", 0), "operator code 0: version 0")


def test_damaged_options_table_is_refused(lenet):
    op = _root(lenet).Subgraphs(0).Operators(0)
    options = op._tab.Indirect(field_position(op, 4))
    _refused(_patched(lenet, options, "<i", options + 64), "operator 0 (CONV_2D) builtin_options", "outside the file")
    vtable = options - struct.unpack_from("<i", lenet, options)[0]
    _refused(_patched(lenet, vtable + 4, "<H", 0xFFF0), "operator 0 (CONV_2D) builtin_options", "outside its table")


def test_shared_vectors_cannot_make_reading_quadratic():
    """20,000 operators on one 20,000-element input vector: refused after reading about the file's size."""
    data = shared_vector_model(20_000, 20_000)
    tracemalloc.start()
    started = time.perf_counter()
    _refused(data, "reference more data than the file holds")
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 5 and peak < 64 * len(data), (elapsed, peak)
    assert len(parse_tflite(shared_vector_model(3, 4)).operators) == 3


def test_shared_buffers_cannot_multiply_the_constants():
    _refused(shared_buffer_model(3000, 100_000), "constants add up to 300000000 bytes")
    model = parse_tflite(shared_buffer_model(3, 100))
    assert [t.data_offset for t in model.tensors] == [model.tensors[0].data_offset] * 3


def test_options_vectors_and_metadata_read():
    data = build_tflite(
        [Tensor("x", (1, 6)), Tensor("y", (2, 3))],
        [Operator("RESHAPE", (0,), (1,), 1, "ReshapeOptions", {"new_shape": (2, 3)})],
        (0,),
        (1,),
        metadata={"a": b"\x00\x01", "b": b""},
        description="hello",
    )
    model = parse_tflite(data)
    assert model.operators[0].options == {"new_shape": (2, 3)}
    assert model.metadata == {"a": b"\x00\x01", "b": b""} and model.description == "hello"
    assert model.subgraph_name == "main" and model.subgraph_count == 1
