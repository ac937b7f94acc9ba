"""A TensorFlow Lite flatbuffer, read without trusting a byte of it.

:func:`read_tflite` turns a ``.tflite`` file into plain frozen dataclasses (:class:`TfliteModel`,
:class:`TfliteTensor`, :class:`TfliteOperator`, :class:`TfliteQuantization`) that the importer and
the exporter work from. The flatbuffer's generated accessors (the ``tflite`` package) check no offset:
a negative vtable offset makes Python's ``struct`` read from the end of the buffer, and a vector's
length is taken on trust. So every table, vtable, vector and string of the structure is read here
through :class:`_Reader`, which checks each position and length against the file before reading it;
only the builtin-options tables (over a hundred kinds, whose field lists the ``tflite`` package
knows) go through the generated accessors, after their table and vtable have been checked, so those
accessors read only at non-negative positions, where an overrun raises instead of wrapping.

The work is bounded by the file: every vector and string element the reader visits is charged
against a budget of the file's size (a converter's file references each of its bytes at most once),
so tables that share or overlap their vectors cannot make reading quadratic. Flatbuffer references
(``uoffset``) only point forward and the schema nests a fixed number of levels, so no reference can
form a loop. Tensor data is never copied: it is a read-only numpy view of the file's bytes.

Whatever the bytes, a bad file raises one :class:`TfliteFormatError` line naming the file and what
is wrong.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import re
import struct
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from tte_ir._ir import TteError
from tte_ir.constants import INT32_MAX

__all__ = [
    "MAX_ELEMENTS",
    "MAX_RANK",
    "MAX_TOTAL_ELEMENTS",
    "TfliteFormatError",
    "TfliteModel",
    "TfliteOperator",
    "TfliteQuantization",
    "TfliteTensor",
    "parse_tflite",
    "read_tflite",
]

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
MAX_RANK = 8  # TFLite's kernels take at most 6 dimensions; a rank above this is not a model
MAX_ELEMENTS = 1 << 28  # elements of one tensor: far above any microcontroller model, far below a bad shape's
MAX_TOTAL_ELEMENTS = 1024**3  # over all tensors: what a forward pass of the model could have to hold
MAX_FILE_BYTES = INT32_MAX + 1  # the flatbuffer format's own limit (signed 32-bit offsets)

# numpy element types of the TensorType values with a fixed size; the others (STRING, INT4 packed two
# to a byte, RESOURCE, VARIANT) give their buffer as raw bytes.
_NUMPY_DTYPES = {
    "FLOAT32": "<f4",
    "FLOAT16": "<f2",
    "INT32": "<i4",
    "UINT8": "u1",
    "INT64": "<i8",
    "BOOL": "?",
    "INT16": "<i2",
    "COMPLEX64": "<c8",
    "INT8": "i1",
    "FLOAT64": "<f8",
    "COMPLEX128": "<c16",
    "UINT64": "<u8",
    "UINT32": "<u4",
    "UINT16": "<u2",
}
_ZERO_POINT_RANGES = {"INT8": (-128, 127), "UINT8": (0, 255), "INT16": (-32768, 32767)}


class TfliteFormatError(TteError):
    """A ``.tflite`` file cannot be read: not a flatbuffer of TFLite's schema, or damaged, or hostile."""


class _Bad(Exception):
    """A problem found deep in the reader; :func:`parse_tflite` adds the file name."""


@dataclass(frozen=True, eq=False)
class TfliteQuantization:
    """A tensor's affine quantization: ``real = scale * (code - zero_point)``.

    ``scales`` (float32) and ``zero_points`` (int64) have one entry per tensor (per-tensor) or one
    per slice along ``quantized_dimension`` (per-channel)."""

    scales: np.ndarray
    zero_points: np.ndarray
    quantized_dimension: int

    @property
    def per_channel(self) -> bool:
        """Whether there is more than one scale."""
        return len(self.scales) > 1


