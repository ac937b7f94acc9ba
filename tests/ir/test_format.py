"""The .tte file: lossless round trips and one clear TteFormatError per kind of damage."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from conftest import SEED_MODELS

from tte_ir import TteFormatError, import_seed_pkl, load, reference, save
from tte_ir.serialize import MAGIC, graph_to_json

from .helpers import tiny_residual_graph


def assert_same_graph(a, b):
    assert graph_to_json(a) == graph_to_json(b)
    assert a.constants.keys() == b.constants.keys()
    for name in a.constants:
        assert a.constants[name].dtype == b.constants[name].dtype
        np.testing.assert_array_equal(a.constants[name], b.constants[name])


@pytest.mark.parametrize("model", SEED_MODELS)
def test_seed_model_round_trip_is_lossless(tmp_path, seed_model_path, model):
    graph = import_seed_pkl(seed_model_path(model), 10)
    path = save(graph, tmp_path / f"{model}.tte")
    again = load(path)
    assert_same_graph(graph, again)
    x = np.random.default_rng(1).integers(-128, 128, graph.tensors["input"].shape).astype(np.int8)
    np.testing.assert_array_equal(reference.run_forward(graph, x), reference.run_forward(again, x))
    # saving the loaded graph gives the same bytes
    assert save(again, tmp_path / "again.tte").read_bytes() == path.read_bytes()


def _parts(path):
    data = path.read_bytes()
    (n,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    return data, json.loads(data[start : start + n]), start, n


def _rewrite_header(path, edit):
    data, header, start, n = _parts(path)
    edit(header)
    blob_start = start + n + (-(start + n) % 64)
    new = json.dumps(header).encode()
    prefix = MAGIC + struct.pack("<I", len(new)) + new
    prefix += b"\0" * (-len(prefix) % 64)
    path.write_bytes(prefix + data[blob_start:])


@pytest.fixture
def tiny_file(tmp_path):
    return save(tiny_residual_graph().build(), tmp_path / "tiny.tte")


def test_tiny_round_trip(tiny_file):
    assert_same_graph(tiny_residual_graph().build(), load(tiny_file))


def test_newer_major_version(tiny_file):
    _rewrite_header(tiny_file, lambda h: h.__setitem__("version", [2, 0]))
    with pytest.raises(TteFormatError, match=r"tiny.tte: format version 2.0 is newer than this tte-ir reads"):
        load(tiny_file)


def test_newer_minor_version_is_read(tiny_file):
    _rewrite_header(tiny_file, lambda h: h.__setitem__("version", [1, 7]))
    assert load(tiny_file).name == "tiny"


def test_checksum_mismatch(tiny_file):
    _, header, start, n = _parts(tiny_file)
    entry = header["constants"][0]
    blob_start = start + n + (-(start + n) % 64)
    data = bytearray(tiny_file.read_bytes())
    data[blob_start + entry["offset"]] ^= 0x01
    tiny_file.write_bytes(bytes(data))
    with pytest.raises(TteFormatError, match=f"tensor '{entry['name']}' fails its checksum"):
        load(tiny_file)


def test_missing_tensor(tiny_file):
    _rewrite_header(tiny_file, lambda h: h.__setitem__("constants", [c for c in h["constants"] if c["name"] != "c.b"]))
    with pytest.raises(TteFormatError, match=r"tiny.tte: tensor 'c.b' has no data \(missing constant\)"):
        load(tiny_file)


def test_mis_shaped_tensor(tiny_file):
    def edit(h):
        entry = next(c for c in h["constants"] if c["name"] == "c.w")
        entry["shape"] = [2, 2, 9]

    _rewrite_header(tiny_file, edit)
    with pytest.raises(TteFormatError, match=r"constant 'c.w' is int8\[2, 2, 9\], declared int8\[2, 2, 3, 3\]"):
        load(tiny_file)


def test_wrong_byte_count(tiny_file):
    def edit(h):
        next(c for c in h["constants"] if c["name"] == "c.w")["nbytes"] = 3

    _rewrite_header(tiny_file, edit)
    with pytest.raises(TteFormatError, match=r"tensor 'c.w' holds 3 bytes, its shape \[2, 2, 3, 3\] needs 36"):
        load(tiny_file)


def test_invalid_json(tiny_file):
    data = bytearray(tiny_file.read_bytes())
    data[len(MAGIC) + 4] = ord("[") + 1  # '\\' is not valid JSON at the start
    tiny_file.write_bytes(bytes(data))
    with pytest.raises(TteFormatError, match="tiny.tte: the JSON header is invalid"):
        load(tiny_file)


def test_not_a_tte_file(tmp_path):
    path = tmp_path / "x.tte"
    path.write_bytes(b"PK\x03\x04 something else")
    with pytest.raises(TteFormatError, match="x.tte: not a .tte file"):
        load(path)


def test_truncated_file(tiny_file):
    tiny_file.write_bytes(tiny_file.read_bytes()[:200])
    with pytest.raises(TteFormatError, match="tiny.tte: truncated"):
        load(tiny_file)


def test_unknown_op(tiny_file):
    _rewrite_header(tiny_file, lambda h: h["graph"]["nodes"][0].__setitem__("op", "lstm"))
    with pytest.raises(TteFormatError, match="unsupported op 'lstm'"):
        load(tiny_file)


def test_missing_file(tmp_path):
    with pytest.raises(TteFormatError, match="nope.tte: cannot read"):
        load(tmp_path / "nope.tte")


def test_write_is_atomic(tiny_file, monkeypatch):
    """A write that fails half-way leaves the previous file intact and no temporary file behind."""
    before = tiny_file.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        save(tiny_residual_graph().build(), tiny_file)
    assert tiny_file.read_bytes() == before
    assert [p.name for p in tiny_file.parent.iterdir()] == ["tiny.tte"]
