"""Fuzzing the .tflite reader: damaged, truncated, spliced and random files are refused in one line or
read into a model whose every index and view holds, which the importer then imports (and the numpy
reference runs) or refuses in one line.

Seeds are the real int8 models of ``../shared/models/tflite`` (TensorFlow's converter output) and a
small model built here. Each property changes bytes (bit flips, bytes, 32-bit words set to hostile
offsets and lengths, truncation, tails), splices two files, or draws random bytes behind a valid root
offset and identifier, then asserts that :func:`parse_tflite` raises one :class:`TfliteFormatError`
line naming the file, or returns a model that satisfies :func:`_check_model`; any other exception, or
a case running longer than ``TTE_FUZZ_TIMEOUT`` seconds (10), fails.

``TTE_FUZZ_EXAMPLES`` sets the number of cases over all properties (400 by default, derandomized;
``nox -s fuzz`` runs many more), and ``TTE_FUZZ_REPORT`` a JSON file into which the cases run and how
they ended go under the key ``"tflite"`` (beside what the .tte reader's fuzz wrote there).
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import shared_path
from tests.fuzzing import byte_edits, fuzz_settings, set_word, time_limit, write_report
from tte_ir import TteError, reference
from tte_ir.tflite_file import TfliteFormatError, TfliteModel, parse_tflite
from tte_ir.tflite_import import import_tflite

pytest.importorskip("tflite", reason="the tflite package (tte-ir[tflite]) is not installed")

from .tflite_bytes import tiny_conv

FUZZ = fuzz_settings(properties=4)
SEED_MODELS = (
    "lenet5",
    "lenet5_b1",
    "dscnn",
    "dscnn_b1",
    "resnet8",
    "resnet8_b1",
)  # MobileNet: the same ops, 4x the bytes
OUTCOMES: Counter[str] = Counter()
NAME = "fuzzed.tflite"
WORKDIR = Path(tempfile.mkdtemp(prefix="tte-tflite-fuzz-"))
WORDS = [0, 1, 2, 3, 4, 8, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFF]


@cache
def seeds() -> dict[str, bytes]:
    out = {"tiny": tiny_conv()}
    folder = shared_path() / "models" / "tflite"
    for name in SEED_MODELS:
        path = folder / f"{name}.tflite"
        if path.exists():
            out[name] = path.read_bytes()
    return out


SEED = st.sampled_from(sorted(seeds()))


def _hostile_words(raw: bytearray, at: int) -> st.SearchStrategy[int]:
    """Values for the word at ``at``: the usual suspects, the file's length, the distance to its end, any."""
    return st.one_of(st.sampled_from([*WORDS, len(raw), len(raw) - at]), st.integers(0, 2**32 - 1))


def _check_model(model: TfliteModel, data: bytes) -> None:
    """What every consumer relies on in a model the reader returned."""
    count = len(model.tensors)
    assert all(0 <= i < count for i in (*model.inputs, *model.outputs))
    for op in model.operators:
        assert all(-1 <= i < count for i in op.inputs) and all(0 <= i < count for i in op.outputs)
        assert op.version >= 1 and isinstance(op.options, dict)
    for index, tensor in enumerate(model.tensors):
        assert tensor.index == index and len(tensor.shape) == len(tensor.shape_signature)
        assert all(d >= 0 for d in tensor.shape)
        if tensor.data is not None:
            assert not tensor.data.flags.writeable
            assert tensor.data_offset >= 0 and tensor.data_offset + tensor.data.nbytes <= len(data)
            if tensor.data.dtype != np.uint8 or tensor.dtype in ("UINT8",):
                assert tensor.data.shape == tensor.shape
            np.asarray(tensor.data).tobytes()
        q = tensor.quantization
        if q is not None:
            assert len(q.scales) == len(q.zero_points) >= 1 and np.all(np.isfinite(q.scales)) and np.all(q.scales > 0)
            assert len(q.scales) == 1 or tensor.shape[q.quantized_dimension] == len(q.scales)
    assert all(isinstance(v, bytes) for v in model.metadata.values())


