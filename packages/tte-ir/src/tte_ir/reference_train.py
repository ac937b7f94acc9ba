"""The numpy reference interpreter for training graphs: NUMERICS.md §3-5, executable.

Float sums run in one fixed order, the order the C kernels use, so float results agree bit for bit
with a C build (and within rtol 1e-5 with PyTorch, which sums in its own order):

- ``softmax_ce``: the exponentials are summed in ascending class index.
- ``bias_update``: ``dL/db[o] = sum_p gh[o,p]`` over output positions ``p`` in ascending row-major order.
- ``conv2d_bwd_w_update``: ``dL/dw[o,i,u,v] = sum_p gh[o,p] * (x[i, p*s+u-pad] - z_x)``, ``p`` ascending,
  padded taps skipped (they contribute 0).
- ``conv2d_bwd_x``: each ``gx[c,y,x]`` starts at ``acc`` (or 0) and adds ``w[o,c,u,v] * gh[o,oy,ox]`` in
  ascending ``(o, u, v)`` order; this is the order in which a channel-tiled schedule adds them, too.
- ``linear_f32_bwd_update``: ``gx[i] = s_x * sum_o W[o,i]*g[o]`` in ascending ``o``.

Masks are stored bit-packed (element ``i`` of the tensor in IR order is bit ``i % 8`` of byte ``i // 8``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tte_ir._ir import DType, Graph, Node, Op, TteError
from tte_ir.autodiff import training_info
from tte_ir.ops import node_attrs, node_roles
from tte_ir.quant import node_multipliers
from tte_ir.reference import add, conv2d, dequantize_input, global_avg_pool, linear_f32, linear_s8, sat32
from tte_ir.rounding import round_step

__all__ = [
    "STATUS_NONFINITE_GRAD",
    "STATUS_NONFINITE_LOSS",
    "STATUS_OK",
    "StepResult",
    "bias_grad",
    "conv2d_bwd_x",
    "conv2d_weight_grad",
    "initial_state",
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


def _pack(mask: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(mask, dtype=bool).ravel(), bitorder="little")


def _unpack(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    return np.unpackbits(packed, bitorder="little")[:count].astype(bool).reshape(shape)


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


def _effective_weight(w: np.ndarray, w_train: np.ndarray | None, channels: Any, depthwise: bool) -> np.ndarray:
    if w_train is None:
        return w
    w = np.array(w, copy=True)
    if depthwise:
        w[list(channels)] = w_train
    else:
        w[:, list(channels)] = w_train
    return w


def conv2d_bwd_x(
    gh: np.ndarray,
    w: np.ndarray,
    *,
    size: tuple[int, int],
    stride: int,
    padding: int,
    groups: int,
    acc: np.ndarray | None = None,
) -> np.ndarray:
    """Input gradient of a conv: the transposed conv of ``gh`` [1,O,Ho,Wo] with ``w`` [O,C/g,K,K]."""
    out_channels, in_per_group, kh, kw = w.shape
    _, _, ho, wo = gh.shape
    height, width = size
    channels = in_per_group * groups
    padded = np.zeros((channels, height + 2 * padding, width + 2 * padding), dtype=np.float32)
    if acc is not None:
        padded[:, padding : padding + height, padding : padding + width] = acc[0]
    wf = w.astype(np.float32)
    g = gh[0]
    span_h, span_w = stride * (ho - 1) + 1, stride * (wo - 1) + 1
    if groups == channels and in_per_group == 1 and out_channels == channels:
        for u in range(kh):
            for v in range(kw):
                padded[:, u : u + span_h : stride, v : v + span_w : stride] += g * wf[:, 0, u, v][:, None, None]
    else:
        out_per_group = out_channels // groups
        for o in range(out_channels):
            c0 = (o // out_per_group) * in_per_group
            for u in range(kh):
                for v in range(kw):
                    view = padded[c0 : c0 + in_per_group, u : u + span_h : stride, v : v + span_w : stride]
                    view += wf[o, :, u, v][:, None, None] * g[o][None]
    return padded[None, :, padding : padding + height, padding : padding + width].astype(np.float32)


def conv2d_weight_grad(
    x_saved: np.ndarray,
    gh: np.ndarray,
    *,
    channels: Any,
    kernel: tuple[int, int],
    stride: int,
    padding: int,
    x_zero: int,
    depthwise: bool,
) -> np.ndarray:
    """``dL/dw`` of the trained slice (float32, the slice's shape), zero-point correct, padding 0."""
    k = x_saved.shape[1]
    kh, kw = kernel
    _, out_channels, ho, wo = gh.shape
    centered = x_saved[0].astype(np.float32) - np.float32(x_zero)
    padded = np.pad(centered, ((0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((k, kh, kw, ho * wo), dtype=np.float32)
    for u in range(kh):
        for v in range(kw):
            tap = padded[:, u : u + stride * (ho - 1) + 1 : stride, v : v + stride * (wo - 1) + 1 : stride]
            cols[:, u, v] = tap.reshape(k, -1)
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


def qas_round(
    grad: np.ndarray, inv: np.ndarray, lr: float, attrs: Mapping[str, Any], step: int, index: np.ndarray
) -> np.ndarray:
    """The integer QAS step ``round_mode(-(lr * g) * inv[o])`` (``inv`` broadcast over ``grad``'s axis 0)."""
    inv_b = np.asarray(inv, dtype=np.float32).reshape((-1,) + (1,) * (grad.ndim - 1))
    v = (-(np.float32(lr) * grad)) * inv_b
    return round_step(
        v, attrs["rounding"], seed=attrs["seed"], step=step, tensor_id=attrs["tensor_id"], element_index=index
    )


def initial_state(graph: Graph) -> dict[str, np.ndarray]:
    """The trained parameters' initial values (writable copies), keyed by parameter name."""
    return {name: np.array(graph.constants[name], copy=True) for name in training_info(graph)["state"]}


class _Step:
    def __init__(self, graph: Graph, state: Mapping[str, np.ndarray], step: int, lr: float, head_lr: float) -> None:
        self.graph = graph
        self.step = step
        self.lrs = {"body": lr, "head": head_lr}
        self.values: dict[str, np.ndarray] = dict(graph.constants)
        self.values.update({k: np.asarray(v) for k, v in state.items()})
        self.status = STATUS_OK
        self.loss = float("nan")

    def spec(self, name: str):  # type: ignore[no-untyped-def]
        return self.graph.tensors[name]

    def run(self, node: Node) -> None:
        ins, outs = node_roles(node)
        attrs = node_attrs(node)
        v = {role: self.values[name] for role, name in ins.items()}
        results = _KERNELS[node.op](self, node, attrs, ins, v)
        for role, value in results.items():
            if role in outs:
                self.values[outs[role]] = value

    def grad_ok(self, g: np.ndarray) -> bool:
        """Update ops: skip when the step already failed; fail the step on a non-finite gradient."""
        if self.status != STATUS_OK:
            return False
        if not np.all(np.isfinite(g)):
            self.status = STATUS_NONFINITE_GRAD
            return False
        return True


def _forward_conv(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    xs, ys = s.spec(ins["x"]), s.spec(node.outputs[0])
    depthwise = attrs["groups"] > 1
    w = _effective_weight(v["w"], v.get("w_train"), attrs["channels"], depthwise)
    y, mask = conv2d(
        v["x"],
        w,
        v["b"],
        node_multipliers(s.graph, node)["multiplier"],
        stride=attrs["stride"],
        padding=attrs["padding"],
        groups=attrs["groups"],
        x_zero=xs.quant.zero_point,
        y_zero=ys.quant.zero_point,
        act_min=attrs["act_min"],
        act_max=attrs["act_max"],
        return_mask=True,
    )
    return {"y": y, "mask": _pack(mask)}


def _forward_add(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    m = node_multipliers(s.graph, node)
    y, mask = add(
        v["a"],
        v["b"],
        m1=m["m1"],
        m2=m["m2"],
        z1=s.spec(ins["a"]).quant.zero_point,
        z2=s.spec(ins["b"]).quant.zero_point,
        y_zero=s.spec(node.outputs[0]).quant.zero_point,
        act_min=attrs["act_min"],
        act_max=attrs["act_max"],
        return_mask=True,
    )
    return {"y": y, "mask": _pack(mask)}


def _forward_pool(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    y, mask = global_avg_pool(
        v["x"],
        multiplier=node_multipliers(s.graph, node)["multiplier"],
        x_zero=s.spec(ins["x"]).quant.zero_point,
        y_zero=s.spec(node.outputs[0]).quant.zero_point,
        return_mask=True,
    )
    return {"y": y, "mask": _pack(mask)}


def _forward_linear(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    xs = s.spec(ins["x"])
    if s.spec(ins["w"]).dtype is DType.FLOAT32:
        return {"y": linear_f32(v["x"], v["w"], v["b"], x_scale=xs.quant.tensor_scale, x_zero=xs.quant.zero_point)}
    y, mask = linear_s8(
        v["x"],
        v["w"],
        v["b"],
        node_multipliers(s.graph, node)["multiplier"],
        x_zero=xs.quant.zero_point,
        y_zero=s.spec(node.outputs[0]).quant.zero_point,
        act_min=attrs["act_min"],
        act_max=attrs["act_max"],
        return_mask=True,
    )
    return {"y": y, "mask": _pack(mask)}


def _reshape(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    return {"y": v["x"].reshape(s.spec(node.outputs[0]).shape)}


def _gather(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    return {"y": np.ascontiguousarray(v["x"][:, list(attrs["channels"])])}


def _softmax_ce(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    spec = s.spec(ins["logits"])
    label = int(v["label"][0])
    if not 0 <= label < spec.shape[1]:
        raise TteError(f"{node.describe()}: label {label} is outside [0, {spec.shape[1]})")
    if spec.dtype is DType.INT8:
        loss, g = softmax_ce(v["logits"], label, scale=spec.quant.tensor_scale, zero=spec.quant.zero_point)
    else:
        loss, g = softmax_ce(v["logits"], label)
    s.loss = loss
    if not np.isfinite(loss):
        s.status = STATUS_NONFINITE_LOSS
    return {"loss": np.array([loss], dtype=np.float32), "g": g}


def _mask_scale(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    g = v["g"]
    return {"gh": mask_scale(g, _unpack(v["mask"], g.shape), v["scale"])}


def _add_bwd(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    g = v["g"]
    mask = _unpack(v["mask"], g.shape)
    zero = np.float32(0.0)
    return {
        "ga": np.where(mask, g * np.float32(attrs["m1"]), zero).astype(np.float32),
        "gb": np.where(mask, g * np.float32(attrs["m2"]), zero).astype(np.float32),
    }


def _pool_bwd(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    g = v["g"]
    per_channel = np.where(_unpack(v["mask"], g.shape), g * np.float32(attrs["m"]), np.float32(0.0))
    height, width = attrs["size"]
    return {"gx": np.broadcast_to(per_channel, (1, g.shape[1], height, width)).astype(np.float32)}


def _conv_bwd_x(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    depthwise = attrs["groups"] > 1 and v["w"].shape[1] == 1
    w = _effective_weight(v["w"], v.get("w_train"), attrs["channels"], depthwise)
    gx = conv2d_bwd_x(
        v["gh"],
        w,
        size=tuple(attrs["size"]),
        stride=attrs["stride"],
        padding=attrs["padding"],
        groups=attrs["groups"],
        acc=v.get("acc"),
    )
    return {"gx": gx}


def _conv_bwd_w_update(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    w_train = v["w_train"]
    gh = v["gh"]
    if not s.grad_ok(gh):
        return {"w_next": w_train}
    full = tuple(attrs["weight_shape"])
    depthwise = attrs["groups"] > 1
    chans = list(attrs["channels"])
    grad = conv2d_weight_grad(
        v["x_saved"],
        gh,
        channels=chans,
        kernel=full[2:],
        stride=attrs["stride"],
        padding=attrs["padding"],
        x_zero=s.spec(ins["x_saved"]).quant.zero_point,
        depthwise=depthwise,
    )
    # element index in the full weight's IR layout [O, C/g, KH, KW] (rounding.py)
    o, j, u, q = np.indices(w_train.shape)
    channel = np.asarray(chans)[o if depthwise else j]
    if depthwise:
        index = ((channel * full[1] + j) * full[2] + u) * full[3] + q
        inv = v["inv_w"][chans]
    else:
        index = ((o * full[1] + channel) * full[2] + u) * full[3] + q
        inv = v["inv_w"]
    steps = qas_round(grad, inv, s.lrs[attrs["lr_group"]], attrs, s.step, index)
    return {"w_next": np.clip(w_train.astype(np.int64) + steps, -127, 127).astype(np.int8)}


def _bias_update(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    b = v["b"]
    if not s.grad_ok(v["gh"]):
        return {"b_next": b}
    grad = bias_grad(v["gh"])
    steps = qas_round(grad, v["inv_b"], s.lrs[attrs["lr_group"]], attrs, s.step, np.arange(b.shape[0]))
    return {"b_next": sat32(b.astype(np.int64) + steps).astype(np.int32)}


def _linear_f32_bwd_update(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    xs = s.spec(ins["x"])
    w, b, g = v["w"], v["b"], v["g"][0]
    out: dict[str, np.ndarray] = {}
    if attrs["input_grad"]:
        sums = _seq_sum_last((w * g[:, None]).T)
        out["gx"] = (np.float32(xs.quant.tensor_scale) * sums)[None].astype(np.float32)
    if attrs["update"]:
        out["w_next"], out["b_next"] = w, b
        if s.grad_ok(g):
            lr = np.float32(s.lrs[attrs["lr_group"]])
            xf = dequantize_input(v["x"][0], xs.quant.tensor_scale, xs.quant.zero_point)
            out["w_next"] = (w - lr * (g[:, None] * xf[None, :])).astype(np.float32)
            out["b_next"] = (b - lr * g).astype(np.float32)
    return out


def _accumulate(s: _Step, node: Node, attrs: dict[str, Any], ins: dict[str, str], v: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    return {"y": (v["acc"] + v["g"]).astype(np.float32)}


_KERNELS = {
    Op.CONV2D: _forward_conv,
    Op.ADD: _forward_add,
    Op.GLOBAL_AVG_POOL: _forward_pool,
    Op.LINEAR: _forward_linear,
    Op.RESHAPE: _reshape,
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
}


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
    ``StepResult.state``); ``step`` is the step counter of the stochastic rounding; ``lr`` and
    ``head_lr`` default to the compiled scheme's. A non-finite loss or gradient leaves every
    parameter untouched from that point on and is reported in ``StepResult.status``.
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
    run = _Step(
        graph,
        state,
        step,
        scheme["lr"] if lr is None else lr,
        scheme["head_lr"] if head_lr is None else head_lr,
    )
    run.values[info["input"]] = x
    run.values[info["label"]] = np.array([label], dtype=np.int32)
    for node in graph.nodes:
        run.run(node)
    new_state = {param: run.values[nxt] for param, nxt in info["state"].items()}
    return StepResult(run.loss, run.status, new_state, run.values if return_all else None)
