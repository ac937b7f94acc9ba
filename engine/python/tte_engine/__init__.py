"""tte engine kernels on the host, on numpy arrays in the engine's layouts.

Activations are HWC (``[H, W, C]`` int8, batch 1); dense conv weights ``[O, KH, KW, C/groups]``,
depthwise ``[KH, KW, C]``, pointwise and linear ``[O, I]``; per-output-channel float32 multipliers
``M[o] = s_x*s_w[o]/s_y`` come precomputed (``tte_ir.quant``). Every function checks its arguments
and raises :class:`ValueError` naming the offending one. With ``return_mask=True`` an int8 kernel
also returns its clamp mask, bit-packed as in ``tte/tte.h`` (see :func:`unpack_mask`).

:mod:`tte_engine.graph` runs a whole ``tte_ir`` forward graph through these kernels
(install ``tte-engine[ir]``).
"""

from __future__ import annotations

import numpy as np

from tte_engine._core import (
    MAX_REDUCTION,
    add_fwd_s8,
    conv2d_fwd_s8,
    conv2d_fwd_s8_scratch_size,
    depthwise_conv2d_fwd_s8,
    depthwise_conv2d_fwd_s8_scratch_size,
    global_avg_pool_fwd_s8,
    linear_fwd_f32,
    linear_fwd_s8,
    pointwise_conv2d_fwd_s8,
    pointwise_conv2d_fwd_s8_scratch_size,
)

__all__ = [
    "MAX_REDUCTION",
    "add_fwd_s8",
    "conv2d_fwd_s8",
    "conv2d_fwd_s8_scratch_size",
    "depthwise_conv2d_fwd_s8",
    "depthwise_conv2d_fwd_s8_scratch_size",
    "global_avg_pool_fwd_s8",
    "linear_fwd_f32",
    "linear_fwd_s8",
    "pointwise_conv2d_fwd_s8",
    "pointwise_conv2d_fwd_s8_scratch_size",
    "unpack_mask",
]


def unpack_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A kernel's bit-packed clamp mask as a bool array of the output's ``shape``.

    Element ``i`` of the output (in its C memory order) is bit ``i % 8`` of byte ``i // 8``.
    """
    count = int(np.prod(shape, dtype=np.int64))
    mask = np.asarray(mask)
    if mask.dtype != np.uint8 or mask.shape != ((count + 7) // 8,):
        raise ValueError(f"mask must be a uint8 array of shape ({(count + 7) // 8},) for output shape {tuple(shape)}")
    return np.unpackbits(mask, bitorder="little")[:count].astype(bool).reshape(shape)
