"""The seed-model importer: structure, safety and schema errors."""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import Counter

import numpy as np
import pytest

from tte_ir import DType, Op, SeedModelError, import_seed_pkl, summarize
from tte_ir.importers.seed_pkl import MAX_PICKLE_BYTES

# (convs including the head, adds, MACs in millions at 128x128, int8 weight bytes with a 10-class head)
EXPECTED = {
    "mcunet-5fps": (43, 7, 464_816),
    "mbv2-w0.35": (52, 10, None),
    "proxyless-w0.3": (61, 13, None),
}


@pytest.mark.parametrize("model", list(EXPECTED))
def test_structure(seed_model_path, model):
    graph = import_seed_pkl(seed_model_path(model), 10)
    convs, adds, weight_bytes = EXPECTED[model]
    counts = Counter(node.op for node in graph.nodes)
    assert counts[Op.CONV2D] + counts[Op.LINEAR] == convs
    assert counts[Op.ADD] == adds
    assert graph.tensors["logits"].shape == (1, 10)
    assert graph.tensors["input"].shape == (1, 3, 128, 128)
    if weight_bytes is not None:
        assert (
            sum(graph.constants[n.inputs[1]].nbytes for n in graph.nodes if n.op in (Op.CONV2D, Op.LINEAR))
            == weight_bytes
        )
    macs = sum(r.macs for r in summarize(graph))
    assert 15e6 < macs < 25e6


def test_mcunet_macs_match_the_seed_figure(seed_model_path):
    # The paper gives 23M MACs (with the 1000-class head, 160*1000 = 0.16M of them).
    graph = import_seed_pkl(seed_model_path("mcunet-5fps"), 1000)
    assert round(sum(r.macs for r in summarize(graph)) / 1e6) == 23


def test_fp32_head_and_seeded_init(seed_model_path):
    path = seed_model_path("mbv2-w0.35")
    a = import_seed_pkl(path, 5, head="fp32", seed=1)
    b = import_seed_pkl(path, 5, head="fp32", seed=1)
    c = import_seed_pkl(path, 5, head="fp32", seed=2)
    assert a.tensors["head.w"].dtype is DType.FLOAT32 and a.tensors["logits"].dtype is DType.FLOAT32
    np.testing.assert_array_equal(a.constants["head.w"], b.constants["head.w"])
    assert not np.array_equal(a.constants["head.w"], c.constants["head.w"])
    assert np.abs(a.constants["head.w"]).max() <= 1 / np.sqrt(112)


def _zip_with_pickle(tmp_path, payload: bytes):
    path = tmp_path / "evil.pkl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")
    return path


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = _zip_with_pickle(tmp_path, pickle.dumps({"first_conv": _RunsCode(marker)}, protocol=2))
    with pytest.raises(SeedModelError, match=r"evil.pkl: refusing to load global '(builtins|io).open'"):
        import_seed_pkl(path)
    assert not marker.exists()


def test_os_system_is_refused(tmp_path):
    payload = b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR."
    with pytest.raises(SeedModelError, match="refusing to load global 'os.system'"):
        import_seed_pkl(_zip_with_pickle(tmp_path, payload))
    assert not (tmp_path / "pwned").exists()


def test_not_a_zip(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(SeedModelError, match="plain.pkl: not a torch.save zip archive"):
        import_seed_pkl(path)


def test_schema_errors_name_the_layer(tmp_path, seed_model_path):
    from tte_ir import load_seed_pkl

    model = load_seed_pkl(seed_model_path("mcunet-5fps"))
    del model["blocks"][2]["depthwise"]["params"]["w_scales"]
    buf = io.BytesIO()
    pickle.dump(model, buf, protocol=2)
    with pytest.raises(SeedModelError, match=r"blocks.2.dw: missing 'w_scales'"):
        import_seed_pkl(_zip_with_pickle(tmp_path, buf.getvalue()))


def test_bad_class_count(seed_model_path):
    with pytest.raises(SeedModelError, match="--classes must be at least 1"):
        import_seed_pkl(seed_model_path("mcunet-5fps"), 0)


def _zip_bytes(name: str, deflated: bytes, crc: int, declared: int) -> bytes:
    """A one-member zip archive around a raw deflate stream, declaring ``declared`` inflated bytes."""
    import struct

    fname = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 33, crc, len(deflated), declared, len(fname), 0)
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 33, crc, len(deflated), declared, len(fname), 0, 0, 0, 0,
        0, 0,
    )  # fmt: skip
    body = local + fname + deflated
    directory = central + fname
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), len(body), 0)
    return body + directory + end


def _gib_of_zeros() -> bytes:
    """1 GiB of zero bytes as a raw deflate stream of about 1 MiB (one flushed block repeated)."""
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(2**20)) + c.flush(zlib.Z_FULL_FLUSH)
    return block * 1024 + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


@pytest.mark.parametrize("declared", [2**30, 2**20], ids=["honest", "lying"])
def test_an_inflating_pickle_is_refused_at_once(tmp_path, declared):
    """1 MiB on disk, 1 GiB inside: refused without inflating it (the header says 1 GiB), or after
    inflating at most the pickle limit (the header says 1 MiB and lies; the CRC then fails). What shows
    it is the memory the refusal took (a loader that inflated the member would hold its gigabyte) and
    the CPU time (one that inflated it all in chunks), not a wall-clock time, which a loaded machine
    stretches."""
    import time
    import tracemalloc

    path = tmp_path / "bomb.pkl"
    path.write_bytes(_zip_bytes("archive/data.pkl", _gib_of_zeros(), 0, declared))
    assert path.stat().st_size < 2 * 2**20
    started = time.process_time()
    tracemalloc.start()
    try:
        with pytest.raises(SeedModelError, match="bomb.pkl: ") as info:
            import_seed_pkl(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_PICKLE_BYTES, peak
    assert time.process_time() - started < 0.5
    assert "\n" not in str(info.value)


def test_a_pickle_of_too_many_opcodes_is_refused(tmp_path):
    payload = pickle.dumps({"first_conv": [1] * 300_000}, protocol=2)
    with pytest.raises(SeedModelError, match="more than 200000 opcodes"):
        import_seed_pkl(_zip_with_pickle(tmp_path, payload))


def test_an_array_larger_than_the_pickle_is_refused(tmp_path):
    """numpy's reconstruction asked for a 2^40-byte array, and one buffer set into many arrays."""
    import numpy as np

    shape = b"\x8a\x06\x00\x00\x00\x00\x00\x01\x85C\x01b"  # (2**40,), b"b"
    huge = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n" + shape + b"tR."
    with pytest.raises(SeedModelError, match="more memory than the file holds"):
        import_seed_pkl(_zip_with_pickle(tmp_path, huge))
    direct = b"\x80\x02cnumpy\nndarray\n(" + shape + b"tR."  # ndarray(shape, dtype) allocates: not callable
    with pytest.raises(SeedModelError, match="malformed pickle"):
        import_seed_pkl(_zip_with_pickle(tmp_path, direct))
    state = (1, (2**16,), np.dtype(np.uint8), False, bytes(2**16))

    class Twin:  # arrays built from one memoized state: each BUILD copies the buffer
        def __reduce__(self):
            return (np.zeros(0).__reduce__()[0], (np.ndarray, (0,), b"b"), state)

    many = pickle.dumps({"first_conv": [Twin() for _ in range(3)], "blocks": [], "classifier": {}}, protocol=2)
    assert len(many) < 2**17
    with pytest.raises(SeedModelError, match="more memory than the file holds"):
        import_seed_pkl(_zip_with_pickle(tmp_path, many))