@dataclass(frozen=True, eq=False)
class TfliteTensor:
    """One tensor of the main subgraph.

    ``dtype`` is the TensorType name (``"INT8"``, ``"INT32"``, ``"FLOAT32"``, ...). ``shape_signature``
    is the shape with ``-1`` where the dimension is dynamic (equal to ``shape`` when the file records
    none). ``data`` is the constant's value, a read-only numpy array of ``shape`` in the tensor's
    element type (raw ``uint8`` bytes for types without a fixed size and for sparse tensors), or
    ``None`` for a tensor computed at run time; ``data_offset`` is where those bytes start in the file."""

    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str
    buffer: int
    data: np.ndarray | None
    data_offset: int | None
    quantization: TfliteQuantization | None
    is_variable: bool = False
    sparse: bool = False


@dataclass(frozen=True)
class TfliteOperator:
    """One operator of the main subgraph, in execution order.

    ``opcode`` is the BuiltinOperator name (``"CONV_2D"``; ``"CUSTOM"`` with ``custom_code`` set; a code
    this ``tflite`` package does not know reads ``"BUILTIN_<n>"``). ``inputs`` and ``outputs`` are tensor
    indices, ``-1`` for an optional input left out. ``options`` holds every field of the builtin
    options table named ``options_type`` (``"Conv2DOptions"``; ``""`` for none), keyed in snake_case as
    in TFLite's schema (``stride_w``, ``fused_activation_function``), enums as their integer values,
    vectors as tuples."""

    index: int
    opcode: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options_type: str
    options: dict[str, Any] = field(hash=False)
    custom_code: str | None = None


