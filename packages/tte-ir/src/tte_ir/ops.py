"""The op table: one row per :class:`~tte_ir.Op` with its operand roles, attributes, shape and
dtype inference, and cost. Adding an op means adding one row here (plus its reference kernel).

Shape rules (PyTorch order, batch 1):

============== ============================== ==================== =========================
op             inputs                         output               attributes (default)
============== ============================== ==================== =========================
conv2d         x[1,C,H,W] s8, w[O,C/g,K,K] s8, y[1,O,Ho,Wo] s8      stride (1), padding (0),
               b[O] s32                                            groups (1), act_min (-128),
                                                                   act_max (127)
add            a[1,C,H,W] s8, b (same shape)  y (same shape) s8    act_min (-128), act_max (127)
global_avg_pool x[1,C,H,W] s8                 y[1,C,1,1] s8
linear         x[1,I] s8, w[O,I] s8, b[O] s32 y[1,O] s8            act_min (-128), act_max (127)
linear         x[1,I] s8, w[O,I] f32, b[O] f32 y[1,O] f32 (logits)
reshape        x                              y (same numel, dtype) shape
============== ============================== ==================== =========================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tte_ir._ir import DType, Graph, Node, Op, TensorSpec, VerifyError

__all__ = ["OP_TABLE", "OpDef", "conv_output_size", "node_attrs", "node_macs"]

Shape = tuple[int, ...]
Inferred = list[tuple[Shape, DType]]


@dataclass(frozen=True)
class OpDef:
    """One row of the op table."""

    op: Op
    input_roles: tuple[str, ...]
    output_roles: tuple[str, ...]
    defaults: Mapping[str, Any]
    required: tuple[str, ...]
    infer: Callable[[Node, Sequence[TensorSpec], Mapping[str, Any]], Inferred]
    macs: Callable[[Node, Sequence[TensorSpec], Sequence[TensorSpec]], int]


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output extent of a convolution along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def _fail(node: Node, message: str) -> VerifyError:
    return VerifyError(f"{node.describe()}: {message}")


def _expect_dtype(node: Node, role: str, spec: TensorSpec, dtypes: tuple[DType, ...]) -> None:
    if spec.dtype not in dtypes:
        names = " or ".join(d.name.lower() for d in dtypes)
        raise _fail(node, f"input '{role}' tensor '{spec.name}' has dtype {spec.dtype.name.lower()}, expected {names}")


def _expect_rank(node: Node, role: str, spec: TensorSpec, rank: int) -> None:
    if len(spec.shape) != rank:
        raise _fail(node, f"input '{role}' tensor '{spec.name}' has shape {list(spec.shape)}, expected rank {rank}")


def _check_act_range(node: Node, attrs: Mapping[str, Any]) -> None:
    lo, hi = attrs["act_min"], attrs["act_max"]
    if not (-128 <= lo <= hi <= 127):
        raise _fail(node, f"activation range [{lo}, {hi}] is not inside [-128, 127]")


def _infer_conv2d(node: Node, ins: Sequence[TensorSpec], attrs: Mapping[str, Any]) -> Inferred:
    x, w, b = ins
    _expect_dtype(node, "x", x, (DType.INT8,))
    _expect_dtype(node, "w", w, (DType.INT8,))
    _expect_dtype(node, "b", b, (DType.INT32,))
    _expect_rank(node, "x", x, 4)
    if x.shape[0] != 1:
        raise _fail(node, f"input 'x' tensor '{x.name}' has batch {x.shape[0]}; the device batch is 1")
    _expect_rank(node, "w", w, 4)
    stride, padding, groups = attrs["stride"], attrs["padding"], attrs["groups"]
    if stride < 1 or padding < 0 or groups < 1:
        raise _fail(node, f"stride {stride}, padding {padding}, groups {groups} must be >= 1, >= 0, >= 1")
    _check_act_range(node, attrs)
    channels = x.shape[1]
    out_channels, in_per_group, kh, kw = w.shape
    if channels % groups or out_channels % groups:
        raise _fail(
            node, f"groups {groups} does not divide input channels {channels} and output channels {out_channels}"
        )
    if in_per_group != channels // groups:
        raise _fail(
            node,
            f"input 'w' tensor '{w.name}' has shape {list(w.shape)}: expected {channels // groups} input channels "
            f"per group for x '{x.name}' with {channels} channels and groups {groups}",
        )
    if b.shape != (out_channels,):
        raise _fail(node, f"input 'b' tensor '{b.name}' has shape {list(b.shape)}, expected [{out_channels}]")
    ho = conv_output_size(x.shape[2], kh, stride, padding)
    wo = conv_output_size(x.shape[3], kw, stride, padding)
    if ho < 1 or wo < 1:
        raise _fail(node, f"kernel {kh}x{kw} with padding {padding} does not fit input {x.shape[2]}x{x.shape[3]}")
    return [((1, out_channels, ho, wo), DType.INT8)]


def _macs_conv2d(node: Node, ins: Sequence[TensorSpec], outs: Sequence[TensorSpec]) -> int:
    _, w, _ = ins
    _, out_channels, ho, wo = outs[0].shape
    return out_channels * ho * wo * w.shape[1] * w.shape[2] * w.shape[3]


def _infer_add(node: Node, ins: Sequence[TensorSpec], attrs: Mapping[str, Any]) -> Inferred:
    a, b = ins
    _expect_dtype(node, "a", a, (DType.INT8,))
    _expect_dtype(node, "b", b, (DType.INT8,))
    _check_act_range(node, attrs)
    if a.shape != b.shape:
        raise _fail(node, f"inputs '{a.name}' {list(a.shape)} and '{b.name}' {list(b.shape)} differ in shape")
    return [(a.shape, DType.INT8)]


def _infer_pool(node: Node, ins: Sequence[TensorSpec], attrs: Mapping[str, Any]) -> Inferred:
    (x,) = ins
    _expect_dtype(node, "x", x, (DType.INT8,))
    _expect_rank(node, "x", x, 4)
    return [((1, x.shape[1], 1, 1), DType.INT8)]


def _infer_linear(node: Node, ins: Sequence[TensorSpec], attrs: Mapping[str, Any]) -> Inferred:
    x, w, b = ins
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
    return [((1, w.shape[0]), w.dtype)]


def _macs_linear(node: Node, ins: Sequence[TensorSpec], outs: Sequence[TensorSpec]) -> int:
    return ins[1].shape[0] * ins[1].shape[1]


def _infer_reshape(node: Node, ins: Sequence[TensorSpec], attrs: Mapping[str, Any]) -> Inferred:
    (x,) = ins
    shape = tuple(int(d) for d in attrs["shape"])
    if any(d < 1 for d in shape) or x.numel != _numel(shape):
        raise _fail(node, f"cannot reshape '{x.name}' {list(x.shape)} to {list(shape)}")
    return [(shape, x.dtype)]


def _numel(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _no_macs(node: Node, ins: Sequence[TensorSpec], outs: Sequence[TensorSpec]) -> int:
    return 0


_ACT = {"act_min": -128, "act_max": 127}

OP_TABLE: Mapping[Op, OpDef] = {
    Op.CONV2D: OpDef(
        Op.CONV2D,
        ("x", "w", "b"),
        ("y",),
        {"stride": 1, "padding": 0, "groups": 1, **_ACT},
        (),
        _infer_conv2d,
        _macs_conv2d,
    ),
    Op.ADD: OpDef(Op.ADD, ("a", "b"), ("y",), dict(_ACT), (), _infer_add, _no_macs),
    Op.GLOBAL_AVG_POOL: OpDef(Op.GLOBAL_AVG_POOL, ("x",), ("y",), {}, (), _infer_pool, _no_macs),
    Op.LINEAR: OpDef(Op.LINEAR, ("x", "w", "b"), ("y",), dict(_ACT), (), _infer_linear, _macs_linear),
    Op.RESHAPE: OpDef(Op.RESHAPE, ("x",), ("y",), {}, ("shape",), _infer_reshape, _no_macs),
}


def node_attrs(node: Node) -> dict[str, Any]:
    """The node's attributes with the op's defaults filled in."""
    row = OP_TABLE[node.op]
    attrs = dict(row.defaults)
    attrs.update(node.attrs)
    return attrs


def node_macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates of one forward application of ``node``."""
    row = OP_TABLE[node.op]
    ins = [graph.tensors[name] for name in node.inputs]
    outs = [graph.tensors[name] for name in node.outputs]
    return row.macs(node, ins, outs)
