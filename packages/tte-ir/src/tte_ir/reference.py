"""The numpy reference interpreter: the executable form of NUMERICS.md §2.

Every function here computes exactly what the C engine and the PyTorch simulation must compute,
bit for bit on int8 outputs. Layout: PyTorch order with batch 1 (``x[1, C, H, W]``, conv weights
``[O, C/groups, KH, KW]``, linear ``[O, I]``).

Requantization (shared by conv, add and pool)::

    v    = <float32 value>                        # one float32 multiply (conv/pool), two + one add (add)
    v    = clamp(v, lo - z_y - 1, hi - z_y + 1)   # in float: keeps huge v from overflowing an int
    r    = rne(v)                                 # round half to even
    mask = lo <= r + z_y <= hi                    # 1 bit per output, for backward
    y    = clamp(r + z_y, lo, hi)

The float clamp is one code *wider* than the output range on both sides: clamping exactly to
``[lo - z_y, hi - z_y]`` would turn ``v = hi - z_y + 0.5`` (which rounds half-to-even outward
when ``hi - z_y`` is odd) into an in-range value and set a mask bit the unclamped math clears.

Under ``requant: fixed`` (NUMERICS.md §2b) each op takes its kernel call's integer parameters
instead and computes TensorFlow Lite's reference integer kernel (:mod:`tte_ir.fixedpoint`); then
``y = clamp(v + z_y, lo, hi)`` and ``mask = lo <= v + z_y <= hi`` on the int32 ``v``
(:func:`requantize_fixed`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tte_ir._ir import Graph, Node, Op, TteError, as_padding, as_pair
from tte_ir.constants import INT32_MAX, INT32_MIN
from tte_ir.fixedpoint import mbqm, mbqm_single
from tte_ir.kernels import DEPTHWISE, REQUANT, KernelCall, kernel_call, params_kernel, params_padding, params_stride

__all__ = [
    "FORWARD",
    "add",
    "avg_pool2d",
    "channel_shuffle",
    "channel_split",
    "concat",
    "conv2d",
    "effective_weight",
    "forward_node",
    "global_avg_pool",
    "linear_f32",
    "linear_s8",
    "lut",
    "max_pool2d",
    "mul",
    "padded_map",
    "pool_counts",
    "requantize",
    "requantize_fixed",
    "run_forward",
    "sat32",
    "window_tap",
]


def sat32(values: np.ndarray) -> np.ndarray:
    """Saturate int64 values to the int32 range."""
    return np.clip(values, INT32_MIN, INT32_MAX).astype(np.int64)


def requantize(
    v: np.ndarray, y_zero: int, act_min: int, act_max: int, return_mask: bool
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Round the float32 values ``v`` to int8 codes (see the module docstring)."""
    v = np.asarray(v, dtype=np.float32)
    v = np.clip(v, np.float32(act_min - y_zero - 1), np.float32(act_max - y_zero + 1))
    shifted = np.rint(v).astype(np.int32) + np.int32(y_zero)
    y = np.clip(shifted, act_min, act_max).astype(np.int8)
    if not return_mask:
        return y
    mask = (shifted >= act_min) & (shifted <= act_max)
    return y, mask


