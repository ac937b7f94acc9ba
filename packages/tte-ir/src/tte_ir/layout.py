"""The engine's activation layout, and the one place that permutes IR activations into it.

``tte_ir`` records activations in PyTorch order (``[1, C, H, W]``); the engine
(``engine/include/tte/tte.h``) works in HWC. The host binding's runners (``tte_engine``) and the C
code generator (``tte_codegen``) both permute through these functions, so the two never disagree.
Conv weights have their family's layouts, in :class:`tte_ir.kernels.WeightLayout`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["engine_shape", "from_engine_layout", "to_engine_layout"]


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
