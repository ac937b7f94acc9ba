"""How a node becomes an engine kernel call: the one description every consumer reads.

:data:`OP_TABLE` (:mod:`tte_ir.ops`) says what an op is; :data:`KERNEL_CALLS` says, for every op, how
one node of it becomes one call of a C kernel of ``engine/`` (``tte/tte.h``, ``tte/tte_train.h``):

- the kernel (``tte_<kernel>``) and its descriptor type, from :data:`SIGNATURES`, the C prototypes
  written once in Python (a test checks them against the engine's headers);
- every descriptor field and where its value comes from (shapes, zero points, multipliers, ranges,
  strides, padding, trained-channel lists);
- every pointer argument in C order: which tensor role feeds it, whether the kernel reads or writes
  it, and the layout permutation of constants (:class:`WeightLayout`);
- the compile-time constants a kernel takes (multipliers, NUMERICS.md §1).

The numpy reference (:mod:`tte_ir.reference`, :mod:`tte_ir.reference_train`), the PyTorch simulation
(``tte_algo.sim``), the engine's host runner (``tte_engine.calls``) and the C code generator
(``tte_codegen``) read :func:`kernel_call`; none of them derives a zero point, a multiplier, a conv
family or a weight permutation of its own.

Conv family: :func:`conv_family` is the one decision between the dense, depthwise and pointwise
kernels; :class:`WeightLayout` the one permutation of IR weights ``[O, C/g, KH, KW]`` (or their
trained slices) into each family's engine layout and back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tte_ir._ir import DType, Graph, Node, Op, TensorSpec, TteError, as_padding, as_pair
from tte_ir.ops import node_attrs, node_roles
from tte_ir.quant import node_multipliers

__all__ = [
    "DENSE",
    "DEPTHWISE",
    "FAMILIES",
    "KERNEL_CALLS",
    "OP_KERNELS",
    "PARAM_STRUCTS",
    "POINTWISE",
    "REQUANT",
    "SCRATCH_KERNELS",
    "SIGNATURES",
    "Arg",
    "CEnum",
    "KernelCall",
    "WeightLayout",
    "buffer_shape",
    "call_requant",
    "conv_family",
    "derived_array",
    "kernel_call",
    "params_kernel",
    "params_padding",
    "params_stride",
    "weight_layout",
    "window_fields",
]

DENSE, DEPTHWISE, POINTWISE = "dense", "depthwise", "pointwise"
FAMILIES = (DENSE, DEPTHWISE, POINTWISE)
_FAMILY_PREFIX = {DENSE: "conv2d", DEPTHWISE: "depthwise_conv2d", POINTWISE: "pointwise_conv2d"}


def conv_family(w_shape: tuple[int, ...], in_channels: int, padding: int | tuple[int, ...], groups: int) -> str:
    """The kernel family of a conv with IR weights ``w_shape`` ``[O, C/g, KH, KW]`` on ``in_channels``.

    Depthwise: one input and one output channel per group over more than one channel (a 1-channel
    conv is an ordinary dense conv with one input channel), any kernel shape. Pointwise: a 1x1 dense
    conv without padding on any side, any stride. Everything else, grouped convs included, runs the
    dense kernel. ``padding`` is ``(top, left, bottom, right)`` or one int for every side.
    """
    out_channels, in_per_group, kh, kw = w_shape
    if groups == in_channels == out_channels and in_per_group == 1 and in_channels > 1:
        return DEPTHWISE
    if groups == 1 and kh == kw == 1 and not any(as_padding(padding)):
        return POINTWISE
    return DENSE


def params_stride(params: Mapping[str, Any]) -> tuple[int, int]:
    """``(sh, sw)`` of a conv or pool descriptor (``tte_conv2d_params``, ``tte_pool2d_params``)."""
    return int(params["stride_h"]), int(params["stride_w"])


def params_padding(params: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of a conv or pool descriptor."""
    return int(params["pad_top"]), int(params["pad_left"]), int(params["pad_bottom"]), int(params["pad_right"])


def params_kernel(params: Mapping[str, Any]) -> tuple[int, int]:
    """``(kh, kw)`` of a conv or pool descriptor."""
    return int(params["kernel_h"]), int(params["kernel_w"])


def window_fields(stride: int | tuple[int, int], padding: int | tuple[int, ...]) -> dict[str, int]:
    """The stride and padding fields of a conv or pool descriptor from ``stride`` (sh, sw) and
    ``padding`` (top, left, bottom, right); a plain int means every axis or side."""
    (sh, sw), (top, left, bottom, right) = as_pair(stride), as_padding(padding)
    return {
        "stride_h": int(sh), "stride_w": int(sw), "pad_top": int(top), "pad_left": int(left),
        "pad_bottom": int(bottom), "pad_right": int(right),
    }  # fmt: skip


