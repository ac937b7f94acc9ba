"""The QAS update rounding of :mod:`tte_ir.rounding` in PyTorch, bit for bit (NUMERICS.md §5).

The uint32 hash runs on int64 tensors holding values in [0, 2^32). A 32x32-bit product can reach
2^64, past int64, so each multiply is split at 16 bits of the constant: ``x*c mod 2^32 =
((x*c_hi mod 2^16) << 16) + x*c_lo mod 2^32``, every partial product below 2^48. This works on any
device and needs no unsigned tensor kernels.
"""

from __future__ import annotations

import torch

from tte_ir.constants import HASH_MUL1, HASH_MUL2, HASH_SHIFT1, HASH_SHIFT2, HASH_SHIFT3, UNIFORM_SCALE, UNIFORM_SHIFT
from tte_ir.rounding import STEP_LIMIT

__all__ = ["hash32", "round_step", "stochastic_uniform"]

_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    hi, lo = constant >> 16, constant & 0xFFFF
    return ((((x * hi) & 0xFFFF) << 16) + x * lo) & _MASK32


def _mix(x: torch.Tensor) -> torch.Tensor:
    x = x ^ (x >> HASH_SHIFT1)
    x = _mul32(x, HASH_MUL1)
    x = x ^ (x >> HASH_SHIFT2)
    x = _mul32(x, HASH_MUL2)
    return x ^ (x >> HASH_SHIFT3)


def hash32(seed: int, step: int, tensor_id: int, element_index: torch.Tensor) -> torch.Tensor:
    """``h(seed, step, tensor_id, element_index)`` as int64 values in [0, 2^32)."""
    device = element_index.device
    h = _mix(torch.tensor(seed & _MASK32, dtype=torch.int64, device=device))
    h = _mix(h ^ (step & _MASK32))
    h = _mix(h ^ (tensor_id & _MASK32))
    return _mix(h ^ (element_index.to(torch.int64) & _MASK32))


def stochastic_uniform(seed: int, step: int, tensor_id: int, element_index: torch.Tensor) -> torch.Tensor:
    """``u = float32(h >> 8) * 2^-24`` in [0, 1), one per element index."""
    return (hash32(seed, step, tensor_id, element_index) >> UNIFORM_SHIFT).to(torch.float32) * UNIFORM_SCALE


def round_step(
    v: torch.Tensor,
    mode: str,
    *,
    seed: int = 0,
    step: int = 0,
    tensor_id: int = 0,
    element_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Round float32 steps ``v`` to int64 by ``mode`` ("nearest" or "stochastic"), clamped to +-2^30 first."""
    limit = float(STEP_LIMIT)
    v = v.to(torch.float32).clamp(-limit, limit)
    if mode == "nearest":
        return torch.round(v).to(torch.int64)
    if mode == "stochastic":
        if element_index is None:
            raise ValueError("stochastic rounding needs the element indices")
        return torch.floor(v + stochastic_uniform(seed, step, tensor_id, element_index)).to(torch.int64)
    raise ValueError(f"round mode '{mode}' has no integer rounding (float-master keeps a float copy)")
