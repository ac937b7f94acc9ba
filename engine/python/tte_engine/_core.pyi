"""Type stub of the private extension; see the tte_engine package for documentation."""

import numpy as np
import numpy.typing as npt

MAX_REDUCTION: int

_S8 = npt.NDArray[np.int8]
_Mask = npt.NDArray[np.uint8]

def conv2d_fwd_s8(
    x: _S8,
    w: _S8,
    bias: npt.NDArray[np.int32],
    multiplier: npt.NDArray[np.float32],
    *,
    stride: int = 1,
    padding: int = 0,
    groups: int = 1,
    x_zero: int,
    y_zero: int,
    act_min: int = -128,
    act_max: int = 127,
    return_mask: bool = False,
) -> _S8 | tuple[_S8, _Mask]: ...
def depthwise_conv2d_fwd_s8(
    x: _S8,
    w: _S8,
    bias: npt.NDArray[np.int32],
    multiplier: npt.NDArray[np.float32],
    *,
    stride: int = 1,
    padding: int = 0,
    x_zero: int,
    y_zero: int,
    act_min: int = -128,
    act_max: int = 127,
    return_mask: bool = False,
) -> _S8 | tuple[_S8, _Mask]: ...
def pointwise_conv2d_fwd_s8(
    x: _S8,
    w: _S8,
    bias: npt.NDArray[np.int32],
    multiplier: npt.NDArray[np.float32],
    *,
    stride: int = 1,
    x_zero: int,
    y_zero: int,
    act_min: int = -128,
    act_max: int = 127,
    return_mask: bool = False,
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
    stride: int = 1,
    padding: int = 0,
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
    stride: int = 1,
    padding: int = 0,
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
    stride: int = 1,
    padding: int = 0,
    groups: int = 1,
) -> int: ...