@dataclass(frozen=True)
class WeightLayout:
    """The engine layout of a conv weight family (``tte/tte.h``), the one place weights are permuted.

    dense ``[O][KH][KW][C/g]`` (OHWI), depthwise ``[KH][KW][C]`` (from ``[C, 1, KH, KW]``), pointwise
    ``[O][C]``. A trained slice (``w_train``) has its full weight's layout with the channel axis cut.
    """

    family: str

    @property
    def to_ir_axes(self) -> tuple[int, ...]:
        """The transpose that takes the engine array back to IR axis order (then reshape to the IR shape)."""
        return {DENSE: (0, 3, 1, 2), DEPTHWISE: (2, 0, 1), POINTWISE: (0, 1)}[self.family]

    def to_engine(self, w: np.ndarray) -> np.ndarray:
        """IR weights ``[O, C/g, KH, KW]`` (or a trained slice) in this family's engine layout."""
        w = np.asarray(w)
        if self.family == DEPTHWISE:
            return np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))
        if self.family == POINTWISE:
            return np.ascontiguousarray(w[:, :, 0, 0])
        return np.ascontiguousarray(w.transpose(0, 2, 3, 1))

    def engine_shape(self, ir_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The engine shape of IR weights of ``ir_shape``."""
        out_channels, in_per_group, kh, kw = ir_shape
        if self.family == DEPTHWISE:
            return (kh, kw, out_channels)
        if self.family == POINTWISE:
            return (out_channels, in_per_group)
        return (out_channels, kh, kw, in_per_group)

    def to_ir(self, w: np.ndarray, ir_shape: tuple[int, ...]) -> np.ndarray:
        """The inverse of :meth:`to_engine` for IR weights of ``ir_shape``."""
        engine = np.asarray(w).reshape(self.engine_shape(ir_shape))
        return np.ascontiguousarray(engine.transpose(self.to_ir_axes).reshape(ir_shape))


def weight_layout(family: str) -> WeightLayout:
    """The :class:`WeightLayout` of a conv family."""
    if family not in FAMILIES:
        raise ValueError(f"conv family '{family}' is not one of {', '.join(FAMILIES)}")
    return WeightLayout(family)


def buffer_shape(spec: TensorSpec) -> tuple[int, ...]:
    """The shape of a tensor's buffer in the engine: a feature map ``[1, C, H, W]`` is ``[H, W, C]``,
    a vector ``[1, I]`` is ``[I]``; everything else (masks, labels, losses, biases) keeps its shape."""
    shape = spec.shape
    if len(shape) == 4 and shape[0] == 1:
        return (shape[2], shape[3], shape[1])
    if len(shape) == 2 and shape[0] == 1:
        return (shape[1],)
    return shape


def derived_array(value: Any) -> np.ndarray:
    """The C array of a ``derived`` argument (:class:`Arg`): an int8 table stays int8, everything else
    (multipliers) is float32."""
    array = np.asarray(value)
    return np.ascontiguousarray(array, dtype=np.int8 if array.dtype == np.int8 else np.float32)


# -- the C side, written once ---------------------------------------------------------------------

_I32, _F32, _U32 = "int32_t", "float", "uint32_t"
_CHANNELS = "const int32_t *"
# fixed-point requantization (NUMERICS.md 2b): the mode, and per-channel (or per-count) tables or one pair
_FIXED_TABLES = (("requant", _I32), ("qmult", _CHANNELS), ("qshift", _CHANNELS))
_FIXED_SCALAR = (("requant", _I32), ("qm", _I32), ("sh", _I32))

REQUANT = {"float": 0, "fixed": 1, "fixed_single": 2}
"""The ``requant`` descriptor field of each requantization mode (``TTE_REQUANT_*`` of ``tte/tte.h``):
``fixed_single`` is ``fixed`` with TFLite's single-rounding MultiplyByQuantizedMultiplier (its int8
FULLY_CONNECTED's, :func:`tte_ir.fixedpoint.mbqm_single`), for a linear layer and the 1x1 conv it becomes."""
_WINDOW = (
    ("stride_h", _I32), ("stride_w", _I32), ("pad_top", _I32), ("pad_left", _I32), ("pad_bottom", _I32),
    ("pad_right", _I32),
)  # fmt: skip

PARAM_STRUCTS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "tte_conv2d_params": (
        ("in_h", _I32), ("in_w", _I32), ("in_c", _I32), ("out_c", _I32), ("kernel_h", _I32), ("kernel_w", _I32),
        *_WINDOW, ("groups", _I32), ("x_zero", _I32), ("y_zero", _I32),
        ("act_min", _I32), ("act_max", _I32), ("train_channels", _CHANNELS), ("train_count", _I32),
        *_FIXED_TABLES,
    ),
    "tte_add_params": (
        ("size", _I32), ("m1", _F32), ("m2", _F32), ("z1", _I32), ("z2", _I32), ("y_zero", _I32),
        ("act_min", _I32), ("act_max", _I32), ("requant", _I32), ("left_shift", _I32), ("qm1", _I32), ("sh1", _I32),
        ("qm2", _I32), ("sh2", _I32), ("qmy", _I32), ("shy", _I32),
    ),
    "tte_global_avg_pool_params": (
        ("in_h", _I32), ("in_w", _I32), ("in_c", _I32), ("multiplier", _F32), ("x_zero", _I32), ("y_zero", _I32),
        *_FIXED_SCALAR,
    ),
    "tte_linear_params": (
        ("in_features", _I32), ("out_features", _I32), ("x_zero", _I32), ("y_zero", _I32), ("act_min", _I32),
        ("act_max", _I32), *_FIXED_TABLES,
    ),
    "tte_linear_f32_params": (("in_features", _I32), ("out_features", _I32), ("x_scale", _F32), ("x_zero", _I32)),
    "tte_gather_params": (("pixels", _I32), ("in_c", _I32), ("channels", _CHANNELS), ("count", _I32)),
    "tte_softmax_ce_params": (("classes", _I32), ("scale", _F32), ("zero", _I32)),
    "tte_hwc_params": (("pixels", _I32), ("channels", _I32)),
    "tte_add_bwd_params": (("size", _I32), ("m1", _F32), ("m2", _F32)),
    "tte_global_avg_pool_bwd_params": (("in_h", _I32), ("in_w", _I32), ("in_c", _I32), ("multiplier", _F32)),
    "tte_update_params": (("rounding", "tte_rounding"), ("lr_group", "tte_lr_group"), ("tensor_id", _U32)),
    "tte_pool2d_params": (
        ("in_h", _I32), ("in_w", _I32), ("in_c", _I32), ("kernel_h", _I32), ("kernel_w", _I32), *_WINDOW,
        ("count_include_pad", _I32), ("x_zero", _I32), ("y_zero", _I32), *_FIXED_TABLES,
    ),
    "tte_lut_params": (("size", _I32),),
    "tte_mul_params": (
        ("pixels", _I32), ("channels", _I32), ("m", _F32), ("a_zero", _I32), ("b_zero", _I32), ("y_zero", _I32),
        ("act_min", _I32), ("act_max", _I32), *_FIXED_SCALAR,
    ),
    "tte_concat_params": (("pixels", _I32), ("a_channels", _I32), ("b_channels", _I32)),
    "tte_channel_split_params": (("pixels", _I32), ("in_c", _I32), ("start", _I32), ("count", _I32)),
    "tte_channel_shuffle_params": (("pixels", _I32), ("channels", _I32), ("groups", _I32)),
}  # fmt: skip
"""Every kernel descriptor's fields and C types, as ``tte/tte.h`` and ``tte/tte_train.h`` declare them."""

_S8, _CS8, _CS32, _S32 = "int8_t *", "const int8_t *", "const int32_t *", "int32_t *"
_CF32, _PF32, _MASK, _CMASK = "const float *", "float *", "uint8_t *", "const uint8_t *"
_CTX, _ROWS, _BAND = "tte_train_ctx *", "const tte_row_band *", "const tte_channel_band *"


def _conv_fwd_signature(params: str) -> tuple[tuple[str, str], ...]:
    return (
        ("p", f"const {params} *"), ("x", _CS8), ("w", _CS8), ("w_train", _CS8), ("bias", _CS32),
        ("multiplier", _CF32), ("y", _S8), ("mask", _MASK), ("rows", _ROWS), ("scratch", "void *"),
    )  # fmt: skip


