"""Real-int8 simulation of a ``tte_ir`` forward graph in PyTorch, batched, with custom autograd.

Forward (NUMERICS.md §2) is bit-exact with :mod:`tte_ir.reference` on every int8 tensor:

- conv accumulators are computed in float64 (every partial sum is an integer below 2^53, so any
  summation order is exact), the bias added and saturated to int32 there, converted once to float32,
  multiplied once by the float32 multiplier ``M[o]`` of the node's kernel call (:mod:`tte_ir.kernels`);
- requantization clamps ``v`` in float one code *wider* than the output range (so the mask is exact,
  see :mod:`tte_ir.reference`), rounds half to even (``torch.round``), adds ``z_y`` and clamps;
- the residual add does two float32 multiplies and one add, as separate tensor ops (no FMA);
- a LUT activation indexes its int8 table (the kernel call's) with the input codes; the channel-wise
  multiply forms the exact integer product ``(a - z_a) * (b[c] - z_b)`` in float32, then one multiply by ``m``;
- concat, channel split and channel shuffle move codes unchanged (torch's cat, slice and permutation);
- on CUDA the float64 accumulation runs without cuDNN (whose FFT/Winograd paths are not exact) and
  float32 gradients without TF32;
- under ``requant: fixed`` (NUMERICS.md §2b, the kernel call's ``requant`` field) the exact integer
  pre-rounding value goes to int64 and TensorFlow Lite's integer arithmetic replaces the float32
  multiply and rounding (:func:`_mbqm`, the torch twin of :func:`tte_ir.fixedpoint.mbqm`; :func:`_mbqm_single`
  under ``fixed_single``, a linear layer's and its 1x1 conv's single rounding); the backward
  and the float twin are unchanged (they use the float32 multipliers).

Backward (NUMERICS.md §4) is float32 with gradients with respect to the integer codes:
``gh = g * mask * M``; ``db = sum gh``; ``dW = sum gh * (x - z_x)`` (zero-point correct, zero
padding contributes 0); ``dX = conv_transpose(gh, W)``; add ``g*mask*m1`` / ``g*mask*m2``; pool
``g*mask*m`` spread over H*W; LUT ``g * slope[x]``; mul ``gm = g*mask*m``, ``gm*(b[c]-z_b)`` and
``sum_p gm*(a-z_a)``; concat, channel split and shuffle route ``g`` unchanged (autograd of the copies);
max pool ``g`` added at each window's arg-max; average pool
``g*mask*m[count]`` spread over each window's input pixels; the fp32 head is ordinary autograd
(``dL/dq = s_x W^T g``). A tensor read by two ops gets the sum of both gradients (autograd
accumulates fan-out).

``twin=True`` builds the **float twin**: the same graph and the same backward formulas, but float64
values and no rounding (``y = clamp(v + z_y, lo, hi)``). Its forward is differentiable almost
everywhere and its true gradient is exactly what the int8 backward computes, so finite differences
on the twin check the backward formulas.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from tte_ir import DType, Graph, Node, Op, TteError
from tte_ir.constants import INT32_MAX, INT32_MIN
from tte_ir.fixedpoint import NUDGE
from tte_ir.kernels import REQUANT, KernelCall, kernel_call, params_kernel, params_padding, params_stride
from tte_ir.quant import node_multipliers
from tte_ir.reference import pool_counts

__all__ = ["SIM_KERNELS", "Int8Sim", "head_node"]


@dataclass(frozen=True)
class _Requant:
    y_zero: int
    lo: int
    hi: int
    twin: bool


def _requantize(v: torch.Tensor, q: _Requant) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes and mask from the pre-rounding values ``v`` (see the module docstring)."""
    if q.twin:
        shifted = v + q.y_zero
    else:
        v = v.clamp(q.lo - q.y_zero - 1, q.hi - q.y_zero + 1)
        shifted = torch.round(v) + q.y_zero
    mask = (shifted >= q.lo) & (shifted <= q.hi)
    return shifted.clamp(q.lo, q.hi), mask


