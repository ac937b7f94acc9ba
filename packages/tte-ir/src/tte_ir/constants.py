"""The numeric constants that the Python and C sides of tte share, defined once.

Every Python module reads them from here; :mod:`tte_ir.gen_header` writes them into the generated
``engine/include/tte/tte_ops.h`` as ``TTE_*`` macros, which the C kernels use. A test compiles the
header and fails when the two sides differ, or when a literal copy appears anywhere else.

``INT32_MIN``, ``INT32_MAX``
    The int32 range: the saturation bounds of ``sat32`` (NUMERICS.md §2), the range of an int32 bias,
    and the bias values (exactly these two) that mark a dead channel, frozen in training
    (NUMERICS.md §5). C uses ``<stdint.h>``'s ``INT32_MIN`` / ``INT32_MAX``, which equal them.
``QAS_STEP_CLAMP``
    2^30: a QAS update step ``v = -(lr * g) * inv`` is clamped to ``[-2^30, 2^30]`` before it is
    rounded (NUMERICS.md §5), so the rounded step always fits int32 and float32 holds the bound
    exactly. C: ``TTE_QAS_STEP_CLAMP`` (a float).
``HASH_SHIFT1``, ``HASH_MUL1``, ``HASH_SHIFT2``, ``HASH_MUL2``, ``HASH_SHIFT3``
    The counter-based hash's 32-bit mixer (NUMERICS.md §5, stochastic rounding), in this order:
    ``x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16`` (uint32,
    wrapping): Chris Wellons' "lowbias32" (hash-prospector), chosen for its low bias. Changing any
    of them changes every stochastically rounded step. C: ``TTE_HASH_SHIFT1`` ..
    ``TTE_HASH_SHIFT3``, ``TTE_HASH_MUL1``, ``TTE_HASH_MUL2``.
``UNIFORM_SHIFT``, ``UNIFORM_BITS``, ``UNIFORM_SCALE``
    The stochastic-rounding uniform ``u = float32(h >> 8) * 2^-24`` in [0, 1) (NUMERICS.md §5): the
    top 24 bits of the hash, which float32 holds exactly, scaled by 2^-24. C:
    ``TTE_HASH_UNIFORM_SHIFT``, ``TTE_HASH_UNIFORM_SCALE``.
"""

from __future__ import annotations

__all__ = [
    "HASH_MUL1",
    "HASH_MUL2",
    "HASH_SHIFT1",
    "HASH_SHIFT2",
    "HASH_SHIFT3",
    "INT32_MAX",
    "INT32_MIN",
    "QAS_STEP_CLAMP",
    "UNIFORM_BITS",
    "UNIFORM_SCALE",
    "UNIFORM_SHIFT",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

QAS_STEP_CLAMP = 2**30

HASH_SHIFT1 = 16
HASH_MUL1 = 0x7FEB352D
HASH_SHIFT2 = 15
HASH_MUL2 = 0x846CA68B
HASH_SHIFT3 = 16

UNIFORM_SHIFT = 8
UNIFORM_BITS = 32 - UNIFORM_SHIFT
UNIFORM_SCALE = 2.0**-UNIFORM_BITS
