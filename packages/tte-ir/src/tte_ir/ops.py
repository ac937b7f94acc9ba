"""The op table: one row per :class:`~tte_ir.Op` with its operand roles, attributes, shape and
dtype inference, in-place aliasing and cost. Adding an op means adding one row here (plus its
reference kernel). One node is one engine kernel call; roles marked ``?`` are present only when the
attribute named after them is set, so a kernel's optional pointer is an optional operand here.

Forward ops (PyTorch order, batch 1):

================ ================================ ===================== ===========================
op               inputs                           outputs               attributes (default)
================ ================================ ===================== ===========================
conv2d           x[1,C,H,W] s8,                   y[1,O,Ho,Wo] s8,      stride ((1, 1)), padding
                 w[O,C/g,KH,KW] s8, b[O] s32,     mask? u8              ((0, 0, 0, 0)), groups (1),
                 w_train? s8                                            act_min (-128), act_max (127),
                                                                        channels, save_mask, tile
add              a[1,C,H,W] s8, b (same shape)    y s8, mask? u8        act_min, act_max, save_mask,
                                                                        tile
global_avg_pool  x[1,C,H,W] s8                    y[1,C,1,1] s8, mask?  save_mask
linear           x[1,I] s8, w[O,I] s8, b[O] s32   y[1,O] s8, mask?      act_min, act_max, save_mask
linear           x[1,I] s8, w[O,I] f32, b[O] f32  y[1,O] f32 (logits)
reshape          x                                y (same numel, dtype) shape, order ("nchw")
lut              x[1,C(,H,W)] s8                  y (same shape) s8     function
mul              a[1,C,H,W] s8, b[1,C,1,1] s8     y[1,C,H,W] s8, mask?  act_min, act_max, save_mask
max_pool         x[1,C,H,W] s8                    y[1,C,Ho,Wo] s8,      kernel, stride, padding (0),
                                                  index? u8 (y's shape) save_index
avg_pool         x[1,C,H,W] s8                    y[1,C,Ho,Wo] s8,      kernel, stride, padding (0),
                                                  mask? u8              count_include_pad (true),
                                                                        save_mask
concat           a[1,Ca,H,W], b[1,Cb,H,W] (s8|f32) y[1,Ca+Cb,H,W]
channel_split    x[1,C,H,W] s8|f32                y[1,count,H,W]        start, count
channel_shuffle  x[1,C,H,W] s8|f32                y (same shape)        groups
================ ================================ ===================== ===========================

``lut`` applies ``function`` (hard_swish, hard_sigmoid or sigmoid) through a 256-entry table over the
input codes, computed at compile time from the function and both tensors' quantization
(:func:`tte_ir.quant.lut_tables`); the table holds the output clamp, so the node keeps no mask. ``mul``
multiplies every pixel of channel ``c`` of ``a`` by ``b[c]`` (squeeze-and-excite's gate); NUMERICS.md
gives both ops' rounding.

Channel ops (ShuffleNet): ``concat`` joins ``a`` and ``b`` along channels (``a``'s first), ``channel_split``
takes channels ``[start, start+count)``, ``channel_shuffle`` sends channel ``i*(C/groups) + j`` to
``j*groups + i`` (PyTorch's ``view(N, g, C/g, H, W).transpose(1, 2)``; its inverse is the shuffle with
``C/groups`` groups). All three move codes (or float32 gradients) unchanged: int8 inputs and outputs share
one quantization. Maps of a ``[1, C]`` vector or ``[1, C, 1, 1]`` are one pixel, so a channel range is
contiguous in the engine's HWC layout; :mod:`tte_ir.views` decides which of these nodes run as views.
``channel_insert`` (the split's backward) writes ``g`` into channels ``[start, start+k)`` of a
``channels``-channel gradient that is 0 elsewhere, or adds it into ``acc`` in place (``accumulate``).

Window geometry (conv2d, the pools and every backward op of them): ``stride`` is ``(sh, sw)``,
``padding`` ``(top, left, bottom, right)`` (ONNX order), a pool's ``kernel`` ``(kh, kw)``; a conv's kernel
size is its weight's ``[KH, KW]``. A plain int given for any of them (builders, older ``.tte`` files)
means the same on every axis or side; nodes hold tuples (:func:`as_pair`, :func:`as_padding`).
``Ho = (H + top + bottom - KH) // sh + 1``, ``Wo = (W + left + right - KW) // sw + 1``
(:func:`window_output_size`); padded taps of a conv contribute 0. TFLite's SAME padding at stride 2 is
the asymmetric case (one more row or column at the bottom or right).

Pooling (``max_pool``, ``avg_pool`` and their backward ops): ``kh`` x ``kw`` windows (at most 256 taps),
``top, bottom <= kh // 2`` and ``left, right <= kw // 2`` (as in PyTorch, so every window holds at least
one input pixel). A max pool's output keeps its input's quantization (no requantization); padded taps
never win, ties go to the first tap in row-major window order, and ``index`` (kept for backward) is that
tap's offset ``u*kw + v`` in its window. An average pool divides by ``kh*kw`` (``count_include_pad``,
PyTorch's default) or by the window's input pixels (TFLite); NUMERICS.md §2 gives its rounding.

``order`` of a reshape: "nchw" is PyTorch's flatten order; "hwc" is the engine's channels-last order
(element ``(c, h, w)`` of ``[1, C, H, W]`` is element ``(h*W + w)*C + c`` of ``[1, C*H*W]``), allowed
only between a ``[1, C, H, W]`` map and a ``[1, N]`` vector, either way. In the engine an "hwc" reshape
is a view; an "nchw" one of a map with more than one channel and pixel would move data
(:func:`tte_ir.layout_passes.flatten_channels_last` rewrites a flatten read by linear layers).

``w_train`` (present when ``channels`` is set) is the SRAM slice of a conv whose weights train:
``[O, k, KH, KW]`` holding input channels ``channels`` of a dense or pointwise conv, ``[k, 1, KH, KW]``
holding channels ``channels`` of a depthwise conv. The conv uses ``w`` with those channels replaced by
``w_train``; ``w`` (flash) is never written. ``requant_rounding`` of a conv2d: "double" (gemmlowp's two
roundings, TFLite's CONV_2D) or "single" (TFLite's FULLY_CONNECTED's one rounding, set on the 1x1 conv an
int8 linear layer becomes in training graphs); it matters only under ``requant: fixed`` (NUMERICS.md §2b). ``mask`` is the 1-bit clamp mask of NUMERICS.md §2,
bit-packed, ``ceil(numel/8)`` bytes in the engine's element order. ``tile`` marks a node of a row-tiled
fused group (see :mod:`tte_ir.tiling`).

Training ops (float32 gradients w.r.t. integer codes, NUMERICS.md §3-5). ``->`` marks an output that
aliases an input (in place): the input is dead after the node and the kernel overwrites it.

===================== ============================================ ==================================
op                    inputs -> outputs                            math
===================== ============================================ ==================================
gather_channels       x s8 -> y[1,k,H,W] s8                        y = x[:, channels] (saved for backward)
softmax_ce            logits f32|s8 [1,N], label s32 [1]           loss, g = softmax - onehot (int8
                      -> loss f32 [1], g f32 [1,N]                 logits dequantized, g scaled by s_y)
mask_scale            g f32, mask u8, scale f32 [C] -> gh (g)      gh = mask ? g * scale[c] : 0
add_bwd               g f32, mask u8 -> ga (g), gb                 ga = mask ? g*m1 : 0, gb = mask ? g*m2 : 0
pool_bwd              g f32 [1,C,1,1], mask u8 -> gx [1,C,H,W]     gx = mask ? g*m : 0
conv2d_bwd_x          gh f32, w s8, w_train? s8, acc? f32 -> gx    gx (+)= conv_transpose(gh, w)
conv2d_bwd_w_update   x_saved s8, gh f32, w_train s8, inv_w f32    w_train = clamp(w_train + step)
                      -> w_train' (w_train)
bias_update           gh f32, b s32, inv_b f32 -> b' (b)           b = sat32(b + step)
linear_f32_bwd_update x s8 [1,I], w f32, b f32, g f32 [1,O]        gx = s_x W^T g; W -= lr g x_f^T;
                      -> w'? (w), b'? (b), gx? f32 [1,I]           b -= lr g
accumulate            acc f32, g f32 -> y (acc)                    y = acc + g
lut_bwd               g f32, x s8, slope f32 [256] -> gx (g)       gx = g * slope[x + 128]
mul_bwd               g f32, mask u8, a s8, b s8 -> ga? (g), gb?   ga = mask ? (g*m)*(b[c]-z_b) : 0,
                      (gb [1,C,1,1])                               gb[c] = sum_p mask ? (g*m)*(a-z_a) : 0
max_pool_bwd          g f32 [1,C,Ho,Wo], index u8 -> gx [1,C,H,W]  gx[arg-max of each window] += g
avg_pool_bwd          g f32 [1,C,Ho,Wo], mask u8, m f32 [KH*KW+1]  gx[each input tap] += mask ? g*m[count] : 0
                      -> gx [1,C,H,W]
channel_insert        g f32 [1,k,H,W], acc? f32 -> gx [1,C,H,W]     gx = acc (or 0); gx[:, start:start+k] += g
                      (acc)
===================== ============================================ ==================================

Update ops read the step context (learning rate of their ``lr_group``, step counter, status): they
write nothing when the step status is not OK, and set it (writing nothing) when their input gradient
holds a non-finite value. ``softmax_ce`` sets it when the loss is not finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tte_ir._ir import DType, Graph, Node, Op, TensorSpec, VerifyError, as_padding, as_pair
from tte_ir.constants import INT32_MAX, INT32_MIN
from tte_ir.quant import LUT_FUNCTIONS

__all__ = [
    "ATTR_TYPES",
    "MAX_BATCH",
    "MAX_POOL_TAPS",
    "MAX_RANK",
    "OP_TABLE",
    "REQUANT_ROUNDINGS",
    "AttrType",
    "OpDef",
    "as_padding",
    "as_pair",
    "conv_output_size",
    "mask_bytes",
    "node_attrs",
    "node_macs",
    "node_roles",
    "trained_slice_shape",
    "window_output_size",
]

Shape = tuple[int, ...]
Inferred = list[tuple[Shape, DType]]
Specs = Mapping[str, TensorSpec]


@dataclass(frozen=True)
class OpDef:
    """One row of the op table.

    ``optional`` maps a role to the attribute whose truthiness makes it present; ``inplace`` maps an
    output role to the input role whose buffer it reuses. ``infer`` receives the present inputs by
    role and returns the present outputs' shapes and dtypes in role order.
    """

    op: Op
    input_roles: tuple[str, ...]
    output_roles: tuple[str, ...]
    defaults: Mapping[str, Any]
    required: tuple[str, ...]
    infer: Callable[[Node, Specs, Mapping[str, Any]], Inferred]
    macs: Callable[[Node, Specs, Sequence[TensorSpec]], int]
    optional: Mapping[str, str] = field(default_factory=dict)
    inplace: Mapping[str, str] = field(default_factory=dict)

    def roles(self, attrs: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The input and output roles present for these attributes."""

        def present(role: str) -> bool:
            return role not in self.optional or bool(attrs.get(self.optional[role]))

        return (
            tuple(r for r in self.input_roles if present(r)),
            tuple(r for r in self.output_roles if present(r)),
        )


