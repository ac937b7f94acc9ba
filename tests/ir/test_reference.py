"""The reference interpreter against hand-computed integers and an independent naive implementation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tte_ir import reference

I32_MAX = 2**31 - 1
I32_MIN = -(2**31)


def naive_conv2d(x, w, b, m, *, stride, padding, groups, x_zero, y_zero, act_min=-128, act_max=127):
    """Element-by-element NUMERICS.md §2 in plain Python integers (independent of the vectorised code)."""
    _, _c, h, wd = x.shape
    o, cpg, kh, kw = w.shape
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (wd + 2 * padding - kw) // stride + 1
    opg = o // groups
    y = np.zeros((1, o, ho, wo), dtype=np.int8)
    mask = np.zeros((1, o, ho, wo), dtype=bool)
    for oc in range(o):
        g = oc // opg
        for p in range(ho):
            for q in range(wo):
                acc = 0
                for i in range(cpg):
                    for u in range(kh):
                        for v in range(kw):
                            r, s = p * stride + u - padding, q * stride + v - padding
                            if 0 <= r < h and 0 <= s < wd:
                                acc += (int(x[0, g * cpg + i, r, s]) - x_zero) * int(w[oc, i, u, v])
                acc = min(max(acc + int(b[oc]), I32_MIN), I32_MAX)
                val = np.float32(acc) * np.float32(m[oc])
                shifted = int(np.rint(np.float64(val))) + y_zero
                mask[0, oc, p, q] = act_min <= shifted <= act_max
                y[0, oc, p, q] = min(max(shifted, act_min), act_max)
    return y, mask


def test_conv_round_half_to_even_ties():
    # 1x1 conv, one input channel, weight 1, multiplier 0.5: v = acc/2 hits exact .5 ties.
    x = np.array([3, 5, -3, -5, 1, -1, 7, 0], dtype=np.int8).reshape(1, 1, 1, 8)
    w = np.ones((1, 1, 1, 1), dtype=np.int8)
    y = reference.conv2d(
        x, w, np.zeros(1, np.int32), np.array([0.5], np.float32), stride=1, padding=0, groups=1, x_zero=0, y_zero=0
    )
    # 1.5->2, 2.5->2, -1.5->-2, -2.5->-2, 0.5->0, -0.5->0 (-0), 3.5->4, 0->0
    assert y.ravel().tolist() == [2, 2, -2, -2, 0, 0, 4, 0]


def test_conv_saturates_bias_of_plus_minus_2_pow_31():
    # Two output channels with dead-channel biases; accumulations push further out of range.
    x = np.full((1, 1, 1, 1), 100, dtype=np.int8)
    w = np.array([1, -1], dtype=np.int8).reshape(2, 1, 1, 1)
    b = np.array([I32_MAX, I32_MIN], dtype=np.int32)
    m = np.full(2, 2.0**-28, dtype=np.float32)
    y, mask = reference.conv2d(x, w, b, m, stride=1, padding=0, groups=1, x_zero=0, y_zero=0, return_mask=True)
    # saturated acc = 2^31-1 -> float32 2^31 -> * 2^-28 = 8; and -2^31 * 2^-28 = -8.
    # A wrapping int32 add would have produced -8 and +8 instead.
    assert y.ravel().tolist() == [8, -8]
    assert mask.ravel().tolist() == [True, True]


def test_conv_zero_points_minus_128_and_127_and_padding():
    # 3x3 conv, padding 1, over a 2x2 input whose codes sit at the zero point -128 except one.
    x = np.array([[-128, -127], [-128, -128]], dtype=np.int8).reshape(1, 1, 2, 2)
    w = np.full((1, 1, 3, 3), 2, dtype=np.int8)
    b = np.array([-1], dtype=np.int32)
    # Every output window covers the single non-zero centered value (1): acc = 2*1 - 1 = 1.
    # v = 1 * 1.0 = 1 -> rne 1 -> + y_zero 127 = 128 -> clamped to 127, mask 0.
    y, mask = reference.conv2d(
        x, w, b, np.array([1.0], np.float32), stride=1, padding=1, groups=1, x_zero=-128, y_zero=127, return_mask=True
    )
    assert y.ravel().tolist() == [127, 127, 127, 127]
    assert not mask.any()
    # with y_zero -128 the same values land inside the range: -128 + 1 = -127, mask 1
    y, mask = reference.conv2d(
        x, w, b, np.array([1.0], np.float32), stride=1, padding=1, groups=1, x_zero=-128, y_zero=-128, return_mask=True
    )
    assert y.ravel().tolist() == [-127] * 4
    assert mask.all()


def test_mask_at_half_code_beyond_the_range():
    # v = hi - z_y + 0.5 with hi - z_y = 127 (odd): rne gives 128 -> outside -> mask 0.
    # v = 126.5 rounds to 126 (even): inside -> mask 1.
    q1 = np.array([127, 126, -128, -127], dtype=np.int8)
    y, mask = reference.add(q1, np.ones(4, np.int8), m1=1.0, m2=0.5, z1=0, z2=0, y_zero=0, return_mask=True)
    # values: 127.5 -> 128 (out), 126.5 -> 126, -127.5 -> -128 (in), -126.5 -> -126
    assert y.tolist() == [127, 126, -128, -126]
    assert mask.tolist() == [False, True, True, True]


def test_add_two_products_then_one_add():
    q1 = np.array([10, -20], dtype=np.int8)
    q2 = np.array([3, 4], dtype=np.int8)
    y = reference.add(q1, q2, m1=0.25, m2=0.5, z1=2, z2=-1, y_zero=5)
    # (10-2)*0.25 + (3+1)*0.5 = 2 + 2 = 4 -> 9 ; (-20-2)*0.25 + (4+1)*0.5 = -5.5 + 2.5 = -3 -> 2
    assert y.tolist() == [9, 2]


def test_global_avg_pool():
    x = np.array([1, 2, 3, 4, -128, -128, -128, -127], dtype=np.int8).reshape(1, 2, 2, 2)
    y = reference.global_avg_pool(x, multiplier=np.float32(0.25), x_zero=-128, y_zero=-128)
    # channel 0: sum(q+128) = 129+130+131+132 = 522 -> 130.5 -> 130 (even) -> 2
    # channel 1: sum = 1 -> 0.25 -> 0 -> -128
    assert y.ravel().tolist() == [2, -128]


def test_linear_f32_sums_in_ascending_order():
    x = np.array([[1, 2, 3]], dtype=np.int8)
    w = np.array([[1e8, 1.0, -1e8]], dtype=np.float32)
    logits = reference.linear_f32(x, w, np.array([0.5], np.float32), x_scale=1.0, x_zero=0)
    # ((0 + 1e8) + 2) - 3e8 in float32: 1e8 + 2 rounds to 1e8 (ulp 8), then 1e8 - 3e8 = -2e8; + 0.5 -> -2e8
    assert logits.dtype == np.float32
    assert logits.tolist() == [[np.float32(-2e8)]]


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    channels=st.sampled_from([1, 2, 3, 4]),
    kernel=st.sampled_from([1, 3, 5, 7]),
    stride=st.sampled_from([1, 2]),
    depthwise=st.booleans(),
    size=st.integers(1, 7),
)
def test_conv2d_matches_naive(data, channels, kernel, stride, depthwise, size):
    padding = (kernel - 1) // 2
    groups = channels if depthwise else data.draw(st.sampled_from([g for g in (1, 2) if channels % g == 0]))
    out_channels = channels if depthwise else data.draw(st.integers(1, 4)) * groups
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-128, 128, (1, channels, size, size)).astype(np.int8)
    w = rng.integers(-127, 128, (out_channels, channels // groups, kernel, kernel)).astype(np.int8)
    b = rng.choice(np.array([I32_MIN, I32_MAX, 0, -5000, 5000], dtype=np.int64), out_channels).astype(np.int32)
    m = rng.uniform(1e-4, 0.05, out_channels).astype(np.float32)
    x_zero = int(data.draw(st.sampled_from([-128, 0, 127, 7])))
    y_zero = int(data.draw(st.sampled_from([-128, 0, 127, -3])))
    act_min, act_max = data.draw(
        st.sampled_from([(-128, 127), (y_zero, 127) if y_zero < 127 else (-128, 127), (-100, 50)])
    )
    got = reference.conv2d(
        x,
        w,
        b,
        m,
        stride=stride,
        padding=padding,
        groups=groups,
        x_zero=x_zero,
        y_zero=y_zero,
        act_min=act_min,
        act_max=act_max,
        return_mask=True,
    )
    want = naive_conv2d(
        x,
        w,
        b,
        m,
        stride=stride,
        padding=padding,
        groups=groups,
        x_zero=x_zero,
        y_zero=y_zero,
        act_min=act_min,
        act_max=act_max,
    )
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_linear_s8_is_a_1x1_conv():
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (1, 16)).astype(np.int8)
    w = rng.integers(-127, 128, (5, 16)).astype(np.int8)
    b = rng.integers(-1000, 1000, 5).astype(np.int32)
    m = rng.uniform(0.001, 0.01, 5).astype(np.float32)
    got = reference.linear_s8(x, w, b, m, x_zero=3, y_zero=-2)
    want, _ = naive_conv2d(
        x.reshape(1, 16, 1, 1), w.reshape(5, 16, 1, 1), b, m, stride=1, padding=0, groups=1, x_zero=3, y_zero=-2
    )
    np.testing.assert_array_equal(got, want.reshape(1, 5))


def test_rejects_non_int8_input():
    with pytest.raises(TypeError, match="'x' must be int8"):
        reference.conv2d(
            np.zeros((1, 1, 2, 2), np.int32),
            np.zeros((1, 1, 1, 1), np.int8),
            np.zeros(1, np.int32),
            np.ones(1, np.float32),
            stride=1,
            padding=0,
            groups=1,
            x_zero=0,
            y_zero=0,
        )
