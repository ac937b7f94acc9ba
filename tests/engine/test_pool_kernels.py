"""The pooling kernels (max_pool2d, avg_pool2d, forward and backward) bit-exact against the numpy
reference (tte_ir.reference, tte_ir.reference_train) on random shapes, non-square kernels, strides that
differ per axis, asymmetric padding and ties, through the engine's generic entry point; bad calls
return a status and write nothing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import require_packages

require_packages("tte_engine", "tte_ir")

from tte_engine import _core  # noqa: E402
from tte_ir import reference  # noqa: E402
from tte_ir.kernels import window_fields  # noqa: E402
from tte_ir.layout import to_engine_layout  # noqa: E402
from tte_ir.ops import as_padding, as_pair, window_output_size  # noqa: E402
from tte_ir.quant import avg_pool_multipliers  # noqa: E402
from tte_ir.reference_train import avg_pool2d_bwd, max_pool2d_bwd  # noqa: E402

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def geometries(draw) -> dict:
    """kh != kw, sh != sw and padding that differs per side (each at most half its axis' kernel)."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    top, bottom = draw(st.integers(0, kh // 2)), draw(st.integers(0, kh // 2))
    left, right = draw(st.integers(0, kw // 2)), draw(st.integers(0, kw // 2))
    return {
        "channels": draw(st.integers(1, 6)),
        "height": draw(st.integers(max(1, kh - top - bottom), 11)),
        "width": draw(st.integers(max(1, kw - left - right), 11)),
        "kernel": (kh, kw),
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "padding": (top, left, bottom, right),
    }


def _params(geo: dict, *, count_include_pad: bool = False, x_zero: int = 0, y_zero: int = 0) -> dict:
    kh, kw = geo["kernel"]
    return {
        "in_h": geo["height"], "in_w": geo["width"], "in_c": geo["channels"], "kernel_h": kh, "kernel_w": kw,
        **window_fields(geo["stride"], geo["padding"]), "count_include_pad": int(count_include_pad), "x_zero": x_zero,
        "y_zero": y_zero,
    }  # fmt: skip


def _out_shape(geo: dict) -> tuple[int, int, int, int]:
    ho, wo = window_output_size((geo["height"], geo["width"]), geo["kernel"], geo["stride"], geo["padding"])
    return (1, geo["channels"], ho, wo)


def _codes(seed: int, shape: tuple[int, ...], spread: int) -> np.ndarray:
    """int8 codes; a small ``spread`` makes ties in nearly every window."""
    rng = np.random.default_rng(seed)
    low = int(rng.integers(-128, 128 - spread)) if spread < 256 else -128
    return rng.integers(low, low + spread, size=shape).astype(np.int8)


def _packed(mask: np.ndarray) -> np.ndarray:
    """A bool mask over an IR map in the engine's bit order (HWC elements)."""
    return np.packbits(to_engine_layout(mask).reshape(-1), bitorder="little")


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint8)


@SETTINGS
@given(geo=geometries(), seed=st.integers(0, 2**32 - 1), spread=st.sampled_from([1, 2, 3, 256]))
def test_max_pool_matches_reference(geo: dict, seed: int, spread: int) -> None:
    x = _codes(seed, (1, geo["channels"], geo["height"], geo["width"]), spread)
    want_y, want_index = reference.max_pool2d(
        x, kernel=geo["kernel"], stride=geo["stride"], padding=geo["padding"], return_index=True
    )
    y = np.zeros(to_engine_layout(want_y).shape, np.int8)
    index = np.full(y.shape, 255, np.uint8)
    _core.call("max_pool2d_fwd_s8", _params(geo), [to_engine_layout(x), y, index])
    np.testing.assert_array_equal(y, to_engine_layout(want_y))
    np.testing.assert_array_equal(index, to_engine_layout(want_index))
    y_alone = np.zeros_like(y)
    _core.call("max_pool2d_fwd_s8", _params(geo), [to_engine_layout(x), y_alone, None])  # no index kept
    np.testing.assert_array_equal(y_alone, y)


def test_max_pool_ties_go_to_the_first_tap_and_padding_never_wins() -> None:
    x = np.full((1, 1, 3, 3), -128, np.int8)  # every input code is the lowest: padding must still lose
    y, index = reference.max_pool2d(x, kernel=3, stride=1, padding=1, return_index=True)
    assert (y == -128).all()
    # window (0, 0) starts one row and one column into the padding: its first input pixel is tap 4
    assert index[0, 0, 0, 0] == 4 and index[0, 0, 1, 1] == 0 and index[0, 0, 2, 2] == 0
    got = np.zeros((3, 3, 1), np.uint8)
    _core.call(
        "max_pool2d_fwd_s8",
        _params(_geo(1, 3, 3, 3, 1, 1)),
        [to_engine_layout(x), np.zeros_like(got).view(np.int8), got],
    )
    np.testing.assert_array_equal(got, to_engine_layout(index))


def _geo(channels: int, height: int, width: int, kernel, stride, padding) -> dict:
    return {
        "channels": channels,
        "height": height,
        "width": width,
        "kernel": as_pair(kernel),
        "stride": as_pair(stride),
        "padding": as_padding(padding),
    }


@SETTINGS
@given(
    geo=geometries(),
    seed=st.integers(0, 2**32 - 1),
    include_pad=st.booleans(),
    x_zero=st.integers(-128, 127),
    y_zero=st.integers(-128, 127),
    scales=st.sampled_from([(1.0, 1.0), (0.02, 0.01), (0.05, 0.2), (1.0, 0.5), (0.013, 0.0007)]),
)
def test_avg_pool_matches_reference(geo, seed, include_pad, x_zero, y_zero, scales) -> None:
    x = _codes(seed, (1, geo["channels"], geo["height"], geo["width"]), 256)
    m = avg_pool_multipliers(*scales, geo["kernel"])
    want_y, want_mask = reference.avg_pool2d(
        x, m, kernel=geo["kernel"], stride=geo["stride"], padding=geo["padding"], count_include_pad=include_pad,
        x_zero=x_zero, y_zero=y_zero, return_mask=True,
    )  # fmt: skip
    y = np.zeros(to_engine_layout(want_y).shape, np.int8)
    mask = np.zeros((y.size + 7) // 8, np.uint8)
    params = _params(geo, count_include_pad=include_pad, x_zero=x_zero, y_zero=y_zero)
    _core.call("avg_pool2d_fwd_s8", params, [to_engine_layout(x), m, y, mask])
    np.testing.assert_array_equal(y, to_engine_layout(want_y))
    np.testing.assert_array_equal(mask, _packed(want_mask))


def test_avg_pool_over_the_whole_map_is_the_global_pool() -> None:
    """AvgPool2d(8) on an 8x8 map and AdaptiveAvgPool2d(1): the same codes and mask bits."""
    x = _codes(3, (1, 5, 8, 8), 256)
    m = avg_pool_multipliers(0.04, 0.003, 8)
    from tte_ir.quant import pool_multiplier

    assert m[64] == pool_multiplier(0.04, 0.003, 64)
    want = reference.global_avg_pool(x, multiplier=m[64], x_zero=-3, y_zero=7, return_mask=True)
    got = reference.avg_pool2d(
        x, m, kernel=8, stride=8, padding=0, count_include_pad=True, x_zero=-3, y_zero=7, return_mask=True
    )
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    y = np.zeros(5, np.int8)
    _core.call("avg_pool2d_fwd_s8", _params(_geo(5, 8, 8, 8, 8, 0), count_include_pad=True, x_zero=-3, y_zero=7),
               [to_engine_layout(x), m, y, None])  # fmt: skip
    np.testing.assert_array_equal(y, want[0].reshape(-1))


@SETTINGS
@given(geo=geometries(), seed=st.integers(0, 2**32 - 1), spread=st.sampled_from([1, 3, 256]))
def test_max_pool_backward_matches_reference(geo: dict, seed: int, spread: int) -> None:
    x = _codes(seed, (1, geo["channels"], geo["height"], geo["width"]), spread)
    _, index = reference.max_pool2d(
        x, kernel=geo["kernel"], stride=geo["stride"], padding=geo["padding"], return_index=True
    )
    g = np.random.default_rng(seed ^ 1).standard_normal(index.shape).astype(np.float32)
    want = max_pool2d_bwd(
        g, index, size=(geo["height"], geo["width"]), kernel=geo["kernel"], stride=geo["stride"], padding=geo["padding"]
    )
    gx = np.full(to_engine_layout(x).shape, np.nan, np.float32)
    _core.call("max_pool2d_bwd_f32", _params(geo), [to_engine_layout(g), to_engine_layout(index), gx])
    np.testing.assert_array_equal(_bits(gx), _bits(to_engine_layout(want)))


@SETTINGS
@given(geo=geometries(), seed=st.integers(0, 2**32 - 1), include_pad=st.booleans())
def test_avg_pool_backward_matches_reference(geo: dict, seed: int, include_pad: bool) -> None:
    rng = np.random.default_rng(seed)
    shape = _out_shape(geo)
    g = rng.standard_normal(shape).astype(np.float32)
    mask = rng.random(shape) < 0.8
    m = avg_pool_multipliers(0.03, 0.011, geo["kernel"])
    size = (geo["height"], geo["width"])
    want = avg_pool2d_bwd(
        g, mask, m, size=size, kernel=geo["kernel"], stride=geo["stride"], padding=geo["padding"],
        count_include_pad=include_pad,
    )  # fmt: skip
    gx = np.full((*size, geo["channels"]), np.nan, np.float32)
    params = _params(geo, count_include_pad=include_pad)
    _core.call("avg_pool2d_bwd_f32", params, [to_engine_layout(g), _packed(mask), m, gx])
    np.testing.assert_array_equal(_bits(gx), _bits(to_engine_layout(want)))


def test_overlapping_windows_sum_in_ascending_window_order() -> None:
    """Three windows share input pixel (0, 2) of a 3-wide, stride-1 max pool: C and numpy add g in the
    same order, so the float32 sum is the same bits (it differs from other orders here)."""
    x = np.array([[[[0, 0, 9, 0, 0]]]], np.int8)
    _, index = reference.max_pool2d(x, kernel=3, stride=1, padding=1, return_index=True)
    g = np.array([[[[1.0, 1e8, -1e8, 1.0, 0.0]]]], np.float32)  # windows 1, 2, 3 pick the 9
    want = max_pool2d_bwd(g, index, size=(1, 5), kernel=3, stride=1, padding=1)
    assert want[0, 0, 0, 2] == np.float32((np.float32(1e8) + np.float32(-1e8)) + np.float32(1.0))
    gx = np.zeros((1, 5, 1), np.float32)
    _core.call(
        "max_pool2d_bwd_f32", _params(_geo(1, 1, 5, 3, 1, 1)), [to_engine_layout(g), to_engine_layout(index), gx]
    )
    np.testing.assert_array_equal(gx[0, :, 0], want[0, 0, 0])


@pytest.mark.parametrize(
    ("changes", "kernel"),
    [
        ({"pad_top": 2}, "max_pool2d_fwd_s8"),  # more than half the kernel: a window of only padding
        ({"pad_right": 2}, "max_pool2d_fwd_s8"),
        ({"kernel_h": 5, "pad_left": 2}, "max_pool2d_fwd_s8"),  # half kernel_h, but more than half kernel_w
        ({"pad_bottom": -1}, "avg_pool2d_fwd_s8"),
        ({"kernel_h": 17, "kernel_w": 17, "in_h": 17, "in_w": 17}, "max_pool2d_fwd_s8"),  # 289 taps
        ({"stride_h": 0}, "avg_pool2d_fwd_s8"),
        ({"stride_w": 0}, "avg_pool2d_fwd_s8"),
        ({"count_include_pad": 2}, "avg_pool2d_fwd_s8"),
        ({"x_zero": 128}, "avg_pool2d_fwd_s8"),
    ],
)
def test_bad_descriptors_are_refused(changes: dict, kernel: str) -> None:
    params = {**_params(_geo(2, 5, 5, 3, 1, 1)), **changes}
    x = np.zeros((params["in_h"], params["in_w"], 2), np.int8)
    y = np.zeros((params["in_h"] * params["in_w"] * 2 * 4,), np.int8)
    args = [x, y, None] if kernel.startswith("max") else [x, np.ones(290, np.float32), y, None]
    with pytest.raises(ValueError, match=kernel):
        _core.call(kernel, params, args)


def test_a_bad_index_writes_nothing() -> None:
    params = _params(_geo(1, 4, 4, 2, 2, 0))
    index = np.zeros((2, 2, 1), np.uint8)
    index[1, 1, 0] = 4  # a 2x2 window has taps 0..3
    gx = np.full((4, 4, 1), 7.0, np.float32)
    with pytest.raises(ValueError, match="max_pool2d_bwd_f32"):
        _core.call("max_pool2d_bwd_f32", params, [np.ones((2, 2, 1), np.float32), index, gx])
    assert (gx == 7.0).all()
