"""The channel kernels (concat, channel_split, channel_shuffle in their int8 and float32 twins, and
channel_insert) bit-exact against the numpy reference (tte_ir.reference, tte_ir.reference_train) on
random shapes, through the engine's generic entry point; bad descriptors return a status."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import require_packages

require_packages("tte_engine", "tte_ir")

from tte_engine import _core  # noqa: E402
from tte_ir import reference  # noqa: E402
from tte_ir.layout import to_engine_layout  # noqa: E402
from tte_ir.reference_train import channel_insert  # noqa: E402

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = st.sampled_from(["s8", "f32"])


def _values(seed: int, shape: tuple[int, ...], kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "s8":
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    values = rng.normal(size=shape).astype(np.float32)
    values.flat[0] = -0.0  # signed zeros and non-finite values move unchanged
    if values.size > 2:
        values.flat[1], values.flat[2] = np.inf, np.nan
    return values


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint8)


def _out(shape: tuple[int, ...], kind: str) -> np.ndarray:
    return np.full(shape, 77, np.int8) if kind == "s8" else np.full(shape, 77.0, np.float32)


pixels = st.tuples(st.integers(1, 5), st.integers(1, 5))


@SETTINGS
@given(hw=pixels, ca=st.integers(1, 7), cb=st.integers(1, 7), kind=DTYPES, seed=st.integers(0, 2**32 - 1))
def test_concat_matches_reference(hw, ca: int, cb: int, kind: str, seed: int) -> None:
    a = _values(seed, (1, ca, *hw), kind)
    b = _values(seed + 1, (1, cb, *hw), kind)
    want = to_engine_layout(reference.concat(a, b))
    y = _out(want.shape, kind)
    params = {"pixels": hw[0] * hw[1], "a_channels": ca, "b_channels": cb}
    _core.call(f"concat_{kind}", params, [to_engine_layout(a), to_engine_layout(b), y])
    np.testing.assert_array_equal(_bits(y), _bits(want))


@st.composite
def ranges(draw) -> tuple[int, int, int]:
    channels = draw(st.integers(1, 12))
    start = draw(st.integers(0, channels - 1))
    return channels, start, draw(st.integers(1, channels - start))


@SETTINGS
@given(hw=pixels, r=ranges(), kind=DTYPES, seed=st.integers(0, 2**32 - 1))
def test_channel_split_matches_reference(hw, r, kind: str, seed: int) -> None:
    channels, start, count = r
    x = _values(seed, (1, channels, *hw), kind)
    want = to_engine_layout(reference.channel_split(x, start, count))
    y = _out(want.shape, kind)
    params = {"pixels": hw[0] * hw[1], "in_c": channels, "start": start, "count": count}
    _core.call(f"channel_split_{kind}", params, [to_engine_layout(x), y])
    np.testing.assert_array_equal(_bits(y), _bits(want))


@SETTINGS
@given(hw=pixels, groups=st.integers(1, 4), per_group=st.integers(1, 4), kind=DTYPES, seed=st.integers(0, 2**32 - 1))
def test_channel_shuffle_matches_reference_and_inverts(hw, groups: int, per_group: int, kind: str, seed: int) -> None:
    channels = groups * per_group
    x = _values(seed, (1, channels, *hw), kind)
    want = to_engine_layout(reference.channel_shuffle(x, groups))
    y = _out(want.shape, kind)
    params = {"pixels": hw[0] * hw[1], "channels": channels, "groups": groups}
    _core.call(f"channel_shuffle_{kind}", params, [to_engine_layout(x), y])
    np.testing.assert_array_equal(_bits(y), _bits(want))
    back = _out(want.shape, kind)
    _core.call(f"channel_shuffle_{kind}", {**params, "groups": per_group}, [y, back])
    np.testing.assert_array_equal(_bits(back), _bits(to_engine_layout(x)))


@SETTINGS
@given(hw=pixels, r=ranges(), accumulate=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_channel_insert_matches_reference(hw, r, accumulate: bool, seed: int) -> None:
    channels, start, count = r
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(1, count, *hw)).astype(np.float32)
    acc = rng.normal(size=(1, channels, *hw)).astype(np.float32) if accumulate else None
    want = to_engine_layout(channel_insert(g, start, channels, acc))
    gx = to_engine_layout(acc).copy() if accumulate else np.full(want.shape, 7.0, np.float32)
    params = {"pixels": hw[0] * hw[1], "in_c": channels, "start": start, "count": count}
    _core.call("channel_insert_f32", params, [to_engine_layout(g), gx, int(accumulate)])
    np.testing.assert_array_equal(_bits(gx), _bits(want))


@pytest.mark.parametrize(
    ("kernel", "params", "args"),
    [
        ("concat_s8", {"pixels": 0, "a_channels": 1, "b_channels": 1}, "aby"),
        ("concat_f32", {"pixels": 1, "a_channels": 1, "b_channels": 0}, "aby"),
        ("channel_split_s8", {"pixels": 1, "in_c": 4, "start": 3, "count": 2}, "xy"),
        ("channel_split_f32", {"pixels": 1, "in_c": 4, "start": -1, "count": 2}, "xy"),
        ("channel_shuffle_s8", {"pixels": 1, "channels": 6, "groups": 4}, "xy"),
        ("channel_shuffle_f32", {"pixels": 1, "channels": 6, "groups": 0}, "xy"),
    ],
)
def test_bad_descriptors_are_refused(kernel: str, params: dict, args: str) -> None:
    dtype = np.int8 if kernel.endswith("s8") else np.float32
    buffers = [np.zeros(16, dtype) for _ in args]
    with pytest.raises(ValueError, match=kernel):
        _core.call(kernel, params, buffers)


def test_a_bad_insert_range_writes_nothing() -> None:
    gx = np.full(8, 7.0, np.float32)
    with pytest.raises(ValueError, match="channel_insert_f32"):
        _core.call(
            "channel_insert_f32", {"pixels": 2, "in_c": 4, "start": 3, "count": 2}, [np.ones(4, np.float32), gx, 0]
        )
    assert (gx == 7.0).all()
