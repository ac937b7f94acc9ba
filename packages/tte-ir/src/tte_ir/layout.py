"""The engine's memory layouts, and the one place that permutes IR arrays into them.

``tte_ir`` records shapes in PyTorch order (activations ``[1, C, H, W]``, conv weights
``[O, C/g, KH, KW]``); the engine (``engine/include/tte/tte.h``) works in HWC with its own weight
layouts. The host binding's graph runner (``tte_engine.graph``) and the C code generator
(``tte_codegen``) both permute through these functions, so the two never disagree.
"""

from __future__ import annotations

import numpy as np

__all__ = ["conv_kernel", "engine_shape", "from_engine_layout", "to_engine_layout"]


def engine_shape(ir_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The engine shape of an IR activation: ``[1, C, H, W]`` -> ``[H, W, C]``, ``[1, I]`` -> ``[I]``."""
    if len(ir_shape) == 4:
        return (ir_shape[2], ir_shape[3], ir_shape[1])
    return tuple(ir_shape[1:])


def to_engine_layout(array: np.ndarray) -> np.ndarray:
    """An IR activation in the engine's layout: ``[1, C, H, W]`` -> ``[H, W, C]``, ``[1, I]`` -> ``[I]``."""
    if array.ndim == 4 and array.shape[0] == 1:
        return np.ascontiguousarray(array[0].transpose(1, 2, 0))
    if array.ndim == 2 and array.shape[0] == 1:
        return np.ascontiguousarray(array[0])
    raise ValueError(f"activation of shape {array.shape}: expected [1, C, H, W] or [1, I] (batch 1)")


def from_engine_layout(array: np.ndarray, ir_shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`to_engine_layout` for an IR tensor of shape ``ir_shape``."""
    if len(ir_shape) == 4:
        return np.ascontiguousarray(np.asarray(array).reshape(engine_shape(ir_shape)).transpose(2, 0, 1)[None])
    return np.asarray(array).reshape(ir_shape)


def conv_kernel(
    w: np.ndarray, channels: int, *, stride: int, padding: int, groups: int
) -> tuple[str, np.ndarray, dict[str, int]]:
    """Which conv kernel runs IR weights ``w [O, C/g, KH, KW]`` on ``channels`` input channels:
    its name (without ``tte_``), the weights in its layout, and its geometry keywords."""
    out_channels, _, kh, kw = w.shape
    if groups == channels == out_channels:
        return "depthwise_conv2d_fwd_s8", w[:, 0].transpose(1, 2, 0), {"stride": stride, "padding": padding}
    if groups == 1 and kh == kw == 1 and padding == 0:
        return "pointwise_conv2d_fwd_s8", w[:, :, 0, 0], {"stride": stride}
    return "conv2d_fwd_s8", w.transpose(0, 2, 3, 1), {"stride": stride, "padding": padding, "groups": groups}