_CONV = "tte_conv2d_params"
_BWD_X = (
    ("p", f"const {_CONV} *"), ("gh", _CF32), ("w", _CS8), ("w_train", _CS8), ("gx", _PF32), ("accumulate", "int"),
    ("gh_band", _BAND), ("gx_band", _BAND),
)  # fmt: skip
_BWD_W = (
    ("p", f"const {_CONV} *"), ("ctx", _CTX), ("u", "const tte_update_params *"), ("x_saved", _CS8), ("gh", _CF32),
    ("inv_w", _CF32), ("w_train", _S8), ("gh_band", _BAND),
)  # fmt: skip

# mini-batch weight update: the gradient summed into acc, the QAS step from acc / batch at a batch's end
_BWD_W_ACC = (
    ("p", f"const {_CONV} *"), ("ctx", _CTX), ("u", "const tte_update_params *"), ("batch", _I32), ("x_saved", _CS8),
    ("gh", _CF32), ("inv_w", _CF32), ("acc", _PF32), ("w_train", _S8), ("gh_band", _BAND),
)  # fmt: skip

SIGNATURES: Mapping[str, tuple[tuple[str, str], ...]] = {
    **{f"{_FAMILY_PREFIX[f]}_fwd_s8": _conv_fwd_signature(_CONV) for f in FAMILIES},
    "add_fwd_s8": (
        ("p", "const tte_add_params *"), ("x1", _CS8), ("x2", _CS8), ("y", _S8), ("mask", _MASK),
    ),
    "global_avg_pool_fwd_s8": (("p", "const tte_global_avg_pool_params *"), ("x", _CS8), ("y", _S8), ("mask", _MASK)),
    "linear_fwd_s8": (
        ("p", "const tte_linear_params *"), ("x", _CS8), ("w", _CS8), ("bias", _CS32), ("multiplier", _CF32),
        ("y", _S8), ("mask", _MASK),
    ),
    "linear_fwd_f32": (
        ("p", "const tte_linear_f32_params *"), ("x", _CS8), ("w", _CF32), ("bias", _CF32), ("y", _PF32),
    ),
    "gather_channels_s8": (("p", "const tte_gather_params *"), ("x", _CS8), ("y", _S8)),
    **{
        f"softmax_ce_{t}": (
            ("p", "const tte_softmax_ce_params *"), ("ctx", _CTX), ("logits", c), ("label", _CS32),
            ("loss", _PF32), ("g", _PF32),
        )
        for t, c in (("f32", _CF32), ("s8", _CS8))
    },
    "mask_scale_f32": (
        ("p", "const tte_hwc_params *"), ("g", _CF32), ("mask", _CMASK), ("scale", _CF32), ("gh", _PF32),
        ("band", _BAND),
    ),
    "add_bwd_f32": (("p", "const tte_add_bwd_params *"), ("g", _CF32), ("mask", _CMASK), ("ga", _PF32), ("gb", _PF32)),
    "global_avg_pool_bwd_f32": (
        ("p", "const tte_global_avg_pool_bwd_params *"), ("g", _CF32), ("mask", _CMASK), ("gx", _PF32),
    ),
    **{f"{_FAMILY_PREFIX[f]}_bwd_x_f32": _BWD_X for f in FAMILIES},
    **{f"{_FAMILY_PREFIX[f]}_bwd_w_update_s8": _BWD_W for f in FAMILIES},
    "bias_update_s32": (
        ("p", "const tte_hwc_params *"), ("ctx", _CTX), ("u", "const tte_update_params *"), ("gh", _CF32),
        ("inv_b", _CF32), ("b", _S32), ("band", _BAND),
    ),
    "linear_bwd_update_f32": (
        ("p", "const tte_linear_f32_params *"), ("ctx", _CTX), ("lr_group", "tte_lr_group"), ("x", _CS8),
        ("g", _CF32), ("w", _CF32), ("b", _CF32), ("w_next", _PF32), ("b_next", _PF32), ("gx", _PF32),
    ),
    "accumulate_f32": (("size", _I32), ("acc", _CF32), ("g", _CF32), ("y", _PF32)),
    "max_pool2d_fwd_s8": (("p", "const tte_pool2d_params *"), ("x", _CS8), ("y", _S8), ("index", _MASK)),
    "max_pool2d_bwd_f32": (("p", "const tte_pool2d_params *"), ("g", _CF32), ("index", _CMASK), ("gx", _PF32)),
    "avg_pool2d_fwd_s8": (
        ("p", "const tte_pool2d_params *"), ("x", _CS8), ("multiplier", _CF32), ("y", _S8), ("mask", _MASK),
    ),
    "avg_pool2d_bwd_f32": (
        ("p", "const tte_pool2d_params *"), ("g", _CF32), ("mask", _CMASK), ("multiplier", _CF32), ("gx", _PF32),
    ),
    "lut_s8": (("p", "const tte_lut_params *"), ("x", _CS8), ("table", _CS8), ("y", _S8)),
    "lut_bwd_f32": (("p", "const tte_lut_params *"), ("g", _CF32), ("x", _CS8), ("slope", _CF32), ("gx", _PF32)),
    "mul_fwd_s8": (("p", "const tte_mul_params *"), ("a", _CS8), ("b", _CS8), ("y", _S8), ("mask", _MASK)),
    "mul_bwd_f32": (
        ("p", "const tte_mul_params *"), ("g", _CF32), ("mask", _CMASK), ("a", _CS8), ("b", _CS8), ("ga", _PF32),
        ("gb", _PF32),
    ),
    **{f"{_FAMILY_PREFIX[f]}_bwd_w_acc_s8": _BWD_W_ACC for f in FAMILIES},
    "bias_acc_s32": (
        ("p", "const tte_hwc_params *"), ("ctx", _CTX), ("u", "const tte_update_params *"), ("batch", _I32),
        ("gh", _CF32), ("inv_b", _CF32), ("acc", _PF32), ("b", _S32), ("band", _BAND),
    ),
    "linear_acc_f32": (
        ("p", "const tte_linear_f32_params *"), ("ctx", _CTX), ("lr_group", "tte_lr_group"), ("batch", _I32),
        ("x", _CS8), ("g", _CF32), ("acc_w", _PF32), ("acc_b", _PF32), ("w", _PF32), ("b", _PF32),
    ),
    **{
        f"concat_{t}": (("p", "const tte_concat_params *"), ("a", c), ("b", c), ("y", w))
        for t, c, w in (("s8", _CS8, _S8), ("f32", _CF32, _PF32))
    },
    **{
        f"channel_split_{t}": (("p", "const tte_channel_split_params *"), ("x", c), ("y", w))
        for t, c, w in (("s8", _CS8, _S8), ("f32", _CF32, _PF32))
    },
    **{
        f"channel_shuffle_{t}": (("p", "const tte_channel_shuffle_params *"), ("x", c), ("y", w))
        for t, c, w in (("s8", _CS8, _S8), ("f32", _CF32, _PF32))
    },
    "channel_insert_f32": (
        ("p", "const tte_channel_split_params *"), ("g", _CF32), ("gx", _PF32), ("accumulate", "int"),
    ),
}  # fmt: skip
"""Every kernel's C parameters in order (name, C type), as the engine's headers declare them; a
descriptor, when the kernel has one, is the first. Kernels with a ``_scratch_size`` twin are the
``*_fwd_s8`` convolutions."""

