"""TensorFlow Lite's integer requantization arithmetic (NUMERICS.md §2b), in numpy.

The functions are gemmlowp's and TFLite's ``common.h``, written for int64 numpy arrays that hold
int32 values, so that every intermediate is exact:

- :func:`quantize_multiplier`: TFLite's ``QuantizeMultiplier`` (compile time, on one float64);
- :func:`srdhm`: gemmlowp's ``SaturatingRoundingDoublingHighMul`` (``a*b / 2^31`` to the nearest
  integer, ties toward +infinity: gemmlowp adds ``2^30``, or ``1 - 2^30`` to a negative product, and
  truncates toward zero; the one overflow ``INT32_MIN * INT32_MIN`` saturates);
- :func:`rdbpot`: gemmlowp's ``RoundingDivideByPOT`` (arithmetic shift right, round half away from zero);
- :func:`mbqm`: TFLite's ``MultiplyByQuantizedMultiplier`` (the two above, after a left shift
  ``x * 2^max(shift, 0)`` that wraps in int32 as the compiled C++ does);
- :func:`mbqm_single`: its single-rounding variant (``TFLITE_SINGLE_ROUNDING``), which TFLite's int8
  FULLY_CONNECTED computes: ``(x*qm + 2^(30-shift)) >> (31-shift)`` in int64, one rounding (half toward
  +infinity), the result cast to int32 (wrapping, as the compiled C++ does; TFLite only DCHECKs it fits).

The C engine's ``tte_requantize_fixed`` (and ``tte_fixed_multiply_single``) (``kernels-impl.h``) and the simulation (``tte_algo.sim``)
compute the same functions; a test checks all three against a big-integer transcription.
"""

from __future__ import annotations

import math

import numpy as np

from tte_ir._ir import TteError
from tte_ir.constants import INT32_MAX, INT32_MIN

__all__ = [
    "NUDGE",
    "Q31_ONE",
    "mbqm",
    "mbqm_single",
    "quantize_multiplier",
    "rdbpot",
    "round_half_away",
    "srdhm",
    "wrap32",
]

Q31_ONE = -INT32_MIN
"""2^31, the one of a Q0.31 fixed-point multiplier: ``m ~ qm / Q31_ONE * 2^shift``."""

NUDGE = Q31_ONE // 2
"""2^30, gemmlowp's rounding nudge of SaturatingRoundingDoublingHighMul (``1 - NUDGE`` for a negative product)."""


def round_half_away(x: float) -> int:
    """``std::round`` (TFLite's ``TfLiteRound``): the nearest integer, halves away from zero."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier`` of a float64 ``m >= 0``: ``(qm, shift)`` with ``m ~ qm * 2^(shift-31)``,
    ``qm`` in ``[2^30, 2^31)``; ``(0, 0)`` for ``m == 0`` and for ``m < 2^-32`` (TFLite flushes those).

    Raises :class:`TteError` for a negative, non-finite or too large multiplier (``shift > 30`` would
    shift an int32 out of range)."""
    m = float(m)
    if not math.isfinite(m) or m < 0.0:
        raise TteError(f"requantization multiplier {m!r} is not a finite number >= 0")
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = round_half_away(q * Q31_ONE)  # exact: q * 2^31 has at most 53 significant bits
    if q_fixed == Q31_ONE:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise TteError(f"requantization multiplier {m!r} is too large for fixed-point requantization (>= 2^30)")
    return int(q_fixed), int(shift)


def wrap32(x: np.ndarray) -> np.ndarray:
    """int64 values wrapped to int32 (two's complement), as int64."""
    x = np.asarray(x, dtype=np.int64)
    return ((x - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN


def srdhm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` of int32 values (as int64 arrays)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b  # |ab| <= 2^62: exact in int64
    nudge = np.where(ab >= 0, NUDGE, 1 - NUDGE)
    t = ab + nudge
    high = np.where(t >= 0, t >> 31, -((-t) >> 31))  # C++ integer division: truncation toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high).astype(np.int64)


def rdbpot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """gemmlowp's ``RoundingDivideByPOT`` of int32 values (as int64) by ``2^exponent``, ``exponent`` in 0..31."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def mbqm(x: np.ndarray, qm: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLite's ``MultiplyByQuantizedMultiplier(x, qm, shift)`` of int32 values (as int64), broadcasting."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    shifted = wrap32(np.asarray(x, dtype=np.int64) << left)
    return rdbpot(srdhm(shifted, qm), np.maximum(-shift, 0))


def mbqm_single(x: np.ndarray, qm: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLite's single-rounding ``MultiplyByQuantizedMultiplier(x, qm, shift)`` of int32 values (as int64),
    broadcasting: ``(x*qm + 2^(30-shift)) >> (31-shift)``, wrapped to int32, ``shift`` in [-31, 30]."""
    x = np.asarray(x, dtype=np.int64)
    qm = np.asarray(qm, dtype=np.int64)
    total = 31 - np.asarray(shift, dtype=np.int64)  # 1..62
    product = x * qm  # |x*qm| < 2^62, and the nudge <= 2^61: exact in int64
    return wrap32((product + (np.int64(1) << (total - 1))) >> total)
