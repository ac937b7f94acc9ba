"""Fixed-point requantization (NUMERICS.md §2b): tte_ir.fixedpoint, tte_ir.quant's TFLite parameters
and the C engine's helpers (through a linear kernel) against a big-integer transcription of gemmlowp's
and TFLite's definitions (the two-rounding MultiplyByQuantizedMultiplier and its single-rounding variant),
on random inputs and the edges (INT32_MIN, 2^31 - 1, every shift, ties)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tte_ir import TteError
from tte_ir.fixedpoint import mbqm, mbqm_single, quantize_multiplier, rdbpot, srdhm
from tte_ir.kernels import REQUANT
from tte_ir.quant import add_fixed_params, mean_fixed_multiplier

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
int32s = st.one_of(st.integers(I32_MIN, I32_MAX), st.sampled_from([I32_MIN, I32_MIN + 1, -1, 0, 1, I32_MAX]))
multipliers = st.one_of(st.integers(0, I32_MAX), st.sampled_from([0, 1, 2**30, 2**30 + 1, I32_MAX]))
shifts = st.integers(-31, 30)


def _round_away(q: Fraction) -> int:
    """The nearest integer to q, halves away from zero (exact)."""
    n = int(abs(q) + Fraction(1, 2))
    return n if q >= 0 else -n


def srdhm_big(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul as gemmlowp writes it: (a*b + nudge) / 2^31 truncated toward
    zero, nudge 2^30 for a product >= 0 and 1 - 2^30 below (so ties go toward +infinity), saturated
    (only INT32_MIN^2 overflows)."""
    if a == b == I32_MIN:
        return I32_MAX
    t = a * b + (2**30 if a * b >= 0 else 1 - 2**30)
    return int(Fraction(t, 2**31))  # int() of a Fraction truncates toward zero


def rdbpot_big(x: int, exponent: int) -> int:
    """RoundingDivideByPOT: round_half_away(x / 2^exponent)."""
    return _round_away(Fraction(x, 2**exponent))


def mbqm_big(x: int, qm: int, shift: int) -> int:
    shifted = ((x * 2 ** max(shift, 0) - I32_MIN) % 2**32) + I32_MIN  # the int32 left shift wraps
    return rdbpot_big(srdhm_big(shifted, qm), max(-shift, 0))


def mbqm_single_big(x: int, qm: int, shift: int) -> int:
    """TFLite's TFLITE_SINGLE_ROUNDING MultiplyByQuantizedMultiplier: floor((x*qm + 2^(30-shift)) / 2^(31-shift))
    (an int64 add and arithmetic shift), then static_cast<int32_t>, which wraps."""
    v = (x * qm + 2 ** (30 - shift)) // 2 ** (31 - shift)
    return ((v - I32_MIN) % 2**32) + I32_MIN


@settings(max_examples=400, deadline=None)
@given(a=int32s, b=int32s)
def test_srdhm_is_gemmlowps(a: int, b: int) -> None:
    assert int(srdhm(np.int64(a), np.int64(b))) == srdhm_big(a, b)


@settings(max_examples=400, deadline=None)
@given(x=int32s, exponent=st.integers(0, 31))
def test_rdbpot_rounds_half_away(x: int, exponent: int) -> None:
    assert int(rdbpot(np.int64(x), np.int64(exponent))) == rdbpot_big(x, exponent)


@settings(max_examples=400, deadline=None)
@given(x=int32s, qm=multipliers, shift=shifts)
def test_mbqm_is_tflites(x: int, qm: int, shift: int) -> None:
    assert int(mbqm(np.int64(x), np.int64(qm), np.int64(shift))) == mbqm_big(x, qm, shift)


@settings(max_examples=400, deadline=None)
@given(x=int32s, qm=multipliers, shift=shifts)
def test_mbqm_single_is_tflites(x: int, qm: int, shift: int) -> None:
    assert int(mbqm_single(np.int64(x), np.int64(qm), np.int64(shift))) == mbqm_single_big(x, qm, shift)


def test_single_rounding_differs_from_the_double_one() -> None:
    """1 * 0.5 * 2^-1 = 0.25: the single rounding gives 0; gemmlowp's high multiply first rounds 0.5 up to
    1, and RoundingDivideByPOT then rounds 1/2 away from zero to 1 (TFLite's FC and CONV_2D part here)."""
    x, qm, shift = np.int64(1), np.int64(2**30), np.int64(-1)
    assert int(mbqm_single(x, qm, shift)) == mbqm_single_big(1, 2**30, -1) == 0
    assert int(mbqm(x, qm, shift)) == mbqm_big(1, 2**30, -1) == 1
    assert int(mbqm_single(np.int64(-1), qm, shift)) == 0  # -0.25 + 0.5 floors to 0
    assert mbqm_single_big(I32_MIN, I32_MAX, 30) == mbqm_single(np.int64(I32_MIN), np.int64(I32_MAX), np.int64(30))


def test_ties() -> None:
    """RoundingDivideByPOT rounds ties away from zero; SaturatingRoundingDoublingHighMul toward +infinity."""
    x = np.array([3, -3, 5, -5, 1, -1], dtype=np.int64)  # x / 2: +-1.5, +-2.5, +-0.5
    assert rdbpot(x, 1).tolist() == [2, -2, 3, -3, 1, -1]
    # a*b / 2^31 = +-0.5 and -1.5 exactly
    assert srdhm(np.int64(2**30), np.int64(1)) == 1 and srdhm(np.int64(-(2**30)), np.int64(1)) == 0
    assert srdhm(np.int64(-3 * 2**29), np.int64(2)) == -1
    assert srdhm(np.int64(I32_MIN), np.int64(I32_MIN)) == I32_MAX