def _import(data: bytes) -> str:
    """The importer and a forward pass on a file the reader took: a one-line TteError or a result."""
    path = WORKDIR / NAME
    path.write_bytes(data)
    try:
        graph = import_tflite(path)
    except TteError as exc:
        assert "\n" not in str(exc), str(exc)
        return "read, import refused"
    spec = graph.tensors[graph.inputs[0]]
    x = np.random.default_rng(0).integers(-128, 128, size=spec.shape).astype(spec.dtype.numpy)
    with np.errstate(all="ignore"):
        try:
            reference.run_forward(graph, x)
        except TteError as exc:
            assert "\n" not in str(exc), str(exc)
            return "imported, forward refused"
    return "imported, forward ran"


def check(data: bytes) -> str:
    """The property on one file's bytes; returns how it ended."""
    with time_limit():
        try:
            model = parse_tflite(data, NAME)
        except TfliteFormatError as exc:
            message = str(exc)
            assert message.startswith(f"{NAME}: ") and "\n" not in message, message
            # the kind of refusal: the message without its numbers, names and quoted values
            outcome = "refused: " + re.sub(r"'[^']*'|\d+", "#", message[len(NAME) + 2 :])[:70]
        else:
            _check_model(model, data)
            outcome = _import(data)
    OUTCOMES[outcome] += 1
    return outcome


@pytest.fixture(scope="module", autouse=True)
def report():
    OUTCOMES.clear()
    yield
    write_report({"cases": sum(OUTCOMES.values()), "outcomes": dict(OUTCOMES)}, section="tflite")


def test_seed_files_read():
    assert seeds().keys() >= {"tiny"}
    for name, data in seeds().items():
        assert check(data).startswith("imported") or name.startswith(("dscnn", "resnet8")), name


@FUZZ
@given(seed=SEED, data=st.data())
def test_byte_mutations(seed, data):
    """Bit flips, bytes and hostile 32-bit words (offsets, lengths, indices) anywhere; truncation; tails."""
    check(byte_edits(data, seeds()[seed], max_edits=6, max_tail=64, words=_hostile_words))


@FUZZ
@given(seed=SEED, data=st.data())
def test_small_model_word_mutations(seed, data):
    """The small model (under a kilobyte) with its words rewritten: most reach a table or a vector."""
    raw = bytearray(seeds()["tiny"])
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        at = 4 * data.draw(st.integers(0, len(raw) // 4 - 1), label="word at")
        set_word(
            raw, at, data.draw(st.one_of(st.sampled_from(WORDS), st.integers(0, 2**32 - 1), st.integers(0, len(raw))))
        )
    check(bytes(raw))


@FUZZ
@given(first=SEED, second=SEED, data=st.data())
def test_splices(first, second, data):
    """A slice of one file written over, or inserted into, another."""
    a, b = bytearray(seeds()[first]), seeds()[second]
    start = data.draw(st.integers(0, len(b) - 1), label="from")
    piece = b[start : start + data.draw(st.integers(1, 4096), label="length")]
    at = data.draw(st.integers(0, len(a)), label="at")
    if data.draw(st.booleans(), label="insert"):
        a[at:at] = piece
    else:
        a[at : at + len(piece)] = piece
    check(bytes(a))


@FUZZ
@given(body=st.binary(max_size=2048), root=st.integers(0, 2100), identify=st.booleans())
def test_random_bytes(body, root, identify):
    """Random bytes, most behind an in-range root offset and the TFL3 identifier."""
    head = root.to_bytes(4, "little") + (b"TFL3" if identify else b"")
    check(head + body)


def test_the_property_can_fail():
    """A reader result that breaks an invariant fails the check."""
    model = parse_tflite(seeds()["tiny"], NAME)
    broken = TfliteModel(**{**vars(model), "inputs": (len(model.tensors),)})
    with pytest.raises(AssertionError):
        _check_model(broken, seeds()["tiny"])
