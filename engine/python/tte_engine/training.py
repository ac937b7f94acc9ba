"""Run a compiled ``tte_ir`` training graph through the engine's kernels on the host, node by node.

One IR node is one kernel call, made through the binding on engine-layout arrays (HWC activations and
gradients, the kernels' weight and slice layouts), with one :class:`~tte_engine.TrainContext` per
step. Tiled groups run untiled (whole tensors): the kernels' tiles are bit-identical to untiled calls,
which the engine's tests check kernel by kernel. The result compares directly with
``tte_ir.reference_train.train_step``; generated C (``tte_codegen``) makes the same calls from C.

``tte_ir`` is imported lazily: install ``tte-engine[ir]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tte_engine import _core

if TYPE_CHECKING:
    from tte_ir import Graph, Node

__all__ = ["EngineStep", "engine_weight", "ir_weight", "train_step", "weight_kind"]


def weight_kind(w_shape: tuple[int, ...], channels: int, padding: int, groups: int) -> str:
    """``dense``, ``depthwise`` or ``pointwise``: the kernel family of a conv with IR weights of
    ``w_shape`` on ``channels`` input channels (as ``tte_ir.layout.conv_kernel`` picks it)."""
    out_channels, _, kh, kw = w_shape
    if groups == channels == out_channels:
        return "depthwise"
    if groups == 1 and kh == kw == 1 and padding == 0:
        return "pointwise"
    return "dense"


def engine_weight(kind: str, w: np.ndarray) -> np.ndarray:
    """IR conv weights ``[O, C, KH, KW]``, or a trained slice of them, in the engine layout of ``kind``:
    dense ``[O][KH][KW][C]``, depthwise ``[KH][KW][C]`` (from ``[C, 1, KH, KW]``), pointwise ``[O][C]``."""
    if kind == "depthwise":
        return np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))
    if kind == "pointwise":
        return np.ascontiguousarray(w[:, :, 0, 0])
    return np.ascontiguousarray(w.transpose(0, 2, 3, 1))


def ir_weight(kind: str, w: np.ndarray) -> np.ndarray:
    """The inverse of :func:`engine_weight`."""
    if kind == "depthwise":
        return np.ascontiguousarray(w.transpose(2, 0, 1)[:, None])
    if kind == "pointwise":
        return np.ascontiguousarray(w[:, :, None, None])
    return np.ascontiguousarray(w.transpose(0, 3, 1, 2))


@dataclass(frozen=True)
class EngineStep:
    """One training step through the engine: loss, step status (``tte_ir.reference_train``'s names)
    and the trained parameters after it (IR layout, keyed like ``reference_train.initial_state``)."""

    loss: float
    status: str
    state: dict[str, np.ndarray]


class _Run:
    """The values of one step, in engine layout, and the kernel call of each op."""

    def __init__(self, graph: Graph, state: Mapping[str, np.ndarray], ctx: _core.TrainContext) -> None:
        from tte_ir.layout import engine_shape

        self.graph = graph
        self.ctx = ctx
        self.engine_shape = engine_shape
        self.values: dict[str, Any] = {}
        self.state = dict(state)
        self.loss = float("nan")

    def spec(self, name: str):  # type: ignore[no-untyped-def]
        return self.graph.tensors[name]

    def zero(self, name: str) -> int:
        q = self.spec(name).quant
        return q.zero_point if q is not None else 0

    def value(self, name: str) -> np.ndarray:
        """An input in engine layout: activations as computed, parameters and constants converted."""
        if name in self.values:
            return self.values[name]
        raw = self.state.get(name, self.graph.constants.get(name))
        if raw is None:
            raise ValueError(f"graph '{self.graph.name}': tensor '{name}' has no value before it is read")
        return np.ascontiguousarray(raw)

    def activation(self, name: str, array: np.ndarray) -> None:
        self.values[name] = np.ascontiguousarray(array).reshape(self.engine_shape(self.spec(name).shape))


def _conv_setup(run: _Run, node: Node, w_name: str, in_c: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The kernel family, geometry keywords and trained-slice keywords of a conv-family node."""
    from tte_ir import node_attrs
    from tte_ir.ops import node_roles

    attrs = node_attrs(node)
    ins, _ = node_roles(node)
    w_shape = run.spec(w_name).shape
    kind = weight_kind(w_shape, in_c, attrs["padding"], attrs["groups"])
    geometry: dict[str, Any] = {"stride": attrs["stride"]}
    if kind != "pointwise":
        geometry["padding"] = attrs["padding"]
    if kind == "dense":
        geometry["groups"] = attrs["groups"]
    slice_args: dict[str, Any] = {}
    if "w_train" in ins:
        slice_args = {
            "w_train": engine_weight(kind, run.value(ins["w_train"])),
            "train_channels": list(attrs["channels"]),
        }
    return kind, geometry, slice_args


_PREFIX = {"dense": "conv2d", "depthwise": "depthwise_conv2d", "pointwise": "pointwise_conv2d"}


def _run_node(run: _Run, node: Node) -> None:
    from tte_ir import DType, Op, node_attrs, node_multipliers
    from tte_ir.ops import node_roles

    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    v = run.value
    ctx = run.ctx
    if node.op is Op.CONV2D:
        x = run.spec(ins["x"])
        kind, geometry, slice_args = _conv_setup(run, node, ins["w"], x.shape[1])
        y, mask = getattr(_core, f"{_PREFIX[kind]}_fwd_s8")(
            v(ins["x"]), engine_weight(kind, v(ins["w"])), v(ins["b"]), node_multipliers(run.graph, node)["multiplier"],
            **geometry, x_zero=run.zero(ins["x"]), y_zero=run.zero(outs["y"]), act_min=attrs["act_min"],
            act_max=attrs["act_max"], return_mask=True, **slice_args,
        )  # fmt: skip
        run.activation(outs["y"], y)
        if "mask" in outs:
            run.values[outs["mask"]] = mask
    elif node.op is Op.ADD:
        m = node_multipliers(run.graph, node)
        y, mask = _core.add_fwd_s8(
            v(ins["a"]), v(ins["b"]), m1=m["m1"], m2=m["m2"], z1=run.zero(ins["a"]), z2=run.zero(ins["b"]),
            y_zero=run.zero(outs["y"]), act_min=attrs["act_min"], act_max=attrs["act_max"], return_mask=True,
        )  # fmt: skip
        run.activation(outs["y"], y)
        if "mask" in outs:
            run.values[outs["mask"]] = mask
    elif node.op is Op.GLOBAL_AVG_POOL:
        m = node_multipliers(run.graph, node)["multiplier"]
        y, mask = _core.global_avg_pool_fwd_s8(
            v(ins["x"]), multiplier=m, x_zero=run.zero(ins["x"]), y_zero=run.zero(outs["y"]), return_mask=True
        )
        run.activation(outs["y"], y)
        if "mask" in outs:
            run.values[outs["mask"]] = mask
    elif node.op is Op.LINEAR and run.spec(ins["w"]).dtype is DType.FLOAT32:
        xq = run.spec(ins["x"]).quant
        y = _core.linear_fwd_f32(v(ins["x"]), v(ins["w"]), v(ins["b"]), x_scale=xq.tensor_scale, x_zero=xq.zero_point)
        run.activation(outs["y"], y)
    elif node.op is Op.LINEAR:
        raise ValueError(f"{node.describe()}: an int8 head trains as a 1x1 conv; compile the graph with tte_ir")
    elif node.op is Op.RESHAPE:
        run.activation(outs["y"], v(ins["x"]))
    elif node.op is Op.GATHER_CHANNELS:
        run.activation(outs["y"], _core.gather_channels_s8(v(ins["x"]), list(attrs["channels"])))
    elif node.op is Op.SOFTMAX_CE:
        logits = v(ins["logits"])
        label = int(v(ins["label"])[0])
        if logits.dtype == np.int8:
            q = run.spec(ins["logits"]).quant
            loss, g = _core.softmax_ce_s8(logits, label, scale=q.tensor_scale, zero=q.zero_point, ctx=ctx)
        else:
            loss, g = _core.softmax_ce_f32(logits, label, ctx=ctx)
        run.loss = loss
        run.activation(outs["loss"], np.array([loss], np.float32))
        run.activation(outs["g"], g)
    elif node.op is Op.MASK_SCALE:
        run.activation(outs["gh"], _core.mask_scale_f32(v(ins["g"]), v(ins["mask"]), v(ins["scale"])))
    elif node.op is Op.ADD_BWD:
        ga, gb = _core.add_bwd_f32(v(ins["g"]), v(ins["mask"]), m1=attrs["m1"], m2=attrs["m2"])
        run.activation(outs["ga"], ga)
        run.activation(outs["gb"], gb)
    elif node.op is Op.POOL_BWD:
        height, width = attrs["size"]
        gx = _core.global_avg_pool_bwd_f32(
            v(ins["g"]).reshape(-1), v(ins["mask"]), multiplier=attrs["m"], in_h=height, in_w=width
        )
        run.activation(outs["gx"], gx)
    elif node.op is Op.CONV2D_BWD_X:
        height, width = attrs["size"]
        in_c = run.spec(ins["w"]).shape[1] * attrs["groups"]
        kind, geometry, slice_args = _conv_setup(run, node, ins["w"], in_c)
        acc = v(ins["acc"]) if "acc" in ins else None
        gx = getattr(_core, f"{_PREFIX[kind]}_bwd_x_f32")(
            v(ins["gh"]), engine_weight(kind, v(ins["w"])), in_h=height, in_w=width, acc=acc, **geometry, **slice_args
        )
        run.activation(outs["gx"], gx)
    elif node.op is Op.CONV2D_BWD_W_UPDATE:
        full = tuple(attrs["weight_shape"])
        depthwise = attrs["groups"] > 1
        in_c = full[0] if depthwise else full[1]
        kind = weight_kind(full, in_c, attrs["padding"], attrs["groups"])
        geometry = {"stride": attrs["stride"]} | ({"padding": attrs["padding"]} if kind != "pointwise" else {})
        w_next = getattr(_core, f"{_PREFIX[kind]}_bwd_w_update_s8")(
            ctx, v(ins["x_saved"]), v(ins["gh"]), engine_weight(kind, v(ins["w_train"])), v(ins["inv_w"]),
            train_channels=list(attrs["channels"]), in_c=in_c, x_zero=run.zero(ins["x_saved"]), **geometry,
            tensor_id=attrs["tensor_id"], rounding=attrs["rounding"], lr_group=attrs["lr_group"],
        )  # fmt: skip
        run.values[outs["w_next"]] = ir_weight(kind, w_next)  # parameters stay in IR layout
    elif node.op is Op.BIAS_UPDATE:
        run.values[outs["b_next"]] = _core.bias_update_s32(
            ctx, v(ins["gh"]), v(ins["b"]), v(ins["inv_b"]), tensor_id=attrs["tensor_id"],
            rounding=attrs["rounding"], lr_group=attrs["lr_group"],
        )  # fmt: skip
    elif node.op is Op.LINEAR_F32_BWD_UPDATE:
        xq = run.spec(ins["x"]).quant
        w_next, b_next, gx = _core.linear_bwd_update_f32(
            ctx, v(ins["x"]).reshape(-1), v(ins["g"]).reshape(-1), v(ins["w"]), v(ins["b"]),
            x_scale=xq.tensor_scale, x_zero=xq.zero_point, lr_group=attrs["lr_group"], update=attrs["update"],
            input_grad=attrs["input_grad"],
        )  # fmt: skip
        for role, value in (("w_next", w_next), ("b_next", b_next)):
            if role in outs:
                run.values[outs[role]] = value
        if "gx" in outs:
            run.activation(outs["gx"], gx)
    elif node.op is Op.ACCUMULATE:
        run.activation(outs["y"], _core.accumulate_f32(v(ins["acc"]), v(ins["g"])))
    else:
        raise ValueError(f"{node.describe()}: the engine has no kernel for this op")


def train_step(
    graph: Graph,
    state: Mapping[str, np.ndarray],
    x: np.ndarray,
    label: int,
    *,
    step: int = 0,
    lr: float | None = None,
    head_lr: float | None = None,
) -> EngineStep:
    """One training step of a compiled training ``graph`` through the C kernels; the arguments and
    results mean what they mean for ``tte_ir.reference_train.train_step`` (``x`` in IR layout)."""
    from tte_ir import training_info
    from tte_ir.layout import to_engine_layout

    info = training_info(graph)
    scheme = info["scheme"]
    ctx = _core.TrainContext(
        lr=scheme["lr"] if lr is None else lr,
        head_lr=scheme["head_lr"] if head_lr is None else head_lr,
        step=step,
        seed=scheme["seed"],
    )
    run = _Run(graph, state, ctx)
    spec = graph.tensors[info["input"]]
    x = np.asarray(x)
    if tuple(x.shape) != spec.shape or x.dtype != spec.dtype.numpy:
        raise ValueError(
            f"graph '{graph.name}': input '{spec.name}' must be {spec.dtype.name.lower()}{list(spec.shape)}, "
            f"got {x.dtype}{list(x.shape)}"
        )
    run.values[info["input"]] = to_engine_layout(x)
    run.values[info["label"]] = np.array([label], np.int32)
    for node in graph.nodes:
        _run_node(run, node)
    new_state = {param: np.asarray(run.values[nxt]) for param, nxt in info["state"].items()}
    return EngineStep(run.loss, ctx.status, new_state)
