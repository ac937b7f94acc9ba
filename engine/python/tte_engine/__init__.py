"""tte engine kernels on the host, on numpy arrays in the engine's layouts.

Activations are HWC (``[H, W, C]`` int8, batch 1); dense conv weights ``[O, KH, KW, C/groups]``,
depthwise ``[KH, KW, C]``, pointwise and linear ``[O, I]``; per-output-channel float32 multipliers
``M[o] = s_x*s_w[o]/s_y`` come precomputed (``tte_ir.quant``). Every function checks its arguments
and raises :class:`ValueError` naming the offending one. With ``return_mask=True`` an int8 kernel
also returns its clamp mask, bit-packed as in ``tte/tte.h`` (see :func:`unpack_mask`). The forward
convs also take a trained weight slice (``w_train``, ``train_channels``) and a row band (``rows``,
``in_h``).

Training (``tte/tte_train.h``): float32 gradients in the engine's layouts; the loss, mask/scale,
input-gradient kernels (``*_bwd_x_f32``, channel bands ``gh_band``/``gx_band``/``band``), and the
fused QAS updates (``*_bwd_w_update_s8``, ``bias_update_s32``, ``linear_bwd_update_f32``), which
read and update a :class:`TrainContext` (learning rates, step counter, seed, step status) and
return the updated parameter as a new array.

:mod:`tte_engine.calls` runs one node of a ``tte_ir`` graph as ``tte_ir.kernels.kernel_call``
describes it, through the generic ``_core.call`` (generated from ``tte_ir.kernels``);
:mod:`tte_engine.graph` runs a whole forward graph that way, and :mod:`tte_engine.training` a
compiled training step (install ``tte-engine[ir]``).

The package also carries the engine's C sources, public headers and CMake package, and the board
projects (:mod:`tte_engine.sources`: :func:`cmake_dir` for ``find_package(tte_engine)``).
"""

from __future__ import annotations

import numpy as np

from tte_engine._core import (
    MAX_REDUCTION,
    TrainContext,
    accumulate_f32,
    add_bwd_f32,
    add_fwd_s8,
    bias_update_s32,
    conv2d_bwd_w_update_s8,
    conv2d_bwd_x_f32,
    conv2d_fwd_s8,
    conv2d_fwd_s8_scratch_size,
    depthwise_conv2d_bwd_w_update_s8,
    depthwise_conv2d_bwd_x_f32,
    depthwise_conv2d_fwd_s8,
    depthwise_conv2d_fwd_s8_scratch_size,
    expf,
    gather_channels_s8,
    global_avg_pool_bwd_f32,
    global_avg_pool_fwd_s8,
    linear_bwd_update_f32,
    linear_fwd_f32,
    linear_fwd_s8,
    logf,
    mask_scale_f32,
    pointwise_conv2d_bwd_w_update_s8,
    pointwise_conv2d_bwd_x_f32,
    pointwise_conv2d_fwd_s8,
    pointwise_conv2d_fwd_s8_scratch_size,
    round_uniform,
    softmax_ce_f32,
    softmax_ce_s8,
)
from tte_engine.sources import boards_dir, cmake_dir, include_dir, source_dir

__all__ = [
    "MAX_REDUCTION",
    "TrainContext",
    "accumulate_f32",
    "add_bwd_f32",
    "add_fwd_s8",
    "bias_update_s32",
    "boards_dir",
    "cmake_dir",
    "conv2d_bwd_w_update_s8",
    "conv2d_bwd_x_f32",
    "conv2d_fwd_s8",
    "conv2d_fwd_s8_scratch_size",
    "depthwise_conv2d_bwd_w_update_s8",
    "depthwise_conv2d_bwd_x_f32",
    "depthwise_conv2d_fwd_s8",
    "depthwise_conv2d_fwd_s8_scratch_size",
    "expf",
    "gather_channels_s8",
    "global_avg_pool_bwd_f32",
    "global_avg_pool_fwd_s8",
    "include_dir",
    "linear_bwd_update_f32",
    "linear_fwd_f32",
    "linear_fwd_s8",
    "logf",
    "mask_scale_f32",
    "pointwise_conv2d_bwd_w_update_s8",
    "pointwise_conv2d_bwd_x_f32",
    "pointwise_conv2d_fwd_s8",
    "pointwise_conv2d_fwd_s8_scratch_size",
    "round_uniform",
    "softmax_ce_f32",
    "softmax_ce_s8",
    "source_dir",
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