@settings(max_examples=300, deadline=None)
@given(m=st.floats(2.0**-40, 2.0**29, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_is_tflites(m: float) -> None:
    qm, shift = quantize_multiplier(m)
    exact = Fraction(m)
    e = 0
    while exact >= 2 ** (e):  # frexp: m = q * 2^e with q in [1/2, 1)
        e += 1
    while exact < 2 ** (e - 1):
        e -= 1
    q_fixed = _round_away(exact / Fraction(2) ** e * 2**31)
    if q_fixed == 2**31:
        q_fixed, e = q_fixed // 2, e + 1
    if e < -31:
        q_fixed, e = 0, 0
    assert (qm, shift) == (q_fixed, e)
    assert qm == 0 or 2**30 <= qm < 2**31


def test_quantize_multiplier_edges() -> None:
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0**-33) == (0, 0)  # TFLite flushes shifts below -31
    assert quantize_multiplier(0.5) == (2**30, 0)
    assert quantize_multiplier(1.0 - 2.0**-40) == (2**30, 1)  # q rounds up to 2^31: halved, shift + 1
    for bad in (-1.0, float("nan"), float("inf"), 2.0**31):
        with pytest.raises(TteError):
            quantize_multiplier(bad)


def test_add_and_mean_parameters_follow_tflite() -> None:
    # add.cc: twice_max = 2 * max(s1, s2); input multipliers s_i / twice_max; output twice_max / (2^20 s_y)
    p = add_fixed_params(0.02, 0.01, 0.03)
    assert p["left_shift"] == 20
    assert (p["qm1"], p["sh1"]) == quantize_multiplier(float(np.float32(0.02)) / float(2 * np.float32(0.02)))
    assert (p["qm1"], p["sh1"]) == (2**30, 0)
    assert p["sh2"] <= 0 and p["shy"] <= 0
    # MEAN over 8x8 with equal scales: QuantizeMultiplier(1) = (2^30, 1), then 1/64 folded in as a shift of 6
    assert mean_fixed_multiplier(0.1, 0.1, 64) == (2**30, -5)
    assert mean_fixed_multiplier(0.1, 0.1, 49) == ((2**30 << 5) // 49, 1 - 5)


tte_engine = pytest.importorskip("tte_engine", reason="the C engine binding (pip install ./engine)")


@settings(max_examples=200, deadline=None)
@given(
    accs=st.lists(int32s, min_size=1, max_size=8),
    data=st.data(),
    y_zero=st.integers(-128, 127),
)
def test_the_engine_helper_is_tflites(accs: list[int], data: st.DataObject, y_zero: int) -> None:
    """A linear layer with one input 0 and weight 1 gives acc = bias, so y = clamp(MBQM(bias) + y_zero)
    and its mask bit show the engine's tte_requantize_fixed (requant 1) and tte_fixed_multiply_single
    (requant 2, a linear layer's own) on any int32."""
    from tte_engine import _core

    requant = data.draw(st.sampled_from([REQUANT["fixed"], REQUANT["fixed_single"]]))
    big = mbqm_single_big if requant == REQUANT["fixed_single"] else mbqm_big

    o = len(accs)
    qm = [data.draw(multipliers) for _ in range(o)]
    sh = [data.draw(shifts) for _ in range(o)]
    params = {
        "in_features": 1, "out_features": o, "x_zero": 0, "y_zero": y_zero, "act_min": -128, "act_max": 127,
        "requant": requant, "qmult": qm, "qshift": sh,
    }  # fmt: skip
    y, mask = np.zeros(o, np.int8), np.zeros(1, np.uint8)
    args = [np.zeros(1, np.int8), np.ones((o, 1), np.int8), np.array(accs, np.int32), None, y, mask]
    _core.call("linear_fwd_s8", params, args)
    shifted = [big(a, q, s) + y_zero for a, q, s in zip(accs, qm, sh, strict=True)]
    assert y.tolist() == [min(127, max(-128, v)) for v in shifted]
    bits = np.unpackbits(mask, bitorder="little")[:o].tolist()
    assert bits == [int(-128 <= v <= 127) for v in shifted]


def test_the_engine_refuses_bad_fixed_parameters() -> None:
    from tte_engine import _core

    base = {"in_features": 1, "out_features": 1, "act_min": -128, "act_max": 127, "requant": 1}
    cases = (
        ({}, "NULL"),  # fixed without its tables
        ({"qmult": [2**30], "qshift": [31]}, "fixed-point multiplier"),
        ({"qmult": [-1], "qshift": [0]}, "fixed-point multiplier"),
        ({"qmult": [2**30], "qshift": [0], "requant": 3}, "fixed-point multiplier"),  # no such mode
        ({"requant": 2}, "NULL"),  # fixed_single without its tables
        ({"qmult": [2**30], "qshift": [31], "requant": 2}, "fixed-point multiplier"),
    )
    for fields, message in cases:
        y = np.zeros(1, np.int8)
        args = [np.zeros(1, np.int8), np.ones((1, 1), np.int8), np.zeros(1, np.int32), np.ones(1, np.float32), y, None]
        with pytest.raises(ValueError, match=message):
            _core.call("linear_fwd_s8", {**base, **fields}, args)
