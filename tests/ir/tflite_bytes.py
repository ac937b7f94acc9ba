"""Small .tflite flatbuffers built for tests, through the ``tflite`` package's generated builders.

:func:`build_tflite` writes a model from plain descriptions (:class:`Tensor`, :class:`Operator`), the
way TensorFlow's converter lays one out (buffer 0 empty, one buffer per constant, metadata entries
pointing at buffers), so a test can make exactly the file it needs: an op tte lacks, an absurd
shape, many tables sharing one vector. :func:`field_position` finds where a field of a real file's
table lies, for tests that rewrite bytes in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np
import tflite


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str = "INT8"
    data: bytes | None = None
    scales: tuple[float, ...] | None = None
    zero_points: tuple[int, ...] | None = None
    axis: int = 0
    signature: tuple[int, ...] | None = None


@dataclass
class Operator:
    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    version: int = 1
    options_type: str = ""
    options: dict[str, Any] = field(default_factory=dict)


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _numbers(b: flatbuffers.Builder, values, dtype: str) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype=dtype))


def _tables(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def _options(b: flatbuffers.Builder, kind: str, values: dict[str, Any]) -> int:
    vectors = {k: _numbers(b, v, "<i4") for k, v in values.items() if isinstance(v, (tuple, list))}
    getattr(tflite, f"{kind}Start")(b)
    for key, value in values.items():
        getattr(tflite, f"{kind}Add{_camel(key)}")(b, vectors.get(key, value))
    return getattr(tflite, f"{kind}End")(b)


def build_tflite(
    tensors: list[Tensor],
    operators: list[Operator],
    inputs: tuple[int, ...],
    outputs: tuple[int, ...],
    *,
    description: str = "tte test model",
    metadata: dict[str, bytes] | None = None,
    version: int = 3,
) -> bytes:
    """The bytes of a one-subgraph .tflite model."""
    b = flatbuffers.Builder(1024)
    blobs: list[bytes] = [b""]
    buffer_of = []
    for t in tensors:
        buffer_of.append(len(blobs) if t.data is not None else 0)
        if t.data is not None:
            blobs.append(t.data)
    metadata = metadata or {}
    metadata_buffers = {}
    for key, value in metadata.items():
        metadata_buffers[key] = len(blobs)
        blobs.append(value)

    buffer_tables = []
    for blob in blobs:
        data = _numbers(b, np.frombuffer(blob, np.uint8), "u1") if blob else None
        tflite.BufferStart(b)
        if data is not None:
            tflite.BufferAddData(b, data)
        buffer_tables.append(tflite.BufferEnd(b))

    types = vars(tflite.TensorType)
    tensor_tables = []
    for t, buffer in zip(tensors, buffer_of, strict=True):
        name = b.CreateString(t.name)
        shape = _numbers(b, t.shape, "<i4")
        signature = _numbers(b, t.signature, "<i4") if t.signature is not None else None
        quant = None
        if t.scales is not None:
            scales = _numbers(b, t.scales, "<f4")
            zps = _numbers(b, t.zero_points if t.zero_points is not None else [0] * len(t.scales), "<i8")
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scales)
            tflite.QuantizationParametersAddZeroPoint(b, zps)
            tflite.QuantizationParametersAddQuantizedDimension(b, t.axis)
            quant = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        if signature is not None:
            tflite.TensorAddShapeSignature(b, signature)
        tflite.TensorAddType(b, types[t.dtype])
        tflite.TensorAddBuffer(b, buffer)
        tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        tensor_tables.append(tflite.TensorEnd(b))

    codes = sorted({(op.opcode, op.version) for op in operators})
    code_tables = []
    for opcode, op_version in codes:
        value = getattr(tflite.BuiltinOperator, opcode)
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(value, 127))
        tflite.OperatorCodeAddBuiltinCode(b, value)
        tflite.OperatorCodeAddVersion(b, op_version)
        code_tables.append(tflite.OperatorCodeEnd(b))

    op_tables = []
    for op in operators:
        ins, outs = _numbers(b, op.inputs, "<i4"), _numbers(b, op.outputs, "<i4")
        options = _options(b, op.options_type, op.options) if op.options_type else None
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes.index((op.opcode, op.version)))
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        if options is not None:
            tflite.OperatorAddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, op.options_type))
            tflite.OperatorAddBuiltinOptions(b, options)
        op_tables.append(tflite.OperatorEnd(b))

    tensor_vector, op_vector = _tables(b, tensor_tables), _tables(b, op_tables)
    in_vector, out_vector = _numbers(b, inputs, "<i4"), _numbers(b, outputs, "<i4")
    sub_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensor_vector)
    tflite.SubGraphAddInputs(b, in_vector)
    tflite.SubGraphAddOutputs(b, out_vector)
    tflite.SubGraphAddOperators(b, op_vector)
    tflite.SubGraphAddName(b, sub_name)
    subgraph = tflite.SubGraphEnd(b)

    meta_tables = []
    for key in metadata:
        key_offset = b.CreateString(key)
        tflite.MetadataStart(b)
        tflite.MetadataAddName(b, key_offset)
        tflite.MetadataAddBuffer(b, metadata_buffers[key])
        meta_tables.append(tflite.MetadataEnd(b))

    code_vector, sub_vector = _tables(b, code_tables), _tables(b, [subgraph])
    buffer_vector, meta_vector = _tables(b, buffer_tables), _tables(b, meta_tables)
    text = b.CreateString(description)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, version)
    tflite.ModelAddOperatorCodes(b, code_vector)
    tflite.ModelAddSubgraphs(b, sub_vector)
    tflite.ModelAddDescription(b, text)
    tflite.ModelAddBuffers(b, buffer_vector)
    tflite.ModelAddMetadata(b, meta_vector)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def tiny_conv(opcode: str = "CONV_2D", version: int = 3, **options: Any) -> bytes:
    """A model of one 3x3 int8 convolution, 2 -> 3 channels on 1x4x4x2 NHWC, per-channel weights.

    ``opcode`` / ``version`` rename the operator (an op tte lacks keeps the convolution's tensors)."""
    rng = np.random.default_rng(0)
    weights = rng.integers(-127, 128, size=(3, 3, 3, 2), dtype=np.int8)
    bias = np.array([10, -20, 30], dtype="<i4")
    tensors = [
        Tensor("input", (1, 4, 4, 2), scales=(0.02,), zero_points=(-3,), signature=(-1, 4, 4, 2)),
        Tensor("conv/weights", (3, 3, 3, 2), data=weights.tobytes(), scales=(0.01, 0.02, 0.03), zero_points=(0, 0, 0)),
        Tensor("conv/bias", (3,), "INT32", bias.tobytes(), scales=(0.0002, 0.0004, 0.0006), zero_points=(0, 0, 0)),
        Tensor("output", (1, 4, 4, 3), scales=(0.05,), zero_points=(5,)),
    ]
    conv_options = {"padding": tflite.Padding.SAME, "stride_w": 1, "stride_h": 1, "fused_activation_function": 1}
    conv_options.update(options)
    ops = [Operator(opcode, (0, 1, 2), (3,), version, "Conv2DOptions", conv_options)]
    return build_tflite(tensors, ops, (0,), (3,), metadata={"min_runtime_version": b"1.14.0\0"})


def field_position(table, slot: int) -> int:
    """Where field ``slot`` of a generated-accessor ``table`` lies in its buffer (0 if absent)."""
    offset = table._tab.Offset(4 + 2 * slot)
    return table._tab.Pos + offset if offset else 0


def shared_vector_model(operators: int, inputs: int) -> bytes:
    """``operators`` ADD operators whose inputs are all one vector of ``inputs`` indices: a file of
    ~4 * (inputs + 6 * operators) bytes that a reader following every reference reads quadratically."""
    b = flatbuffers.Builder(1024)
    shared = _numbers(b, np.zeros(inputs), "<i4")
    outs = _numbers(b, [0], "<i4")
    ops = []
    for _ in range(operators):
        tflite.OperatorStart(b)
        tflite.OperatorAddInputs(b, shared)
        tflite.OperatorAddOutputs(b, outs)
        ops.append(tflite.OperatorEnd(b))
    return _wrap(b, ops, [Tensor("x", (1,))], [0])


def shared_buffer_model(tensors: int, nbytes: int) -> bytes:
    """``tensors`` constant tensors of ``nbytes`` int8 each, all on one buffer: views cost the reader
    nothing, but an importer copying each would hold ``tensors * nbytes`` bytes."""
    return _wrap(
        flatbuffers.Builder(1024), [], [Tensor(f"w{i}", (nbytes,)) for i in range(tensors)], [1] * tensors, nbytes
    )


def _wrap(b: flatbuffers.Builder, ops: list[int], tensors: list[Tensor], buffers: list[int], blob: int = 0) -> bytes:
    tensor_tables = []
    for t, buffer in zip(tensors, buffers, strict=True):
        name, shape = b.CreateString(t.name), _numbers(b, t.shape, "<i4")
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, tflite.TensorType.INT8)
        tflite.TensorAddBuffer(b, buffer)
        tflite.TensorAddName(b, name)
        tensor_tables.append(tflite.TensorEnd(b))
    buffer_tables = []
    for size in (0, blob):
        data = _numbers(b, np.zeros(size), "u1") if size else None
        tflite.BufferStart(b)
        if data is not None:
            tflite.BufferAddData(b, data)
        buffer_tables.append(tflite.BufferEnd(b))
    tensor_vector, op_vector, io = _tables(b, tensor_tables), _tables(b, ops), _numbers(b, [0], "<i4")
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.ADD)
    code = tflite.OperatorCodeEnd(b)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensor_vector)
    tflite.SubGraphAddInputs(b, io)
    tflite.SubGraphAddOutputs(b, io)
    tflite.SubGraphAddOperators(b, op_vector)
    subgraph = tflite.SubGraphEnd(b)
    codes, subs, bufs = _tables(b, [code]), _tables(b, [subgraph]), _tables(b, buffer_tables)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes)
    tflite.ModelAddSubgraphs(b, subs)
    tflite.ModelAddBuffers(b, bufs)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def tiny_depthwise() -> bytes:
    """A trainable model: 3x3 depthwise (SAME, RELU) on 1x5x5x4, flatten, FULLY_CONNECTED to 3 classes."""
    rng = np.random.default_rng(1)
    dw = rng.integers(-127, 128, size=(1, 3, 3, 4), dtype=np.int8)
    dw_scales = (0.004, 0.006, 0.005, 0.003)
    fc = rng.integers(-127, 128, size=(3, 100), dtype=np.int8)
    x_scale, h_scale, fc_scale = 0.02, 0.03, 0.002
    tensors = [
        Tensor("input", (1, 5, 5, 4), scales=(x_scale,), zero_points=(-128,)),
        Tensor("dw/weights", (1, 3, 3, 4), data=dw.tobytes(), scales=dw_scales, zero_points=(0,) * 4, axis=3),
        Tensor(
            "dw/bias", (4,), "INT32", np.array([5, -7, 100, 0], "<i4").tobytes(),
            scales=tuple(x_scale * s for s in dw_scales), zero_points=(0,) * 4,
        ),
        Tensor("dw/out", (1, 5, 5, 4), scales=(h_scale,), zero_points=(-128,)),
        Tensor("flatten/shape", (2,), "INT32", np.array([1, 100], "<i4").tobytes()),
        Tensor("flatten/out", (1, 100), scales=(h_scale,), zero_points=(-128,)),
        Tensor("fc/weights", (3, 100), data=fc.tobytes(), scales=(fc_scale,) * 3, zero_points=(0,) * 3),
        Tensor(
            "fc/bias", (3,), "INT32", np.array([50, -50, 0], "<i4").tobytes(),
            scales=(h_scale * fc_scale,) * 3, zero_points=(0,) * 3,
        ),
        Tensor("logits", (1, 3), scales=(0.1,), zero_points=(3,)),
    ]  # fmt: skip
    dw_options = {"padding": tflite.Padding.SAME, "stride_w": 1, "stride_h": 1, "depth_multiplier": 1}
    ops = [
        Operator(
            "DEPTHWISE_CONV_2D", (0, 1, 2), (3,), 3, "DepthwiseConv2DOptions",
            {**dw_options, "fused_activation_function": 1},
        ),
        Operator("RESHAPE", (3, 4), (5,), 1),
        Operator("FULLY_CONNECTED", (5, 6, 7), (8,), 4, "FullyConnectedOptions", {}),
    ]  # fmt: skip
    return build_tflite(tensors, ops, (0,), (8,))
