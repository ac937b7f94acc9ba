"""The ``.tte`` file: one versioned file holding a JSON graph and its constant tensors.

Layout (all integers little-endian)::

    offset 0   8 bytes   magic b"TTEGRAPH"
    offset 8   u32       length N of the JSON header
    offset 12  N bytes   UTF-8 JSON header
    12 + N     32 bytes  SHA-256 of the N header bytes (format 2)
    ...        padding   zero bytes up to a multiple of 64
    ...        blobs     each constant's raw little-endian C-order bytes at its recorded offset
                         (relative to the start of the blob area), each aligned to 64 bytes

The header is ``{"format": "tte", "version": [major, minor], "graph": {...}, "constants": [...]}``
where each constant entry is ``{"name", "dtype", "shape", "offset", "nbytes", "sha256"}``. A reader
accepts any minor version of its own major version and refuses another major version: format 1
files (no header checksum) get a message saying how to re-create them. Every header byte is covered
by its checksum and every tensor by its own, so a flipped bit is refused rather than read as another
scale. Every value is checked by type and range as it is read (no NaN or infinity anywhere, sizes
bounded and checked against the file's size before anything is read or allocated), then the graph
is verified (:func:`tte_ir.verify`); every problem raises one :class:`TteFormatError` naming the
file, what is wrong and what to do. Writes are atomic (temporary file in the same folder, then
``os.replace``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import stat
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from tte_ir._ir import DType, Graph, Node, Op, QuantParams, TensorSpec, TteError
from tte_ir.verify import MAX_ELEMENTS, MAX_RANK, verify

__all__ = ["FORMAT_VERSION", "TteFormatError", "atomic_write_bytes", "graph_from_json", "graph_to_json", "load", "save"]

MAGIC = b"TTEGRAPH"
FORMAT_VERSION = (2, 0)
_ALIGN = 64
_DIGEST = 32
# JSON nesting deeper than this is refused: a graph header nests 6 levels, metadata a few more.
MAX_NESTING = 64
# Integers longer than this many digits are refused while parsing (no size of a graph needs more).
_MAX_DIGITS = 20
# Largest float32 value: a quantization scale above it would turn into infinity in the engine.
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_DAMAGED = "the file is damaged or was not written by tte-ir; re-create it from its source model"


class TteFormatError(TteError):
    """A ``.tte`` file cannot be read: bad magic, invalid JSON, another version, bad checksum, bad value."""


class _Bad(Exception):
    """A problem in the header, raised deep in the checks; :func:`load` adds the file name and advice."""


def graph_to_json(graph: Graph) -> dict[str, Any]:
    """The graph's structure (everything but constant data) as JSON-ready data."""
    return {
        "name": graph.name,
        "inputs": list(graph.inputs),
        "outputs": list(graph.outputs),
        "tensors": [_tensor_to_json(spec) for spec in graph.tensors.values()],
        "nodes": [
            {
                "name": n.name,
                "op": n.op.name.lower(),
                "inputs": list(n.inputs),
                "outputs": list(n.outputs),
                "attrs": dict(n.attrs),
            }
            for n in graph.nodes
        ],
        "metadata": dict(graph.metadata),
    }


def _tensor_to_json(spec: TensorSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype.name.lower()}
    if spec.quant is not None:
        out["quant"] = {"scale": list(spec.quant.scale), "zero_point": spec.quant.zero_point, "axis": spec.quant.axis}
    return out


def graph_from_json(data: Any, constants: Mapping[str, np.ndarray]) -> Graph:
    """Rebuild (and verify) a graph from :func:`graph_to_json` data and its constants.

    Every value is checked by type and range first; a problem raises :class:`TteError` saying what is
    wrong where (:class:`~tte_ir.VerifyError` for a graph that breaks an invariant)."""
    try:
        graph = _graph(data, constants)
    except _Bad as exc:
        raise TteError(str(exc)) from None
    return verify(graph)