@dataclass(frozen=True, eq=False)
class TfliteModel:
    """What a ``.tflite`` file holds: its main subgraph (tensors, operators, inputs, outputs), the
    converter's description and metadata entries (name -> bytes), and the file's SHA-256."""

    path: str
    digest: str
    size: int
    version: int
    description: str
    tensors: tuple[TfliteTensor, ...]
    operators: tuple[TfliteOperator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    subgraph_name: str
    subgraph_count: int
    metadata: dict[str, bytes]

    def tensor(self, name: str) -> TfliteTensor:
        """The tensor called ``name`` (``KeyError`` if none)."""
        for tensor in self.tensors:
            if tensor.name == name:
                return tensor
        raise KeyError(name)


def read_tflite(path: str | os.PathLike[str]) -> TfliteModel:
    """Read and check the ``.tflite`` file at ``path``.

    Any problem raises one :class:`TfliteFormatError` line naming the file and what is wrong."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise TfliteFormatError(_one_line(f"{path}: {size} bytes, more than a flatbuffer can hold (2 GiB)"))
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise TfliteFormatError(_one_line(f"{path}: cannot read ({exc.strerror or exc})")) from None
    return parse_tflite(data, str(path))


def parse_tflite(data: bytes, name: str = "<bytes>") -> TfliteModel:
    """Check and read the bytes of a ``.tflite`` file; ``name`` names it in messages."""
    data = bytes(data)
    try:
        import tflite  # noqa: F401  (the enums and options tables below come from it)
    except ImportError:
        raise TfliteFormatError(
            f"{name}: reading .tflite files needs the tflite package: pip install 'tte-ir[tflite]'"
        ) from None
    try:
        return _parse(data, name)
    except _Bad as exc:
        raise TfliteFormatError(_one_line(f"{name}: {exc}")) from None


def _one_line(message: str) -> str:
    """``message`` with control characters escaped: a name quoted from the file never breaks the line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


class _Reader:
    """Bounds-checked flatbuffer reads over one file's bytes, with a budget of elements visited."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.budget = self.size + 1024

    def charge(self, count: int, what: str) -> None:
        self.budget -= count
        if self.budget < 0:
            raise _Bad(
                f"{what}: the file's tables reference more data than the file holds (shared or overlapping vectors)"
            )

    def scalar(self, fmt: str, pos: int, what: str) -> Any:
        width = struct.calcsize(fmt)
        if pos < 0 or pos + width > self.size:
            raise _Bad(f"{what}: offset {pos} outside the file ({self.size} bytes): truncated or damaged")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def follow(self, pos: int, what: str) -> int:
        """The position an unsigned offset stored at ``pos`` points to."""
        target = pos + self.scalar("<I", pos, what)
        if target >= self.size:
            raise _Bad(f"{what}: offset points to {target}, past the end of the file ({self.size} bytes)")
        return target

    def table(self, pos: int, what: str) -> _Table:
        vtable = pos - self.scalar("<i", pos, what)
        vtable_size = self.scalar("<H", vtable, f"{what} (vtable)")
        object_size = self.scalar("<H", vtable + 2, f"{what} (vtable)")
        if vtable_size < 4 or vtable_size % 2 or vtable + vtable_size > self.size:
            raise _Bad(f"{what}: bad vtable at {vtable} (size {vtable_size})")
        if object_size < 4 or pos + object_size > self.size:
            raise _Bad(f"{what}: table at {pos} of {object_size} bytes runs past the end of the file")
        self.charge(1, what)
        return _Table(self, pos, vtable, vtable_size, object_size, what)

    def vector(self, pos: int, width: int, what: str) -> tuple[int, int]:
        """(start of the elements, count) of the vector whose offset is stored at ``pos``."""
        start = self.follow(pos, what)
        count = self.scalar("<I", start, what)
        if start + 4 + count * width > self.size:
            raise _Bad(f"{what}: a vector of {count} elements at {start} runs past the end of the file")
        return start + 4, count


class _Table:
    """One flatbuffer table whose vtable has been checked."""

    def __init__(self, reader: _Reader, pos: int, vtable: int, vtable_size: int, object_size: int, what: str):
        self.r, self.pos, self.vtable, self.vtable_size, self.object_size, self.what = (
            reader,
            pos,
            vtable,
            vtable_size,
            object_size,
            what,
        )

    def position(self, slot: int, width: int, name: str) -> int | None:
        """Where field ``slot`` (``width`` bytes) lies in the file, None if the table leaves it out."""
        entry = 4 + 2 * slot
        if entry >= self.vtable_size:
            return None
        offset = self.r.scalar("<H", self.vtable + entry, self.what)
        if offset == 0:
            return None
        if offset + width > self.object_size:
            raise _Bad(f"{self.what}: field {name} lies outside its table")
        return self.pos + offset

    def scalar(self, slot: int, fmt: str, default: Any, name: str) -> Any:
        pos = self.position(slot, struct.calcsize(fmt), name)
        return default if pos is None else self.r.scalar(fmt, pos, f"{self.what} {name}")

    def table(self, slot: int, name: str) -> _Table | None:
        pos = self.position(slot, 4, name)
        what = f"{self.what} {name}"
        return None if pos is None else self.r.table(self.r.follow(pos, what), what)

    def array(self, slot: int, dtype: str, name: str) -> np.ndarray | None:
        """A vector of scalars as a read-only numpy view, charged to the budget (None if absent)."""
        pos = self.position(slot, 4, name)
        if pos is None:
            return None
        what = f"{self.what} {name}"
        width = np.dtype(dtype).itemsize
        start, count = self.r.vector(pos, width, what)
        self.r.charge(count, what)
        return np.frombuffer(self.r.data, dtype=dtype, count=count, offset=start)

    def ints(self, slot: int, name: str) -> tuple[int, ...]:
        values = self.array(slot, "<i4", name)
        return () if values is None else tuple(int(v) for v in values)

    def string(self, slot: int, name: str) -> str | None:
        raw = self.array(slot, "u1", name)
        if raw is None:
            return None
        try:
            return raw.tobytes().decode("utf-8")
        except UnicodeDecodeError:
            raise _Bad(f"{self.what} {name} is not UTF-8 text") from None

    def tables(self, slot: int, name: str) -> list[_Table]:
        pos = self.position(slot, 4, name)
        if pos is None:
            return []
        what = f"{self.what} {name}"
        start, count = self.r.vector(pos, 4, what)
        self.r.charge(count, what)
        return [self.r.table(self.r.follow(start + 4 * i, f"{what}[{i}]"), f"{what}[{i}]") for i in range(count)]


@cache
def _enum_names(enum_name: str) -> dict[int, str]:
    import tflite

    values = vars(getattr(tflite, enum_name))
    return {value: key for key, value in values.items() if not key.startswith("_") and isinstance(value, int)}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


@cache
def _option_fields(class_name: str) -> tuple[type | None, tuple[tuple[str, str, bool], ...]]:
    """The generated options class and its fields: (accessor, snake_case name, whether a vector)."""
    import tflite

    cls = getattr(tflite, class_name, None)
    fields: list[tuple[str, str, bool]] = []
    if cls is None:
        return None, ()
    for attr, member in vars(cls).items():
        if not callable(member) or attr.startswith("_") or attr == "Init" or attr.startswith("GetRootAs"):
            continue
        if attr.endswith(("Length", "AsNumpy", "IsNone", "BufferHasIdentifier")):
            continue
        vector = len(inspect.signature(member).parameters) > 1
        fields.append((attr, _snake(attr), vector))
    return cls, tuple(fields)


def _options(reader: _Reader, table: _Table | None, kind: int, what: str) -> tuple[str, dict[str, Any]]:
    if kind == 0:
        return "", {}
    class_name = _enum_names("BuiltinOptions").get(kind)
    cls, fields = _option_fields(class_name) if class_name else (None, ())
    if cls is None:
        return f"UNKNOWN_OPTIONS_{kind}", {}
    if table is None:
        raise _Bad(f"{what}: builtin options of type {class_name} are missing")
    slots = (table.vtable_size - 4) // 2
    reader.charge(slots, f"{what} {class_name}")
    for slot in range(slots):
        table.position(slot, 1, f"{class_name} #{slot}")
    options = cls()
    options.Init(reader.data, table.pos)
    values: dict[str, Any] = {}
    for accessor, key, vector in fields:
        try:
            if vector:
                count = getattr(options, f"{accessor}Length")()
                reader.charge(count, f"{what} {key}")
                value = getattr(options, f"{accessor}AsNumpy")()
                values[key] = () if isinstance(value, int) else tuple(value.tolist())
            else:
                value = getattr(options, accessor)()
                values[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        except (struct.error, ValueError, IndexError, TypeError, OverflowError) as exc:
            raise _Bad(f"{what}: {class_name}.{key} cannot be read: damaged table ({type(exc).__name__})") from None
    return class_name, values


def _parse(data: bytes, name: str) -> TfliteModel:
    if len(data) < 8:
        raise _Bad(f"{len(data)} bytes: too short to be a .tflite file")
    if data[4:8] != FILE_IDENTIFIER:
        raise _Bad(f"not a TFLite flatbuffer (file identifier {data[4:8]!r}, expected {FILE_IDENTIFIER!r})")
    if len(data) > MAX_FILE_BYTES:
        raise _Bad(f"{len(data)} bytes, more than a flatbuffer can hold (2 GiB)")
    r = _Reader(data)
    model = r.table(r.follow(0, "root offset"), "model")
    version = model.scalar(0, "<I", 0, "version")
    if version != SCHEMA_VERSION:
        raise _Bad(f"schema version {version}; tte reads TFLite schema version {SCHEMA_VERSION}")
    buffers = _buffers(r, model)
    opcodes = _opcodes(model)
    subgraphs = model.tables(2, "subgraphs")
    if not subgraphs:
        raise _Bad("the model has no subgraph")
    main = subgraphs[0]
    main.what = "subgraph 0"
    tensor_tables = main.tables(0, "tensors")
    tensors = tuple(_tensor(r, t, i, buffers) for i, t in enumerate(tensor_tables))
    _check_totals(tensors, len(data))
    count = len(tensors)
    inputs = _indices(main.ints(1, "inputs"), count, "subgraph input", optional=False)
    outputs = _indices(main.ints(2, "outputs"), count, "subgraph output", optional=False)
    operators = tuple(_operator(r, t, i, opcodes, count) for i, t in enumerate(main.tables(3, "operators")))
    metadata: dict[str, bytes] = {}
    for i, entry in enumerate(model.tables(6, "metadata")):
        entry.what = f"metadata[{i}]"
        key = entry.string(0, "name") or ""
        index = entry.scalar(1, "<I", 0, "buffer")
        if index >= len(buffers):
            raise _Bad(f"metadata {key!r} refers to buffer {index}; the file has {len(buffers)}")
        if key in metadata:
            raise _Bad(f"metadata {key!r} appears twice")
        start, size = buffers[index]
        r.charge(size, f"metadata {key!r}")
        metadata[key] = data[start : start + size]
    return TfliteModel(
        path=name,
        digest=hashlib.sha256(data).hexdigest(),
        size=len(data),
        version=version,
        description=model.string(3, "description") or "",
        tensors=tensors,
        operators=operators,
        inputs=inputs,
        outputs=outputs,
        subgraph_name=main.string(4, "name") or "",
        subgraph_count=len(subgraphs),
        metadata=metadata,
    )


def _check_totals(tensors: tuple[TfliteTensor, ...], size: int) -> None:
    """Bound what the tensors make later stages hold: tensors sharing one buffer are views here, but an
    importer copies each (transposed), and a forward pass holds every activation."""
    constant = sum(t.data.nbytes for t in tensors if t.data is not None)
    if constant > 4 * size + (1 << 20):
        raise _Bad(f"the tensors' constants add up to {constant} bytes, far more than the file's {size}: not a model")
    total = sum(math.prod(max(d, 1) for d in t.shape) for t in tensors)
    if total > MAX_TOTAL_ELEMENTS:
        raise _Bad(f"the tensors hold {total} elements in all (at most {MAX_TOTAL_ELEMENTS})")


def _buffers(r: _Reader, model: _Table) -> list[tuple[int, int]]:
    """(file offset, byte count) of every buffer's data."""
    out = []
    for i, buf in enumerate(model.tables(4, "buffers")):
        buf.what = f"buffer {i}"
        offset = buf.scalar(1, "<Q", 0, "offset")
        if offset > 1:  # data stored after the flatbuffer (files over 2 GiB), at an offset from the file's start
            size = buf.scalar(2, "<Q", 0, "size")
            if offset + size > r.size:
                raise _Bad(f"buffer {i}: {size} bytes at offset {offset} run past the end of the file ({r.size} bytes)")
            out.append((offset, size))
            continue
        pos = buf.position(0, 4, "data")
        if pos is None:
            out.append((0, 0))
        else:
            start, count = r.vector(pos, 1, f"buffer {i} data")
            out.append((start, count))
    return out


def _opcodes(model: _Table) -> list[tuple[str, int, str | None]]:
    """(builtin name, version, custom code) of every operator code."""
    names = _enum_names("BuiltinOperator")
    out = []
    for i, code in enumerate(model.tables(1, "operator_codes")):
        code.what = f"operator code {i}"
        # Files before schema 3a store the code in the int8 field only; newer ones in both (the int8
        # one saturated at 127, PLACEHOLDER_FOR_GREATER_OP_CODES), so the larger value is the code.
        builtin = max(code.scalar(0, "<b", 0, "deprecated_builtin_code"), code.scalar(3, "<i", 0, "builtin_code"))
        version = code.scalar(2, "<i", 1, "version")
        if version < 1:
            raise _Bad(f"operator code {i}: version {version} (versions start at 1)")
        out.append((names.get(builtin, f"BUILTIN_{builtin}"), version, code.string(1, "custom_code")))
    return out


def _indices(values: tuple[int, ...], count: int, what: str, *, optional: bool) -> tuple[int, ...]:
    low = -1 if optional else 0
    for value in values:
        if not low <= value < count:
            raise _Bad(f"{what} refers to tensor {value}; the subgraph has {count} tensors")
    return values


def _shape(values: np.ndarray | None, what: str, *, dynamic: bool) -> tuple[int, ...]:
    if values is None:
        return ()
    if len(values) > MAX_RANK:
        raise _Bad(f"{what} has rank {len(values)} (at most {MAX_RANK})")
    shape = tuple(int(v) for v in values)
    low = -1 if dynamic else 0
    if any(d < low for d in shape):
        raise _Bad(f"{what} {list(shape)} has a negative dimension")
    if math.prod(max(d, 1) for d in shape) > MAX_ELEMENTS:
        raise _Bad(f"{what} {list(shape)} has more than {MAX_ELEMENTS} elements")
    return shape


def _tensor(r: _Reader, t: _Table, index: int, buffers: list[tuple[int, int]]) -> TfliteTensor:
    t.what = f"tensor {index}"
    name = t.string(3, "name") or ""
    t.what = f"tensor {index} ({name!r})"
    shape = _shape(t.array(0, "<i4", "shape"), f"{t.what} shape", dynamic=False)
    signature_values = t.array(7, "<i4", "shape_signature")
    signature = (
        shape if signature_values is None else _shape(signature_values, f"{t.what} shape_signature", dynamic=True)
    )
    if len(signature) != len(shape) or any(s not in (-1, d) for s, d in zip(signature, shape, strict=True)):
        raise _Bad(f"{t.what}: shape_signature {list(signature)} does not fit shape {list(shape)}")
    code = t.scalar(1, "<b", 0, "type")
    dtype = _enum_names("TensorType").get(code)
    if dtype is None:
        raise _Bad(f"{t.what}: unknown tensor type {code}")
    buffer = t.scalar(2, "<I", 0, "buffer")
    if buffer >= len(buffers):
        raise _Bad(f"{t.what} refers to buffer {buffer}; the file has {len(buffers)}")
    sparse = t.position(6, 4, "sparsity") is not None
    start, size = buffers[buffer]
    data = offset = None
    if size:
        offset = start
        numpy_dtype = _NUMPY_DTYPES.get(dtype)
        if numpy_dtype is None or sparse:
            data = np.frombuffer(r.data, dtype="u1", count=size, offset=start)
        else:
            width = np.dtype(numpy_dtype).itemsize
            expected = math.prod(shape) * width
            if size != expected:
                raise _Bad(
                    f"{t.what}: buffer {buffer} holds {size} bytes; shape {list(shape)} {dtype} needs {expected}"
                )
            data = np.frombuffer(r.data, dtype=numpy_dtype, count=math.prod(shape), offset=start).reshape(shape)
    return TfliteTensor(
        index=index,
        name=name,
        shape=shape,
        shape_signature=signature,
        dtype=dtype,
        buffer=buffer,
        data=data,
        data_offset=offset,
        quantization=_quantization(t, shape, dtype),
        is_variable=bool(t.scalar(5, "<B", 0, "is_variable")),
        sparse=sparse,
    )


def _quantization(t: _Table, shape: tuple[int, ...], dtype: str) -> TfliteQuantization | None:
    q = t.table(4, "quantization")
    if q is None:
        return None
    scales = q.array(2, "<f4", "scale")
    if scales is None or len(scales) == 0:
        return None  # min/max only (a float tensor's calibration record): no affine quantization
    zero_points = q.array(3, "<i8", "zero_point")
    if zero_points is None or len(zero_points) != len(scales):
        found = 0 if zero_points is None else len(zero_points)
        raise _Bad(f"{t.what}: {len(scales)} scales but {found} zero points")
    if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
        # TFLite divides by scales (effective multipliers, activation ranges): a zero one is no model
        raise _Bad(f"{t.what}: a quantization scale is zero, negative or not finite")
    axis = q.scalar(6, "<i", 0, "quantized_dimension")
    if len(scales) > 1 and not (0 <= axis < len(shape) and shape[axis] == len(scales)):
        raise _Bad(f"{t.what}: {len(scales)} per-channel scales along dimension {axis} of shape {list(shape)}")
    bounds = _ZERO_POINT_RANGES.get(dtype)
    if bounds is not None and (zero_points.min() < bounds[0] or zero_points.max() > bounds[1]):
        raise _Bad(f"{t.what}: a zero point lies outside the {dtype} range {list(bounds)}")
    return TfliteQuantization(scales=scales, zero_points=zero_points, quantized_dimension=axis)


def _operator(r: _Reader, t: _Table, index: int, opcodes: list[tuple[str, int, str | None]], count: int):
    t.what = f"operator {index}"
    code = t.scalar(0, "<I", 0, "opcode_index")
    if code >= len(opcodes):
        raise _Bad(f"operator {index} uses operator code {code}; the file has {len(opcodes)}")
    opcode, version, custom = opcodes[code]
    t.what = f"operator {index} ({opcode})"
    inputs = _indices(t.ints(1, "inputs"), count, f"{t.what} input", optional=True)
    outputs = _indices(t.ints(2, "outputs"), count, f"{t.what} output", optional=False)
    kind = t.scalar(3, "<B", 0, "builtin_options_type")
    options_type, options = _options(r, t.table(4, "builtin_options") if kind else None, kind, t.what)
    return TfliteOperator(
        index=index,
        opcode=opcode,
        version=version,
        inputs=inputs,
        outputs=outputs,
        options_type=options_type,
        options=options,
        custom_code=custom if opcode == "CUSTOM" else None,
    )
