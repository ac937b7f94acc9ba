"""The numpy reference interpreter for training graphs: NUMERICS.md §3-5, executable.

Float sums run in one fixed order, the order the C kernels use, so float results agree bit for bit
with a C build (and within rtol 1e-5 with PyTorch, which sums in its own order):

- ``softmax_ce``: the exponentials are summed in ascending class index.
- ``bias_update``: ``dL/db[o] = sum_p gh[o,p]`` over output positions ``p`` in ascending row-major order.
- ``conv2d_bwd_w_update``: ``dL/dw[o,i,u,v] = sum_p gh[o,p] * (x[i, p*s+u-pad] - z_x)``, ``p`` ascending,
  each term a fused multiply-add (``fmaf``: one rounding), padded taps skipped (they contribute 0).
- ``conv2d_bwd_x``: each ``gx[c,y,x]`` starts at ``acc`` (or 0) and adds ``w[o,c,u,v] * gh[o,oy,ox]`` in
  ascending ``(o, u, v)`` order, each a fused multiply-add; this is the order in which a channel-tiled
  schedule adds them, too.
- ``linear_f32_bwd_update``: ``gx[i] = s_x * sum_o W[o,i]*g[o]`` in ascending ``o``.
- the mini-batch twins of the updates (``conv2d_bwd_w_accumulate``, ``bias_accumulate``,
  ``linear_f32_accumulate``): the sample's gradient (a bias's as above; a weight's by
  :func:`batch_weight_grad`, one rounding per multiply and per add; the head's ``g[o] * x_f[i]``, one
  product) is added to the accumulator (``acc = acc + grad``, one rounding; frozen channels keep
  0); on the last sample of a batch the update runs on ``acc / B`` (one float32 division) and the
  accumulator returns to 0.
- ``mul_bwd``: ``gb[c] = sum_p (mask ? g*m : 0) * (a[c,p] - z_a)`` over pixels ``p`` in ascending row-major
  order, from 0.
- ``max_pool_bwd`` / ``avg_pool_bwd``: each ``gx[c,y,x]`` starts at 0 and adds the contribution of every
  window holding it in ascending row-major window order ``(oy, ox)``: ``g[c,oy,ox]`` from a window whose
  saved arg-max it is (max), ``mask ? g[c,oy,ox] * m[count] : 0`` (one rounding) from every window (avg).
- ``channel_insert`` (a channel split's backward): ``gx = acc + g`` on the split's channels (one rounding per
  element) and ``acc`` elsewhere; without ``acc`` a copy into zeros. The channel ops on float32 gradients
  (``concat``, ``channel_split``, ``channel_shuffle``) are copies: no arithmetic.

Masks are stored bit-packed (element ``i`` of the tensor in IR order is bit ``i % 8`` of byte ``i // 8``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tte_ir._ir import Graph, Node, Op, TteError, as_padding, as_pair
from tte_ir.autodiff import training_info
from tte_ir.constants import INT32_MAX, INT32_MIN
from tte_ir.kernels import (
    DEPTHWISE,
    LR_GROUPS,
    ROUNDING,
    KernelCall,
    kernel_call,
    params_kernel,
    params_padding,
    params_stride,
)
from tte_ir.reference import (
    FORWARD,
    Padding,
    Stride,
    dequantize_input,
    effective_weight,
    forward_node,
    padded_map,
    pool_counts,
    sat32,
    window_tap,
)
from tte_ir.rounding import round_step

__all__ = [
    "STATUS_NONFINITE_GRAD",
    "STATUS_NONFINITE_LOSS",
    "STATUS_OK",
    "TRAINING_KERNELS",
    "StepResult",
    "avg_pool2d_bwd",
    "batch_weight_grad",
    "bias_grad",
    "channel_insert",
    "conv2d_bwd_x",
    "conv2d_weight_grad",
    "initial_state",
    "lut_bwd",
    "max_pool2d_bwd",
    "mul_bwd",
    "qas_round",
    "softmax_ce",
    "train_step",
]

STATUS_OK = "ok"
STATUS_NONFINITE_LOSS = "nonfinite-loss"
STATUS_NONFINITE_GRAD = "nonfinite-grad"


@dataclass(frozen=True)
class StepResult:
    """One training step: the loss, the step status, the parameters after it, and (on request) every tensor."""

    loss: float
    status: str
    state: dict[str, np.ndarray]
    values: dict[str, np.ndarray] | None = None


def _unpack(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    return np.unpackbits(packed, bitorder="little")[:count].astype(bool).reshape(shape)


def _fmaf(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """C's ``fmaf`` on float32 arrays: ``a*b + c`` rounded once to float32. The product of two float32 values
    is exact in float64; the sum is rounded to odd in float64 (its exact error from TwoSum decides), and a
    round-to-odd value with more than 24 + 1 bits rounds to float32 as the exact value would."""
    p = np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)
    c64 = np.asarray(c, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        s = np.asarray(p + c64)
        back = s - c64
        error = (p - back) + (c64 - (s - back))
        even = (s.view(np.int64) & 1) == 0
        inexact = np.isfinite(s) & (error != 0) & even
        s = np.where(inexact, np.nextafter(s, np.where(error > 0, np.inf, -np.inf)), s)
        return s.astype(np.float32)


def _seq_sum_last(a: np.ndarray) -> np.ndarray:
    """Sum over the last axis in ascending index, in float32 (one rounding per addition)."""
    acc = np.zeros(a.shape[:-1], dtype=np.float32)
    for k in range(a.shape[-1]):
        acc = acc + a[..., k]
    return acc


def softmax_ce(
    logits: np.ndarray, label: int, *, scale: float | None = None, zero: int = 0
) -> tuple[float, np.ndarray]:
    """Loss and ``dL/dlogits`` (float32 ``[1, N]``). With ``scale`` the logits are int8 codes: they are
    dequantized first (``scale*(q - zero)``) and the gradient is w.r.t. the codes (times ``scale``)."""
    if scale is None:
        f = np.asarray(logits, dtype=np.float32)[0]
    else:
        f = np.float32(scale) * (np.asarray(logits, dtype=np.int32)[0] - np.int32(zero)).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        m = f.max()
        e = np.exp(f - m).astype(np.float32)
        total = _seq_sum_last(e)
        p = e / total
        loss = np.float32(np.log(total)) - (f[label] - m)
        g = p.astype(np.float32)
        g[label] = g[label] - np.float32(1.0)
        if scale is not None:
            g = g * np.float32(scale)
    return float(loss), g[None].astype(np.float32)


def mask_scale(g: np.ndarray, mask: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``mask ? g * scale[c] : 0`` with ``c`` the channel axis (1)."""
    s = np.asarray(scale, dtype=np.float32).reshape((1, -1) + (1,) * (g.ndim - 2))
    return np.where(mask, g * s, np.float32(0.0)).astype(np.float32)


