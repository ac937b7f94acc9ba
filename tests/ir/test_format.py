"""The .tte file: lossless round trips and one clear TteFormatError per kind of damage."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from conftest import SEED_MODELS

from tte_ir import (
    FORMAT_VERSION,
    DType,
    GraphBuilder,
    Op,
    QuantParams,
    TteFormatError,
    import_seed_pkl,
    load,
    reference,
    save,
)
from tte_ir.serialize import MAGIC, graph_to_json

from .helpers import tiny_residual_graph
from .tte_bytes import assemble, blob_sha, replace_header_text, rewrite_header, split


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


@pytest.fixture
def tiny_file(tmp_path):
    return save(tiny_residual_graph().build(), tmp_path / "tiny.tte")


# The quantization scale of input "x" as save() writes it (float32 0.05 as a Python float).
X_SCALE = '"scale":[0.05000000074505806]'


def refused(path, pattern):
    """``load(path)`` fails with one TteFormatError line naming the file and matching ``pattern``."""
    with pytest.raises(TteFormatError, match=pattern) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def test_tiny_round_trip(tiny_file):
    assert_same_graph(tiny_residual_graph().build(), load(tiny_file))


def test_plain_int_geometry_of_older_files_loads_as_tuples(tiny_file):
    """Files written before non-square geometry hold ints for a conv's stride and padding: they load as
    (sh, sw) and (top, left, bottom, right), the graph unchanged."""
    graph = load(tiny_file)
    padding = graph.nodes[0].attrs["padding"]
    assert len(padding) == 4 and len(set(padding)) == 1

    def as_ints(header):
        header["graph"]["nodes"][0]["attrs"].update(stride=1, padding=padding[0])

    rewrite_header(tiny_file, as_ints)
    again = load(tiny_file)
    assert again.nodes[0].attrs["stride"] == (1, 1) and again.nodes[0].attrs["padding"] == padding
    x = np.random.default_rng(2).integers(-128, 128, graph.tensors[graph.inputs[0]].shape).astype(np.int8)
    np.testing.assert_array_equal(reference.run_forward(again, x), reference.run_forward(graph, x))


def test_nonsquare_geometry_round_trips(tmp_path):
    b = GraphBuilder("nonsquare")
    x = b.input("x", (1, 1, 9, 6), DType.INT8, QuantParams.per_tensor(0.05, 0))
    w = b.constant("w", np.ones((2, 1, 4, 3), np.int8), QuantParams.per_channel([0.01, 0.02]))
    bias = b.constant("b", np.zeros(2, np.int32))
    y = b.tensor("y", (1, 2, 4, 8), DType.INT8, QuantParams.per_tensor(0.1, 0))
    b.node("c", Op.CONV2D, (x, w, bias), (y,), stride=[2, 1], padding=[1, 2, 0, 2])
    p = b.tensor("p", (1, 2, 2, 4), DType.INT8, QuantParams.per_tensor(0.1, 0))
    b.node("mp", Op.MAX_POOL, (y,), (p,), kernel=(2, 3), stride=(2, 2), padding=(0, 1, 0, 1))
    b.output(p)
    graph = b.build()
    assert graph.nodes[0].attrs["stride"] == (2, 1) and graph.nodes[1].attrs["kernel"] == (2, 3)
    again = load(save(graph, tmp_path / "n.tte"))
    assert_same_graph(graph, again)
    assert again.nodes[0].attrs["padding"] == (1, 2, 0, 2)


def test_newer_major_version(tiny_file):
    rewrite_header(tiny_file, lambda h: h.__setitem__("version", [3, 0]))
    with pytest.raises(TteFormatError, match=r"tiny.tte: format version 3.0 is newer than this tte-ir reads"):
        load(tiny_file)


def test_newer_minor_version_is_read(tiny_file):
    rewrite_header(tiny_file, lambda h: h.__setitem__("version", [FORMAT_VERSION[0], 7]))
    assert load(tiny_file).name == "tiny"


def test_checksum_mismatch(tiny_file):
    parts = split(tiny_file.read_bytes())
    entry = parts.header["constants"][0]
    data = bytearray(tiny_file.read_bytes())
    data[len(data) - len(parts.blobs) + entry["offset"]] ^= 0x01
    tiny_file.write_bytes(bytes(data))
    with pytest.raises(TteFormatError, match=f"tensor '{entry['name']}' fails its checksum"):
        load(tiny_file)


def test_missing_tensor(tiny_file):
    rewrite_header(tiny_file, lambda h: h.__setitem__("constants", [c for c in h["constants"] if c["name"] != "c.b"]))
    with pytest.raises(TteFormatError, match=r"tiny.tte: tensor 'c.b' has no data \(missing constant\)"):
        load(tiny_file)


def test_mis_shaped_tensor(tiny_file):
    def edit(h):
        entry = next(c for c in h["constants"] if c["name"] == "c.w")
        entry["shape"] = [2, 2, 9]

    rewrite_header(tiny_file, edit)
    with pytest.raises(TteFormatError, match=r"constant 'c.w' is int8\[2, 2, 9\], declared int8\[2, 2, 3, 3\]"):
        load(tiny_file)


def test_wrong_byte_count(tiny_file):
    def edit(h):
        next(c for c in h["constants"] if c["name"] == "c.w")["nbytes"] = 3

    rewrite_header(tiny_file, edit)
    with pytest.raises(TteFormatError, match=r"tensor 'c.w' holds 3 bytes, its shape \[2, 2, 3, 3\] needs 36"):
        load(tiny_file)


def test_invalid_json(tiny_file):
    replace_header_text(tiny_file, '\\{"format": "tte"}')
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
    rewrite_header(tiny_file, lambda h: h["graph"]["nodes"][0].__setitem__("op", "lstm"))
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


def test_format_version_is_2_with_a_header_checksum(tiny_file):
    data = tiny_file.read_bytes()
    parts = split(data)
    assert FORMAT_VERSION == (2, 0) and parts.header["version"] == [2, 0]
    end = parts.header_start + len(parts.raw_header)
    assert data[end : end + 32] == __import__("hashlib").sha256(parts.raw_header).digest()


def test_every_flipped_bit_of_a_scale_is_refused(tiny_file):
    """Format 1 read a flipped bit of a scale as another scale; the header checksum refuses it."""
    data = tiny_file.read_bytes()
    parts = split(data)
    at = parts.header_start + parts.raw_header.index(X_SCALE.encode())
    for byte in range(at, at + len(X_SCALE)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[byte] ^= 1 << bit
            tiny_file.write_bytes(bytes(damaged))
            refused(tiny_file, "the header fails its checksum|the JSON header is invalid|does not describe")


def test_flipped_bit_in_the_checksum_is_refused(tiny_file):
    data = bytearray(tiny_file.read_bytes())
    parts = split(bytes(data))
    data[parts.header_start + len(parts.raw_header) + 5] ^= 0x10
    tiny_file.write_bytes(bytes(data))
    refused(tiny_file, r"the header fails its checksum \(the file is damaged")


def test_format_1_file_gets_a_clear_message(tiny_file):
    parts = split(tiny_file.read_bytes())
    header = dict(parts.header, version=[1, 0])
    tiny_file.write_bytes(assemble(json.dumps(header).encode(), parts.blobs, checksum=False))
    message = refused(tiny_file, r"format version 1\.0 is older than this tte-ir reads format 2\.x")
    assert "re-import the model" in message and "re-run the command that wrote it" in message


def test_deeply_nested_json_is_refused(tiny_file):
    rewrite_header(tiny_file, lambda h: h["graph"]["metadata"].__setitem__("deep", json.loads("[" * 100 + "]" * 100)))
    refused(tiny_file, "nests deeper than 64 levels")
    replace_header_text(tiny_file, "[" * 100_000 + "]" * 100_000)
    refused(tiny_file, "nests deeper than 64 levels")


@pytest.mark.parametrize(
    "literal", ["NaN", "Infinity", "-Infinity", "1e400", "1" * 30, "-" + "9" * 5000], ids=lambda s: s[:10]
)
def test_non_finite_and_overlong_numbers_are_refused(tiny_file, literal):
    text = split(tiny_file.read_bytes()).raw_header.decode().replace(X_SCALE, f'"scale":[{literal}]')
    replace_header_text(tiny_file, text)
    refused(tiny_file, "not a finite float|every number must be finite|an integer of")


def _edit_tensor(tensor, **changes):
    def edit(h):
        entry = next(t for t in h["graph"]["tensors"] if t["name"] == tensor)
        for key, value in changes.items():
            if value is KeyError:
                del entry[key]
            else:
                entry[key] = value

    return edit


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"dtype": 3}, r"tensor 'x' dtype must be a string, not 3"),
        ({"dtype": ["int8"]}, "tensor 'x' dtype must be a string, not list"),
        ({"dtype": "int4"}, "unknown dtype 'int4'"),
        ({"shape": [1, 2, 4, 2**64]}, r"tensor 'x' shape\[3\] is 18446744073709551616: expected an integer"),
        ({"shape": [1, 2, 4, 4.0]}, r"shape\[3\] is 4.0: expected an integer"),
        ({"shape": [1, 2, 4, True]}, r"shape\[3\] is true: expected an integer"),
        ({"shape": [1, 2, 4, 0]}, r"shape\[3\] is 0: expected an integer in \[1,"),
        ({"shape": [1, 2, -4, 4]}, r"shape\[2\] is -4"),
        ({"shape": [2**14, 2**14, 2**14]}, "has more than 268435456 elements"),
        ({"shape": [1] * 9}, "has 9 sizes: expected 1 to 8"),
        ({"shape": "1,2,4,4"}, "tensor 'x' shape must be a JSON list"),
        ({"shape": KeyError}, r"graph.tensors\[0\] has no 'shape'"),
        ({"quant": [0.05, -3]}, "tensor 'x' quant must be a JSON object"),
        ({"quant": {"scale": "0.05", "zero_point": -3}}, "quant.scale must be a JSON list"),
        ({"quant": {"scale": ["0.05"], "zero_point": -3}}, r"quant.scale\[0\] is \"0.05\": expected a finite number"),
        ({"quant": {"scale": [0.0], "zero_point": -3}}, r"quant.scale\[0\] is 0.0: expected a finite number > 0"),
        ({"quant": {"scale": [-0.05], "zero_point": -3}}, r"scale\[0\] is -0.05"),
        ({"quant": {"scale": [1e39], "zero_point": -3}}, r"scale\[0\] is 1e\+39"),
        ({"quant": {"scale": [1e-60], "zero_point": -3}}, "has a scale that is not finite and positive"),
        ({"quant": {"scale": [0.05], "zero_point": -3.5}}, r"zero_point is -3.5: expected an integer in \[-128, 127\]"),
        ({"quant": {"scale": [0.05], "zero_point": 128}}, r"zero_point is 128"),
        ({"quant": {"scale": [0.05], "zero_point": -3, "axis": "0"}}, r"quant.axis is \"0\""),
        ({"name": 7}, r"graph.tensors\[0\].name must be a string"),
    ],
)
def test_bad_tensor_values_are_refused(tiny_file, changes, pattern):
    rewrite_header(tiny_file, _edit_tensor("x", **changes))
    message = refused(tiny_file, pattern)
    assert "re-create it" in message


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda h: h.__setitem__("graph", []), "graph must be a JSON object, not list"),
        (lambda h: h["graph"].__setitem__("tensors", {}), "graph.tensors must be a JSON list, not dict"),
        (lambda h: h["graph"]["nodes"].__setitem__(0, ["c", "conv2d"]), r"graph.nodes\[0\] must be a JSON object"),
        (lambda h: h["graph"]["nodes"][0].__setitem__("op", 1), "node 'c' op must be a string, not 1"),
        (lambda h: h["graph"]["nodes"][0].__setitem__("inputs", "x"), "node 'c' inputs must be a JSON list"),
        (lambda h: h["graph"]["nodes"][0].__setitem__("outputs", [None]), r"node 'c' outputs\[0\] must be a string"),
        (lambda h: h["graph"]["nodes"][0].__setitem__("attrs", [1]), "node 'c' attrs must be a JSON object"),
        (lambda h: h["graph"].__setitem__("metadata", "x"), "graph.metadata must be a JSON object"),
        (lambda h: h["graph"].__setitem__("inputs", [["x"]]), r"graph.inputs\[0\] must be a string"),
        (lambda h: h["graph"].__delitem__("name"), "graph has no 'name'"),
        (lambda h: h.__setitem__("constants", {"c.w": 1}), "constants must be a JSON list"),
        (lambda h: h["constants"].__setitem__(0, 5), r"constants\[0\] must be a JSON object"),
        (lambda h: h["constants"][0].__setitem__("offset", -64), "tensor 'c.w' offset is -64"),
        (lambda h: h["constants"][0].__setitem__("offset", 1.5), "tensor 'c.w' offset is 1.5"),
        (lambda h: h["constants"][0].__setitem__("sha256", None), "tensor 'c.w' sha256 must be a string"),
        (lambda h: h["constants"][0].__setitem__("dtype", None), "tensor 'c.w' dtype must be a string"),
        (lambda h: h["constants"].append(dict(h["constants"][0])), "tensor 'c.w' has two data entries"),
        (lambda h: h.__setitem__("version", [2]), "missing or malformed format version"),
        (lambda h: h.__setitem__("version", [True, 0]), "missing or malformed format version"),
        (lambda h: h["graph"]["nodes"][0].__setitem__("name", "c\n"), r"graph.nodes\[0\].name is \"c\\n\": a name is"),
        (lambda h: h["graph"]["tensors"][0].__setitem__("name", ""), r"graph.tensors\[0\].name is \"\": a name is"),
        (lambda h: h["graph"]["nodes"][0].__setitem__("op", "conv\t2d"), r"node 'c' op is \"conv\\t2d\": a name"),
    ],
)
def test_wrong_json_types_are_refused(tiny_file, edit, pattern):
    rewrite_header(tiny_file, edit)
    refused(tiny_file, pattern)


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (1.0013, r"attribute 'padding' is 1.0013: it must be an integer or a list of 4 integers in \[0, 2147483647\]"),
        ("", r"attribute 'padding' is '': it must be an integer"),
        (True, r"attribute 'padding' is True: it must be an integer"),
        (None, r"attribute 'padding' is None: it must be an integer"),
    ],
)
def test_attribute_types_are_refused(tiny_file, value, pattern):
    rewrite_header(tiny_file, lambda h: h["graph"]["nodes"][0]["attrs"].__setitem__("padding", value))
    refused(tiny_file, r"node 'c' \(conv2d\): " + pattern)


def test_nan_weights_are_refused(tmp_path):
    """A float constant (an fp32 head's weights) holding NaN is refused, checksums and all valid."""
    from tests.compiler.nets import residual_net

    graph = residual_net(head="fp32")
    path = save(graph, tmp_path / "net.tte")
    parts = split(path.read_bytes())
    entry = next(c for c in parts.header["constants"] if c["name"] == "head.w")
    blobs = bytearray(parts.blobs)
    blobs[entry["offset"] : entry["offset"] + 4] = np.float32(np.nan).tobytes()
    entry["sha256"] = blob_sha(bytes(blobs[entry["offset"] : entry["offset"] + entry["nbytes"]]))
    path.write_bytes(assemble(json.dumps(parts.header).encode(), bytes(blobs)))
    refused(path, "constant 'head.w' holds NaN or infinite values")


def test_declared_sizes_are_checked_against_the_file_before_reading(tiny_file):
    """A constant declaring 1 GiB in a small file is refused without allocating it."""

    def edit(h):
        entry = next(c for c in h["constants"] if c["name"] == "c.w")
        entry.update(dtype="float32", shape=[2**28], nbytes=2**30)

    rewrite_header(tiny_file, edit)
    tracemalloc.start()
    try:
        refused(tiny_file, r"tensor 'c.w' is truncated: 1073741824 bytes at offset 0, the file holds \d+ bytes")
        assert tracemalloc.get_traced_memory()[1] < 10 * 2**20
    finally:
        tracemalloc.stop()


def test_header_length_beyond_the_file_is_refused(tiny_file):
    data = bytearray(tiny_file.read_bytes())
    data[len(MAGIC) : len(MAGIC) + 4] = (2**32 - 1).to_bytes(4, "little")
    tiny_file.write_bytes(bytes(data))
    refused(tiny_file, r"truncated header \(4294967295 bytes announced")


def test_constant_past_the_end_of_the_file_is_refused(tiny_file):
    rewrite_header(tiny_file, lambda h: h["constants"][0].__setitem__("offset", 64 * 1000))
    refused(tiny_file, "tensor 'c.w' is truncated: 36 bytes at offset 64000, the file holds 256 bytes of tensor data")


def test_save_refuses_metadata_a_file_cannot_hold(tmp_path):
    graph = tiny_residual_graph().build()
    with pytest.raises(TteFormatError, match="x.tte: graph 'tiny' holds a value a .tte file cannot store"):
        save(graph.replace(metadata={"lr": float("nan")}), tmp_path / "x.tte")
    assert not (tmp_path / "x.tte").exists()


def test_a_value_quoted_from_the_file_never_breaks_the_line(tmp_path):
    """The training record's names reach the message as they are; control characters are escaped."""
    from tests.compiler.nets import residual_net
    from tte_ir import Scheme, compile_training

    path = save(compile_training(residual_net(), Scheme(n_bias=1, head="fp32")), tmp_path / "train.tte")
    rewrite_header(path, lambda h: h["graph"]["metadata"]["training"]["state"].__setitem__("head\nw", "head.w.next"))
    refused(path, r"training record: state names 'head\\nw', which is not a constant")