def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int | None = None) -> int:
    """Output extent of a convolution or pool along one axis (``pad_after`` defaults to ``pad_before``)."""
    after = pad_before if pad_after is None else pad_after
    return (size + pad_before + after - kernel) // stride + 1


def window_output_size(
    size: Sequence[int], kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]
) -> tuple[int, int]:
    """``(Ho, Wo)`` of a window op on a map of ``size`` (H, W), kernel (KH, KW), stride (sh, sw) and
    padding (top, left, bottom, right)."""
    top, left, bottom, right = padding
    return (
        conv_output_size(int(size[0]), kernel[0], stride[0], top, bottom),
        conv_output_size(int(size[1]), kernel[1], stride[1], left, right),
    )


def _check_window(node: Node, attrs: Mapping[str, Any]) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """The node's stride (sh, sw) and padding (top, left, bottom, right), checked: >= 1 and >= 0."""
    stride, padding = as_pair(attrs["stride"]), as_padding(attrs["padding"])
    if not (isinstance(stride, tuple) and isinstance(padding, tuple)):
        raise _fail(node, f"stride {stride!r} and padding {padding!r} must be (sh, sw) and (top, left, bottom, right)")
    if min(stride) < 1 or min(padding) < 0:
        raise _fail(node, f"stride {list(stride)} must be >= 1 and padding {list(padding)} >= 0 on every axis and side")
    return stride, padding


def mask_bytes(numel: int) -> int:
    """Bytes of a bit-packed mask over ``numel`` elements."""
    return (numel + 7) // 8


def _fail(node: Node, message: str) -> VerifyError:
    return VerifyError(f"{node.describe()}: {message}")


def _expect_dtype(node: Node, role: str, spec: TensorSpec, dtypes: tuple[DType, ...]) -> None:
    if spec.dtype not in dtypes:
        names = " or ".join(d.name.lower() for d in dtypes)
        raise _fail(node, f"input '{role}' tensor '{spec.name}' has dtype {spec.dtype.name.lower()}, expected {names}")


def _expect_rank(node: Node, role: str, spec: TensorSpec, rank: int) -> None:
    if len(spec.shape) != rank:
        raise _fail(node, f"input '{role}' tensor '{spec.name}' has shape {list(spec.shape)}, expected rank {rank}")


def _expect_shape(node: Node, role: str, spec: TensorSpec, shape: Shape) -> None:
    if spec.shape != tuple(shape):
        raise _fail(node, f"input '{role}' tensor '{spec.name}' has shape {list(spec.shape)}, expected {list(shape)}")


def _check_act_range(node: Node, attrs: Mapping[str, Any]) -> None:
    lo, hi = attrs["act_min"], attrs["act_max"]
    if not (-128 <= lo <= hi <= 127):
        raise _fail(node, f"activation range [{lo}, {hi}] is not inside [-128, 127]")


def _with_mask(out: Inferred, attrs: Mapping[str, Any]) -> Inferred:
    if attrs.get("save_mask"):
        out.append(((mask_bytes(_numel(out[0][0])),), DType.UINT8))
    return out