def _mbqm(x: torch.Tensor, qm: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """TFLite's MultiplyByQuantizedMultiplier on int64 tensors holding int32 values (broadcasting):
    the wrapped left shift, SaturatingRoundingDoublingHighMul, RoundingDivideByPOT."""
    left, right = shift.clamp(min=0), (-shift).clamp(min=0)
    shifted = ((torch.bitwise_left_shift(x, left) - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN
    ab = shifted * qm  # |ab| <= 2^62
    t = ab + torch.where(ab >= 0, NUDGE, 1 - NUDGE)
    high = torch.where(t >= 0, t >> 31, -((-t) >> 31))  # truncation toward zero
    high = torch.where((shifted == INT32_MIN) & (qm == INT32_MIN), INT32_MAX, high)
    mask = torch.bitwise_left_shift(torch.ones_like(right), right) - 1
    threshold = (mask >> 1) + (high < 0).to(torch.int64)
    return torch.bitwise_right_shift(high, right) + ((high & mask) > threshold).to(torch.int64)


def _mbqm_single(x: torch.Tensor, qm: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """TFLite's single-rounding MultiplyByQuantizedMultiplier on int64 tensors holding int32 values
    (broadcasting), the torch twin of :func:`tte_ir.fixedpoint.mbqm_single`: one int64 product, one
    rounding, the result wrapped to int32."""
    total = 31 - shift
    t = torch.bitwise_right_shift(x * qm + torch.bitwise_left_shift(torch.ones_like(total), total - 1), total)
    return ((t - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN


def _requantize_fixed(v: torch.Tensor, q: _Requant, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (as ``dtype``) and mask from the int64 results ``v`` of fixed-point requantization."""
    shifted = v + q.y_zero
    mask = (shifted >= q.lo) & (shifted <= q.hi)
    return shifted.clamp(q.lo, q.hi).to(dtype), mask


def _exact_float64(device: torch.device) -> contextlib.AbstractContextManager:
    """Where float64 convolutions must be exact: no cuDNN on CUDA (native kernels sum exactly)."""
    if device.type == "cuda":
        return torch.backends.cudnn.flags(enabled=False)
    return contextlib.nullcontext()


def _no_tf32(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type == "cuda":
        return torch.backends.cudnn.flags(enabled=True, allow_tf32=False)
    return contextlib.nullcontext()


def _pad(x: torch.Tensor, padding: tuple[int, int, int, int], fill: float) -> tuple[torch.Tensor, list[int]]:
    """``x`` and the symmetric padding [along H, along W] to give torch: padding (top, left, bottom, right)
    that is not symmetric is applied here, with ``fill``, and torch's is then 0."""
    top, left, bottom, right = padding
    if (top, left) == (bottom, right):
        return x, [top, left]
    return F.pad(x, (left, right, top, bottom), value=fill), [0, 0]


def _crop(gx: torch.Tensor, padding: tuple[int, int, int, int], shape: torch.Size) -> torch.Tensor:
    """The input's part of a gradient ``gx`` computed on the map :func:`_pad` made."""
    if gx.shape == shape:
        return gx
    top, left = padding[:2]
    return gx[:, :, top : top + shape[2], left : left + shape[3]]


@dataclass(frozen=True)
class _ConvCfg:
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, left, bottom, right
    groups: int
    x_zero: int
    requant: _Requant
    fixed: tuple[torch.Tensor, torch.Tensor] | None = None  # qmult [O], qshift [O] (int64) under requant fixed
    single: bool = False  # the fixed multiply rounds once (REQUANT["fixed_single"])


class _Conv(torch.autograd.Function):
    """int8 conv2d on code tensors: x [N, C, H, W], w [O, C/g, KH, KW] codes, b [O] int32 codes (float64).
    Padding is applied to the centered codes, so a padded tap contributes 0 on every side."""

    @staticmethod
    def forward(ctx, x, w, b, multiplier, cfg: _ConvCfg):  # type: ignore[override]
        twin = cfg.requant.twin
        centered, padding = _pad(x.to(torch.float64) - cfg.x_zero, cfg.padding, 0.0)
        with _exact_float64(x.device):
            acc = F.conv2d(centered, w.to(torch.float64), None, cfg.stride, padding, 1, cfg.groups)
        acc = acc + b.to(torch.float64).view(1, -1, 1, 1)
        if twin:
            v = acc * multiplier.to(torch.float64).view(1, -1, 1, 1)
            y, mask = _requantize(v, cfg.requant)
        elif cfg.fixed is not None:
            qm, sh = (t.view(1, -1, 1, 1) for t in cfg.fixed)
            acc = acc.clamp(INT32_MIN, INT32_MAX).to(torch.int64)
            y, mask = _requantize_fixed(
                (_mbqm_single if cfg.single else _mbqm)(acc, qm, sh), cfg.requant, torch.float32
            )
        else:
            acc = acc.clamp(INT32_MIN, INT32_MAX)  # sat32: real models carry +-2^31 biases in dead channels
            v = acc.to(torch.float32) * multiplier.view(1, -1, 1, 1)
            y, mask = _requantize(v, cfg.requant)
        dtype = torch.float64 if twin else torch.float32
        ctx.save_for_backward(centered.to(dtype), w.to(dtype), mask, multiplier.to(dtype))
        ctx.cfg = cfg
        ctx.padding = padding
        ctx.shape = x.shape
        return y

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        centered, w, mask, multiplier = ctx.saved_tensors
        cfg = ctx.cfg
        gh = g.to(w.dtype) * mask * multiplier.view(1, -1, 1, 1)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx = dw = db = None
        if need_x or need_w:
            with _no_tf32(g.device):
                dx, dw, _ = torch.ops.aten.convolution_backward(
                    gh, centered, w, None, list(cfg.stride), ctx.padding, [1, 1], False, [0, 0], cfg.groups,
                    [need_x, need_w, False],
                )  # fmt: skip
            if dx is not None:
                dx = _crop(dx, cfg.padding, ctx.shape)
        if need_b:
            db = gh.sum(dim=(0, 2, 3))
        return dx, dw, db, None, None


class _Add(torch.autograd.Function):
    """Quantized residual add: ``v = m1*(q1 - z1) + m2*(q2 - z2)``."""

    @staticmethod
    def forward(ctx, a, c, m1, m2, z1: int, z2: int, requant: _Requant, fixed):  # type: ignore[override]
        if fixed is not None and not requant.twin:  # TFLite's int8 ADD (tte_ir.reference.add)
            t = {k: torch.tensor(v, dtype=torch.int64, device=a.device) for k, v in fixed.items()}
            a1 = (a.to(torch.int64) - z1) << fixed["left_shift"]
            a2 = (c.to(torch.int64) - z2) << fixed["left_shift"]
            raw = _mbqm(a1, t["qm1"], t["sh1"]) + _mbqm(a2, t["qm2"], t["sh2"])
            y, mask = _requantize_fixed(_mbqm(raw, t["qmy"], t["shy"]), requant, a.dtype)
        else:
            v = m1 * (a - z1) + m2 * (c - z2)  # float32 codes minus zero points are exact; two multiplies, one add
            y, mask = _requantize(v, requant)
        ctx.save_for_backward(mask, m1, m2)
        return y

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        mask, m1, m2 = ctx.saved_tensors
        gm = g * mask
        return gm * m1, gm * m2, None, None, None, None, None, None


class _Pool(torch.autograd.Function):
    """Global average pool: ``v = float32(sum(q - z_x)) * m``; x [N, C, H, W] -> [N, C, 1, 1]."""

    @staticmethod
    def forward(ctx, x, multiplier, x_zero: int, requant: _Requant, fixed):  # type: ignore[override]
        sums = (x.to(torch.float64) - x_zero).sum(dim=(2, 3), keepdim=True)  # exact: integers below 2^53
        if fixed is not None and not requant.twin:  # TFLite's MEAN
            qm, sh = (torch.tensor(v, dtype=torch.int64, device=x.device) for v in fixed)
            y, mask = _requantize_fixed(_mbqm(sums.to(torch.int64), qm, sh), requant, x.dtype)
        else:
            v = sums * multiplier.to(torch.float64) if requant.twin else sums.to(torch.float32) * multiplier
            y, mask = _requantize(v, requant)
        ctx.save_for_backward(mask, multiplier)
        ctx.shape = x.shape
        return y

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        mask, multiplier = ctx.saved_tensors
        return (g * mask * multiplier).expand(ctx.shape), None, None, None, None


@dataclass(frozen=True)
class _PoolCfg:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, left, bottom, right


@dataclass(frozen=True)
class _AvgFixed:
    """An average pool's fixed-point requantization: ``divide`` (TFLite's AVERAGE_POOL_2D, a rounded
    division of the codes' sum by ``counts``) or per-window ``qmult`` / ``qshift`` maps [Ho, Wo]."""

    counts: torch.Tensor
    divide: bool
    qmult: torch.Tensor | None
    qshift: torch.Tensor | None


class _MaxPool(torch.autograd.Function):
    """int8 max pool on codes: the window's largest code (padding never wins, ties to the first tap in
    row-major window order, as PyTorch's max_pool2d picks them); backward adds g at each arg-max."""

    @staticmethod
    def forward(ctx, x, cfg: _PoolCfg):  # type: ignore[override]
        padded, padding = _pad(x, cfg.padding, -torch.inf)
        y, index = F.max_pool2d(padded, cfg.kernel, cfg.stride, padding, return_indices=True)
        ctx.save_for_backward(index)
        ctx.shape, ctx.padded_shape, ctx.cfg = x.shape, padded.shape, cfg
        return y

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (index,) = ctx.saved_tensors
        n, c, h, w = ctx.padded_shape
        gx = g.new_zeros(n, c, h * w).scatter_add_(2, index.flatten(2), g.flatten(2))
        return _crop(gx.view(n, c, h, w), ctx.cfg.padding, ctx.shape), None


class _AvgPool(torch.autograd.Function):
    """int8 average pool: ``v = float32(sum(q - z_x)) * m[count]`` per window (``m_map`` [Ho, Wo] holds
    each window's multiplier); backward spreads ``g * mask * m[count]`` over each window's input pixels."""

    @staticmethod
    def forward(ctx, x, m_map, x_zero: int, cfg: _PoolCfg, requant: _Requant, fixed):  # type: ignore[override]
        fixed = None if requant.twin else fixed
        divide = fixed is not None and fixed.divide
        centered, padding = _pad(x.to(torch.float64) - (0 if divide else x_zero), cfg.padding, 0.0)
        # divisor 1: the exact integer window sums (padded taps add 0), in float64
        sums = F.avg_pool2d(centered, cfg.kernel, cfg.stride, padding, False, True, 1)
        if divide:  # C integer division, truncating toward zero, of sum +- count/2
            s, n = sums.to(torch.int64), fixed.counts
            num = torch.where(s > 0, s + n // 2, s - n // 2)
            y, mask = _requantize_fixed(torch.sign(num) * (num.abs() // n), _Requant(0, -128, 127, False), x.dtype)
        elif fixed is not None:
            y, mask = _requantize_fixed(_mbqm(sums.to(torch.int64), fixed.qmult, fixed.qshift), requant, x.dtype)
        else:
            v = sums * m_map.to(torch.float64) if requant.twin else sums.to(torch.float32) * m_map
            y, mask = _requantize(v, requant)
        ctx.save_for_backward(mask, m_map)
        ctx.shape, ctx.padded_shape, ctx.padding = x.shape, centered.shape, padding
        ctx.cfg = cfg
        return y

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        mask, m_map = ctx.saved_tensors
        cfg = ctx.cfg
        gh = g * mask * m_map.to(g.dtype)
        gx = torch.ops.aten.avg_pool2d_backward(
            gh, gh.new_zeros(ctx.padded_shape), list(cfg.kernel), list(cfg.stride), ctx.padding, False, True, 1
        )
        return _crop(gx, cfg.padding, ctx.shape), None, None, None, None, None


def _lut_function(function: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The twin's ``f(x)`` and ``f'(x)`` of a LUT activation (:func:`tte_ir.quant.lut_function`, in torch)."""
    if function == "hard_swish":
        f = (x * (x + 3.0).clamp(0.0, 6.0)) / 6.0
        d = torch.where(x < -3.0, 0.0, torch.where(x <= 3.0, x / 3.0 + 0.5, 1.0))
    elif function == "hard_sigmoid":
        f = (x + 3.0).clamp(0.0, 6.0) / 6.0
        d = torch.where((x > -3.0) & (x < 3.0), 1.0 / 6.0, 0.0)
    else:
        f = torch.sigmoid(x)
        d = f * (1.0 - f)
    return f, d.to(x.dtype)


@dataclass(frozen=True)
class _LutCfg:
    function: str
    x_scale: float
    x_zero: int
    y_scale: float
    y_zero: int
    twin: bool


class _Lut(torch.autograd.Function):
    """Table activation on codes: ``y = table[x + 128]``, ``dL/dx = g * slope[x + 128]``. The twin
    evaluates the real function instead: ``y = clamp(f(s_x (x - z_x)) / s_y + z_y, -128, 127)`` and
    ``dL/dx = g * f'(.) * s_x / s_y`` where unclamped, in float64."""

    @staticmethod
    def forward(ctx, x, table, slope, cfg: _LutCfg):  # type: ignore[override]
        if cfg.twin:
            f, d = _lut_function(cfg.function, cfg.x_scale * (x - cfg.x_zero))
            shifted = f / cfg.y_scale + cfg.y_zero
            live = (shifted >= -128) & (shifted <= 127)
            ctx.save_for_backward(d * (cfg.x_scale / cfg.y_scale) * live)
            return shifted.clamp(-128, 127)
        index = (x + 128).long()
        ctx.save_for_backward(slope[index])
        return table[index]

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (slope,) = ctx.saved_tensors
        return g * slope, None, None, None


class _Mul(torch.autograd.Function):
    """Channel-wise multiply of a map ``a`` [N, C, H, W] by a vector ``b`` [N, C, 1, 1]:
    ``v = m * ((a - z_a) * (b - z_b))``, the product exact in float32 (integers below 2^24)."""

    @staticmethod
    def forward(ctx, a, b, m, a_zero: int, b_zero: int, requant: _Requant, fixed):  # type: ignore[override]
        ca, cb = a - a_zero, b - b_zero
        if fixed is not None and not requant.twin:  # TFLite's MUL
            qm, sh = (torch.tensor(v, dtype=torch.int64, device=a.device) for v in fixed)
            y, mask = _requantize_fixed(_mbqm((ca * cb).to(torch.int64), qm, sh), requant, a.dtype)
        else:
            y, mask = _requantize(m * (ca * cb), requant)
        ctx.save_for_backward(mask, ca, cb, m)
        return y

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        mask, ca, cb, m = ctx.saved_tensors
        gm = g * mask * m
        return gm * cb, (gm * ca).sum(dim=(2, 3), keepdim=True), None, None, None, None, None


def _fixed(params: Mapping[str, Any]) -> bool:
    """Whether a kernel call's descriptor asks for fixed-point requantization (NUMERICS.md §2b)."""
    return params.get("requant", REQUANT["float"]) in (REQUANT["fixed"], REQUANT["fixed_single"])


def _single(params: Mapping[str, Any]) -> bool:
    """Whether a conv or linear descriptor's fixed multiply rounds once (TFLite's FULLY_CONNECTED)."""
    return params.get("requant") == REQUANT["fixed_single"]


def head_node(graph: Graph) -> Node:
    """The linear node that writes the graph's output (the classifier head)."""
    node = graph.producer(graph.outputs[0])
    if node is None or node.op is not Op.LINEAR:
        raise TteError(f"graph '{graph.name}': the output is not written by a linear classifier head")
    return node


class Int8Sim(torch.nn.Module):
    """A batched, differentiable real-int8 executor of a forward ``graph``.

    Activations are code tensors (float32 holding integers; float64 in the twin) with a leading
    batch dimension instead of the IR's 1. Weight and bias codes come from the graph's constants
    unless ``params`` (constant name -> tensor) overrides them, which is how training feeds its
    current codes and asks for gradients. The classifier's logits are float32 (an int8 head's are
    dequantized, NUMERICS.md §3).
    """

    def __init__(self, graph: Graph, *, device: str | torch.device = "cpu", twin: bool = False) -> None:
        super().__init__()
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise TteError(f"graph '{graph.name}': the simulation runs graphs with one input and one output")
        self.graph = graph
        self.device = torch.device(device)
        self.twin = twin
        self.dtype = torch.float64 if twin else torch.float32
        self.constants: dict[str, torch.Tensor] = {}
        for name, array in graph.constants.items():
            spec = graph.tensors[name]
            # int32 biases live as float64 (exact); float32 head weights stay float32 (float64 in the twin)
            dtype = torch.float64 if spec.dtype is DType.INT32 or twin else torch.float32
            self.constants[name] = torch.tensor(array, dtype=dtype, device=self.device)
        # What each node's kernel computes with (zero points, ranges, multipliers): the one description
        # every implementation reads (tte_ir.kernels); a view (reshape) has no kernel call.
        self.calls: dict[str, KernelCall] = {node.name: kernel_call(graph, node) for node in graph.nodes}
        self.multipliers: dict[str, torch.Tensor] = {
            node.name: torch.as_tensor(call.arg("multiplier").value, dtype=torch.float32, device=self.device)
            for node, call in ((n, self.calls[n.name]) for n in graph.nodes)
            if call.kernel is not None and any(a.name == "multiplier" for a in call.args)
        }

    def requant(self, params: Mapping[str, Any]) -> _Requant:
        """The output rounding of a kernel call's descriptor (zero point and clamp range)."""
        return _Requant(params["y_zero"], params.get("act_min", -128), params.get("act_max", 127), self.twin)

    def fixed_tables(self, params: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A descriptor's ``qmult`` / ``qshift`` tables as int64 tensors (None under float requantization,
        and for an average pool that divides)."""
        if not _fixed(params) or params.get("qmult") is None:
            return None
        return tuple(torch.tensor(params[k], dtype=torch.int64, device=self.device) for k in ("qmult", "qshift"))

    def run(
        self,
        values: Mapping[str, torch.Tensor],
        nodes: Iterable[Node] | None = None,
        params: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Run ``nodes`` (default: all) on the tensors in ``values``; return every tensor computed."""
        out = dict(values)
        params = params or {}
        for node in self.graph.nodes if nodes is None else nodes:
            ins = [out[name] if name in out else params.get(name, self.constants.get(name)) for name in node.inputs]
            out[node.outputs[0]] = self._node(node, ins)
        return out

    def _node(self, node: Node, ins: list[torch.Tensor]) -> torch.Tensor:
        kernel = SIM_KERNELS.get(node.op)
        if kernel is None:
            raise TteError(f"{node.describe()}: the simulation has no kernel for this op")
        return kernel(self, node, self.calls[node.name], ins)

    def scalar(self, value: float, dtype: torch.dtype | None = None) -> torch.Tensor:
        """A float32 constant of a kernel call as a tensor (in the twin's dtype unless ``dtype``)."""
        return torch.tensor(value, dtype=dtype or self.dtype, device=self.device)

    def logits(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The float logits from the graph output (an int8 head's codes are dequantized)."""
        out = values[self.graph.outputs[0]]
        quant = self.graph.tensors[self.graph.outputs[0]].quant
        if quant is None:
            return out
        return quant.tensor_scale * (out - quant.zero_point)

    def forward(self, x: torch.Tensor, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits ``[N, classes]`` of a batch of input codes ``x`` ``[N, C, H, W]``."""
        values = {self.graph.inputs[0]: x.to(device=self.device, dtype=self.dtype)}
        return self.logits(self.run(values, params=params))

    def run_all(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every tensor of the graph (activation codes, constants) for a batch ``x``, for parity checks."""
        values = {self.graph.inputs[0]: x.to(device=self.device, dtype=self.dtype)}
        with torch.no_grad():
            return {**self.constants, **self.run(values)}


def _sim_conv2d(sim: Int8Sim, node: Node, call: KernelCall, ins: list[torch.Tensor]) -> torch.Tensor:
    p = call.params
    cfg = _ConvCfg(
        params_stride(p), params_padding(p), p["groups"], p["x_zero"], sim.requant(p), sim.fixed_tables(p), _single(p)
    )
    return _Conv.apply(ins[0], ins[1], ins[2], sim.multipliers[node.name], cfg)


def _sim_add(sim: Int8Sim, node: Node, call: KernelCall, ins: list[torch.Tensor]) -> torch.Tensor:
    p = call.params
    fixed = {k: p[k] for k in ("left_shift", "qm1", "sh1", "qm2", "sh2", "qmy", "shy")} if _fixed(p) else None
    m1, m2 = sim.scalar(p["m1"]), sim.scalar(p["m2"])
    return _Add.apply(ins[0], ins[1], m1, m2, p["z1"], p["z2"], sim.requant(p), fixed)


def _sim_pool(sim: Int8Sim, node: Node, call: KernelCall, ins: list[torch.Tensor]) -> torch.Tensor:
    p = call.params
    fixed = (p["qm"], p["sh"]) if _fixed(p) else None
    return _Pool.apply(ins[0], sim.scalar(p["multiplier"], torch.float32), p["x_zero"], sim.requant(p), fixed)


def _sim_linear(sim: Int8Sim, node: Node, call: KernelCall, ins: list[torch.Tensor]) -> torch.Tensor:
    p = call.params
    x, w, b = ins
    if call.kernel == "linear_fwd_f32":
        xf = float(p["x_scale"]) * (x - p["x_zero"])  # float32 scalar times exact codes: x_f of NUMERICS §2
        return F.linear(xf, w, b)
    cfg = _ConvCfg((1, 1), (0, 0, 0, 0), 1, p["x_zero"], sim.requant(p), sim.fixed_tables(p), _single(p))
    return _Conv.apply(x[:, :, None, None], w[:, :, None, None], b, sim.multipliers[node.name], cfg)[:, :, 0, 0]


def _sim_reshape(sim: Int8Sim, node: Node, call: KernelCall, ins: list[torch.Tensor]) -> torch.Tensor:
    x, shape = ins[0], sim.graph.tensors[node.outputs[0]].shape
    if call.params["order"] == "nchw":
        return x.reshape(x.shape[0], *shape[1:])
    if x.dim() == 4:  # an "hwc" flatten: channels-last order
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
    _, channels, height, width = shape
    return x.reshape(x.shape[0], height, width, channels).permute(0, 3, 1, 2)


def _pool_cfg(call: KernelCall) -> _PoolCfg:
    p = call.params
    return _PoolCfg(params_kernel(p), params_stride(p), params_padding(p))


def _sim_max_pool(sim: Int8Sim, node: Node, call: KernelCall, ins: list[torch.Tensor]) -> torch.Tensor:
    return _MaxPool.apply(ins[0], _pool_cfg(call))


def _sim_avg_pool(sim: Int8Sim, node: Node, call: KernelCall, ins: list[torch.Tensor]) -> torch.Tensor:
    p = call.params
    cfg = _pool_cfg(call)
    counts = pool_counts(
        (p["in_h"], p["in_w"]), kernel=cfg.kernel, stride=cfg.stride, padding=cfg.padding,
        count_include_pad=bool(p["count_include_pad"]),
    )  # fmt: skip
    index = torch.as_tensor(counts, device=sim.device)
    m_map = sim.multipliers[node.name][index]
    fixed = None
    if _fixed(p):
        tables = sim.fixed_tables(p)
        qmult, qshift = (t[index] for t in tables) if tables is not None else (None, None)
        fixed = _AvgFixed(index.to(torch.int64), tables is None, qmult, qshift)
    return _AvgPool.apply(ins[0], m_map, p["x_zero"], cfg, sim.requant(p), fixed)


def _sim_lut(sim: Int8Sim, node: Node, call: KernelCall, ins: list[torch.Tensor]) -> torch.Tensor:
    x, y = (sim.graph.tensors[t].quant for t in (node.inputs[0], node.outputs[0]))
    cfg = _LutCfg(node.attrs["function"], x.tensor_scale, x.zero_point, y.tensor_scale, y.zero_point, sim.twin)
    table = torch.as_tensor(call.arg("table").value, dtype=sim.dtype, device=sim.device)
    slope = torch.as_tensor(node_multipliers(sim.graph, node)["slope"], dtype=sim.dtype, device=sim.device)
    return _Lut.apply(ins[0], table, slope, cfg)


def _sim_mul(sim: Int8Sim, node: Node, call: KernelCall, ins: list[torch.Tensor]) -> torch.Tensor:
    p = call.params
    fixed = (p["qm"], p["sh"]) if _fixed(p) else None
    return _Mul.apply(ins[0], ins[1], sim.scalar(p["m"]), p["a_zero"], p["b_zero"], sim.requant(p), fixed)


def _sim_concat(sim: Int8Sim, node: Node, call: KernelCall, ins: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(ins, dim=1)


def _sim_channel_split(sim: Int8Sim, node: Node, call: KernelCall, ins: list[torch.Tensor]) -> torch.Tensor:
    p = call.params
    return ins[0][:, p["start"] : p["start"] + p["count"]]


def _sim_channel_shuffle(sim: Int8Sim, node: Node, call: KernelCall, ins: list[torch.Tensor]) -> torch.Tensor:
    x, groups = ins[0], call.params["groups"]
    n, channels, *spatial = x.shape
    return x.reshape(n, groups, channels // groups, *spatial).transpose(1, 2).reshape(x.shape)


SIM_KERNELS: Mapping[Op, Callable[[Int8Sim, Node, KernelCall, list[torch.Tensor]], torch.Tensor]] = {
    Op.CONV2D: _sim_conv2d,
    Op.ADD: _sim_add,
    Op.GLOBAL_AVG_POOL: _sim_pool,
    Op.LINEAR: _sim_linear,
    Op.RESHAPE: _sim_reshape,
    Op.MAX_POOL: _sim_max_pool,
    Op.AVG_POOL: _sim_avg_pool,
    Op.LUT: _sim_lut,
    Op.MUL: _sim_mul,
    Op.CONCAT: _sim_concat,
    Op.CHANNEL_SPLIT: _sim_channel_split,
    Op.CHANNEL_SHUFFLE: _sim_channel_shuffle,
}
"""The simulation's batched, differentiable kernel of every forward op (training ops are the compiler's:
the simulation differentiates with autograd instead)."""