def _graph(data: Any, constants: Mapping[str, np.ndarray]) -> Graph:
    data = _object(data, "graph")
    tensors = {}
    for i, t in enumerate(_list(_key(data, "tensors", "graph"), "graph.tensors")):
        where = f"graph.tensors[{i}]"
        t = _object(t, where)
        name = _name(_key(t, "name", where), f"{where}.name")
        if name in tensors:
            raise _Bad(f"tensor '{name}' is declared twice")
        tensors[name] = TensorSpec(
            name,
            _shape(_key(t, "shape", where), f"tensor '{name}' shape"),
            _dtype(_key(t, "dtype", where), f"tensor '{name}' dtype"),
            _quant(t.get("quant"), f"tensor '{name}' quant"),
        )
    nodes = []
    for i, n in enumerate(_list(_key(data, "nodes", "graph"), "graph.nodes")):
        where = f"graph.nodes[{i}]"
        n = _object(n, where)
        name = _name(_key(n, "name", where), f"{where}.name")
        op = _name(_key(n, "op", where), f"node '{name}' op")
        try:
            kind = Op.from_name(op)
        except TteError as exc:
            raise _Bad(f"node '{name}': {exc}") from None
        nodes.append(
            Node(
                name,
                kind,
                _names(_key(n, "inputs", where), f"node '{name}' inputs"),
                _names(_key(n, "outputs", where), f"node '{name}' outputs"),
                _object(n.get("attrs", {}), f"node '{name}' attrs"),
            )
        )
    return Graph(
        _name(_key(data, "name", "graph"), "graph.name"),
        tensors,
        tuple(nodes),
        _names(_key(data, "inputs", "graph"), "graph.inputs"),
        _names(_key(data, "outputs", "graph"), "graph.outputs"),
        dict(constants),
        _object(data.get("metadata", {}), "graph.metadata"),
    )


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _key(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise _Bad(f"{where} has no '{key}'")
    return obj[key]


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _Bad(f"{where} must be a JSON object, not {_show(value)}")
    return dict(value)


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise _Bad(f"{where} must be a JSON list, not {_show(value)}")
    return list(value)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{where} must be a string, not {_show(value)}")
    return value


def _name(value: Any, where: str) -> str:
    """A name (of a graph, tensor, node, op or dtype): error messages and C identifiers are made of them."""
    text = _string(value, where)
    if not text or not text.isprintable():
        raise _Bad(f"{where} is {_show(text)}: a name is a non-empty string of printable characters")
    return text


def _names(value: Any, where: str) -> tuple[str, ...]:
    return tuple(_name(v, f"{where}[{i}]") for i, v in enumerate(_list(value, where)))


def _int(value: Any, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _Bad(f"{where} is {_show(value)}: expected an integer in [{low}, {high}]")
    return value


def _shape(value: Any, where: str) -> tuple[int, ...]:
    dims = _list(value, where)
    if not 1 <= len(dims) <= MAX_RANK:
        raise _Bad(f"{where} has {len(dims)} sizes: expected 1 to {MAX_RANK}")
    shape = tuple(_int(d, f"{where}[{i}]", 1, MAX_ELEMENTS) for i, d in enumerate(dims))
    if math.prod(shape) > MAX_ELEMENTS:
        raise _Bad(f"{where} {list(shape)} has more than {MAX_ELEMENTS} elements")
    return shape


def _dtype(value: Any, where: str) -> DType:
    try:
        return DType.from_name(_name(value, where))
    except TteError as exc:
        raise _Bad(f"{where}: {exc}") from None


def _quant(value: Any, where: str) -> QuantParams | None:
    if value is None:
        return None
    q = _object(value, where)
    scales = _list(_key(q, "scale", where), f"{where}.scale")
    for i, s in enumerate(scales):
        if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0 < s <= _FLOAT32_MAX:
            raise _Bad(f"{where}.scale[{i}] is {_show(s)}: expected a finite number > 0 (a float32)")
    zero_point = _int(_key(q, "zero_point", where), f"{where}.zero_point", -128, 127)
    axis = q.get("axis")
    if axis is not None:
        axis = _int(axis, f"{where}.axis", 0, MAX_RANK - 1)
    return QuantParams(tuple(float(s) for s in scales), zero_point, axis)


def save(graph: Graph, path: str | os.PathLike[str]) -> Path:
    """Write ``graph`` to ``path`` atomically and return the path.

    Raises :class:`TteFormatError` when the graph's metadata holds a value JSON cannot carry exactly
    (NaN, infinity), which :func:`load` would refuse."""
    path = Path(path)
    entries = []
    blobs = []
    offset = 0
    for name, array in graph.constants.items():
        raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        entries.append(
            {
                "name": name,
                "dtype": DType.from_numpy(array.dtype).name.lower(),
                "shape": list(array.shape),
                "offset": offset,
                "nbytes": len(raw),
                "sha256": hashlib.sha256(raw).hexdigest(),
            }
        )
        padded = raw + b"\0" * (-len(raw) % _ALIGN)
        blobs.append(padded)
        offset += len(padded)
    try:
        header = json.dumps(
            {"format": "tte", "version": list(FORMAT_VERSION), "graph": graph_to_json(graph), "constants": entries},
            separators=(",", ":"),
            allow_nan=False,
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TteFormatError(
            f"{path}: graph '{graph.name}' holds a value a .tte file cannot store ({exc}); remove it from its metadata"
        ) from None
    prefix = MAGIC + struct.pack("<I", len(header)) + header + hashlib.sha256(header).digest()
    prefix += b"\0" * (-len(prefix) % _ALIGN)
    atomic_write_bytes(path, prefix + b"".join(blobs))
    return path


def _umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so readers never see half a file.

    The file gets the mode a plain ``open(path, "w")`` gives: an existing file's, else ``0o666`` less
    the umask (the temporary file is created ``0o600``). On any exception the temporary file
    (``.<name>.<random>.tmp`` next to ``path``) is removed; a killed process leaves it behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike[str]) -> Graph:
    """Read and verify a ``.tte`` file.

    Any problem, whatever the bytes, raises one :class:`TteFormatError` naming the file, what is wrong
    and what to do; nothing larger than the file is ever allocated."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            return _load(f, size)
    except TteFormatError as exc:
        message = f"{path}: {exc}"
    except (_Bad, TteError) as exc:
        message = f"{path}: {exc} ({_DAMAGED})"
    except OSError as exc:
        message = f"{path}: cannot read ({exc.strerror or exc})"
    raise TteFormatError(_one_line(message))


def _one_line(message: str) -> str:
    """``message`` with control characters escaped: a value quoted from the file never breaks the line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def _read(f: BinaryIO, offset: int, count: int) -> bytes:
    f.seek(offset)
    data = f.read(count)
    if len(data) != count:
        raise _Bad(f"truncated: {count} bytes expected at offset {offset}, {len(data)} present")
    return data


def _load(f: BinaryIO, size: int) -> Graph:
    start = len(MAGIC) + 4
    if f.read(len(MAGIC)) != MAGIC:
        raise TteFormatError("not a .tte file (bad magic bytes)")
    if size < start:
        raise _Bad("truncated header")
    (header_len,) = struct.unpack("<I", _read(f, len(MAGIC), 4))
    if start + header_len > size:
        raise _Bad(f"truncated header ({header_len} bytes announced, {size - start} present)")
    raw = _read(f, start, header_len)
    digest = f.read(_DIGEST)
    if len(digest) == _DIGEST and hashlib.sha256(raw).digest() == digest:
        header = _parse_header(raw)
        _check_version(header)
    else:
        # No valid checksum: the version, if it can be read, tells an older or newer file from a damaged one.
        with contextlib.suppress(_Bad):
            _check_version(_parse_header(raw))
        raise _Bad("the header fails its checksum")
    blob_start = start + header_len + _DIGEST
    blob_start += -blob_start % _ALIGN
    constants = _read_constants(f, size - blob_start, blob_start, _key(header, "constants", "header"))
    graph = _graph(_key(header, "graph", "header"), constants)
    _check_all_constants_present(graph, constants)
    return verify(graph)


def _parse_header(raw: bytes) -> dict[str, Any]:
    """The JSON header, refusing NaN, infinity, overlong numbers and deep nesting while it is parsed."""
    try:
        header = json.loads(
            raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_short_int
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Bad(f"the JSON header is invalid ({exc})") from None
    except RecursionError:
        raise _Bad(f"the JSON header nests deeper than {MAX_NESTING} levels") from None
    _check_nesting(header)
    if not isinstance(header, dict) or header.get("format") != "tte":
        raise _Bad("the header does not describe a tte graph")
    return header


def _refuse_constant(name: str) -> Any:
    raise _Bad(f"the header holds {name}: every number must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Bad(f"the header holds {text[:20]}, which is not a finite float")
    return value


def _short_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_DIGITS:
        raise _Bad(f"the header holds an integer of {len(text)} digits (at most {_MAX_DIGITS})")
    return int(text)


def _check_nesting(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            raise _Bad(f"the JSON header nests deeper than {MAX_NESTING} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _check_version(header: dict[str, Any]) -> None:
    version = header.get("version")
    if not (
        isinstance(version, list)
        and len(version) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in version)
    ):
        raise _Bad("missing or malformed format version")
    major, minor = version
    reads = f"this tte-ir reads format {FORMAT_VERSION[0]}.x"
    if major > FORMAT_VERSION[0]:
        raise TteFormatError(f"format version {major}.{minor} is newer than {reads}; upgrade tte-ir")
    if major < FORMAT_VERSION[0]:
        raise TteFormatError(
            f"format version {major}.{minor} is older than {reads} (format 2 adds a header checksum); re-create "
            "the file with this tte-ir: re-import the model (`tte import-pkl`) or re-run the command that wrote it"
        )


def _read_constants(f: BinaryIO, available: int, blob_start: int, entries: Any) -> dict[str, np.ndarray]:
    """Each constant, its declared size checked against the file before its bytes are read."""
    constants: dict[str, np.ndarray] = {}
    for i, entry in enumerate(_list(entries, "constants")):
        where = f"constants[{i}]"
        entry = _object(entry, where)
        name = _name(_key(entry, "name", where), f"{where}.name")
        if name in constants:
            raise _Bad(f"tensor '{name}' has two data entries")
        dtype = _dtype(_key(entry, "dtype", where), f"tensor '{name}' dtype").numpy.newbyteorder("<")
        shape = _shape(_key(entry, "shape", where), f"tensor '{name}' shape")
        expected = math.prod(shape) * dtype.itemsize
        nbytes = _int(_key(entry, "nbytes", where), f"tensor '{name}' nbytes", 0, MAX_ELEMENTS * dtype.itemsize)
        if nbytes != expected:
            raise _Bad(f"tensor '{name}' holds {nbytes} bytes, its shape {list(shape)} needs {expected}")
        offset = _int(_key(entry, "offset", where), f"tensor '{name}' offset", 0, MAX_ELEMENTS * 8)
        if offset + nbytes > available:
            raise _Bad(
                f"tensor '{name}' is truncated: {nbytes} bytes at offset {offset}, "
                f"the file holds {max(available, 0)} bytes of tensor data"
            )
        checksum = _string(_key(entry, "sha256", where), f"tensor '{name}' sha256")
        raw = _read(f, blob_start + offset, nbytes)
        if hashlib.sha256(raw).hexdigest() != checksum:
            raise _Bad(f"tensor '{name}' fails its checksum")
        constants[name] = np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    return constants


def _check_all_constants_present(graph: Graph, constants: Mapping[str, np.ndarray]) -> None:
    written = set(graph.inputs)
    for node in graph.nodes:
        written.update(node.outputs)
    for name in graph.tensors:
        if name not in written and name not in constants:
            raise _Bad(f"tensor '{name}' has no data (missing constant)")
