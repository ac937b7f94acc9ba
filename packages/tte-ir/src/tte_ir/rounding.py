"""QAS update rounding (NUMERICS.md §5): the counter-based hash and the round modes.

The hash is written down here and in ``engine/include/tte/tte_rounding.h``; the PyTorch simulation
mirrors it in ``tte_algo``. All three give the same bits, and take its numbers from
:mod:`tte_ir.constants` (C: the ``TTE_HASH_*`` macros of the generated ``tte_ops.h``)::

    mix(x)  = x ^= x >> HASH_SHIFT1; x *= HASH_MUL1; x ^= x >> HASH_SHIFT2; x *= HASH_MUL2; x ^= x >> HASH_SHIFT3
    h       = mix(mix(mix(mix(seed) ^ step) ^ tensor_id) ^ element_index)    # uint32, wrapping
    u       = float32(h >> UNIFORM_SHIFT) * UNIFORM_SCALE                    # in [0, 1), exact in float32

``tensor_id`` names the trained parameter: :func:`weight_tensor_id` / :func:`bias_tensor_id` of the
conv index (the scheme's numbering; an int8 head counts as conv ``n_convs``). ``element_index`` is the
flat index of the element in the parameter's IR layout (``[O, C/groups, KH, KW]`` row-major, or
``[O]`` for a bias), whatever layout an engine stores it in, so the same element always gets the
same ``u``.

A step ``v = -(lr * g) * inv`` (float32) becomes an integer ``s``: clamp ``v`` to
``[-QAS_STEP_CLAMP, QAS_STEP_CLAMP]`` (2^30) first, then ``nearest``: ``s = rne(v)``;
``stochastic``: ``s = floor(float32(v + u))``.
"""

from __future__ import annotations

import numpy as np

from tte_ir.constants import (
    HASH_MUL1,
    HASH_MUL2,
    HASH_SHIFT1,
    HASH_SHIFT2,
    HASH_SHIFT3,
    QAS_STEP_CLAMP,
    UNIFORM_SCALE,
    UNIFORM_SHIFT,
)

__all__ = [
    "STEP_LIMIT",
    "bias_tensor_id",
    "hash32",
    "round_step",
    "stochastic_uniform",
    "weight_tensor_id",
]

STEP_LIMIT = np.float32(QAS_STEP_CLAMP)
_BIAS_ID_BASE = 0x10000


def weight_tensor_id(conv_index: int) -> int:
    """Hash id of conv ``conv_index``'s weight."""
    return conv_index


def bias_tensor_id(conv_index: int) -> int:
    """Hash id of conv ``conv_index``'s bias."""
    return _BIAS_ID_BASE + conv_index


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(HASH_SHIFT1))
        x = x * np.uint32(HASH_MUL1)
        x = x ^ (x >> np.uint32(HASH_SHIFT2))
        x = x * np.uint32(HASH_MUL2)
        x = x ^ (x >> np.uint32(HASH_SHIFT3))
    return x


def hash32(seed: int, step: int, tensor_id: int, element_index: np.ndarray) -> np.ndarray:
    """The counter-based hash ``h(seed, step, tensor_id, element_index)`` as uint32."""
    u32 = np.uint32
    h = _mix(np.asarray(u32(seed & 0xFFFFFFFF)))
    h = _mix(h ^ u32(step & 0xFFFFFFFF))
    h = _mix(h ^ u32(tensor_id & 0xFFFFFFFF))
    return _mix(h ^ (np.asarray(element_index, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32))


def stochastic_uniform(seed: int, step: int, tensor_id: int, element_index: np.ndarray) -> np.ndarray:
    """``u`` in [0, 1) as float32, one per element index."""
    h = hash32(seed, step, tensor_id, element_index)
    return (h >> np.uint32(UNIFORM_SHIFT)).astype(np.float32) * np.float32(UNIFORM_SCALE)


def round_step(
    v: np.ndarray,
    mode: str,
    *,
    seed: int = 0,
    step: int = 0,
    tensor_id: int = 0,
    element_index: np.ndarray | None = None,
) -> np.ndarray:
    """Round float32 update steps to int64 integers by ``mode`` ("nearest" or "stochastic").

    ``element_index`` (same shape as ``v``) is required for "stochastic".
    """
    v = np.clip(np.asarray(v, dtype=np.float32), -STEP_LIMIT, STEP_LIMIT)
    if mode == "nearest":
        return np.rint(v).astype(np.int64)
    if mode == "stochastic":
        if element_index is None:
            raise ValueError("stochastic rounding needs the element indices")
        u = stochastic_uniform(seed, step, tensor_id, element_index)
        return np.floor(v + u).astype(np.int64)
    raise ValueError(f"round mode '{mode}' has no integer rounding (float-master keeps a float copy)")
