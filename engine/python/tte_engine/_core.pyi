"""Type stub of the private extension; see the tte_engine package for documentation."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

MAX_REDUCTION: int

_S8 = npt.NDArray[np.int8]
_Mask = npt.NDArray[np.uint8]
_F32 = npt.NDArray[np.float32]
_Band = tuple[int, int] | None
# (along H, along W) and (top, left, bottom, right); a plain int means every axis or side
Stride = int | tuple[int, int]
Padding = int | tuple[int, int, int, int]

def conv2d_fwd_s8(
    x: _S8,
    w: _S8,
    bias: npt.NDArray[np.int32],
    multiplier: npt.NDArray[np.float32],
    *,
    stride: Stride = 1,
    padding: Padding = 0,
    groups: int = 1,
    x_zero: int,
    y_zero: int,
    act_min: int = -128,
    act_max: int = 127,
    return_mask: bool = False,
    w_train: _S8 | None = None,
    train_channels: Sequence[int] | None = None,
    rows: tuple[int, int, int] | None = None,
    in_h: int | None = None,
) -> _S8 | tuple[_S8, _Mask]: ...
def depthwise_conv2d_fwd_s8(
    x: _S8,
    w: _S8,
    bias: npt.NDArray[np.int32],
    multiplier: npt.NDArray[np.float32],
    *,
    stride: Stride = 1,
    padding: Padding = 0,
    x_zero: int,
    y_zero: int,
    act_min: int = -128,
    act_max: int = 127,
    return_mask: bool = False,
    w_train: _S8 | None = None,
    train_channels: Sequence[int] | None = None,
    rows: tuple[int, int, int] | None = None,
    in_h: int | None = None,
) -> _S8 | tuple[_S8, _Mask]: ...
def pointwise_conv2d_fwd_s8(
    x: _S8,
    w: _S8,
    bias: npt.NDArray[np.int32],
    multiplier: npt.NDArray[np.float32],
    *,
    stride: Stride = 1,
    x_zero: int,
    y_zero: int,
    act_min: int = -128,
    act_max: int = 127,
    return_mask: bool = False,
    w_train: _S8 | None = None,
    train_channels: Sequence[int] | None = None,
    rows: tuple[int, int, int] | None = None,
    in_h: int | None = None,
) -> _S8 | tuple[_S8, _Mask]: ...
def add_fwd_s8(
    x1: _S8,
    x2: _S8,
    *,
    m1: float,
    m2: float,
    z1: int,
    z2: int,
    y_zero: int,
    act_min: int = -128,
    act_max: int = 127,
    return_mask: bool = False,
) -> _S8 | tuple[_S8, _Mask]: ...
def global_avg_pool_fwd_s8(
    x: _S8, *, multiplier: float, x_zero: int, y_zero: int, return_mask: bool = False
) -> _S8 | tuple[_S8, _Mask]: ...
def linear_fwd_s8(
    x: _S8,
    w: _S8,
    bias: npt.NDArray[np.int32],
    multiplier: npt.NDArray[np.float32],
    *,
    x_zero: int,
    y_zero: int,
    act_min: int = -128,
    act_max: int = 127,
    return_mask: bool = False,
) -> _S8 | tuple[_S8, _Mask]: ...
def linear_fwd_f32(
    x: _S8, w: npt.NDArray[np.float32], bias: npt.NDArray[np.float32], *, x_scale: float, x_zero: int
) -> npt.NDArray[np.float32]: ...
def conv2d_fwd_s8_scratch_size(
    *,
    in_h: int,
    in_w: int,
    in_c: int,
    out_c: int,
    kernel_h: int,
    kernel_w: int,
    stride: Stride = 1,
    padding: Padding = 0,
    groups: int = 1,
) -> int: ...
def depthwise_conv2d_fwd_s8_scratch_size(
    *,
    in_h: int,
    in_w: int,
    in_c: int,
    out_c: int,
    kernel_h: int,
    kernel_w: int,
    stride: Stride = 1,
    padding: Padding = 0,
    groups: int = 1,
) -> int: ...
def pointwise_conv2d_fwd_s8_scratch_size(
    *,
    in_h: int,
    in_w: int,
    in_c: int,
    out_c: int,
    kernel_h: int,
    kernel_w: int,
    stride: Stride = 1,
    padding: Padding = 0,
    groups: int = 1,
) -> int: ...

class TrainContext:
    lr: float
    head_lr: float
    step: int
    seed: int
    status: str  # "ok", "nonfinite-loss" or "nonfinite-grad"
    batch_end: bool  # a mini-batch's last sample: the accumulating updates apply
    def __init__(self, *, lr: float, head_lr: float, step: int = 0, seed: int = 0, batch_end: bool = True) -> None: ...

def gather_channels_s8(x: _S8, channels: Sequence[int]) -> _S8: ...
def softmax_ce_f32(logits: _F32, label: int, *, ctx: TrainContext | None = None) -> tuple[float, _F32]: ...
def softmax_ce_s8(
    logits: _S8, label: int, *, scale: float, zero: int, ctx: TrainContext | None = None
) -> tuple[float, _F32]: ...
def mask_scale_f32(g: _F32, mask: _Mask, scale: _F32, *, band: _Band = None) -> _F32: ...
def add_bwd_f32(g: _F32, mask: _Mask, *, m1: float, m2: float) -> tuple[_F32, _F32]: ...
def global_avg_pool_bwd_f32(g: _F32, mask: _Mask, *, multiplier: float, in_h: int, in_w: int) -> _F32: ...
def accumulate_f32(acc: _F32, g: _F32) -> _F32: ...
def conv2d_bwd_x_f32(
    gh: _F32,
    w: _S8,
    *,
    in_h: int,
    in_w: int,
    stride: Stride = 1,
    padding: Padding = 0,
    groups: int = 1,
    w_train: _S8 | None = None,
    train_channels: Sequence[int] | None = None,
    acc: _F32 | None = None,
    gh_band: _Band = None,
    gx_band: _Band = None,
) -> _F32: ...
def depthwise_conv2d_bwd_x_f32(
    gh: _F32,
    w: _S8,
    *,
    in_h: int,
    in_w: int,
    stride: Stride = 1,
    padding: Padding = 0,
    w_train: _S8 | None = None,
    train_channels: Sequence[int] | None = None,
    acc: _F32 | None = None,
    band: _Band = None,
) -> _F32: ...
def pointwise_conv2d_bwd_x_f32(
    gh: _F32,
    w: _S8,
    *,
    in_h: int,
    in_w: int,
    stride: Stride = 1,
    w_train: _S8 | None = None,
    train_channels: Sequence[int] | None = None,
    acc: _F32 | None = None,
    gh_band: _Band = None,
    gx_band: _Band = None,
) -> _F32: ...
def conv2d_bwd_w_update_s8(
    ctx: TrainContext,
    x_saved: _S8,
    gh: _F32,
    w_train: _S8,
    inv_w: _F32,
    *,
    train_channels: Sequence[int],
    in_c: int,
    stride: Stride = 1,
    padding: Padding = 0,
    x_zero: int,
    tensor_id: int,
    rounding: str = "stochastic",
    lr_group: str = "body",
    gh_band: _Band = None,
) -> _S8: ...
def depthwise_conv2d_bwd_w_update_s8(
    ctx: TrainContext,
    x_saved: _S8,
    gh: _F32,
    w_train: _S8,
    inv_w: _F32,
    *,
    train_channels: Sequence[int],
    in_c: int,
    stride: Stride = 1,
    padding: Padding = 0,
    x_zero: int,
    tensor_id: int,
    rounding: str = "stochastic",
    lr_group: str = "body",
    gh_band: _Band = None,
) -> _S8: ...
def pointwise_conv2d_bwd_w_update_s8(
    ctx: TrainContext,
    x_saved: _S8,
    gh: _F32,
    w_train: _S8,
    inv_w: _F32,
    *,
    train_channels: Sequence[int],
    in_c: int,
    stride: Stride = 1,
    x_zero: int,
    tensor_id: int,
    rounding: str = "stochastic",
    lr_group: str = "body",
    gh_band: _Band = None,
) -> _S8: ...
def bias_update_s32(
    ctx: TrainContext,
    gh: _F32,
    b: npt.NDArray[np.int32],
    inv_b: _F32,
    *,
    tensor_id: int,
    rounding: str = "stochastic",
    lr_group: str = "body",
    band: _Band = None,
) -> npt.NDArray[np.int32]: ...
def linear_bwd_update_f32(
    ctx: TrainContext,
    x: _S8,
    g: _F32,
    w: _F32,
    b: _F32,
    *,
    x_scale: float,
    x_zero: int,
    lr_group: str = "head",
    update: bool = True,
    input_grad: bool = False,
) -> tuple[_F32 | None, _F32 | None, _F32 | None]: ...
def round_uniform(seed: int, step: int, tensor_id: int, element_index: npt.ArrayLike) -> _F32: ...
def expf(x: _F32) -> _F32: ...
def logf(x: _F32) -> _F32: ...

# The generic entry point (calls.cpp, generated from tte_ir.kernels): tte_<kernel>(&params, *args).
_CallArg = npt.NDArray[np.generic] | int | dict[str, object] | TrainContext | None

def call(kernel: str, params: dict[str, object] | None, args: list[_CallArg]) -> None: ...
def scratch_size(kernel: str, params: dict[str, object]) -> int: ...
def kernels() -> list[str]: ...