def _check_channels(node: Node, channels: Any, count: int) -> list[int]:
    if not isinstance(channels, (list, tuple)) or not channels:
        raise _fail(node, "attribute 'channels' must be a non-empty list of channel indices")
    chans = [int(c) for c in channels]
    if chans != sorted(set(chans)) or chans[0] < 0 or chans[-1] >= count:
        raise _fail(node, f"attribute 'channels' must be ascending, unique and inside [0, {count})")
    return chans


def trained_slice_shape(w_shape: Shape, n_channels: int, depthwise: bool) -> Shape:
    """Shape of the SRAM slice of a conv weight ``w_shape`` training ``n_channels`` channels."""
    out_channels, _, kh, kw = w_shape
    return (n_channels, 1, kh, kw) if depthwise else (out_channels, n_channels, kh, kw)


def _conv_geometry(node: Node, x_channels: int, w: TensorSpec, attrs: Mapping[str, Any]) -> bool:
    """Check stride/padding/groups against ``w``; return whether the conv is depthwise."""
    _check_window(node, attrs)
    groups = attrs["groups"]
    if groups < 1:
        raise _fail(node, f"groups {groups} must be >= 1")
    out_channels, in_per_group, _, _ = w.shape
    if x_channels % groups or out_channels % groups:
        raise _fail(
            node, f"groups {groups} does not divide input channels {x_channels} and output channels {out_channels}"
        )
    if in_per_group != x_channels // groups:
        raise _fail(
            node,
            f"input 'w' tensor '{w.name}' has shape {list(w.shape)}: expected {x_channels // groups} input channels "
            f"per group for {x_channels} channels and groups {groups}",
        )
    return groups == x_channels and out_channels == x_channels and in_per_group == 1 and x_channels > 1


def _check_w_train(node: Node, ins: Specs, attrs: Mapping[str, Any], depthwise: bool) -> None:
    w = ins["w"]
    if "w_train" not in ins:
        return
    if attrs["groups"] != 1 and not depthwise:
        raise _fail(node, "trained weight slices need a dense, pointwise or depthwise conv (not grouped)")
    count = w.shape[0] if depthwise else w.shape[1]
    chans = _check_channels(node, attrs["channels"], count)
    _expect_dtype(node, "w_train", ins["w_train"], (DType.INT8,))
    _expect_shape(node, "w_train", ins["w_train"], trained_slice_shape(w.shape, len(chans), depthwise))