def requantize_fixed(
    v: np.ndarray, y_zero: int, act_min: int, act_max: int, return_mask: bool
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Codes (and mask) from the int32 results ``v`` of fixed-point requantization: ``clamp(v + z_y, lo, hi)``."""
    shifted = np.asarray(v, dtype=np.int64) + np.int64(y_zero)
    y = np.clip(shifted, act_min, act_max).astype(np.int8)
    if not return_mask:
        return y
    return y, (shifted >= act_min) & (shifted <= act_max)


def _fixed(p: Mapping[str, Any]) -> bool:
    """Whether a kernel call's descriptor asks for fixed-point requantization."""
    return p.get("requant", REQUANT["float"]) in (REQUANT["fixed"], REQUANT["fixed_single"])


def _check_int8(name: str, array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != np.int8:
        raise TypeError(f"'{name}' must be int8, got {array.dtype}")
    return array


Stride = int | tuple[int, int]
Padding = int | tuple[int, int, int, int]


def padded_map(a: np.ndarray, padding: Padding, fill: float = 0) -> np.ndarray:
    """``a`` [C, H, W] with ``padding`` (top, left, bottom, right; an int: every side) rows and columns of ``fill``."""
    top, left, bottom, right = as_padding(padding)
    return np.pad(a, ((0, 0), (top, bottom), (left, right)), constant_values=fill)


def window_tap(padded: np.ndarray, u: int, v: int, stride: Stride, out: tuple[int, int]) -> np.ndarray:
    """Tap ``(u, v)`` of every window of a padded map ``[C, Hp, Wp]``: a view ``[C, Ho, Wo]``."""
    sh, sw = as_pair(stride)
    ho, wo = out
    return padded[:, u : u + sh * (ho - 1) + 1 : sh, v : v + sw * (wo - 1) + 1 : sw]


def _out_size(padded: np.ndarray, kernel: tuple[int, int], stride: Stride) -> tuple[int, int]:
    sh, sw = as_pair(stride)
    return (padded.shape[1] - kernel[0]) // sh + 1, (padded.shape[2] - kernel[1]) // sw + 1


def _accumulate_conv(
    x: np.ndarray, w: np.ndarray, stride: Stride, padding: Padding, groups: int, x_zero: int
) -> np.ndarray:
    """Exact ``sum (x - z_x) * w`` as int64, zero padding contributing 0. Shapes as in :func:`conv2d`."""
    channels = x.shape[1]
    out_channels, in_per_group, kh, kw = w.shape
    # float64 is exact here: |sum| < K * 255 * 127 < 2^53 for every supported shape.
    centered = x[0].astype(np.float64) - float(x_zero)
    padded = padded_map(centered, padding)
    ho, wo = _out_size(padded, (kh, kw), stride)
    out_per_group = out_channels // groups
    wf = w.astype(np.float64)
    acc = np.empty((out_channels, ho, wo), dtype=np.float64)
    if groups == channels and in_per_group == 1 and out_per_group == 1:
        # depthwise: one tap at a time over all channels
        acc[:] = 0.0
        for u in range(kh):
            for v in range(kw):
                acc += window_tap(padded, u, v, stride, (ho, wo)) * wf[:, 0, u, v][:, None, None]
        return acc.astype(np.int64)
    for g in range(groups):
        xs = padded[g * in_per_group : (g + 1) * in_per_group]
        # im2col: [in_per_group*kh*kw, ho*wo]
        cols = np.empty((in_per_group, kh, kw, ho, wo), dtype=np.float64)
        for u in range(kh):
            for v in range(kw):
                cols[:, u, v] = window_tap(xs, u, v, stride, (ho, wo))
        wg = wf[g * out_per_group : (g + 1) * out_per_group].reshape(out_per_group, -1)
        acc[g * out_per_group : (g + 1) * out_per_group] = (wg @ cols.reshape(-1, ho * wo)).reshape(
            out_per_group, ho, wo
        )
    return acc.astype(np.int64)


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    multiplier: np.ndarray,
    *,
    stride: Stride,
    padding: Padding,
    groups: int,
    x_zero: int,
    y_zero: int,
    act_min: int = -128,
    act_max: int = 127,
    return_mask: bool = False,
    qmult: Any = None,
    qshift: Any = None,
    single: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """int8 convolution (NUMERICS.md §2).

    x: int8 [1, C, H, W]; w: int8 [O, C/groups, KH, KW]; b: int32 [O]; multiplier: float32 [O];
    ``stride`` (sh, sw) and ``padding`` (top, left, bottom, right), an int meaning every axis or side.
    With ``qmult`` and ``qshift`` (int [O], §2b) the multiplier is unused and
    ``v = MultiplyByQuantizedMultiplier(acc, qmult[o], qshift[o])``, TFLite's ConvPerChannel; ``single``:
    its single-rounding variant (:func:`tte_ir.fixedpoint.mbqm_single`), TFLite's FULLY_CONNECTED.
    Returns int8 [1, O, Ho, Wo] (and a bool mask of the same shape when ``return_mask``).
    """
    x = _check_int8("x", x)
    w = _check_int8("w", w)
    acc = _accumulate_conv(x, w, stride, padding, groups, x_zero)
    acc = sat32(acc + np.asarray(b, dtype=np.int64)[:, None, None])
    if qmult is not None:
        v = (mbqm_single if single else mbqm)(
            acc, np.asarray(qmult, dtype=np.int64)[:, None, None], np.asarray(qshift, dtype=np.int64)[:, None, None]
        )
        result = requantize_fixed(v, y_zero, act_min, act_max, return_mask)
    else:
        v = acc.astype(np.float32) * np.asarray(multiplier, dtype=np.float32)[:, None, None]
        result = requantize(v, y_zero, act_min, act_max, return_mask)
    if return_mask:
        y, mask = result
        return y[None], mask[None]
    return result[None]


def add(
    q1: np.ndarray,
    q2: np.ndarray,
    *,
    m1: float,
    m2: float,
    z1: int,
    z2: int,
    y_zero: int,
    act_min: int = -128,
    act_max: int = 127,
    return_mask: bool = False,
    fixed: Mapping[str, int] | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Quantized residual add: ``v = m1*(q1-z1) + m2*(q2-z2)`` in float32, two multiplies then one add.

    With ``fixed`` (:func:`tte_ir.quant.add_fixed_params`), TFLite's int8 ADD (§2b)::

        v = MBQM(MBQM((q1-z1) << left_shift, qm1, sh1) + MBQM((q2-z2) << left_shift, qm2, sh2), qmy, shy)
    """
    if fixed is not None:
        f = fixed
        a1 = (np.asarray(q1, dtype=np.int64) - z1) << f["left_shift"]
        a2 = (np.asarray(q2, dtype=np.int64) - z2) << f["left_shift"]
        raw = mbqm(a1, f["qm1"], f["sh1"]) + mbqm(a2, f["qm2"], f["sh2"])
        return requantize_fixed(mbqm(raw, f["qmy"], f["shy"]), y_zero, act_min, act_max, return_mask)
    a = (np.asarray(q1, dtype=np.int32) - np.int32(z1)).astype(np.float32)
    c = (np.asarray(q2, dtype=np.int32) - np.int32(z2)).astype(np.float32)
    v = np.float32(m1) * a + np.float32(m2) * c
    return requantize(v, y_zero, act_min, act_max, return_mask)


def global_avg_pool(
    x: np.ndarray,
    *,
    multiplier: float,
    x_zero: int,
    y_zero: int,
    return_mask: bool = False,
    qm: int | None = None,
    sh: int | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """x: int8 [1, C, H, W] -> int8 [1, C, 1, 1]; ``v = float32(sum(q - z_x)) * m``. With ``qm`` and
    ``sh`` (§2b, :func:`tte_ir.quant.mean_fixed_multiplier`), TFLite's MEAN: ``v = MBQM(sum(q - z_x), qm, sh)``."""
    x = _check_int8("x", x)
    sums = (x.astype(np.int64) - x_zero).sum(axis=(2, 3), keepdims=True)
    if qm is not None:
        return requantize_fixed(mbqm(sums, qm, sh), y_zero, -128, 127, return_mask)
    v = sums.astype(np.float32) * np.float32(multiplier)
    return requantize(v, y_zero, -128, 127, return_mask)


def _pool_windows(a: np.ndarray, kernel: Stride, stride: Stride, padding: Padding, fill: int) -> np.ndarray:
    """``a`` [C, H, W] -> [KH*KW, C, Ho, Wo]: tap ``u*KW + v`` of every window, padded taps ``fill``."""
    kh, kw = as_pair(kernel)
    padded = padded_map(a, padding, fill)
    out = _out_size(padded, (kh, kw), stride)
    return np.stack([window_tap(padded, u, v, stride, out) for u in range(kh) for v in range(kw)])


def pool_counts(
    size: tuple[int, int], *, kernel: Stride, stride: Stride, padding: Padding, count_include_pad: bool
) -> np.ndarray:
    """The divisor of every window of an average pool on a map of ``size`` (H, W): ``kh*kw`` with
    ``count_include_pad``, else the window's input pixels (padded taps left out). int64 [Ho, Wo].
    ``kernel`` and ``stride`` are (along H, along W), ``padding`` (top, left, bottom, right); an int
    means every axis or side."""
    ones = np.ones((1, *size), dtype=np.int64)
    windows = _pool_windows(ones, kernel, stride, padding, 1 if count_include_pad else 0)
    return windows.sum(axis=0)[0]


def max_pool2d(
    x: np.ndarray, *, kernel: Stride, stride: Stride, padding: Padding, return_index: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """int8 max pool: ``y`` is the largest code of each window, x [1, C, H, W] -> [1, C, Ho, Wo].

    Padded taps never win (every window holds an input pixel, padding at most half the kernel); the
    codes are copied, not requantized. The index (uint8, ``y``'s shape) is the window offset ``u*kw + v``
    of the first largest tap in row-major window order: ties go to the earliest tap.
    """
    x = _check_int8("x", x)
    windows = _pool_windows(x[0].astype(np.int16), kernel, stride, padding, -129)
    index = windows.argmax(axis=0)
    y = np.take_along_axis(windows, index[None], axis=0)[0].astype(np.int8)[None]
    if return_index:
        return y, index.astype(np.uint8)[None]
    return y


def avg_pool2d(
    x: np.ndarray,
    multiplier: np.ndarray,
    *,
    kernel: Stride,
    stride: Stride,
    padding: Padding,
    count_include_pad: bool,
    x_zero: int,
    y_zero: int,
    return_mask: bool = False,
    fixed: bool = False,
    qmult: Any = None,
    qshift: Any = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """int8 average pool, x [1, C, H, W] -> [1, C, Ho, Wo]: ``v = float32(sum(q - z_x)) * m[count]`` over
    each window's input pixels (padded taps add 0), ``count`` from :func:`pool_counts`, ``m`` the float32
    table of :func:`tte_ir.quant.avg_pool_multipliers`; then :func:`requantize` to [-128, 127].

    ``fixed`` (§2b): without tables, TFLite's AVERAGE_POOL_2D (x and y share scale and zero point):
    ``v = round_half_away(sum(q) / count)`` by C integer division, ``y = clamp(v)``; with ``qmult``,
    ``qshift`` [KH*KW+1] (:func:`tte_ir.quant.avg_pool_fixed_multipliers`),
    ``v = MBQM(sum(q - z_x), qmult[count], qshift[count])``, ``y = clamp(v + z_y)``."""
    x = _check_int8("x", x)
    divide = fixed and qmult is None
    centered = x[0].astype(np.int64) - np.int64(0 if divide else x_zero)
    sums = _pool_windows(centered, kernel, stride, padding, 0).sum(axis=0)
    counts = pool_counts(
        x.shape[2:], kernel=kernel, stride=stride, padding=padding, count_include_pad=count_include_pad
    )
    counts = np.broadcast_to(counts, sums.shape)
    if divide:
        half = counts // 2
        num = np.where(sums > 0, sums + half, sums - half)
        v = np.sign(num) * (np.abs(num) // counts)  # C division: truncation toward zero
        result = requantize_fixed(v, 0, -128, 127, return_mask)
    elif fixed:
        v = mbqm(sums, np.asarray(qmult, dtype=np.int64)[counts], np.asarray(qshift, dtype=np.int64)[counts])
        result = requantize_fixed(v, y_zero, -128, 127, return_mask)
    else:
        v = sums.astype(np.float32) * np.asarray(multiplier, dtype=np.float32)[counts]
        result = requantize(v, y_zero, -128, 127, return_mask)
    if return_mask:
        return result[0][None], result[1][None]
    return result[None]


def linear_s8(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    multiplier: np.ndarray,
    *,
    x_zero: int,
    y_zero: int,
    act_min: int = -128,
    act_max: int = 127,
    return_mask: bool = False,
    qmult: Any = None,
    qshift: Any = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """int8 linear layer = a 1x1 conv on a 1x1 map. x: int8 [1, I]; w: int8 [O, I]; b: int32 [O]
    (``qmult``, ``qshift``: fixed-point requantization as :func:`conv2d`, with the single rounding of
    TFLite's FULLY_CONNECTED)."""
    x = _check_int8("x", x)
    w = _check_int8("w", w)
    result = conv2d(
        x.reshape(1, -1, 1, 1),
        w.reshape(w.shape[0], w.shape[1], 1, 1),
        b,
        multiplier,
        stride=1,
        padding=0,
        groups=1,
        x_zero=x_zero,
        y_zero=y_zero,
        act_min=act_min,
        act_max=act_max,
        return_mask=return_mask,
        qmult=qmult,
        qshift=qshift,
        single=True,
    )
    if return_mask:
        return result[0].reshape(1, -1), result[1].reshape(1, -1)
    return result.reshape(1, -1)


def dequantize_input(x: np.ndarray, x_scale: float, x_zero: int) -> np.ndarray:
    """``x_f = s_x * float32(q - z_x)`` (the fp32 head's input)."""
    return np.float32(x_scale) * (np.asarray(x, dtype=np.int32) - np.int32(x_zero)).astype(np.float32)


def linear_f32(x: np.ndarray, w: np.ndarray, b: np.ndarray, *, x_scale: float, x_zero: int) -> np.ndarray:
    """fp32 classifier head on an int8 input: ``logits[o] = b[o] + sum_i w[o, i] * x_f[i]``.

    The sum runs in ascending ``i`` from 0.0 in float32 (each product rounded, then added, no FMA),
    and the bias is added last: the same order as the C kernel, so results agree bit for bit.
    """
    x = _check_int8("x", x)
    xf = dequantize_input(x[0], x_scale, x_zero)
    w = np.asarray(w, dtype=np.float32)
    total = np.zeros(w.shape[0], dtype=np.float32)
    for i in range(w.shape[1]):
        total = total + w[:, i] * xf[i]
    return (np.asarray(b, dtype=np.float32) + total)[None]


def lut(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Elementwise int8 activation: ``y = table[x + 128]`` (``table``: int8 [256], :func:`tte_ir.quant.lut_tables`)."""
    x = _check_int8("x", x)
    return _check_int8("table", table)[x.astype(np.int32) + 128]


def mul(
    a: np.ndarray,
    b: np.ndarray,
    *,
    m: float,
    a_zero: int,
    b_zero: int,
    y_zero: int,
    act_min: int = -128,
    act_max: int = 127,
    return_mask: bool = False,
    qm: int | None = None,
    sh: int | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Channel-wise multiply of a map ``a`` [1,C,H,W] by a vector ``b`` [1,C,1,1]:
    ``v = m * float32((a - z_a) * (b[c] - z_b))``, the product exact in int32 (|p| <= 255^2), one float32 multiply.
    With ``qm``, ``sh`` (§2b), TFLite's MUL: ``v = MBQM((a - z_a) * (b[c] - z_b), qm, sh)``."""
    a = _check_int8("a", a)
    b = _check_int8("b", b)
    product = (a.astype(np.int32) - np.int32(a_zero)) * (b.astype(np.int32) - np.int32(b_zero))
    if qm is not None:
        return requantize_fixed(mbqm(product, qm, sh), y_zero, act_min, act_max, return_mask)
    v = np.float32(m) * product.astype(np.float32)
    return requantize(v, y_zero, act_min, act_max, return_mask)


def _pack(mask: np.ndarray) -> np.ndarray:
    """A bool mask bit-packed as the engine stores it (element ``i`` in IR order is bit ``i % 8`` of byte ``i // 8``)."""
    return np.packbits(np.asarray(mask, dtype=bool).ravel(), bitorder="little")


def effective_weight(w: np.ndarray, w_train: np.ndarray | None, channels: Any, depthwise: bool) -> np.ndarray:
    """The weights a conv with a trained slice computes with: ``w`` with the listed channels (input
    channels; channels of a depthwise conv) replaced by ``w_train``."""
    if w_train is None:
        return w
    w = np.array(w, copy=True)
    if depthwise:
        w[list(channels)] = w_train
    else:
        w[:, list(channels)] = w_train
    return w


Values = Mapping[str, np.ndarray]


def _value(call: KernelCall, name: str, values: Values) -> np.ndarray | None:
    arg = call.arg(name)
    return values[arg.reads] if arg.reads is not None else None


def _outputs(call: KernelCall, y: np.ndarray, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The node's written tensors by name: ``y``, and the packed mask when the node keeps one."""
    out = {call.arg("y").writes: y}
    mask_arg = next((a for a in call.args if a.name == "mask"), None)
    if mask_arg is not None and mask_arg.writes is not None:
        out[mask_arg.writes] = _pack(mask)
    return out


def _conv2d(call: KernelCall, values: Values) -> dict[str, np.ndarray]:
    p = call.params
    w = effective_weight(
        _value(call, "w", values), _value(call, "w_train", values), p.get("train_channels"), call.family == DEPTHWISE
    )
    y, mask = conv2d(
        _value(call, "x", values), w, _value(call, "bias", values), call.arg("multiplier").value,
        stride=params_stride(p), padding=params_padding(p), groups=p["groups"], x_zero=p["x_zero"],
        y_zero=p["y_zero"], act_min=p["act_min"], act_max=p["act_max"], return_mask=True, **_tables(p),
        single=p.get("requant") == REQUANT["fixed_single"],
    )  # fmt: skip
    return _outputs(call, y, mask)


def _tables(p: Mapping[str, Any]) -> dict[str, Any]:
    """``qmult`` / ``qshift`` of a descriptor under fixed requantization (none under float)."""
    return {"qmult": p.get("qmult"), "qshift": p.get("qshift")} if _fixed(p) else {}


def _scalar(p: Mapping[str, Any]) -> dict[str, Any]:
    """``qm`` / ``sh`` of a descriptor under fixed requantization (none under float)."""
    return {"qm": p["qm"], "sh": p["sh"]} if _fixed(p) else {}


def _add(call: KernelCall, values: Values) -> dict[str, np.ndarray]:
    p = call.params
    y, mask = add(
        _value(call, "x1", values), _value(call, "x2", values), m1=p["m1"], m2=p["m2"], z1=p["z1"], z2=p["z2"],
        y_zero=p["y_zero"], act_min=p["act_min"], act_max=p["act_max"], return_mask=True,
        fixed={k: p[k] for k in ("left_shift", "qm1", "sh1", "qm2", "sh2", "qmy", "shy")} if _fixed(p) else None,
    )  # fmt: skip
    return _outputs(call, y, mask)


def _global_avg_pool(call: KernelCall, values: Values) -> dict[str, np.ndarray]:
    p = call.params
    y, mask = global_avg_pool(
        _value(call, "x", values), multiplier=p["multiplier"], x_zero=p["x_zero"], y_zero=p["y_zero"], return_mask=True,
        **_scalar(p),
    )  # fmt: skip
    return _outputs(call, y, mask)


def _linear(call: KernelCall, values: Values) -> dict[str, np.ndarray]:
    p = call.params
    x, w, b = (_value(call, name, values) for name in ("x", "w", "bias"))
    if call.kernel == "linear_fwd_f32":
        return _outputs(call, linear_f32(x, w, b, x_scale=p["x_scale"], x_zero=p["x_zero"]))
    y, mask = linear_s8(
        x, w, b, call.arg("multiplier").value, x_zero=p["x_zero"], y_zero=p["y_zero"], act_min=p["act_min"],
        act_max=p["act_max"], return_mask=True, **_tables(p),
    )  # fmt: skip
    return _outputs(call, y, mask)


def _lut(call: KernelCall, values: Values) -> dict[str, np.ndarray]:
    return _outputs(call, lut(_value(call, "x", values), call.arg("table").value))


def _mul(call: KernelCall, values: Values) -> dict[str, np.ndarray]:
    p = call.params
    y, mask = mul(
        _value(call, "a", values), _value(call, "b", values), m=p["m"], a_zero=p["a_zero"], b_zero=p["b_zero"],
        y_zero=p["y_zero"], act_min=p["act_min"], act_max=p["act_max"], return_mask=True, **_scalar(p),
    )  # fmt: skip
    return _outputs(call, y, mask)


def _view(call: KernelCall, values: Values, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    arg = call.args[0]
    x = values[arg.reads]
    if call.params["order"] == "nchw":
        return {arg.writes: x.reshape(shape)}
    if x.ndim == 4:  # an "hwc" flatten: the map's elements in channels-last order
        return {arg.writes: np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(shape)}
    _, channels, height, width = shape  # an "hwc" unflatten: the inverse
    return {arg.writes: np.ascontiguousarray(x.reshape(1, height, width, channels).transpose(0, 3, 1, 2))}


def _max_pool(call: KernelCall, values: Values) -> dict[str, np.ndarray]:
    p = call.params
    y, index = max_pool2d(
        _value(call, "x", values),
        kernel=params_kernel(p),
        stride=params_stride(p),
        padding=params_padding(p),
        return_index=True,
    )
    out = {call.arg("y").writes: y}
    if call.arg("index").writes is not None:
        out[call.arg("index").writes] = index
    return out


def _avg_pool(call: KernelCall, values: Values) -> dict[str, np.ndarray]:
    p = call.params
    y, mask = avg_pool2d(
        _value(call, "x", values), call.arg("multiplier").value, kernel=params_kernel(p), stride=params_stride(p),
        padding=params_padding(p), count_include_pad=bool(p["count_include_pad"]), x_zero=p["x_zero"],
        y_zero=p["y_zero"], return_mask=True, fixed=_fixed(p), **_tables(p),
    )  # fmt: skip
    return _outputs(call, y, mask)


def concat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` then ``b`` along channels (axis 1), codes or float32 values unchanged."""
    return np.concatenate([np.asarray(a), np.asarray(b)], axis=1)


def channel_split(x: np.ndarray, start: int, count: int) -> np.ndarray:
    """Channels ``[start, start+count)`` of ``x`` (axis 1), unchanged."""
    return np.ascontiguousarray(np.asarray(x)[:, start : start + count])


def channel_shuffle(x: np.ndarray, groups: int) -> np.ndarray:
    """ShuffleNet's shuffle: channel ``i*(C/groups) + j`` of ``x`` becomes channel ``j*groups + i``."""
    x = np.asarray(x)
    n, channels, *spatial = x.shape
    grouped = x.reshape(n, groups, channels // groups, *spatial)
    return np.ascontiguousarray(grouped.swapaxes(1, 2)).reshape(x.shape)


def _concat(call: KernelCall, values: Values) -> dict[str, np.ndarray]:
    return {call.arg("y").writes: concat(_value(call, "a", values), _value(call, "b", values))}


def _channel_split(call: KernelCall, values: Values) -> dict[str, np.ndarray]:
    p = call.params
    return {call.arg("y").writes: channel_split(_value(call, "x", values), p["start"], p["count"])}


def _channel_shuffle(call: KernelCall, values: Values) -> dict[str, np.ndarray]:
    return {call.arg("y").writes: channel_shuffle(_value(call, "x", values), call.params["groups"])}


FORWARD: Mapping[Op, Callable[[KernelCall, Values], dict[str, np.ndarray]]] = {
    Op.CONV2D: _conv2d,
    Op.ADD: _add,
    Op.GLOBAL_AVG_POOL: _global_avg_pool,
    Op.LINEAR: _linear,
    Op.MAX_POOL: _max_pool,
    Op.AVG_POOL: _avg_pool,
    Op.LUT: _lut,
    Op.MUL: _mul,
    Op.CONCAT: _concat,
    Op.CHANNEL_SPLIT: _channel_split,
    Op.CHANNEL_SHUFFLE: _channel_shuffle,
}
"""The forward ops' reference kernels: a node's kernel call and the values so far -> its written tensors
(int8 outputs, and bit-packed clamp masks where the node keeps them). Reshape is a view. The channel ops
(concat, split, shuffle) copy int8 codes or, in a training graph, float32 gradients."""


def forward_node(graph: Graph, node: Node, values: Values) -> dict[str, np.ndarray]:
    """The tensors a forward node writes, computed from its kernel call (:mod:`tte_ir.kernels`)."""
    call = kernel_call(graph, node)
    if call.kernel is None:
        return _view(call, values, graph.tensors[node.outputs[0]].shape)
    kernel = FORWARD.get(node.op)
    if kernel is None:
        raise TteError(f"{node.describe()}: the reference interpreter has no forward kernel for this op")
    return kernel(call, values)


def run_forward(graph: Graph, x: np.ndarray, *, return_all: bool = False) -> Any:
    """Execute a forward graph on one input.

    Returns the graph's single output array, or, with ``return_all``, a dict of every tensor the
    graph reads or writes (inputs, constants and intermediates) for layer-by-layer comparisons.
    """
    if len(graph.inputs) != 1:
        raise TteError(f"graph '{graph.name}' has {len(graph.inputs)} inputs; run_forward takes graphs with one")
    in_spec = graph.tensors[graph.inputs[0]]
    x = np.asarray(x)
    if tuple(x.shape) != in_spec.shape or x.dtype != in_spec.dtype.numpy:
        raise TteError(
            f"graph '{graph.name}': input '{in_spec.name}' must be {in_spec.dtype.name.lower()}{list(in_spec.shape)}, "
            f"got {x.dtype}{list(x.shape)}"
        )
    values: dict[str, np.ndarray] = dict(graph.constants)
    values[in_spec.name] = x
    for node in graph.nodes:
        values.update(forward_node(graph, node, values))
    if return_all:
        return values
    return values[graph.outputs[0]]