def bias_grad(gh: np.ndarray) -> np.ndarray:
    """``dL/db[o] = sum_p gh[o,p]``, positions in ascending order (float32)."""
    return _seq_sum_last(gh[0].reshape(gh.shape[1], -1))


def conv2d_bwd_x(
    gh: np.ndarray,
    w: np.ndarray,
    *,
    size: tuple[int, int],
    stride: Stride,
    padding: Padding,
    groups: int,
    acc: np.ndarray | None = None,
) -> np.ndarray:
    """Input gradient of a conv: the transposed conv of ``gh`` [1,O,Ho,Wo] with ``w`` [O,C/g,KH,KW]
    (``stride`` (sh, sw), ``padding`` (top, left, bottom, right); an int: every axis or side)."""
    out_channels, in_per_group, kh, kw = w.shape
    _, _, ho, wo = gh.shape
    height, width = size
    channels = in_per_group * groups
    top, left, _, _ = as_padding(padding)
    start = np.zeros((channels, height, width), dtype=np.float32) if acc is None else acc[0]
    padded = padded_map(start.astype(np.float32), padding).astype(np.float32)
    wf = w.astype(np.float32)
    g = gh[0]
    if groups == channels and in_per_group == 1 and out_channels == channels:
        for u in range(kh):
            for v in range(kw):
                view = window_tap(padded, u, v, stride, (ho, wo))
                view[...] = _fmaf(wf[:, 0, u, v][:, None, None], g, view)
    else:
        out_per_group = out_channels // groups
        for o in range(out_channels):
            c0 = (o // out_per_group) * in_per_group
            for u in range(kh):
                for v in range(kw):
                    view = window_tap(padded[c0 : c0 + in_per_group], u, v, stride, (ho, wo))
                    view[...] = _fmaf(wf[o, :, u, v][:, None, None], g[o][None], view)
    return padded[None, :, top : top + height, left : left + width].astype(np.float32)


def conv2d_weight_grad(
    x_saved: np.ndarray,
    gh: np.ndarray,
    *,
    channels: Any,
    kernel: tuple[int, int],
    stride: Stride,
    padding: Padding,
    x_zero: int,
    depthwise: bool,
) -> np.ndarray:
    """``dL/dw`` of the trained slice (float32, the slice's shape), zero-point correct, padding 0."""
    k = x_saved.shape[1]
    kh, kw = kernel
    _, out_channels, ho, wo = gh.shape
    centered = x_saved[0].astype(np.float32) - np.float32(x_zero)
    padded = padded_map(centered, padding)
    cols = np.empty((k, kh, kw, ho * wo), dtype=np.float32)
    for u in range(kh):
        for v in range(kw):
            cols[:, u, v] = window_tap(padded, u, v, stride, (ho, wo)).reshape(k, -1)
    g = gh[0].reshape(out_channels, -1)
    if depthwise:
        g = g[list(channels)]
        acc = np.zeros((k, kh, kw), dtype=np.float32)
        for p in range(ho * wo):
            acc = _fmaf(g[:, p][:, None, None], cols[..., p], acc)
        return acc[:, None]
    acc = np.zeros((out_channels, k, kh, kw), dtype=np.float32)
    for p in range(ho * wo):
        acc = _fmaf(g[:, p][:, None, None, None], cols[None, ..., p], acc)
    return acc


def qas_round(
    grad: np.ndarray, inv: np.ndarray, lr: float, attrs: Mapping[str, Any], step: int, index: np.ndarray
) -> np.ndarray | None:
    """The integer QAS step ``round_mode(-(lr * g) * inv[o])`` (``inv`` broadcast over ``grad``'s axis 0);
    0 where the channel is frozen (``inv`` 0 or not finite). None when a live element's step value is
    not finite (a NaN or infinite lr, or an overflow): the update then writes nothing and fails the
    step, as the C kernels do (tte/tte_train.h)."""
    inv_b = np.asarray(inv, dtype=np.float32).reshape((-1,) + (1,) * (grad.ndim - 1))
    frozen = (inv_b == 0) | ~np.isfinite(inv_b)
    with np.errstate(over="ignore", invalid="ignore"):
        v = (-(np.float32(lr) * grad)) * inv_b
    v = np.where(frozen, np.float32(0), v).astype(np.float32)
    if not np.all(np.isfinite(v)):
        return None
    return round_step(
        v, attrs["rounding"], seed=attrs["seed"], step=step, tensor_id=attrs["tensor_id"], element_index=index
    )


def initial_state(graph: Graph) -> dict[str, np.ndarray]:
    """The trained parameters' initial values (writable copies), keyed by parameter name, and, for a
    mini-batch graph (scheme ``batch`` > 1), its zero gradient accumulators, keyed by their names."""
    info = training_info(graph)
    names = [*info["state"], *info.get("accumulators", {})]
    return {name: np.array(graph.constants[name], copy=True) for name in names}


class _Step:
    def __init__(
        self,
        graph: Graph,
        state: Mapping[str, np.ndarray],
        step: int,
        lr: float,
        head_lr: float,
        batch_end: bool = True,
    ) -> None:
        self.graph = graph
        self.step = step
        self.batch_end = batch_end
        self.seed = int(training_info(graph)["scheme"]["seed"])
        self.lrs = {LR_GROUPS["body"].value: lr, LR_GROUPS["head"].value: head_lr}
        self.values: dict[str, np.ndarray] = dict(graph.constants)
        self.values.update({k: np.asarray(v) for k, v in state.items()})
        self.status = STATUS_OK
        self.loss = float("nan")

    def run(self, node: Node) -> None:
        if node.op in FORWARD or node.op is Op.RESHAPE:
            self.values.update(forward_node(self.graph, node, self.values))
            return
        call = kernel_call(self.graph, node)
        self.values.update(TRAINING_KERNELS[node.op](self, call))

    def read(self, call: KernelCall, name: str) -> np.ndarray | None:
        """The value argument ``name`` of ``call`` holds on entry (None for an absent one)."""
        arg = call.arg(name)
        return self.values[arg.reads] if arg.reads is not None else None

    def grad_ok(self, g: np.ndarray) -> bool:
        """Update ops: skip when the step already failed; fail the step on a non-finite gradient."""
        if self.status != STATUS_OK:
            return False
        if not np.all(np.isfinite(g)):
            self.status = STATUS_NONFINITE_GRAD
            return False
        return True


def _written(call: KernelCall, **values: np.ndarray) -> dict[str, np.ndarray]:
    """Results keyed by the tensors the named arguments write (absent optional outputs dropped)."""
    return {call.arg(name).writes: v for name, v in values.items() if call.arg(name).writes is not None}


def _gather(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    return _written(call, y=np.ascontiguousarray(s.read(call, "x")[:, list(call.params["channels"])]))


def _softmax_ce(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    p = call.params
    label = int(s.read(call, "label")[0])
    if not 0 <= label < p["classes"]:
        raise TteError(f"node '{call.node}': label {label} is outside [0, {p['classes']})")
    if call.kernel == "softmax_ce_s8":
        loss, g = softmax_ce(s.read(call, "logits"), label, scale=p["scale"], zero=p["zero"])
    else:
        loss, g = softmax_ce(s.read(call, "logits"), label)
    s.loss = loss
    if not np.isfinite(loss):
        s.status = STATUS_NONFINITE_LOSS
    return _written(call, loss=np.array([loss], dtype=np.float32), g=g)


def _mask_scale(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    g = s.read(call, "g")
    return _written(call, gh=mask_scale(g, _unpack(s.read(call, "mask"), g.shape), s.read(call, "scale")))


def _add_bwd(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    g = s.read(call, "g")
    mask = _unpack(s.read(call, "mask"), g.shape)
    zero = np.float32(0.0)
    ga = np.where(mask, g * np.float32(call.params["m1"]), zero).astype(np.float32)
    gb = np.where(mask, g * np.float32(call.params["m2"]), zero).astype(np.float32)
    return _written(call, ga=ga, gb=gb)


def _pool_bwd(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    p = call.params
    g = s.read(call, "g")
    per_channel = np.where(_unpack(s.read(call, "mask"), g.shape), g * np.float32(p["multiplier"]), np.float32(0.0))
    return _written(call, gx=np.broadcast_to(per_channel, (1, g.shape[1], p["in_h"], p["in_w"])).astype(np.float32))


def _conv_bwd_x(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    p = call.params
    w = effective_weight(s.read(call, "w"), s.read(call, "w_train"), p.get("train_channels"), call.family == DEPTHWISE)
    gx = conv2d_bwd_x(
        s.read(call, "gh"), w, size=(p["in_h"], p["in_w"]), stride=params_stride(p), padding=params_padding(p),
        groups=p["groups"], acc=s.read(call, "gx"),
    )  # fmt: skip
    return _written(call, gx=gx)


def _conv_bwd_w_update(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    p = call.params
    w_train = s.read(call, "w_train")
    gh = s.read(call, "gh")
    if not s.grad_ok(gh):
        return _written(call, w_train=w_train)
    full = (p["out_c"], p["in_c"] // p["groups"], p["kernel_h"], p["kernel_w"])
    depthwise = call.family == DEPTHWISE
    chans = list(p["train_channels"])
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum fails the step in qas_round
        grad = conv2d_weight_grad(
            s.read(call, "x_saved"), gh, channels=chans, kernel=full[2:], stride=params_stride(p),
            padding=params_padding(p), x_zero=p["x_zero"], depthwise=depthwise,
        )  # fmt: skip
    # element index in the full weight's IR layout [O, C/g, KH, KW] (rounding.py)
    o, j, u, q = np.indices(w_train.shape)
    channel = np.asarray(chans)[o if depthwise else j]
    inv = s.read(call, "inv_w")
    if depthwise:
        index = ((channel * full[1] + j) * full[2] + u) * full[3] + q
        inv = inv[chans]
    else:
        index = ((o * full[1] + channel) * full[2] + u) * full[3] + q
    steps = _qas_step(s, call, grad, inv, index)
    if steps is None:
        return _written(call, w_train=w_train)
    return _written(call, w_train=np.clip(w_train.astype(np.int64) + steps, -127, 127).astype(np.int8))


def _qas_step(s: _Step, call: KernelCall, grad: np.ndarray, inv: np.ndarray, index: np.ndarray) -> np.ndarray | None:
    """The integer QAS steps of an update call (its ``u`` descriptor: rounding, lr group, tensor id);
    None, with the step failed, when a step value is not finite."""
    _, update = call.arg("u").value
    mode = {c.value: name for name, c in ROUNDING.items()}[update["rounding"].value]
    attrs = {"rounding": mode, "seed": s.seed, "tensor_id": update["tensor_id"]}
    steps = qas_round(grad, inv, s.lrs[update["lr_group"].value], attrs, s.step, index)
    if steps is None:
        s.status = STATUS_NONFINITE_GRAD
    return steps


def _bias_update(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    b = s.read(call, "b")
    gh = s.read(call, "gh")
    if not s.grad_ok(gh):
        return _written(call, b=b)
    # a dead channel (bias at an int32 limit) is frozen, like one whose inverse is 0
    inv = np.where((b == INT32_MIN) | (b == INT32_MAX), np.float32(0), s.read(call, "inv_b"))
    with np.errstate(over="ignore", invalid="ignore"):
        grad = bias_grad(gh)
    steps = _qas_step(s, call, grad, inv, np.arange(b.shape[0]))
    if steps is None:
        return _written(call, b=b)
    return _written(call, b=sat32(b.astype(np.int64) + steps).astype(np.int32))


def _linear_f32_bwd_update(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    p = call.params
    w, b, g = s.read(call, "w"), s.read(call, "b"), s.read(call, "g")[0]
    out: dict[str, np.ndarray] = {}
    if call.arg("gx").writes is not None:
        sums = _seq_sum_last((w * g[:, None]).T)
        out["gx"] = (np.float32(p["x_scale"]) * sums)[None].astype(np.float32)
    if call.arg("w_next").writes is not None:
        out["w_next"], out["b_next"] = w, b
        if s.grad_ok(g):
            with np.errstate(over="ignore", invalid="ignore"):
                lr = np.float32(s.lrs[call.arg("lr_group").value.value])
                xf = dequantize_input(s.read(call, "x")[0], p["x_scale"], p["x_zero"])
                w_next = (w - lr * (g[:, None] * xf[None, :])).astype(np.float32)
                b_next = (b - lr * g).astype(np.float32)
            # no value written is computed from a non-finite one (tte/tte_train.h): all or nothing
            if np.all(np.isfinite(w_next)) and np.all(np.isfinite(b_next)):
                out["w_next"], out["b_next"] = w_next, b_next
            else:
                s.status = STATUS_NONFINITE_GRAD
    return _written(call, **out)


def _accumulate(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    return _written(call, y=(s.read(call, "acc") + s.read(call, "g")).astype(np.float32))


def max_pool2d_bwd(
    g: np.ndarray, index: np.ndarray, *, size: tuple[int, int], kernel: Stride, stride: Stride, padding: Padding
) -> np.ndarray:
    """``dL/dx`` of a max pool: ``g`` [1,C,Ho,Wo] routed to the saved arg-max taps ``index`` (uint8,
    ``g``'s shape), summed where windows overlap in ascending ``(oy, ox)`` (float32 [1,C,H,W])."""
    _, channels, ho, wo = g.shape
    height, width = size
    _, kw = as_pair(kernel)
    sh, sw = as_pair(stride)
    top, left, _, _ = as_padding(padding)
    gx = padded_map(np.zeros((channels, height, width), dtype=np.float32), padding)
    tap = np.asarray(index[0], dtype=np.int64)
    rows, cols = tap // kw, tap % kw
    c = np.arange(channels)
    for oy in range(ho):
        for ox in range(wo):
            gx[c, oy * sh + rows[:, oy, ox], ox * sw + cols[:, oy, ox]] += g[0, :, oy, ox]
    return gx[None, :, top : top + height, left : left + width].copy()


def avg_pool2d_bwd(
    g: np.ndarray,
    mask: np.ndarray,
    multiplier: np.ndarray,
    *,
    size: tuple[int, int],
    kernel: Stride,
    stride: Stride,
    padding: Padding,
    count_include_pad: bool,
) -> np.ndarray:
    """``dL/dx`` of an average pool: ``t = mask ? g * m[count] : 0`` per window, added to each of the
    window's input pixels in ascending ``(oy, ox)`` (float32 [1,C,H,W])."""
    _, channels, ho, wo = g.shape
    height, width = size
    kh, kw = as_pair(kernel)
    sh, sw = as_pair(stride)
    top, left, _, _ = as_padding(padding)
    counts = pool_counts(size, kernel=kernel, stride=stride, padding=padding, count_include_pad=count_include_pad)
    m = np.asarray(multiplier, dtype=np.float32)[counts]
    t = np.where(mask[0], g[0] * m[None], np.float32(0.0)).astype(np.float32)
    gx = padded_map(np.zeros((channels, height, width), dtype=np.float32), padding)
    for oy in range(ho):
        for ox in range(wo):
            gx[:, oy * sh : oy * sh + kh, ox * sw : ox * sw + kw] += t[:, oy, ox, None, None]
    return gx[None, :, top : top + height, left : left + width].copy()


def _pool_geometry(call: KernelCall) -> dict[str, Any]:
    p = call.params
    return {
        "size": (p["in_h"], p["in_w"]), "kernel": params_kernel(p), "stride": params_stride(p),
        "padding": params_padding(p),
    }  # fmt: skip


def _max_pool_bwd(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    return _written(call, gx=max_pool2d_bwd(s.read(call, "g"), s.read(call, "index"), **_pool_geometry(call)))


def _avg_pool_bwd(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    g = s.read(call, "g")
    gx = avg_pool2d_bwd(
        g, _unpack(s.read(call, "mask"), g.shape), s.read(call, "multiplier"),
        count_include_pad=bool(call.params["count_include_pad"]), **_pool_geometry(call),
    )  # fmt: skip
    return _written(call, gx=gx)


def lut_bwd(g: np.ndarray, x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """``gx = g * slope[x + 128]`` (one float32 multiply per element)."""
    return (g * np.asarray(slope, dtype=np.float32)[x.astype(np.int32) + 128]).astype(np.float32)


def mul_bwd(
    g: np.ndarray, mask: np.ndarray, a: np.ndarray, b: np.ndarray, *, m: float, a_zero: int, b_zero: int
) -> tuple[np.ndarray, np.ndarray]:
    """Both input gradients of the channel-wise multiply ``y = a * b[c]`` (``g``, ``mask``, ``a`` [1,C,H,W],
    ``b`` [1,C,1,1]): ``gm = mask ? g*m : 0``, ``ga = gm * float32(b[c] - z_b)``, ``gb[c] = sum_p gm * float32(a - z_a)``
    over pixels ``p`` in ascending row-major order, from 0."""
    gm = np.where(mask, g * np.float32(m), np.float32(0.0)).astype(np.float32)
    ga = (gm * (b.astype(np.int32) - np.int32(b_zero)).astype(np.float32)).astype(np.float32)
    terms = gm * (a.astype(np.int32) - np.int32(a_zero)).astype(np.float32)
    gb = _seq_sum_last(terms[0].reshape(terms.shape[1], -1))
    return ga, gb.reshape(b.shape).astype(np.float32)


def _lut_bwd(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    return _written(call, gx=lut_bwd(s.read(call, "g"), s.read(call, "x"), s.read(call, "slope")))


def _mul_bwd(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    p = call.params
    g = s.read(call, "g")
    mask = _unpack(s.read(call, "mask"), g.shape)
    ga, gb = mul_bwd(g, mask, s.read(call, "a"), s.read(call, "b"), m=p["m"], a_zero=p["a_zero"], b_zero=p["b_zero"])
    return _written(call, ga=ga, gb=gb)


def batch_weight_grad(
    x_saved: np.ndarray,
    gh: np.ndarray,
    *,
    channels: Any,
    kernel: tuple[int, int],
    stride: Stride,
    padding: Padding,
    x_zero: int,
    depthwise: bool,
) -> np.ndarray:
    """``dL/dw`` of the trained slice as the mini-batch kernels sum it (``tte/tte_train.h``,
    ``*_bwd_w_acc_s8``): from 0 over the output positions in ascending order, one float32 rounding per
    multiply and per add (float32, the slice's shape)."""
    k = x_saved.shape[1]
    kh, kw = kernel
    _, out_channels, ho, wo = gh.shape
    centered = x_saved[0].astype(np.float32) - np.float32(x_zero)
    padded = padded_map(centered, padding)
    cols = np.empty((k, kh, kw, ho * wo), dtype=np.float32)
    for u in range(kh):
        for v in range(kw):
            cols[:, u, v] = window_tap(padded, u, v, stride, (ho, wo)).reshape(k, -1)
    g = gh[0].reshape(out_channels, -1)
    if depthwise:
        g = g[list(channels)]
        acc = np.zeros((k, kh, kw), dtype=np.float32)
        for p in range(ho * wo):
            acc = acc + g[:, p][:, None, None] * cols[..., p]
        return acc[:, None]
    acc = np.zeros((out_channels, k, kh, kw), dtype=np.float32)
    for p in range(ho * wo):
        acc = acc + g[:, p][:, None, None, None] * cols[None, ..., p]
    return acc


def _live_rows(inv: np.ndarray, ndim: int) -> np.ndarray:
    """Where the QAS update of a parameter with per-row (axis 0) inverses ``inv`` is live (not frozen),
    broadcastable over an array of ``ndim`` axes."""
    inv = np.asarray(inv, dtype=np.float32)
    return ((inv != 0) & np.isfinite(inv)).reshape((-1,) + (1,) * (ndim - 1))


def _conv_bwd_w_accumulate(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    p = call.params
    w_train, acc, gh = s.read(call, "w_train"), s.read(call, "acc"), s.read(call, "gh")
    full = (p["out_c"], p["in_c"] // p["groups"], p["kernel_h"], p["kernel_w"])
    depthwise = call.family == DEPTHWISE
    chans = list(p["train_channels"])
    inv = s.read(call, "inv_w")
    o, j, u, q = np.indices(w_train.shape)
    channel = np.asarray(chans)[o if depthwise else j]
    if depthwise:
        index = ((channel * full[1] + j) * full[2] + u) * full[3] + q
        inv = inv[chans]
    else:
        index = ((o * full[1] + channel) * full[2] + u) * full[3] + q
    if s.grad_ok(gh):
        with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum fails the update in qas_round
            grad = batch_weight_grad(
                s.read(call, "x_saved"), gh, channels=chans, kernel=full[2:], stride=params_stride(p),
                padding=params_padding(p), x_zero=p["x_zero"], depthwise=depthwise,
            )  # fmt: skip
            acc = np.where(_live_rows(inv, acc.ndim), acc + grad, acc).astype(np.float32)
    if s.batch_end:
        steps = _batch_steps(s, call, acc, inv, index)
        if steps is not None:
            w_train = np.clip(w_train.astype(np.int64) + steps, -127, 127).astype(np.int8)
        acc = np.zeros_like(acc)
    return _written(call, acc=acc, w_train=w_train)


def _batch_steps(s: _Step, call: KernelCall, acc: np.ndarray, inv: np.ndarray, index: np.ndarray) -> np.ndarray | None:
    """The QAS steps of a mini-batch update from its accumulated gradient (mean ``acc / B``); None when
    the step already failed or a step value is not finite (the step then fails)."""
    if s.status != STATUS_OK:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        mean = (acc / np.float32(call.arg("batch").value)).astype(np.float32)
    return _qas_step(s, call, mean, inv, index)


def _bias_accumulate(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    b, acc, gh = s.read(call, "b"), s.read(call, "acc"), s.read(call, "gh")
    inv = np.where((b == INT32_MIN) | (b == INT32_MAX), np.float32(0), s.read(call, "inv_b"))
    if s.grad_ok(gh):
        with np.errstate(over="ignore", invalid="ignore"):
            acc = np.where(_live_rows(inv, 1), acc + bias_grad(gh), acc).astype(np.float32)
    if s.batch_end:
        steps = _batch_steps(s, call, acc, inv, np.arange(b.shape[0]))
        if steps is not None:
            b = sat32(b.astype(np.int64) + steps).astype(np.int32)
        acc = np.zeros_like(acc)
    return _written(call, acc=acc, b=b)


def _linear_f32_accumulate(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    p = call.params
    w, b, g = s.read(call, "w"), s.read(call, "b"), s.read(call, "g")[0]
    acc_w, acc_b = s.read(call, "acc_w"), s.read(call, "acc_b")
    if s.grad_ok(g):
        xf = dequantize_input(s.read(call, "x")[0], p["x_scale"], p["x_zero"])
        with np.errstate(over="ignore", invalid="ignore"):
            acc_w = (acc_w + g[:, None] * xf[None, :]).astype(np.float32)
            acc_b = (acc_b + g).astype(np.float32)
    if s.batch_end:
        if s.status == STATUS_OK:
            batch = np.float32(call.arg("batch").value)
            lr = np.float32(s.lrs[call.arg("lr_group").value.value])
            with np.errstate(over="ignore", invalid="ignore"):
                w_next = (w - lr * (acc_w / batch)).astype(np.float32)
                b_next = (b - lr * (acc_b / batch)).astype(np.float32)
            # no value written is computed from a non-finite one (tte/tte_train.h): all or nothing
            if np.all(np.isfinite(w_next)) and np.all(np.isfinite(b_next)):
                w, b = w_next, b_next
            else:
                s.status = STATUS_NONFINITE_GRAD
        acc_w, acc_b = np.zeros_like(acc_w), np.zeros_like(acc_b)
    return _written(call, acc_w=acc_w, acc_b=acc_b, w=w, b=b)


def channel_insert(g: np.ndarray, start: int, channels: int, acc: np.ndarray | None = None) -> np.ndarray:
    """A channel split's backward: ``acc`` (or zeros) of ``channels`` channels with ``g`` added into
    channels ``[start, start + k)`` (one float32 add per element; into zeros, a copy)."""
    g = np.asarray(g, dtype=np.float32)
    if acc is None:
        gx = np.zeros((1, channels, *g.shape[2:]), dtype=np.float32)
        gx[:, start : start + g.shape[1]] = g
        return gx
    gx = np.array(acc, dtype=np.float32, copy=True)
    gx[:, start : start + g.shape[1]] += g
    return gx


def _channel_insert(s: _Step, call: KernelCall) -> dict[str, np.ndarray]:
    p = call.params
    return _written(call, gx=channel_insert(s.read(call, "g"), p["start"], p["in_c"], s.read(call, "gx")))


TRAINING_KERNELS: Mapping[Op, Callable[[_Step, KernelCall], dict[str, np.ndarray]]] = {
    Op.GATHER_CHANNELS: _gather,
    Op.SOFTMAX_CE: _softmax_ce,
    Op.MASK_SCALE: _mask_scale,
    Op.ADD_BWD: _add_bwd,
    Op.POOL_BWD: _pool_bwd,
    Op.CONV2D_BWD_X: _conv_bwd_x,
    Op.CONV2D_BWD_W_UPDATE: _conv_bwd_w_update,
    Op.BIAS_UPDATE: _bias_update,
    Op.LINEAR_F32_BWD_UPDATE: _linear_f32_bwd_update,
    Op.ACCUMULATE: _accumulate,
    Op.MAX_POOL_BWD: _max_pool_bwd,
    Op.AVG_POOL_BWD: _avg_pool_bwd,
    Op.LUT_BWD: _lut_bwd,
    Op.MUL_BWD: _mul_bwd,
    Op.CONV2D_BWD_W_ACCUMULATE: _conv_bwd_w_accumulate,
    Op.BIAS_ACCUMULATE: _bias_accumulate,
    Op.LINEAR_F32_ACCUMULATE: _linear_f32_accumulate,
    Op.CHANNEL_INSERT: _channel_insert,
}
"""The training ops' reference kernels (the forward ops are :data:`tte_ir.reference.FORWARD`)."""


def train_step(
    graph: Graph,
    state: Mapping[str, np.ndarray],
    x: np.ndarray,
    label: int,
    *,
    step: int = 0,
    lr: float | None = None,
    head_lr: float | None = None,
    return_all: bool = False,
) -> StepResult:
    """Run one training step of ``graph`` on one input and label.

    ``state`` holds the trained parameters (:func:`initial_state`, or the previous step's
    ``StepResult.state``; with a mini-batch, the gradient accumulators too); ``step`` counts the
    samples trained before this one; ``lr`` and ``head_lr`` default to the compiled scheme's. With the
    scheme's ``batch`` B, sample ``step`` ends a batch (and its updates apply) when ``step % B == B - 1``,
    and the stochastic rounding's counter is the update's index ``step // B`` (``step`` itself for
    B = 1). A non-finite loss, gradient or update value leaves every parameter untouched from that
    point on and is reported in ``StepResult.status``.
    """
    info = training_info(graph)
    scheme = info["scheme"]
    spec = graph.tensors[info["input"]]
    x = np.asarray(x)
    if tuple(x.shape) != spec.shape or x.dtype != spec.dtype.numpy:
        raise TteError(
            f"graph '{graph.name}': input '{spec.name}' must be {spec.dtype.name.lower()}{list(spec.shape)}, "
            f"got {x.dtype}{list(x.shape)}"
        )
    batch = int(scheme.get("batch", 1))
    run = _Step(
        graph,
        state,
        step // batch,
        scheme["lr"] if lr is None else lr,
        scheme["head_lr"] if head_lr is None else head_lr,
        batch_end=step % batch == batch - 1,
    )
    run.values[info["input"]] = x
    run.values[info["label"]] = np.array([label], dtype=np.int32)
    for node in graph.nodes:
        run.run(node)
    carried = {**info["state"], **info.get("accumulators", {})}
    new_state = {name: run.values[nxt] for name, nxt in carried.items()}
    return StepResult(run.loss, run.status, new_state, run.values if return_all else None)
