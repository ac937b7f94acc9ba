"""The ``.tte`` file: one versioned file holding a JSON graph and its constant tensors.

Layout (all integers little-endian)::

    offset 0   8 bytes   magic b"TTEGRAPH"
    offset 8   u32       length N of the JSON header
    offset 12  N bytes   UTF-8 JSON header
    ...        padding   zero bytes up to a multiple of 64
    ...        blobs     each constant's raw little-endian C-order bytes at its recorded offset
                         (relative to the start of the blob area), each aligned to 64 bytes

The header is ``{"format": "tte", "version": [major, minor], "graph": {...}, "constants": [...]}``
where each constant entry is ``{"name", "dtype", "shape", "offset", "nbytes", "sha256"}``. A reader
accepts any minor version of its own major version and refuses a newer major version. Every problem
raises one :class:`TteFormatError` naming the file and what is wrong. Writes are atomic (temporary
file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tte_ir._ir import DType, Graph, Node, Op, QuantParams, TensorSpec, TteError, VerifyError
from tte_ir.verify import verify

__all__ = ["FORMAT_VERSION", "TteFormatError", "graph_from_json", "graph_to_json", "load", "save"]

MAGIC = b"TTEGRAPH"
FORMAT_VERSION = (1, 0)
_ALIGN = 64


class TteFormatError(TteError):
    """A ``.tte`` file cannot be read: bad magic, invalid JSON, newer version, bad checksum, bad tensor."""


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


def graph_from_json(data: dict[str, Any], constants: dict[str, np.ndarray]) -> Graph:
    """Rebuild (and verify) a graph from :func:`graph_to_json` data and its constants."""
    tensors = {}
    for t in data["tensors"]:
        quant = None
        if t.get("quant") is not None:
            q = t["quant"]
            quant = QuantParams(tuple(q["scale"]), int(q["zero_point"]), q.get("axis"))
        tensors[t["name"]] = TensorSpec(t["name"], tuple(t["shape"]), DType.from_name(t["dtype"]), quant)
    nodes = [
        Node(n["name"], Op.from_name(n["op"]), n["inputs"], n["outputs"], n.get("attrs", {})) for n in data["nodes"]
    ]
    graph = Graph(
        data["name"], tensors, tuple(nodes), data["inputs"], data["outputs"], constants, data.get("metadata", {})
    )
    return verify(graph)


def save(graph: Graph, path: str | os.PathLike[str]) -> Path:
    """Write ``graph`` to ``path`` atomically and return the path."""
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
    header = json.dumps(
        {"format": "tte", "version": list(FORMAT_VERSION), "graph": graph_to_json(graph), "constants": entries},
        separators=(",", ":"),
    ).encode("utf-8")
    prefix = MAGIC + struct.pack("<I", len(header)) + header
    prefix += b"\0" * (-len(prefix) % _ALIGN)
    atomic_write_bytes(path, prefix + b"".join(blobs))
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike[str]) -> Graph:
    """Read and verify a ``.tte`` file. Raises :class:`TteFormatError` naming the file and the problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TteFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data[: len(MAGIC)] != MAGIC:
        raise TteFormatError(f"{path}: not a .tte file (bad magic bytes)")
    if len(data) < len(MAGIC) + 4:
        raise TteFormatError(f"{path}: truncated header")
    (header_len,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    if start + header_len > len(data):
        raise TteFormatError(f"{path}: truncated header ({header_len} bytes announced, {len(data) - start} present)")
    try:
        header = json.loads(data[start : start + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TteFormatError(f"{path}: the JSON header is invalid ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != "tte":
        raise TteFormatError(f"{path}: the header does not describe a tte graph")
    version = header.get("version")
    if not (isinstance(version, list) and len(version) == 2 and all(isinstance(v, int) for v in version)):
        raise TteFormatError(f"{path}: missing or malformed format version")
    if version[0] > FORMAT_VERSION[0]:
        raise TteFormatError(
            f"{path}: format version {version[0]}.{version[1]} is newer than this tte-ir reads "
            f"({FORMAT_VERSION[0]}.x); upgrade tte-ir"
        )
    blob_start = start + header_len + (-(start + header_len) % _ALIGN)
    try:
        constants = _read_constants(path, data, blob_start, header["constants"])
        _check_all_constants_present(path, header["graph"], constants)
        graph = graph_from_json(header["graph"], constants)
    except TteFormatError:
        raise
    except VerifyError as exc:
        raise TteFormatError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, TteError) as exc:
        raise TteFormatError(f"{path}: malformed graph ({type(exc).__name__}: {exc})") from None
    return graph


def _read_constants(path: Path, data: bytes, blob_start: int, entries: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    constants = {}
    for entry in entries:
        name = entry["name"]
        dtype = DType.from_name(entry["dtype"]).numpy.newbyteorder("<")
        shape = tuple(int(d) for d in entry["shape"])
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if entry["nbytes"] != expected:
            raise TteFormatError(
                f"{path}: tensor '{name}' holds {entry['nbytes']} bytes, its shape {list(shape)} needs {expected}"
            )
        begin = blob_start + int(entry["offset"])
        raw = data[begin : begin + expected]
        if len(raw) != expected:
            raise TteFormatError(f"{path}: tensor '{name}' is truncated ({len(raw)} of {expected} bytes)")
        if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
            raise TteFormatError(f"{path}: tensor '{name}' fails its checksum (file corrupted)")
        constants[name] = np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    return constants


def _check_all_constants_present(path: Path, graph: dict[str, Any], constants: dict[str, np.ndarray]) -> None:
    written = set(graph["inputs"])
    for node in graph["nodes"]:
        written.update(node["outputs"])
    for tensor in graph["tensors"]:
        if tensor["name"] not in written and tensor["name"] not in constants:
            raise TteFormatError(f"{path}: tensor '{tensor['name']}' has no data (missing constant)")