SCRATCH_KERNELS = frozenset(f"{_FAMILY_PREFIX[f]}_fwd_s8" for f in FAMILIES)


@dataclass(frozen=True)
class CEnum:
    """A value of a C enum: ``name`` is its C spelling, ``value`` its integer."""

    name: str
    value: int


ROUNDING = {"nearest": CEnum("TTE_ROUND_NEAREST", 0), "stochastic": CEnum("TTE_ROUND_STOCHASTIC", 1)}
LR_GROUPS = {"body": CEnum("TTE_LR_BODY", 0), "head": CEnum("TTE_LR_HEAD", 1)}


@dataclass(frozen=True)
class Arg:
    """One argument of a kernel call after its descriptor, in C order.

    ``kind``:

    - ``tensor``: a buffer. ``reads`` is the tensor whose value it holds on entry (None: written only),
      ``writes`` the tensor it holds on return (None: read only; equal to ``reads``' storage when the op
      works in place). ``layout`` is a conv weight family for weights and trained slices (their engine
      layout, :class:`WeightLayout`), else None: the tensor's own engine layout (:func:`buffer_shape`).
    - ``derived``: a compile-time array (``value``), a ``const`` array in flash: float32 (a multiplier),
      or int8 (a lookup table); consumers keep an int8 array int8 and make every other one float32.
    - ``params``: a second descriptor, ``value`` = (C type, fields).
    - ``int``: an integer scalar argument (``value``; a :class:`CEnum` for an enum).
    - ``ctx``: the training step's context. ``null``: an absent optional pointer.
    - ``rows``, ``band``, ``scratch``: how the call runs (a row band, the channel band of tensor
      ``reads``, the node's scratch): NULL when it runs whole; the code generator fills them in tiles.
    """

    name: str
    kind: str
    reads: str | None = None
    writes: str | None = None
    layout: str | None = None
    value: Any = None


@dataclass(frozen=True)
class KernelCall:
    """One node as one kernel call: ``tte_<kernel>(&params, *args)``.

    ``kernel`` is None for a view (reshape): no call, the output shares the input's storage;
    ``params`` then holds the reshape's ``order`` (how the IR's NCHW arrays map onto the shared buffer).
    ``params`` maps descriptor fields to values: Python ints, ``np.float32``, :class:`CEnum`, or a
    tuple of ints for a channel list (the C field is a pointer; its count is its own field).
    """

    node: str
    kernel: str | None
    params_type: str | None
    params: Mapping[str, Any]
    args: tuple[Arg, ...]
    family: str | None = None  # the conv family, for conv-family nodes

    def arg(self, name: str) -> Arg:
        """The argument called ``name``."""
        for a in self.args:
            if a.name == name:
                return a
        raise KeyError(f"{self.kernel}: no argument '{name}'")


def call_requant(call: KernelCall) -> str | None:
    """The requantization mode (a :data:`REQUANT` name) of a forward call: its descriptor's ``requant``
    field, ``float`` where unset. None for a call that requantizes nothing: one whose descriptor has no
    such field, or a backward kernel (``*_bwd_*``), which shares its forward's descriptor for the shapes
    and never reads the field."""
    if call.params_type is None or "requant" not in dict(PARAM_STRUCTS[call.params_type]) or "_bwd_" in call.kernel:
        return None
    value = int(call.params.get("requant", REQUANT["float"]))
    return next(name for name, code in REQUANT.items() if code == value)


def _call(node: Node, kernel: str, params: Mapping[str, Any] | None, args: list[Arg], family: str | None = None):
    """A :class:`KernelCall` checked against the kernel's C signature (names, order, descriptor fields)."""
    signature = SIGNATURES[kernel]
    has_params = signature[0][0] == "p"
    params_type = signature[0][1].removeprefix("const ").removesuffix(" *") if has_params else None
    expected = [name for name, _ in signature[1:]] if has_params else [name for name, _ in signature]
    if [a.name for a in args] != expected:
        raise AssertionError(f"{kernel}: arguments {[a.name for a in args]} do not match its C signature {expected}")
    if params_type is not None:
        unknown = set(params or {}) - {f for f, _ in PARAM_STRUCTS[params_type]}
        if unknown:
            raise AssertionError(f"{kernel}: {params_type} has no fields {sorted(unknown)}")
    return KernelCall(node.name, kernel, params_type, dict(params or {}), tuple(args), family)


def _zero(spec: TensorSpec) -> int:
    return spec.quant.zero_point if spec.quant is not None else 0


def _read(name: str, tensor: str | None, layout: str | None = None) -> Arg:
    return Arg(name, "tensor", reads=tensor, layout=layout) if tensor is not None else Arg(name, "null")


def _write(name: str, tensor: str | None, *, reads: str | None = None, layout: str | None = None) -> Arg:
    return Arg(name, "tensor", reads=reads, writes=tensor, layout=layout) if tensor is not None else Arg(name, "null")


def _hwc(spec: TensorSpec) -> dict[str, int]:
    shape = buffer_shape(spec)
    pixels = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    return {"pixels": pixels, "channels": shape[-1]}


def _conv_params(
    attrs: Mapping[str, Any],
    *,
    size: tuple[int, int],
    in_c: int,
    w_shape: tuple[int, ...],
    x_zero: int = 0,
    y_zero: int = 0,
    act: tuple[int, int] = (-128, 127),
) -> dict[str, Any]:
    """The ``tte_conv2d_params`` of a conv-family node (the backward ones use no zero points or clamp)."""
    fields: dict[str, Any] = {
        "in_h": int(size[0]), "in_w": int(size[1]), "in_c": int(in_c), "out_c": int(w_shape[0]),
        "kernel_h": int(w_shape[2]), "kernel_w": int(w_shape[3]), **window_fields(attrs["stride"], attrs["padding"]),
        "groups": int(attrs["groups"]), "x_zero": int(x_zero), "y_zero": int(y_zero), "act_min": int(act[0]),
        "act_max": int(act[1]),
    }  # fmt: skip
    if attrs.get("channels"):  # the trained slice w_train replaces these channels of w
        fields["train_channels"] = tuple(int(c) for c in attrs["channels"])
        fields["train_count"] = len(attrs["channels"])
    return fields


