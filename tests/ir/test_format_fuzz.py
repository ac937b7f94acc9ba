"""Fuzzing the .tte reader: mutated files are refused cleanly or load and survive every later stage.

Seed files are small graphs saved by ``save``: a hand-built forward graph, a forward net with an fp32
head and a compiled training graph. Each property mutates one of them (raw bytes; the header's
bytes or its JSON, re-checksummed so that the mutation reaches the parser and the checks behind the
checksum; a constant's bytes, re-checksummed) and asserts that ``load`` either raises one
:class:`TteFormatError` line naming the file, or returns a graph that ``tte inspect``,
``summarize``, ``memory_report`` and the numpy reference (forward, or one training step) take
without any exception other than a one-line :class:`TteError`.

``TTE_FUZZ_EXAMPLES`` sets the number of cases over all properties (a few hundred by default;
``nox -s fuzz`` runs 100,000), ``TTE_FUZZ_TIMEOUT`` the seconds one case may take before it counts
as a hang (10), and ``TTE_FUZZ_REPORT`` a JSON file that receives the count of cases run and how
they ended.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
import warnings
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import byte_edits, fuzz_settings, time_limit, write_report
from tte_ir import (
    Scheme,
    TteError,
    TteFormatError,
    WeightUpdate,
    compile_training,
    initial_state,
    load,
    memory_report,
    reference,
    save,
    summarize,
    train_step,
    training_info,
)
from tte_ir.cli import main as tte_ir_main

from .helpers import tiny_residual_graph
from .tte_bytes import assemble, blob_sha, split

FUZZ = fuzz_settings(properties=4)
OUTCOMES: Counter[str] = Counter()
WARNINGS: Counter[str] = Counter()  # numpy warnings the later stages raised (not failures)
SAMPLES: dict[str, str] = {}  # one message per kind of refusal after a load
WORKDIR = Path(tempfile.mkdtemp(prefix="tte-fuzz-"))


@cache
def seeds() -> dict[str, bytes]:
    from tests.compiler.nets import residual_net

    forward = residual_net(head="fp32", size=8)
    training = compile_training(
        residual_net(head="fp32", size=8), Scheme(n_bias=2, weights=(WeightUpdate(1, 0.5),), head="fp32")
    )
    graphs = {"tiny": tiny_residual_graph().build(), "fp32-head": forward, "training": training}
    return {name: save(graph, WORKDIR / f"seed-{name}.tte").read_bytes() for name, graph in graphs.items()}


def _paths(value, prefix=()):
    """Every path (tuple of keys and indices) into a JSON value, the root excluded."""
    out = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        path = (*prefix, key)
        out.append(path)
        out.extend(_paths(item, path))
    return out


@cache
def header_paths(seed: str) -> list[tuple]:
    return _paths(split(seeds()[seed]).header)


def _get(value, path):
    for key in path:
        value = value[key]
    return value


SEED = st.sampled_from(["tiny", "fp32-head", "training"])
WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1, 2, 127, 128, -129, 2**31, 2**32, 2**63, 2**64, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 1.0013, -0.0, 1e308, 1e-320, 3.4e38, float("nan"), float("inf")]),
    st.text(max_size=6),
    st.sampled_from(["", "int8", "float32", "int32", "uint8", "conv2d", "x", "logits", "head.w", "rows"]),
    st.lists(st.integers(-3, 300), max_size=5),
    st.dictionaries(st.sampled_from(["group", "axis", "band", "tile", "scale", "x"]), st.integers(-1, 3), max_size=4),
    st.integers(2, 400).map(lambda depth: json.loads("[" * depth + "]" * depth)),
)


def _json_mutation(data, header, seed):
    """Apply one mutation, drawn from ``data``, to the parsed ``header`` in place."""
    paths = header_paths(seed)
    path = paths[data.draw(st.integers(0, len(paths) - 1), label="path")]
    key = path[-1]
    try:
        parent = _get(header, path[:-1])
        current = parent[key]
    except (KeyError, IndexError, TypeError):
        return  # an earlier mutation removed or retyped this part
    kind = data.draw(st.sampled_from(["replace", "delete", "duplicate", "nudge", "swap", "nest"]), label="kind")
    if kind == "replace":
        parent[key] = data.draw(WEIRD, label="value")
    elif kind == "delete":
        del parent[key]
    elif kind == "duplicate" and isinstance(parent, list):
        parent.insert(key, current)
    elif kind == "nudge" and isinstance(current, (int, float)) and not isinstance(current, bool):
        parent[key] = data.draw(st.sampled_from([current + 1, current - 1, current * 2, -current, current * 1e30]))
    elif kind == "swap":
        other = paths[data.draw(st.integers(0, len(paths) - 1), label="other")]
        with contextlib.suppress(KeyError, IndexError, TypeError):
            parent[key] = json.loads(json.dumps(_get(header, other)))
    elif kind == "nest":
        parent[key] = [current]


def _exercise(path: Path, graph) -> str:
    """Every later stage a loaded graph meets; a TteError is a clean refusal, anything else fails."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = tte_ir_main(["inspect", str(path)])
    assert code == 0, err.getvalue()
    summarize(graph)
    spec = graph.tensors[graph.inputs[0]]
    x = np.random.default_rng(0).integers(-128, 128, size=spec.shape).astype(spec.dtype.numpy)
    try:
        info = training_info(graph)
    except TteError:
        reference.run_forward(graph, x)
        return "loaded: forward ran"
    memory_report(graph)
    result = train_step(graph, initial_state(graph), x, 0, step=1)
    assert set(result.state) == set(info["state"])
    return "loaded: training step ran"