def _infer_conv2d(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    x, w, b = ins["x"], ins["w"], ins["b"]
    _expect_dtype(node, "x", x, (DType.INT8,))
    _expect_dtype(node, "w", w, (DType.INT8,))
    _expect_dtype(node, "b", b, (DType.INT32,))
    _expect_rank(node, "x", x, 4)
    if x.shape[0] != 1:
        raise _fail(node, f"input 'x' tensor '{x.name}' has batch {x.shape[0]}; the device batch is 1")
    _expect_rank(node, "w", w, 4)
    _check_act_range(node, attrs)
    depthwise = _conv_geometry(node, x.shape[1], w, attrs)
    _check_w_train(node, ins, attrs, depthwise)
    out_channels, _, kh, kw = w.shape
    if b.shape != (out_channels,):
        raise _fail(node, f"input 'b' tensor '{b.name}' has shape {list(b.shape)}, expected [{out_channels}]")
    stride, padding = _check_window(node, attrs)
    ho, wo = window_output_size(x.shape[2:], (kh, kw), stride, padding)
    if ho < 1 or wo < 1:
        raise _fail(node, f"kernel {kh}x{kw} with padding {list(padding)} does not fit input {x.shape[2]}x{x.shape[3]}")
    return _with_mask([((1, out_channels, ho, wo), DType.INT8)], attrs)


def _macs_conv2d(node: Node, ins: Specs, outs: Sequence[TensorSpec]) -> int:
    w = ins["w"]
    _, out_channels, ho, wo = outs[0].shape
    return out_channels * ho * wo * w.shape[1] * w.shape[2] * w.shape[3]


def _infer_add(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    a, b = ins["a"], ins["b"]
    _expect_dtype(node, "a", a, (DType.INT8,))
    _expect_dtype(node, "b", b, (DType.INT8,))
    _check_act_range(node, attrs)
    if a.shape != b.shape:
        raise _fail(node, f"inputs '{a.name}' {list(a.shape)} and '{b.name}' {list(b.shape)} differ in shape")
    return _with_mask([(a.shape, DType.INT8)], attrs)


def _infer_pool(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    x = ins["x"]
    _expect_dtype(node, "x", x, (DType.INT8,))
    _expect_rank(node, "x", x, 4)
    return _with_mask([((1, x.shape[1], 1, 1), DType.INT8)], attrs)


def _infer_linear(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    x, w, b = ins["x"], ins["w"], ins["b"]
    _expect_dtype(node, "x", x, (DType.INT8,))
    _expect_dtype(node, "w", w, (DType.INT8, DType.FLOAT32))
    _expect_rank(node, "x", x, 2)
    _expect_rank(node, "w", w, 2)
    bias_dtype = DType.INT32 if w.dtype is DType.INT8 else DType.FLOAT32
    _expect_dtype(node, "b", b, (bias_dtype,))
    if w.shape[1] != x.shape[1]:
        raise _fail(node, f"input 'w' tensor '{w.name}' has {w.shape[1]} inputs, x '{x.name}' has {x.shape[1]}")
    if b.shape != (w.shape[0],):
        raise _fail(node, f"input 'b' tensor '{b.name}' has shape {list(b.shape)}, expected [{w.shape[0]}]")
    if w.dtype is DType.INT8:
        _check_act_range(node, attrs)
    elif attrs.get("save_mask"):
        raise _fail(node, "an fp32 linear layer has no clamp mask")
    return _with_mask([((1, w.shape[0]), w.dtype)], attrs)


def _macs_linear(node: Node, ins: Specs, outs: Sequence[TensorSpec]) -> int:
    return ins["w"].shape[0] * ins["w"].shape[1]


def _infer_reshape(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    x = ins["x"]
    shape = tuple(int(d) for d in attrs["shape"])
    if any(d < 1 for d in shape) or x.numel != _numel(shape):
        raise _fail(node, f"cannot reshape '{x.name}' {list(x.shape)} to {list(shape)}")
    order = attrs["order"]
    if order not in ("nchw", "hwc"):
        raise _fail(node, f"order '{order}' is neither 'nchw' nor 'hwc'")
    if order == "hwc" and (sorted((len(x.shape), len(shape))) != [2, 4] or x.shape[0] != 1 or shape[0] != 1):
        raise _fail(node, f"an 'hwc' reshape goes between [1,C,H,W] and [1,N], not {list(x.shape)} -> {list(shape)}")
    return [(shape, x.dtype)]


def _numel(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _no_macs(node: Node, ins: Specs, outs: Sequence[TensorSpec]) -> int:
    return 0


def _infer_gather(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    x = ins["x"]
    _expect_dtype(node, "x", x, (DType.INT8,))
    _expect_rank(node, "x", x, 4)
    chans = _check_channels(node, attrs["channels"], x.shape[1])
    return [((1, len(chans), x.shape[2], x.shape[3]), DType.INT8)]


def _infer_softmax_ce(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    logits, label = ins["logits"], ins["label"]
    _expect_dtype(node, "logits", logits, (DType.FLOAT32, DType.INT8))
    _expect_rank(node, "logits", logits, 2)
    _expect_dtype(node, "label", label, (DType.INT32,))
    _expect_shape(node, "label", label, (1,))
    return [((1,), DType.FLOAT32), (logits.shape, DType.FLOAT32)]


def _expect_grad(node: Node, role: str, spec: TensorSpec) -> None:
    _expect_dtype(node, role, spec, (DType.FLOAT32,))
    if len(spec.shape) not in (2, 4) or spec.shape[0] != 1:
        raise _fail(node, f"gradient '{role}' tensor '{spec.name}' has shape {list(spec.shape)}, expected [1,C(,H,W)]")


def _expect_mask(node: Node, spec: TensorSpec, over: TensorSpec) -> None:
    _expect_dtype(node, "mask", spec, (DType.UINT8,))
    _expect_shape(node, "mask", spec, (mask_bytes(over.numel),))


def _infer_mask_scale(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    g = ins["g"]
    _expect_grad(node, "g", g)
    _expect_mask(node, ins["mask"], g)
    _expect_dtype(node, "scale", ins["scale"], (DType.FLOAT32,))
    _expect_shape(node, "scale", ins["scale"], (g.shape[1],))
    return [(g.shape, DType.FLOAT32)]


def _infer_add_bwd(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    g = ins["g"]
    _expect_grad(node, "g", g)
    _expect_mask(node, ins["mask"], g)
    return [(g.shape, DType.FLOAT32), (g.shape, DType.FLOAT32)]


def _infer_pool_bwd(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    g = ins["g"]
    _expect_grad(node, "g", g)
    _expect_rank(node, "g", g, 4)
    _expect_mask(node, ins["mask"], g)
    height, width = (int(d) for d in attrs["size"])
    return [((1, g.shape[1], height, width), DType.FLOAT32)]


def _infer_conv2d_bwd_x(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    gh, w = ins["gh"], ins["w"]
    _expect_grad(node, "gh", gh)
    _expect_rank(node, "gh", gh, 4)
    _expect_dtype(node, "w", w, (DType.INT8,))
    _expect_rank(node, "w", w, 4)
    height, width = (int(d) for d in attrs["size"])
    channels = w.shape[1] * attrs["groups"]
    depthwise = _conv_geometry(node, channels, w, attrs)
    _check_w_train(node, ins, attrs, depthwise)
    _, kh, kw = w.shape[1:]
    expected = (1, w.shape[0], *window_output_size((height, width), (kh, kw), attrs["stride"], attrs["padding"]))
    _expect_shape(node, "gh", gh, expected)
    out = (1, channels, height, width)
    if "acc" in ins:
        _expect_dtype(node, "acc", ins["acc"], (DType.FLOAT32,))
        _expect_shape(node, "acc", ins["acc"], out)
    return [(out, DType.FLOAT32)]


def _macs_conv2d_bwd_x(node: Node, ins: Specs, outs: Sequence[TensorSpec]) -> int:
    gh, w = ins["gh"], ins["w"]
    return gh.numel * w.shape[1] * w.shape[2] * w.shape[3]


def _check_update(node: Node, attrs: Mapping[str, Any]) -> None:
    if attrs["rounding"] not in ("nearest", "stochastic"):
        raise _fail(node, f"rounding '{attrs['rounding']}' has no device kernel (nearest or stochastic)")
    if attrs["lr_group"] not in ("body", "head"):
        raise _fail(node, f"lr_group '{attrs['lr_group']}' is neither 'body' nor 'head'")


def _infer_conv2d_bwd_w_update(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    x, gh, w_train, inv = ins["x_saved"], ins["gh"], ins["w_train"], ins["inv_w"]
    _check_update(node, attrs)
    _expect_dtype(node, "x_saved", x, (DType.INT8,))
    _expect_rank(node, "x_saved", x, 4)
    _expect_grad(node, "gh", gh)
    _expect_rank(node, "gh", gh, 4)
    _expect_dtype(node, "w_train", w_train, (DType.INT8,))
    full = tuple(int(d) for d in attrs["weight_shape"])
    out_channels, in_per_group, kh, kw = full
    depthwise = attrs["groups"] > 1
    if depthwise and (in_per_group != 1 or attrs["groups"] != out_channels):
        raise _fail(node, "a trained grouped conv must be depthwise")
    chans = _check_channels(node, attrs["channels"], out_channels if depthwise else in_per_group)
    _expect_shape(node, "w_train", w_train, trained_slice_shape(full, len(chans), depthwise))
    _expect_shape(node, "x_saved", x, (1, len(chans), x.shape[2], x.shape[3]))
    _check_window(node, attrs)
    expected = (1, out_channels, *window_output_size(x.shape[2:], (kh, kw), attrs["stride"], attrs["padding"]))
    _expect_shape(node, "gh", gh, expected)
    _expect_dtype(node, "inv_w", inv, (DType.FLOAT32,))
    _expect_shape(node, "inv_w", inv, (out_channels,))
    return [(w_train.shape, DType.INT8)]


def _macs_conv2d_bwd_w(node: Node, ins: Specs, outs: Sequence[TensorSpec]) -> int:
    # every trained weight element sums over all output positions
    gh = ins["gh"]
    return gh.shape[2] * gh.shape[3] * ins["w_train"].numel


def _infer_bias_update(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    gh, b, inv = ins["gh"], ins["b"], ins["inv_b"]
    _check_update(node, attrs)
    _expect_grad(node, "gh", gh)
    _expect_dtype(node, "b", b, (DType.INT32,))
    _expect_shape(node, "b", b, (gh.shape[1],))
    _expect_dtype(node, "inv_b", inv, (DType.FLOAT32,))
    _expect_shape(node, "inv_b", inv, (gh.shape[1],))
    return [(b.shape, DType.INT32)]


def _infer_linear_f32_bwd(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    x, w, b, g = ins["x"], ins["w"], ins["b"], ins["g"]
    if attrs["lr_group"] not in ("body", "head"):
        raise _fail(node, f"lr_group '{attrs['lr_group']}' is neither 'body' nor 'head'")
    _expect_dtype(node, "x", x, (DType.INT8,))
    _expect_rank(node, "x", x, 2)
    _expect_dtype(node, "w", w, (DType.FLOAT32,))
    _expect_shape(node, "w", w, (g.shape[1], x.shape[1]))
    _expect_dtype(node, "b", b, (DType.FLOAT32,))
    _expect_shape(node, "b", b, (g.shape[1],))
    _expect_grad(node, "g", g)
    _expect_rank(node, "g", g, 2)
    out: Inferred = []
    if attrs["update"]:
        out += [(w.shape, DType.FLOAT32), (b.shape, DType.FLOAT32)]
    if attrs["input_grad"]:
        out.append((x.shape, DType.FLOAT32))
    if not out:
        raise _fail(node, "computes nothing: neither 'update' nor 'input_grad' is set")
    return out


def _macs_linear_f32_bwd(node: Node, ins: Specs, outs: Sequence[TensorSpec]) -> int:
    return ins["w"].numel * len(outs)


def _infer_accumulate(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    acc, g = ins["acc"], ins["g"]
    _expect_grad(node, "acc", acc)
    _expect_grad(node, "g", g)
    _expect_shape(node, "g", g, acc.shape)
    return [(acc.shape, DType.FLOAT32)]


# -- mini-batch updates (scheme "batch" > 1): each keeps a float32 gradient accumulator ------------


def _expect_accumulator(node: Node, role: str, acc: TensorSpec, param: TensorSpec, batch: Any) -> None:
    """A float32 accumulator of ``param``'s shape, and a batch of at least 2 samples."""
    _expect_dtype(node, role, acc, (DType.FLOAT32,))
    _expect_shape(node, role, acc, param.shape)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 2:
        raise _fail(node, f"batch {batch!r} must be an integer >= 2 (batch 1 is the fused per-sample update)")


def _infer_conv2d_bwd_w_accumulate(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    out = _infer_conv2d_bwd_w_update(node, ins, attrs)
    _expect_accumulator(node, "acc", ins["acc"], ins["w_train"], attrs["batch"])
    return [*out, (ins["acc"].shape, DType.FLOAT32)]


def _infer_bias_accumulate(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    out = _infer_bias_update(node, ins, attrs)
    _expect_accumulator(node, "acc", ins["acc"], ins["b"], attrs["batch"])
    return [*out, (ins["acc"].shape, DType.FLOAT32)]


def _infer_linear_f32_accumulate(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    _infer_linear_f32_bwd(node, ins, {**attrs, "update": True, "input_grad": False})
    _expect_accumulator(node, "acc_w", ins["acc_w"], ins["w"], attrs["batch"])
    _expect_accumulator(node, "acc_b", ins["acc_b"], ins["b"], attrs["batch"])
    w, b = ins["w"], ins["b"]
    return [(w.shape, DType.FLOAT32), (b.shape, DType.FLOAT32), (w.shape, DType.FLOAT32), (b.shape, DType.FLOAT32)]


def _macs_linear_f32_accumulate(node: Node, ins: Specs, outs: Sequence[TensorSpec]) -> int:
    return ins["w"].numel


MAX_POOL_TAPS = 256  # a max pool's arg-max index is one byte per output


def _pool_output(node: Node, x: TensorSpec, attrs: Mapping[str, Any], size: Sequence[int] | None = None) -> Shape:
    """The output shape of a pooling node on ``x`` (or on a map of ``size`` (H, W), for backward ops)."""
    stride, padding = _check_window(node, attrs)
    kernel = as_pair(attrs["kernel"])
    if not isinstance(kernel, tuple) or min(kernel) < 1:
        raise _fail(node, f"kernel {kernel!r} must be (kh, kw), both >= 1")
    kh, kw = kernel
    if kh * kw > MAX_POOL_TAPS:
        raise _fail(node, f"kernel {kh}x{kw} has more than {MAX_POOL_TAPS} taps")
    top, left, bottom, right = padding
    if max(top, bottom) > kh // 2 or max(left, right) > kw // 2:
        raise _fail(
            node,
            f"padding {list(padding)} is more than half the kernel {kh}x{kw} on some side (a window would hold only "
            "padding)",
        )
    height, width = (int(d) for d in (size if size is not None else x.shape[2:]))
    ho, wo = window_output_size((height, width), kernel, stride, padding)
    if ho < 1 or wo < 1:
        raise _fail(node, f"kernel {kh}x{kw} with padding {list(padding)} does not fit input {height}x{width}")
    return (1, x.shape[1], ho, wo)


def _expect_map(node: Node, role: str, spec: TensorSpec, dtypes: tuple[DType, ...]) -> None:
    _expect_dtype(node, role, spec, dtypes)
    _expect_rank(node, role, spec, 4)
    if spec.shape[0] != 1:
        raise _fail(node, f"input '{role}' tensor '{spec.name}' has batch {spec.shape[0]}; the device batch is 1")


def _infer_max_pool(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    x = ins["x"]
    _expect_map(node, "x", x, (DType.INT8,))
    out = _pool_output(node, x, attrs)
    inferred: Inferred = [(out, DType.INT8)]
    if attrs.get("save_index"):
        inferred.append((out, DType.UINT8))
    return inferred


def _infer_avg_pool(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    x = ins["x"]
    _expect_map(node, "x", x, (DType.INT8,))
    return _with_mask([(_pool_output(node, x, attrs), DType.INT8)], attrs)


def _pool_bwd_shapes(node: Node, g: TensorSpec, attrs: Mapping[str, Any]) -> Shape:
    """Check ``g`` against the forward's output on ``size``; return the input gradient's shape."""
    _expect_map(node, "g", g, (DType.FLOAT32,))
    height, width = (int(d) for d in attrs["size"])
    _expect_shape(node, "g", g, _pool_output(node, g, attrs, (height, width)))
    return (1, g.shape[1], height, width)


def _infer_max_pool_bwd(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    g, index = ins["g"], ins["index"]
    out = _pool_bwd_shapes(node, g, attrs)
    _expect_dtype(node, "index", index, (DType.UINT8,))
    _expect_shape(node, "index", index, g.shape)
    return [(out, DType.FLOAT32)]


def _infer_avg_pool_bwd(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    g, m = ins["g"], ins["m"]
    out = _pool_bwd_shapes(node, g, attrs)
    _expect_mask(node, ins["mask"], g)
    _expect_dtype(node, "m", m, (DType.FLOAT32,))
    kh, kw = as_pair(attrs["kernel"])
    _expect_shape(node, "m", m, (kh * kw + 1,))
    return [(out, DType.FLOAT32)]


def _infer_lut(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    x = ins["x"]
    _expect_dtype(node, "x", x, (DType.INT8,))
    if len(x.shape) not in (2, 4) or x.shape[0] != 1:
        raise _fail(node, f"input 'x' tensor '{x.name}' has shape {list(x.shape)}, expected [1,C] or [1,C,H,W]")
    return [(x.shape, DType.INT8)]


def _infer_mul(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    a, b = ins["a"], ins["b"]
    _expect_dtype(node, "a", a, (DType.INT8,))
    _expect_dtype(node, "b", b, (DType.INT8,))
    _expect_rank(node, "a", a, 4)
    if a.shape[0] != 1:
        raise _fail(node, f"input 'a' tensor '{a.name}' has batch {a.shape[0]}; the device batch is 1")
    _expect_shape(node, "b", b, (1, a.shape[1], 1, 1))
    _check_act_range(node, attrs)
    return _with_mask([(a.shape, DType.INT8)], attrs)


def _macs_mul(node: Node, ins: Specs, outs: Sequence[TensorSpec]) -> int:
    return ins["a"].numel


def _infer_lut_bwd(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    g, x, slope = ins["g"], ins["x"], ins["slope"]
    _expect_grad(node, "g", g)
    _expect_dtype(node, "x", x, (DType.INT8,))
    _expect_shape(node, "x", x, g.shape)
    _expect_dtype(node, "slope", slope, (DType.FLOAT32,))
    _expect_shape(node, "slope", slope, (256,))
    return [(g.shape, DType.FLOAT32)]


def _infer_mul_bwd(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    g, a, b = ins["g"], ins["a"], ins["b"]
    _expect_grad(node, "g", g)
    _expect_rank(node, "g", g, 4)
    _expect_mask(node, ins["mask"], g)
    _expect_dtype(node, "a", a, (DType.INT8,))
    _expect_shape(node, "a", a, g.shape)
    _expect_dtype(node, "b", b, (DType.INT8,))
    _expect_shape(node, "b", b, (1, g.shape[1], 1, 1))
    out: Inferred = []
    if attrs["grad_a"]:
        out.append((g.shape, DType.FLOAT32))
    if attrs["grad_b"]:
        out.append((b.shape, DType.FLOAT32))
    if not out:
        raise _fail(node, "computes nothing: neither 'grad_a' nor 'grad_b' is set")
    return out


def _macs_mul_bwd(node: Node, ins: Specs, outs: Sequence[TensorSpec]) -> int:
    return ins["g"].numel * len(outs)


# -- channel concat, split, shuffle (ShuffleNet) and the split's backward --------------------------


def _expect_channel_map(node: Node, role: str, spec: TensorSpec, dtypes: tuple[DType, ...]) -> None:
    """A ``[1, C, H, W]`` map or a ``[1, C]`` vector (a map of one pixel)."""
    _expect_dtype(node, role, spec, dtypes)
    if len(spec.shape) not in (2, 4) or spec.shape[0] != 1:
        raise _fail(node, f"input '{role}' tensor '{spec.name}' has shape {list(spec.shape)}, expected [1,C(,H,W)]")


def _with_channels(spec: TensorSpec, channels: int) -> Shape:
    return (1, channels, *spec.shape[2:])


def _infer_concat(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    a, b = ins["a"], ins["b"]
    _expect_channel_map(node, "a", a, (DType.INT8, DType.FLOAT32))
    _expect_channel_map(node, "b", b, (a.dtype,))
    if a.shape[2:] != b.shape[2:] or len(a.shape) != len(b.shape):
        raise _fail(node, f"inputs '{a.name}' {list(a.shape)} and '{b.name}' {list(b.shape)} differ beyond channels")
    return [(_with_channels(a, a.shape[1] + b.shape[1]), a.dtype)]


def _check_range(node: Node, start: int, count: int, channels: int) -> None:
    if start < 0 or count < 1 or start + count > channels:
        raise _fail(node, f"channels [{start}, {start + count}) are not inside [0, {channels})")


def _infer_channel_split(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    x = ins["x"]
    _expect_channel_map(node, "x", x, (DType.INT8, DType.FLOAT32))
    _check_range(node, attrs["start"], attrs["count"], x.shape[1])
    return [(_with_channels(x, attrs["count"]), x.dtype)]


def _infer_channel_shuffle(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    x = ins["x"]
    _expect_channel_map(node, "x", x, (DType.INT8, DType.FLOAT32))
    groups = attrs["groups"]
    if groups < 1 or x.shape[1] % groups:
        raise _fail(node, f"groups {groups} does not divide the {x.shape[1]} channels of '{x.name}'")
    return [(x.shape, x.dtype)]


def _infer_channel_insert(node: Node, ins: Specs, attrs: Mapping[str, Any]) -> Inferred:
    g = ins["g"]
    _expect_grad(node, "g", g)
    _check_range(node, attrs["start"], g.shape[1], attrs["channels"])
    out = _with_channels(g, attrs["channels"])
    if "acc" in ins:
        _expect_dtype(node, "acc", ins["acc"], (DType.FLOAT32,))
        _expect_shape(node, "acc", ins["acc"], out)
    return [(out, DType.FLOAT32)]


_ACT = {"act_min": -128, "act_max": 127}
REQUANT_ROUNDINGS = ("double", "single")
"""The values of a conv2d's ``requant_rounding`` (see the module docstring)."""
_NO_PADDING = (0, 0, 0, 0)
_WINDOW = {"stride": (1, 1), "padding": _NO_PADDING}
_MASKED = {"save_mask": False}
_UPDATE = {"rounding": "stochastic", "seed": 0, "lr_group": "body", "tile": None}

OP_TABLE: Mapping[Op, OpDef] = {
    Op.CONV2D: OpDef(
        Op.CONV2D,
        ("x", "w", "b", "w_train"),
        ("y", "mask"),
        {**_WINDOW, "groups": 1, **_ACT, **_MASKED, "channels": None, "tile": None, "requant_rounding": "double"},
        (),
        _infer_conv2d,
        _macs_conv2d,
        optional={"w_train": "channels", "mask": "save_mask"},
    ),
    Op.ADD: OpDef(
        Op.ADD,
        ("a", "b"),
        ("y", "mask"),
        {**_ACT, **_MASKED, "tile": None},
        (),
        _infer_add,
        _no_macs,
        optional={"mask": "save_mask"},
    ),
    Op.GLOBAL_AVG_POOL: OpDef(
        Op.GLOBAL_AVG_POOL, ("x",), ("y", "mask"), dict(_MASKED), (), _infer_pool, _no_macs, {"mask": "save_mask"}
    ),
    Op.LINEAR: OpDef(
        Op.LINEAR,
        ("x", "w", "b"),
        ("y", "mask"),
        {**_ACT, **_MASKED},
        (),
        _infer_linear,
        _macs_linear,
        optional={"mask": "save_mask"},
    ),
    Op.RESHAPE: OpDef(
        Op.RESHAPE, ("x",), ("y",), {"order": "nchw"}, ("shape",), _infer_reshape, _no_macs, inplace={"y": "x"}
    ),
    Op.GATHER_CHANNELS: OpDef(Op.GATHER_CHANNELS, ("x",), ("y",), {}, ("channels",), _infer_gather, _no_macs),
    Op.SOFTMAX_CE: OpDef(Op.SOFTMAX_CE, ("logits", "label"), ("loss", "g"), {}, (), _infer_softmax_ce, _no_macs),
    Op.MASK_SCALE: OpDef(
        Op.MASK_SCALE,
        ("g", "mask", "scale"),
        ("gh",),
        {"tile": None},
        (),
        _infer_mask_scale,
        _no_macs,
        inplace={"gh": "g"},
    ),
    Op.ADD_BWD: OpDef(
        Op.ADD_BWD, ("g", "mask"), ("ga", "gb"), {}, ("m1", "m2"), _infer_add_bwd, _no_macs, inplace={"ga": "g"}
    ),
    Op.POOL_BWD: OpDef(Op.POOL_BWD, ("g", "mask"), ("gx",), {}, ("m", "size"), _infer_pool_bwd, _no_macs),
    Op.CONV2D_BWD_X: OpDef(
        Op.CONV2D_BWD_X,
        ("gh", "w", "w_train", "acc"),
        ("gx",),
        {**_WINDOW, "groups": 1, "channels": None, "accumulate": False, "tile": None},
        ("size",),
        _infer_conv2d_bwd_x,
        _macs_conv2d_bwd_x,
        optional={"w_train": "channels", "acc": "accumulate"},
        inplace={"gx": "acc"},
    ),
    Op.CONV2D_BWD_W_UPDATE: OpDef(
        Op.CONV2D_BWD_W_UPDATE,
        ("x_saved", "gh", "w_train", "inv_w"),
        ("w_next",),
        {**_WINDOW, "groups": 1, **_UPDATE},
        ("channels", "weight_shape", "tensor_id"),
        _infer_conv2d_bwd_w_update,
        _macs_conv2d_bwd_w,
        inplace={"w_next": "w_train"},
    ),
    Op.BIAS_UPDATE: OpDef(
        Op.BIAS_UPDATE,
        ("gh", "b", "inv_b"),
        ("b_next",),
        dict(_UPDATE),
        ("tensor_id",),
        _infer_bias_update,
        _no_macs,
        inplace={"b_next": "b"},
    ),
    Op.LINEAR_F32_BWD_UPDATE: OpDef(
        Op.LINEAR_F32_BWD_UPDATE,
        ("x", "w", "b", "g"),
        ("w_next", "b_next", "gx"),
        {"update": True, "input_grad": False, "lr_group": "head"},
        (),
        _infer_linear_f32_bwd,
        _macs_linear_f32_bwd,
        optional={"w_next": "update", "b_next": "update", "gx": "input_grad"},
        inplace={"w_next": "w", "b_next": "b"},
    ),
    Op.ACCUMULATE: OpDef(
        Op.ACCUMULATE, ("acc", "g"), ("y",), {}, (), _infer_accumulate, _no_macs, inplace={"y": "acc"}
    ),
    Op.MAX_POOL: OpDef(
        Op.MAX_POOL,
        ("x",),
        ("y", "index"),
        {"padding": _NO_PADDING, "save_index": False},
        ("kernel", "stride"),
        _infer_max_pool,
        _no_macs,
        optional={"index": "save_index"},
    ),
    Op.MAX_POOL_BWD: OpDef(
        Op.MAX_POOL_BWD,
        ("g", "index"),
        ("gx",),
        {"padding": _NO_PADDING},
        ("kernel", "stride", "size"),
        _infer_max_pool_bwd,
        _no_macs,
    ),
    Op.AVG_POOL: OpDef(
        Op.AVG_POOL,
        ("x",),
        ("y", "mask"),
        {"padding": _NO_PADDING, "count_include_pad": True, **_MASKED},
        ("kernel", "stride"),
        _infer_avg_pool,
        _no_macs,
        optional={"mask": "save_mask"},
    ),
    Op.AVG_POOL_BWD: OpDef(
        Op.AVG_POOL_BWD,
        ("g", "mask", "m"),
        ("gx",),
        {"padding": _NO_PADDING, "count_include_pad": True},
        ("kernel", "stride", "size"),
        _infer_avg_pool_bwd,
        _no_macs,
    ),
    Op.LUT: OpDef(Op.LUT, ("x",), ("y",), {}, ("function",), _infer_lut, _no_macs),
    Op.LUT_BWD: OpDef(Op.LUT_BWD, ("g", "x", "slope"), ("gx",), {}, (), _infer_lut_bwd, _no_macs, inplace={"gx": "g"}),
    Op.MUL: OpDef(
        Op.MUL,
        ("a", "b"),
        ("y", "mask"),
        {**_ACT, **_MASKED},
        (),
        _infer_mul,
        _macs_mul,
        optional={"mask": "save_mask"},
    ),
    Op.MUL_BWD: OpDef(
        Op.MUL_BWD,
        ("g", "mask", "a", "b"),
        ("ga", "gb"),
        {"grad_a": True, "grad_b": True},
        ("m",),
        _infer_mul_bwd,
        _macs_mul_bwd,
        optional={"ga": "grad_a", "gb": "grad_b"},
        inplace={"ga": "g"},
    ),
    Op.CONV2D_BWD_W_ACCUMULATE: OpDef(
        Op.CONV2D_BWD_W_ACCUMULATE,
        ("x_saved", "gh", "w_train", "inv_w", "acc"),
        ("w_next", "acc_next"),
        {**_WINDOW, "groups": 1, **_UPDATE},
        ("channels", "weight_shape", "tensor_id", "batch"),
        _infer_conv2d_bwd_w_accumulate,
        _macs_conv2d_bwd_w,
        inplace={"w_next": "w_train", "acc_next": "acc"},
    ),
    Op.BIAS_ACCUMULATE: OpDef(
        Op.BIAS_ACCUMULATE,
        ("gh", "b", "inv_b", "acc"),
        ("b_next", "acc_next"),
        dict(_UPDATE),
        ("tensor_id", "batch"),
        _infer_bias_accumulate,
        _no_macs,
        inplace={"b_next": "b", "acc_next": "acc"},
    ),
    Op.LINEAR_F32_ACCUMULATE: OpDef(
        Op.LINEAR_F32_ACCUMULATE,
        ("x", "g", "w", "b", "acc_w", "acc_b"),
        ("w_next", "b_next", "acc_w_next", "acc_b_next"),
        {"lr_group": "head"},
        ("batch",),
        _infer_linear_f32_accumulate,
        _macs_linear_f32_accumulate,
        inplace={"w_next": "w", "b_next": "b", "acc_w_next": "acc_w", "acc_b_next": "acc_b"},
    ),
    Op.CONCAT: OpDef(Op.CONCAT, ("a", "b"), ("y",), {}, (), _infer_concat, _no_macs),
    Op.CHANNEL_SPLIT: OpDef(Op.CHANNEL_SPLIT, ("x",), ("y",), {}, ("start", "count"), _infer_channel_split, _no_macs),
    Op.CHANNEL_SHUFFLE: OpDef(Op.CHANNEL_SHUFFLE, ("x",), ("y",), {}, ("groups",), _infer_channel_shuffle, _no_macs),
    Op.CHANNEL_INSERT: OpDef(
        Op.CHANNEL_INSERT,
        ("g", "acc"),
        ("gx",),
        {"accumulate": False},
        ("start", "channels"),
        _infer_channel_insert,
        _no_macs,
        optional={"acc": "accumulate"},
        inplace={"gx": "acc"},
    ),
}


_I32 = INT32_MAX
_U32 = 2 * INT32_MAX + 1
# Multipliers (m, m1, m2) are float32 in the engine; far below float32's range, they stay finite there.
_MAX_MULTIPLIER = 1e6
MAX_RANK = 8  # the most sizes a tensor shape has (tte_ir.verify refuses more)


@dataclass(frozen=True)
class AttrType:
    """The Python type and range of one attribute's value; :func:`tte_ir.verify` checks every node's.

    ``kind`` is ``"int"``, ``"bool"``, ``"float"`` (an int or a finite float), ``"str"`` (one of
    ``choices`` when given; the op's ``infer`` checks the value otherwise), ``"ints"`` (a list of
    ints, ``length`` long when set, else at most ``max_length``; ``scalar``: a plain int is accepted
    too, meaning the same on every axis, as :class:`~tte_ir.Node` normalizes it) or ``"tile"`` (the
    ``{group, axis, band, tile}`` of :mod:`tte_ir.tiling`). Numbers (and the
    items of ``"ints"``) lie in ``[low, high]``; ``nullable`` also admits None (the attribute is off).
    A bool is never an int here, and an int-valued float is not an int: the C code gets the value as is.
    """

    kind: str
    low: float = INT32_MIN
    high: float = _I32
    choices: tuple[str, ...] = ()
    length: int | None = None
    max_length: int = _I32
    nullable: bool = False
    scalar: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not fit this type (a phrase for an error message), or None when it does."""
        if value is None and self.nullable:
            return None
        if self.kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind == "int":
            return None if _is_int(value, self.low, self.high) else f"must be an integer in [{self._range()}]"
        if self.kind == "float":
            ok = _is_real(value) and math.isfinite(value) and self.low <= value <= self.high
            return None if ok else f"must be a finite number in [{self._range()}]"
        if self.kind == "str":
            if not isinstance(value, str):
                return "must be a string"
            return None if not self.choices or value in self.choices else f"must be one of {list(self.choices)}"
        if self.kind == "ints":
            return self._ints_problem(value)
        return _tile_problem(value)

    def _range(self) -> str:
        return f"{self.low}, {self.high}"

    def _ints_problem(self, value: Any) -> str | None:
        length = f"{self.length} " if self.length is not None else ""
        what = f"must be {'an integer or ' if self.scalar else ''}a list of {length}integers in [{self._range()}]"
        if not isinstance(value, (list, tuple)):
            return what
        if (self.length is not None and len(value) != self.length) or len(value) > self.max_length:
            return what
        return None if all(_is_int(v, self.low, self.high) for v in value) else what


def _is_int(value: Any, low: float, high: float) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _tile_problem(value: Any) -> str | None:
    what = "must be {group, axis, band, tile}: axis 'rows' or 'channels', integers group >= 0, band and tile >= 1"
    if not isinstance(value, Mapping) or set(value) != {"group", "axis", "band", "tile"}:
        return what
    ok = (
        value["axis"] in ("rows", "channels")
        and _is_int(value["group"], 0, _I32)
        and _is_int(value["band"], 1, _I32)
        and _is_int(value["tile"], 1, _I32)
    )
    return None if ok else what


_INT8 = AttrType("int", -128, 127)
_BOOL = AttrType("bool")
_STRIDE = AttrType("ints", 1, _I32, length=2, scalar=True)  # (sh, sw)
_PADDING = AttrType("ints", 0, _I32, length=4, scalar=True)  # (top, left, bottom, right)
_GROUPS = AttrType("int", 1, _I32)
_CHANNELS = AttrType("ints", 0, _I32, nullable=True)
_TILE = AttrType("tile", nullable=True)
_MULTIPLIER = AttrType("float", 0, _MAX_MULTIPLIER)
_SIZE = AttrType("ints", 1, _I32, length=2)
_GEOMETRY = {"stride": _STRIDE, "padding": _PADDING, "groups": _GROUPS}
_UPDATE_TYPES = {
    "rounding": AttrType("str", choices=("nearest", "stochastic")),
    "seed": AttrType("int", 0, _U32),
    "lr_group": AttrType("str", choices=("body", "head")),
    "tensor_id": AttrType("int", 0, _U32),
    "tile": _TILE,
}

MAX_BATCH = 4096  # samples per update (a scheme's "batch"): a bound on what one may ask, far above device settings
_BATCH = AttrType("int", 2, MAX_BATCH)  # samples per update of the mini-batch ops

_POOL_TYPES = {
    "kernel": AttrType("ints", 1, MAX_POOL_TAPS, length=2, scalar=True),
    "stride": _STRIDE,
    "padding": _PADDING,
}

# The type of every attribute of every op (defaults and required ones alike), next to the table.
ATTR_TYPES: Mapping[Op, Mapping[str, AttrType]] = {
    Op.CONV2D: {
        **_GEOMETRY,
        "act_min": _INT8,
        "act_max": _INT8,
        "save_mask": _BOOL,
        "channels": _CHANNELS,
        "tile": _TILE,
        "requant_rounding": AttrType("str", choices=REQUANT_ROUNDINGS),
    },
    Op.ADD: {"act_min": _INT8, "act_max": _INT8, "save_mask": _BOOL, "tile": _TILE},
    Op.GLOBAL_AVG_POOL: {"save_mask": _BOOL},
    Op.LINEAR: {"act_min": _INT8, "act_max": _INT8, "save_mask": _BOOL},
    Op.RESHAPE: {
        "shape": AttrType("ints", 1, _I32, max_length=MAX_RANK),
        "order": AttrType("str"),
    },
    Op.GATHER_CHANNELS: {"channels": AttrType("ints", 0, _I32)},
    Op.SOFTMAX_CE: {},
    Op.MASK_SCALE: {"tile": _TILE},
    Op.ADD_BWD: {"m1": _MULTIPLIER, "m2": _MULTIPLIER},
    Op.POOL_BWD: {"m": _MULTIPLIER, "size": _SIZE},
    Op.CONV2D_BWD_X: {
        **_GEOMETRY,
        "size": _SIZE,
        "channels": _CHANNELS,
        "accumulate": _BOOL,
        "tile": _TILE,
    },
    Op.CONV2D_BWD_W_UPDATE: {
        **_GEOMETRY,
        **_UPDATE_TYPES,
        "channels": AttrType("ints", 0, _I32),
        "weight_shape": AttrType("ints", 1, _I32, length=4),
    },
    Op.BIAS_UPDATE: dict(_UPDATE_TYPES),
    Op.LINEAR_F32_BWD_UPDATE: {
        "update": _BOOL,
        "input_grad": _BOOL,
        "lr_group": AttrType("str", choices=("body", "head")),
    },
    Op.ACCUMULATE: {},
    Op.MAX_POOL: {**_POOL_TYPES, "save_index": _BOOL},
    Op.MAX_POOL_BWD: {**_POOL_TYPES, "size": _SIZE},
    Op.AVG_POOL: {**_POOL_TYPES, "count_include_pad": _BOOL, "save_mask": _BOOL},
    Op.AVG_POOL_BWD: {**_POOL_TYPES, "count_include_pad": _BOOL, "size": _SIZE},
    Op.LUT: {"function": AttrType("str", choices=LUT_FUNCTIONS)},
    Op.LUT_BWD: {},
    Op.MUL: {"act_min": _INT8, "act_max": _INT8, "save_mask": _BOOL},
    Op.MUL_BWD: {"m": _MULTIPLIER, "grad_a": _BOOL, "grad_b": _BOOL},
    Op.CONV2D_BWD_W_ACCUMULATE: {
        **_GEOMETRY,
        **_UPDATE_TYPES,
        "channels": AttrType("ints", 0, _I32),
        "weight_shape": AttrType("ints", 1, _I32, length=4),
        "batch": _BATCH,
    },
    Op.BIAS_ACCUMULATE: {**_UPDATE_TYPES, "batch": _BATCH},
    Op.LINEAR_F32_ACCUMULATE: {"lr_group": AttrType("str", choices=("body", "head")), "batch": _BATCH},
    Op.CONCAT: {},
    Op.CHANNEL_SPLIT: {"start": AttrType("int", 0, _I32), "count": AttrType("int", 1, _I32)},
    Op.CHANNEL_SHUFFLE: {"groups": _GROUPS},
    Op.CHANNEL_INSERT: {
        "start": AttrType("int", 0, _I32),
        "channels": AttrType("int", 1, _I32),
        "accumulate": _BOOL,
    },
}


def node_attrs(node: Node) -> dict[str, Any]:
    """The node's attributes with the op's defaults filled in."""
    row = OP_TABLE[node.op]
    attrs = dict(row.defaults)
    attrs.update(node.attrs)
    return attrs


def node_roles(node: Node) -> tuple[dict[str, str], dict[str, str]]:
    """The node's present inputs and outputs by role: ``({role: tensor}, {role: tensor})``."""
    ins, outs = OP_TABLE[node.op].roles(node_attrs(node))
    return dict(zip(ins, node.inputs, strict=False)), dict(zip(outs, node.outputs, strict=False))


def node_macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates of one application of ``node``."""
    row = OP_TABLE[node.op]
    ins, _ = node_roles(node)
    outs = [graph.tensors[name] for name in node.outputs]
    return row.macs(node, {role: graph.tensors[name] for role, name in ins.items()}, outs)