def _update_params(attrs: Mapping[str, Any]) -> Arg:
    fields = {
        "rounding": ROUNDING[attrs["rounding"]],
        "lr_group": LR_GROUPS[attrs["lr_group"]],
        "tensor_id": int(attrs["tensor_id"]),
    }
    return Arg("u", "params", value=("tte_update_params", fields))


def _mask_of(outs: Mapping[str, str]) -> Arg:
    return _write("mask", outs.get("mask"))


def _conv2d(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    x, w, y = graph.tensors[ins["x"]], graph.tensors[ins["w"]], graph.tensors[outs["y"]]
    family = conv_family(w.shape, x.shape[1], attrs["padding"], attrs["groups"])
    params = _conv_params(
        attrs, size=x.shape[2:], in_c=x.shape[1], w_shape=w.shape, x_zero=_zero(x), y_zero=_zero(y),
        act=(attrs["act_min"], attrs["act_max"]),
    )  # fmt: skip
    m = node_multipliers(graph, node)
    params.update(_fixed_tables(m, single=attrs["requant_rounding"] == "single"))
    args = [
        _read("x", ins["x"]),
        _read("w", ins["w"], family),
        _read("w_train", ins.get("w_train"), family),
        _read("bias", ins["b"]),
        Arg("multiplier", "derived", value=m["multiplier"]),
        _write("y", outs["y"]),
        _mask_of(outs),
        Arg("rows", "rows"),
        Arg("scratch", "scratch"),
    ]
    return _call(node, f"{_FAMILY_PREFIX[family]}_fwd_s8", params, args, family)


def _fixed_tables(m: Mapping[str, Any], *, single: bool = False) -> dict[str, Any]:
    """The fixed-point fields of a descriptor with ``qmult`` / ``qshift`` tables (none under float
    requantization; an average pool's tables may be None: TFLite's rounded division); ``single``: the
    single-rounding multiply (``REQUANT["fixed_single"]``)."""
    if "qmult" not in m:
        return {}
    fields: dict[str, Any] = {"requant": REQUANT["fixed_single" if single else "fixed"]}
    if m["qmult"] is not None:
        fields.update(qmult=tuple(m["qmult"]), qshift=tuple(m["qshift"]))
    return fields


_ADD_FIXED = ("left_shift", "qm1", "sh1", "qm2", "sh2", "qmy", "shy")


def _fixed_scalar(m: Mapping[str, Any]) -> dict[str, Any]:
    """The fixed-point fields of a descriptor with one multiplier ``qm`` and shift ``sh``."""
    return {"requant": REQUANT["fixed"], "qm": int(m["qm"]), "sh": int(m["sh"])} if "qm" in m else {}


def _add(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    m = node_multipliers(graph, node)
    a, b, y = (graph.tensors[t] for t in (ins["a"], ins["b"], outs["y"]))
    params = {
        "size": y.numel, "m1": np.float32(m["m1"]), "m2": np.float32(m["m2"]), "z1": _zero(a), "z2": _zero(b),
        "y_zero": _zero(y), "act_min": attrs["act_min"], "act_max": attrs["act_max"],
    }  # fmt: skip
    if "qmy" in m:
        params.update({"requant": REQUANT["fixed"], **{k: int(m[k]) for k in _ADD_FIXED}})
    args = [_read("x1", ins["a"]), _read("x2", ins["b"]), _write("y", outs["y"]), _mask_of(outs)]
    return _call(node, "add_fwd_s8", params, args)


def _global_avg_pool(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    x, y = graph.tensors[ins["x"]], graph.tensors[outs["y"]]
    m = node_multipliers(graph, node)
    params = {
        "in_h": x.shape[2], "in_w": x.shape[3], "in_c": x.shape[1], "multiplier": np.float32(m["multiplier"]),
        "x_zero": _zero(x), "y_zero": _zero(y), **_fixed_scalar(m),
    }  # fmt: skip
    return _call(node, "global_avg_pool_fwd_s8", params, [_read("x", ins["x"]), _write("y", outs["y"]), _mask_of(outs)])


def _linear(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    x, w, y = graph.tensors[ins["x"]], graph.tensors[ins["w"]], graph.tensors[outs["y"]]
    if w.dtype is DType.FLOAT32:
        params = {
            "in_features": w.shape[1], "out_features": w.shape[0], "x_scale": np.float32(x.quant.tensor_scale),
            "x_zero": _zero(x),
        }  # fmt: skip
        args = [_read("x", ins["x"]), _read("w", ins["w"]), _read("bias", ins["b"]), _write("y", outs["y"])]
        return _call(node, "linear_fwd_f32", params, args)
    attrs = node_attrs(node)
    m = node_multipliers(graph, node)
    params = {
        "in_features": w.shape[1], "out_features": w.shape[0], "x_zero": _zero(x), "y_zero": _zero(y),
        "act_min": attrs["act_min"], "act_max": attrs["act_max"], **_fixed_tables(m, single=True),
    }  # fmt: skip
    args = [
        _read("x", ins["x"]),
        _read("w", ins["w"]),
        _read("bias", ins["b"]),
        Arg("multiplier", "derived", value=m["multiplier"]),
        _write("y", outs["y"]),
        _mask_of(outs),
    ]
    return _call(node, "linear_fwd_s8", params, args)


def _reshape(graph: Graph, node: Node) -> KernelCall:
    order = node_attrs(node)["order"]
    shapes = [graph.tensors[t].shape for t in (node.inputs[0], node.outputs[0])]
    # An "hwc" reshape is the engine's channels-last order itself; an NCHW one agrees with it only
    # when the map has a single pixel or a single channel.
    spatial = [s for s in shapes if len(s) == 4 and s[1] > 1 and s[2] * s[3] > 1]
    if order == "nchw" and spatial and shapes[0] != shapes[1]:
        raise TteError(
            f"{node.describe()}: reshaping {list(shapes[0])} to {list(shapes[1])} in NCHW order would reorder data in "
            "the engine's HWC layout; supported: a flatten only linear layers read (tte quantize and tte compile "
            "permute their weights: tte_ir.layout_passes.flatten_channels_last) or global pooling first"
        )
    arg = Arg("x", "tensor", reads=node.inputs[0], writes=node.outputs[0])
    return KernelCall(node.name, None, None, {"order": order}, (arg,))


def _gather_channels(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    channels = tuple(int(c) for c in node_attrs(node)["channels"])
    hwc = _hwc(graph.tensors[ins["x"]])
    params = {"pixels": hwc["pixels"], "in_c": hwc["channels"], "channels": channels, "count": len(channels)}
    return _call(node, "gather_channels_s8", params, [_read("x", ins["x"]), _write("y", outs["y"])])


def _softmax_ce(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    logits = graph.tensors[ins["logits"]]
    params: dict[str, Any] = {"classes": logits.shape[1]}
    kernel = "softmax_ce_f32"
    if logits.dtype is DType.INT8:  # dequantized first (NUMERICS.md §3)
        params.update(scale=np.float32(logits.quant.tensor_scale), zero=logits.quant.zero_point)
        kernel = "softmax_ce_s8"
    args = [
        Arg("ctx", "ctx"),
        _read("logits", ins["logits"]),
        _read("label", ins["label"]),
        _write("loss", outs["loss"]),
        _write("g", outs["g"]),
    ]
    return _call(node, kernel, params, args)


def _mask_scale(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    args = [
        _read("g", ins["g"]),
        _read("mask", ins["mask"]),
        _read("scale", ins["scale"]),
        _write("gh", outs["gh"]),
        Arg("band", "band", reads=ins["g"]),
    ]
    return _call(node, "mask_scale_f32", _hwc(graph.tensors[ins["g"]]), args)


def _add_bwd(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    params = {"size": graph.tensors[ins["g"]].numel, "m1": np.float32(attrs["m1"]), "m2": np.float32(attrs["m2"])}
    args = [_read("g", ins["g"]), _read("mask", ins["mask"]), _write("ga", outs["ga"]), _write("gb", outs["gb"])]
    return _call(node, "add_bwd_f32", params, args)


def _pool_bwd(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    height, width = (int(d) for d in attrs["size"])
    params = {
        "in_h": height, "in_w": width, "in_c": graph.tensors[ins["g"]].shape[1], "multiplier": np.float32(attrs["m"]),
    }  # fmt: skip
    args = [_read("g", ins["g"]), _read("mask", ins["mask"]), _write("gx", outs["gx"])]
    return _call(node, "global_avg_pool_bwd_f32", params, args)


def _conv2d_bwd_x(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    w_shape = graph.tensors[ins["w"]].shape
    in_c = w_shape[1] * attrs["groups"]
    family = conv_family(w_shape, in_c, attrs["padding"], attrs["groups"])
    params = _conv_params(attrs, size=tuple(attrs["size"]), in_c=in_c, w_shape=w_shape)
    args = [
        _read("gh", ins["gh"]),
        _read("w", ins["w"], family),
        _read("w_train", ins.get("w_train"), family),
        _write("gx", outs["gx"], reads=ins.get("acc")),
        Arg("accumulate", "int", value=int(bool(attrs["accumulate"]))),
        Arg("gh_band", "band", reads=ins["gh"]),
        Arg("gx_band", "band", reads=outs["gx"]),
    ]
    return _call(node, f"{_FAMILY_PREFIX[family]}_bwd_x_f32", params, args, family)


def _conv2d_bwd_w_update(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    x = graph.tensors[ins["x_saved"]]
    full = tuple(int(d) for d in attrs["weight_shape"])
    in_c = full[1] * attrs["groups"]
    family = conv_family(full, in_c, attrs["padding"], attrs["groups"])
    params = _conv_params(attrs, size=x.shape[2:], in_c=in_c, w_shape=full, x_zero=_zero(x))
    args = [
        Arg("ctx", "ctx"),
        _update_params(attrs),
        _read("x_saved", ins["x_saved"]),
        _read("gh", ins["gh"]),
        _read("inv_w", ins["inv_w"]),
        _write("w_train", outs["w_next"], reads=ins["w_train"], layout=family),
        Arg("gh_band", "band", reads=ins["gh"]),
    ]
    return _call(node, f"{_FAMILY_PREFIX[family]}_bwd_w_update_s8", params, args, family)


def _bias_update(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    args = [
        Arg("ctx", "ctx"),
        _update_params(node_attrs(node)),
        _read("gh", ins["gh"]),
        _read("inv_b", ins["inv_b"]),
        _write("b", outs["b_next"], reads=ins["b"]),
        Arg("band", "band", reads=ins["gh"]),
    ]
    return _call(node, "bias_update_s32", _hwc(graph.tensors[ins["gh"]]), args)


def _linear_f32_bwd_update(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    x, w = graph.tensors[ins["x"]], graph.tensors[ins["w"]]
    params = {
        "in_features": w.shape[1], "out_features": w.shape[0], "x_scale": np.float32(x.quant.tensor_scale),
        "x_zero": _zero(x),
    }  # fmt: skip
    args = [
        Arg("ctx", "ctx"),
        Arg("lr_group", "int", value=LR_GROUPS[attrs["lr_group"]]),
        _read("x", ins["x"]),
        _read("g", ins["g"]),
        _read("w", ins["w"]),
        _read("b", ins["b"]),
        _write("w_next", outs.get("w_next"), reads=ins["w"]),  # in place: a skipped update leaves w
        _write("b_next", outs.get("b_next"), reads=ins["b"]),
        _write("gx", outs.get("gx")),
    ]
    return _call(node, "linear_bwd_update_f32", params, args)


def _accumulate(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    args = [
        Arg("size", "int", value=graph.tensors[ins["acc"]].numel),
        _read("acc", ins["acc"]),
        _read("g", ins["g"]),
        _write("y", outs["y"]),
    ]
    return _call(node, "accumulate_f32", None, args)


def _pool_params(
    attrs: Mapping[str, Any], size: tuple[int, ...], in_c: int, x_zero: int = 0, y_zero: int = 0
) -> dict[str, Any]:
    """The ``tte_pool2d_params`` of a pooling node on a map of ``size`` (H, W) with ``in_c`` channels."""
    kh, kw = as_pair(attrs["kernel"])
    return {
        "in_h": int(size[0]), "in_w": int(size[1]), "in_c": int(in_c), "kernel_h": int(kh), "kernel_w": int(kw),
        **window_fields(attrs["stride"], attrs["padding"]),
        "count_include_pad": int(bool(attrs.get("count_include_pad", False))), "x_zero": int(x_zero),
        "y_zero": int(y_zero),
    }  # fmt: skip


def _max_pool(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    x, y = graph.tensors[ins["x"]], graph.tensors[outs["y"]]
    if x.quant != y.quant:  # codes are compared and copied, never requantized
        raise TteError(
            f"{node.describe()}: output '{y.name}' must keep the quantization of input '{x.name}' "
            "(a max pool copies codes; quantize it with the input's scale and zero point)"
        )
    params = _pool_params(node_attrs(node), x.shape[2:], x.shape[1])
    args = [_read("x", ins["x"]), _write("y", outs["y"]), _write("index", outs.get("index"))]
    return _call(node, "max_pool2d_fwd_s8", params, args)


def _max_pool_bwd(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    params = _pool_params(attrs, tuple(attrs["size"]), graph.tensors[ins["g"]].shape[1])
    args = [_read("g", ins["g"]), _read("index", ins["index"]), _write("gx", outs["gx"])]
    return _call(node, "max_pool2d_bwd_f32", params, args)


def _avg_pool(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    x, y = graph.tensors[ins["x"]], graph.tensors[outs["y"]]
    m = node_multipliers(graph, node)
    params = {**_pool_params(node_attrs(node), x.shape[2:], x.shape[1], _zero(x), _zero(y)), **_fixed_tables(m)}
    args = [
        _read("x", ins["x"]),
        Arg("multiplier", "derived", value=m["multiplier"]),
        _write("y", outs["y"]),
        _mask_of(outs),
    ]
    return _call(node, "avg_pool2d_fwd_s8", params, args)


def _avg_pool_bwd(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    params = _pool_params(attrs, tuple(attrs["size"]), graph.tensors[ins["g"]].shape[1])
    args = [_read("g", ins["g"]), _read("mask", ins["mask"]), _read("multiplier", ins["m"]), _write("gx", outs["gx"])]
    return _call(node, "avg_pool2d_bwd_f32", params, args)


def _lut(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    table = node_multipliers(graph, node)["table"]  # int8 [256], a const array in flash
    args = [_read("x", ins["x"]), Arg("table", "derived", value=table), _write("y", outs["y"])]
    return _call(node, "lut_s8", {"size": graph.tensors[ins["x"]].numel}, args)


def _lut_bwd(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    args = [_read("g", ins["g"]), _read("x", ins["x"]), _read("slope", ins["slope"]), _write("gx", outs["gx"])]
    return _call(node, "lut_bwd_f32", {"size": graph.tensors[ins["g"]].numel}, args)


def _mul_params(graph: Graph, a: str, b: str, m: float, y_zero: int = 0, act: tuple[int, int] = (-128, 127)):
    """The ``tte_mul_params`` of a channel-wise multiply of map ``a`` by vector ``b``."""
    hwc = _hwc(graph.tensors[a])
    return {
        "pixels": hwc["pixels"], "channels": hwc["channels"], "m": np.float32(m), "a_zero": _zero(graph.tensors[a]),
        "b_zero": _zero(graph.tensors[b]), "y_zero": int(y_zero), "act_min": int(act[0]), "act_max": int(act[1]),
    }  # fmt: skip


def _mul(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    m = node_multipliers(graph, node)
    params = _mul_params(
        graph, ins["a"], ins["b"], m["m"], _zero(graph.tensors[outs["y"]]), (attrs["act_min"], attrs["act_max"])
    )
    params.update(_fixed_scalar(m))
    args = [_read("a", ins["a"]), _read("b", ins["b"]), _write("y", outs["y"]), _mask_of(outs)]
    return _call(node, "mul_fwd_s8", params, args)


def _mul_bwd(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    params = _mul_params(graph, ins["a"], ins["b"], node_attrs(node)["m"])
    args = [
        _read("g", ins["g"]),
        _read("mask", ins["mask"]),
        _read("a", ins["a"]),
        _read("b", ins["b"]),
        _write("ga", outs.get("ga")),
        _write("gb", outs.get("gb")),
    ]
    return _call(node, "mul_bwd_f32", params, args)


def _conv2d_bwd_w_accumulate(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    x = graph.tensors[ins["x_saved"]]
    full = tuple(int(d) for d in attrs["weight_shape"])
    in_c = full[1] * attrs["groups"]
    family = conv_family(full, in_c, attrs["padding"], attrs["groups"])
    params = _conv_params(attrs, size=x.shape[2:], in_c=in_c, w_shape=full, x_zero=_zero(x))
    args = [
        Arg("ctx", "ctx"),
        _update_params(attrs),
        Arg("batch", "int", value=int(attrs["batch"])),
        _read("x_saved", ins["x_saved"]),
        _read("gh", ins["gh"]),
        _read("inv_w", ins["inv_w"]),
        _write("acc", outs["acc_next"], reads=ins["acc"], layout=family),  # the slice's layout, float32
        _write("w_train", outs["w_next"], reads=ins["w_train"], layout=family),
        Arg("gh_band", "band", reads=ins["gh"]),
    ]
    return _call(node, f"{_FAMILY_PREFIX[family]}_bwd_w_acc_s8", params, args, family)


def _bias_accumulate(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    args = [
        Arg("ctx", "ctx"),
        _update_params(attrs),
        Arg("batch", "int", value=int(attrs["batch"])),
        _read("gh", ins["gh"]),
        _read("inv_b", ins["inv_b"]),
        _write("acc", outs["acc_next"], reads=ins["acc"]),
        _write("b", outs["b_next"], reads=ins["b"]),
        Arg("band", "band", reads=ins["gh"]),
    ]
    return _call(node, "bias_acc_s32", _hwc(graph.tensors[ins["gh"]]), args)


def _linear_f32_accumulate(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    x, w = graph.tensors[ins["x"]], graph.tensors[ins["w"]]
    params = {
        "in_features": w.shape[1], "out_features": w.shape[0], "x_scale": np.float32(x.quant.tensor_scale),
        "x_zero": _zero(x),
    }  # fmt: skip
    args = [
        Arg("ctx", "ctx"),
        Arg("lr_group", "int", value=LR_GROUPS[attrs["lr_group"]]),
        Arg("batch", "int", value=int(attrs["batch"])),
        _read("x", ins["x"]),
        _read("g", ins["g"]),
        _write("acc_w", outs["acc_w_next"], reads=ins["acc_w"]),
        _write("acc_b", outs["acc_b_next"], reads=ins["acc_b"]),
        _write("w", outs["w_next"], reads=ins["w"]),
        _write("b", outs["b_next"], reads=ins["b"]),
    ]
    return _call(node, "linear_acc_f32", params, args)


def _channel_kernel(base: str, spec: TensorSpec) -> str:
    """The dtype twin of a channel op's kernel: ``_s8`` on int8 codes, ``_f32`` on float32 gradients."""
    return f"{base}_{'s8' if spec.dtype is DType.INT8 else 'f32'}"


def _same_quant(node: Node, specs: list[TensorSpec]) -> None:
    """Channel ops copy codes: every int8 operand must share one quantization."""
    if any(spec.quant != specs[-1].quant for spec in specs):
        names = ", ".join(f"'{spec.name}'" for spec in specs)
        raise TteError(
            f"{node.describe()}: tensors {names} must share one scale and zero point (the op copies codes; "
            "tte quantize gives a concat's inputs and output one quantization)"
        )


def _concat(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    a, b, y = (graph.tensors[t] for t in (ins["a"], ins["b"], outs["y"]))
    _same_quant(node, [a, b, y])
    params = {"pixels": _hwc(y)["pixels"], "a_channels": a.shape[1], "b_channels": b.shape[1]}
    args = [_read("a", ins["a"]), _read("b", ins["b"]), _write("y", outs["y"])]
    return _call(node, _channel_kernel("concat", y), params, args)


def _channel_split(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    x, y = graph.tensors[ins["x"]], graph.tensors[outs["y"]]
    _same_quant(node, [x, y])
    params = {"pixels": _hwc(x)["pixels"], "in_c": x.shape[1], "start": attrs["start"], "count": attrs["count"]}
    return _call(node, _channel_kernel("channel_split", x), params, [_read("x", ins["x"]), _write("y", outs["y"])])


def _channel_shuffle(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    x, y = graph.tensors[ins["x"]], graph.tensors[outs["y"]]
    _same_quant(node, [x, y])
    params = {**_hwc(x), "groups": node_attrs(node)["groups"]}
    return _call(node, _channel_kernel("channel_shuffle", x), params, [_read("x", ins["x"]), _write("y", outs["y"])])


def _channel_insert(graph: Graph, node: Node) -> KernelCall:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    g = graph.tensors[ins["g"]]
    params = {"pixels": _hwc(g)["pixels"], "in_c": attrs["channels"], "start": attrs["start"], "count": g.shape[1]}
    args = [
        _read("g", ins["g"]),
        _write("gx", outs["gx"], reads=ins.get("acc")),
        Arg("accumulate", "int", value=int(bool(attrs["accumulate"]))),
    ]
    return _call(node, "channel_insert_f32", params, args)


KERNEL_CALLS: Mapping[Op, Callable[[Graph, Node], KernelCall]] = {
    Op.CONV2D: _conv2d,
    Op.ADD: _add,
    Op.GLOBAL_AVG_POOL: _global_avg_pool,
    Op.LINEAR: _linear,
    Op.RESHAPE: _reshape,
    Op.GATHER_CHANNELS: _gather_channels,
    Op.SOFTMAX_CE: _softmax_ce,
    Op.MASK_SCALE: _mask_scale,
    Op.ADD_BWD: _add_bwd,
    Op.POOL_BWD: _pool_bwd,
    Op.CONV2D_BWD_X: _conv2d_bwd_x,
    Op.CONV2D_BWD_W_UPDATE: _conv2d_bwd_w_update,
    Op.BIAS_UPDATE: _bias_update,
    Op.LINEAR_F32_BWD_UPDATE: _linear_f32_bwd_update,
    Op.ACCUMULATE: _accumulate,
    Op.MAX_POOL: _max_pool,
    Op.MAX_POOL_BWD: _max_pool_bwd,
    Op.AVG_POOL: _avg_pool,
    Op.AVG_POOL_BWD: _avg_pool_bwd,
    Op.LUT: _lut,
    Op.LUT_BWD: _lut_bwd,
    Op.MUL: _mul,
    Op.MUL_BWD: _mul_bwd,
    Op.CONV2D_BWD_W_ACCUMULATE: _conv2d_bwd_w_accumulate,
    Op.BIAS_ACCUMULATE: _bias_accumulate,
    Op.LINEAR_F32_ACCUMULATE: _linear_f32_accumulate,
    Op.CONCAT: _concat,
    Op.CHANNEL_SPLIT: _channel_split,
    Op.CHANNEL_SHUFFLE: _channel_shuffle,
    Op.CHANNEL_INSERT: _channel_insert,
}


_CONV_PASSES = {pass_: tuple(f"{_FAMILY_PREFIX[f]}_{pass_}" for f in FAMILIES) for pass_ in ("fwd_s8", "bwd_x_f32")}

OP_KERNELS: Mapping[Op, tuple[str | None, ...]] = {
    Op.CONV2D: _CONV_PASSES["fwd_s8"],
    Op.ADD: ("add_fwd_s8",),
    Op.GLOBAL_AVG_POOL: ("global_avg_pool_fwd_s8",),
    Op.LINEAR: ("linear_fwd_s8", "linear_fwd_f32"),
    Op.RESHAPE: (None,),
    Op.GATHER_CHANNELS: ("gather_channels_s8",),
    Op.SOFTMAX_CE: ("softmax_ce_f32", "softmax_ce_s8"),
    Op.MASK_SCALE: ("mask_scale_f32",),
    Op.ADD_BWD: ("add_bwd_f32",),
    Op.POOL_BWD: ("global_avg_pool_bwd_f32",),
    Op.CONV2D_BWD_X: _CONV_PASSES["bwd_x_f32"],
    Op.CONV2D_BWD_W_UPDATE: tuple(f"{_FAMILY_PREFIX[f]}_bwd_w_update_s8" for f in FAMILIES),
    Op.BIAS_UPDATE: ("bias_update_s32",),
    Op.LINEAR_F32_BWD_UPDATE: ("linear_bwd_update_f32",),
    Op.ACCUMULATE: ("accumulate_f32",),
    Op.MAX_POOL: ("max_pool2d_fwd_s8",),
    Op.MAX_POOL_BWD: ("max_pool2d_bwd_f32",),
    Op.AVG_POOL: ("avg_pool2d_fwd_s8",),
    Op.AVG_POOL_BWD: ("avg_pool2d_bwd_f32",),
    Op.LUT: ("lut_s8",),
    Op.LUT_BWD: ("lut_bwd_f32",),
    Op.MUL: ("mul_fwd_s8",),
    Op.MUL_BWD: ("mul_bwd_f32",),
    Op.CONV2D_BWD_W_ACCUMULATE: tuple(f"{_FAMILY_PREFIX[f]}_bwd_w_acc_s8" for f in FAMILIES),
    Op.BIAS_ACCUMULATE: ("bias_acc_s32",),
    Op.LINEAR_F32_ACCUMULATE: ("linear_acc_f32",),
    Op.CONCAT: ("concat_s8", "concat_f32"),
    Op.CHANNEL_SPLIT: ("channel_split_s8", "channel_split_f32"),
    Op.CHANNEL_SHUFFLE: ("channel_shuffle_s8", "channel_shuffle_f32"),
    Op.CHANNEL_INSERT: ("channel_insert_f32",),
}
"""The kernels a node of each op may become (None: a view, no call); :func:`kernel_call` picks one."""


def kernel_call(graph: Graph, node: Node) -> KernelCall:
    """The kernel call of ``node`` (see the module docstring); a :class:`TteError` names a node whose
    op has no kernel."""
    build = KERNEL_CALLS.get(node.op)
    if build is None:
        raise TteError(f"{node.describe()}: the engine has no kernel for op '{node.op.name.lower()}'")
    call = build(graph, node)
    if call.kernel not in OP_KERNELS[node.op]:
        raise AssertionError(f"{node.describe()}: kernel '{call.kernel}' is not one of OP_KERNELS for its op")
    return call
