"""Fuzzing the scheme loader (issue 15): mutated valid schemes (types swapped, NaN / Infinity literals,
huge numbers, deleted and extra keys, deep nesting, damaged text) either are refused with one
:class:`SchemeError` line naming the file, or load into a scheme that compiles on a small graph
(or is refused there with one TteError line), with no other exception.

``TTE_FUZZ_EXAMPLES`` sets the number of examples of each property (default 150, a few seconds);
``nox -s fuzz`` runs it with 100,000 or more.
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.compiler.nets import residual_net
from tte_ir import Scheme, SchemeError, TteError, load_scheme
from tte_ir.compiler import compile_training

EXAMPLES = int(os.environ.get("TTE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TTE_SCHEME = {
    "format": "tte-scheme",
    "version": 1,
    "n_bias": 3,
    "weights": [{"conv": 3, "ratio": 0.5}, {"conv": 4, "ratio": 0.25}],
    "channel_selection": "magnitude",
    "head": "fp32",
    "train_head": True,
    "rounding": "stochastic",
    "lr": 0.05,
    "head_lr": 0.05,
    "momentum": 0.0,
    "seed": 7,
    "metadata": {"note": "fuzz"},
}
SEED_SCHEME = {
    "n_bias_update": 2,
    "manual_weight_idx": [2, 3, 4],
    "weight_update_ratio": [0, 0.25, 1],
    "weight_select_criteria": "magnitude+",
}

_FORWARD = residual_net()
_DIR = Path(tempfile.mkdtemp(prefix="tte-scheme-fuzz-"))

special_numbers = st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e300, -1e300, 1e-300, 2**31, 2**32, 2**63, 2**64, -(2**63), 0.0, -0.0, 1, 0, -1]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    special_numbers,
    st.sampled_from(["magnitude", "fp32", "int8", "nearest", "stochastic", "float-master", "magnitude+", "tte-scheme"]),
    st.sampled_from([0.125, 0.25, 0.5, 1, 1.0, 0.3]),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
)


# values a field can take in a scheme that loads: the mutations mix them in so that many mutants load
# and reach the compiler, not only the loader's refusals
VALID = {
    "n_bias": st.integers(0, 6),
    "n_bias_update": st.integers(0, 6),
    "conv": st.integers(0, 5),
    "ratio": st.sampled_from([0.125, 0.25, 0.5, 1, 1.0]),
    "seed": st.integers(0, 2**32 - 1),
    "lr": st.floats(0, 100),
    "head_lr": st.floats(0, 100),
    "momentum": st.floats(0, 0.99),
    "train_head": st.booleans(),
    "head": st.sampled_from(["fp32", "int8"]),
    "rounding": st.sampled_from(["nearest", "stochastic", "float-master"]),
    "weights": st.lists(st.fixed_dictionaries({"conv": st.integers(0, 5), "ratio": st.sampled_from([0.25, 1])})),
    "manual_weight_idx": st.lists(st.integers(0, 5), min_size=3, max_size=3),
}


def _nested(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


deep_values = st.builds(_nested, st.integers(1, 400), st.sampled_from(["list", "dict"]))


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside ``value`` (dict keys and list indices)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


@st.composite
def mutated_schemes(draw: st.DrawFn) -> Any:
    data = _copy(draw(st.sampled_from([TTE_SCHEME, SEED_SCHEME])))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["valid", "valid", "replace", "replace", "delete", "extra", "deep"]))
        if not path:
            if action in ("replace", "deep"):
                data = draw(json_values if action == "replace" else deep_values)
            continue
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        if action == "valid":
            if key in VALID:
                parent[key] = draw(VALID[key])
        elif action == "replace":
            parent[key] = draw(json_values)
        elif action == "deep":
            parent[key] = draw(deep_values)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return data


@functools.lru_cache(maxsize=4096)
def _compiles(text: str) -> None:
    """Compile a loaded scheme on the small graph: success, or one TteError line."""
    scheme = Scheme.from_json(json.loads(text), "fuzz")
    try:
        graph = compile_training(_FORWARD, scheme)
    except TteError as exc:
        assert "\n" not in str(exc)
        return
    recorded = graph.metadata["training"]["scheme"]
    json.dumps(recorded, allow_nan=False)  # everything the .tte and the generated C receive is finite
    assert isinstance(recorded["seed"], int) and 0 <= recorded["seed"] < 2**32


def _check(path: Path) -> None:
    try:
        scheme = load_scheme(path)
    except SchemeError as exc:
        message = str(exc)
        assert message.startswith(f"{path}") and "\n" not in message, message
        return
    text = json.dumps(scheme.to_json(), allow_nan=False)  # a loaded scheme holds no NaN or Inf
    assert Scheme.from_json(json.loads(text), "again") == scheme
    _compiles(text)


@FUZZ
@given(mutated_schemes())
def test_mutated_schemes_load_cleanly_or_are_refused(data):
    path = _DIR / "scheme.json"
    path.write_text(json.dumps(data, allow_nan=True))  # NaN and Infinity literals, as hand-edited JSON has them
    _check(path)


@st.composite
def damaged_texts(draw: st.DrawFn) -> bytes:
    text = json.dumps(draw(st.sampled_from([TTE_SCHEME, SEED_SCHEME]))).encode()
    action = draw(st.sampled_from(["truncate", "flip", "insert", "literal", "nest"]))
    if action == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if action == "flip":
        data = bytearray(text)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    at = draw(st.integers(0, len(text)))
    if action == "insert":
        return text[:at] + draw(st.binary(max_size=8)) + text[at:]
    if action == "literal":
        literal = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"9" * 5000, b"true", b"null"]))
        for key in (b'"lr": ', b'"seed": ', b'"n_bias": ', b'"version": ', b'"n_bias_update": ', b'"ratio": '):
            if key in text and draw(st.booleans()):
                start = text.index(key) + len(key)
                end = min(i for i in (text.find(b",", start), text.find(b"}", start)) if i >= 0)
                return text[:start] + literal + text[end:]
        return text[:at] + literal + text[at:]
    depth = draw(st.integers(1, 100_000))
    return text[:at] + b"[" * depth + b"]" * depth + text[at:]


@FUZZ
@given(damaged_texts())
def test_damaged_scheme_files_load_cleanly_or_are_refused(data):
    path = _DIR / "damaged.json"
    path.write_bytes(data)
    _check(path)