def check(data: bytes, name: str = "mutant.tte") -> str:
    """Write ``data`` to a file and check the property on it; return how it ended."""
    path = WORKDIR / name
    path.write_bytes(data)
    with time_limit(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            graph = load(path)
        except TteFormatError as exc:
            message = str(exc)
            assert message.startswith(f"{path}: ") and "\n" not in message, message
            outcome = "refused by load"
        else:
            try:
                outcome = _exercise(path, graph)
            except TteError as exc:
                assert "\n" not in str(exc), str(exc)
                outcome = f"loaded, then refused: {type(exc).__name__}"
                SAMPLES.setdefault(outcome, str(exc)[:300])
    OUTCOMES[outcome] += 1
    for warning in caught:
        WARNINGS[f"{warning.category.__name__}: {warning.message}"] += 1
    return outcome


@pytest.fixture(scope="module", autouse=True)
def report():
    OUTCOMES.clear()
    yield
    write_report(
        {"cases": sum(OUTCOMES.values()), "outcomes": dict(OUTCOMES), "samples": SAMPLES, "warnings": dict(WARNINGS)}
    )


def test_seed_files_load_and_run():
    for name, data in seeds().items():
        assert check(data, f"{name}.tte").startswith("loaded"), name


@FUZZ
@given(seed=SEED, data=st.data())
def test_raw_byte_mutations(seed, data):
    """Bit flips, byte changes and truncation anywhere (mostly caught by a checksum)."""
    check(byte_edits(data, seeds()[seed], max_edits=4, max_tail=200))


@FUZZ
@given(seed=SEED, data=st.data())
def test_header_byte_mutations(seed, data):
    """Changed bytes of the header text, re-checksummed: invalid UTF-8 and JSON reach the parser."""
    parts = split(seeds()[seed])
    text = bytearray(parts.raw_header)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.integers(0, len(text) - 1), label="at")
        choice = data.draw(st.sampled_from(["flip", "digit", "cut", "insert"]), label="kind")
        if choice == "flip":
            text[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        elif choice == "digit":
            text[at : at + 1] = data.draw(st.sampled_from([b"9", b"0", b"-", b"e", b".", b"99999999999"]))
        elif choice == "cut":
            del text[at : at + data.draw(st.integers(1, 40), label="length")]
        else:
            text[at:at] = data.draw(st.sampled_from([b"NaN", b"Infinity", b"-1e999", b"[", b"{", b'"', b",null"]))
        if not text:
            break
    check(assemble(bytes(text), parts.blobs))


@FUZZ
@given(seed=SEED, data=st.data())
def test_header_json_mutations(seed, data):
    """Header values replaced by other types, huge numbers, NaN, deep nesting; keys deleted; re-checksummed."""
    parts = split(seeds()[seed])
    header = json.loads(parts.raw_header)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        _json_mutation(data, header, seed)
    try:
        text = json.dumps(header).encode()
    except RecursionError:
        return
    check(assemble(text, parts.blobs))


FLOATS = [math.nan, math.inf, -math.inf, 3.4e38, -3.4e38, 1e-45, 0.0, 1e6]


@FUZZ
@given(seed=SEED, data=st.data())
def test_constant_mutations(seed, data):
    """A constant's bytes changed (NaN and extreme floats in float ones), its checksum recomputed."""
    parts = split(seeds()[seed])
    entries = parts.header["constants"]
    entry = entries[data.draw(st.integers(0, len(entries) - 1), label="constant")]
    blobs = bytearray(parts.blobs)
    begin, size = entry["offset"], entry["nbytes"]
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        if entry["dtype"] == "float32" and data.draw(st.booleans(), label="float"):
            at = begin + 4 * data.draw(st.integers(0, size // 4 - 1), label="element")
            blobs[at : at + 4] = np.float32(data.draw(st.sampled_from(FLOATS), label="value")).tobytes()
        else:
            at = begin + data.draw(st.integers(0, size - 1), label="at")
            blobs[at] = data.draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x01]), label="byte")
    entry["sha256"] = blob_sha(bytes(blobs[begin : begin + size]))
    check(assemble(json.dumps(parts.header).encode(), bytes(blobs)))


def test_seed_graphs_cover_training_and_forward():
    """The seeds reach both ends of the property: a forward run and a training step."""
    outcomes = {check(data, f"cover-{name}.tte") for name, data in seeds().items()}
    assert outcomes == {"loaded: forward ran", "loaded: training step ran"}


def test_a_failing_stage_fails_the_property():
    """The property is able to fail: a later stage that does not take the graph fails the case."""
    with pytest.raises(AssertionError, match="cannot read"):
        _exercise(WORKDIR / "missing.tte", tiny_residual_graph().build())
