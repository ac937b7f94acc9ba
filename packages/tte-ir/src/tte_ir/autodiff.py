"""Compile-time autodiff: a forward graph and a scheme become one training-step graph.

The training graph is an ordinary :class:`~tte_ir.Graph` whose node order is the schedule:
forward (saving 1-bit masks and the trained input channels), loss, then backward with each update
applied as soon as its gradient exists (NUMERICS.md §3-5). Inputs are ``input`` (the image codes)
and ``label`` (int32 ``[1]``); outputs are ``loss`` and the next value of every trained parameter.
Trained parameters are constants holding their initial values; each update op writes its ``.next``
output in place over the parameter (the op table's ``inplace``), so one step on a device is one pass
over the nodes. ``metadata["training"]`` records the scheme, the parameter -> next mapping and the
conv index of every trained layer.

Mini-batches (a scheme's ``batch`` B > 1): each update op is replaced by its accumulating twin
(``conv2d_bwd_w_accumulate``, ``bias_accumulate``, ``linear_f32_accumulate``) at the same place in
the schedule. It adds the sample's gradient to a float32 accumulator of the parameter's shape (a zero
constant named ``<param>.acc``, written in place like the parameter; ``metadata["training"]
["accumulators"]`` maps it to its next value) and, on the last sample of a batch (the step
context's ``batch_end``), applies one update from ``acc / B`` and zeroes the accumulator.

Only what the scheme's gradients need is emitted (pruning by construction): a tensor gets a
gradient only when a trained parameter lies upstream of it, a node saves its mask only when the
gradient passes through it, and a trained conv saves only its trained input channels.
:func:`eliminate_dead_code` then drops anything no output depends on.

The gradient rules are one table, :data:`GRAD_RULES`, one row per forward op.

Head precision: a scheme with ``head: fp32`` on a graph with an int8 head converts the head at
compile time (:func:`tte_ir.quant.dequantize_linear`): ``W_f = s_w*w``, ``b_f = s_x*s_w*b``, so the fp32
logits are the real value of the int8 head's accumulator, before its output rounding and clamp.
A scheme with ``head: int8`` trains the int8 head as a 1x1 conv (QAS, conv index ``n_convs``).

Linear layers before the head (LeNet's 120-84-10) are int8 and become the 1x1 convs they are
(:func:`_linear_as_conv`) whatever the scheme: their weights and biases train with QAS under the conv
indices :func:`tte_ir.scheme.conv_nodes` gives them, and gradients pass through them to the layers
before (the input gradient of a linear layer is its 1x1 conv's transposed conv).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tte_ir._ir import DType, Graph, GraphBuilder, Node, Op, QuantParams, TensorSpec
from tte_ir.ops import mask_bytes, node_attrs
from tte_ir.quant import (
    add_multipliers,
    avg_pool_multipliers,
    conv_multiplier,
    dequantize_linear,
    node_multipliers,
    pool_multiplier,
    qas_divisors,
)
from tte_ir.rounding import bias_tensor_id, weight_tensor_id
from tte_ir.scheme import Scheme, SchemeError, conv_nodes, is_depthwise, select_channels
from tte_ir.verify import verify

__all__ = [
    "GRAD_RULES",
    "LABEL",
    "LOSS",
    "NOT_DIFFERENTIABLE",
    "TrainedLayer",
    "build_training_graph",
    "eliminate_dead_code",
    "fp32_head",
    "training_info",
]

LABEL = "label"
LOSS = "loss"


@dataclass(frozen=True)
class TrainedLayer:
    """What trains in one conv (or the head): its scheme index, bias, and trained channels."""

    index: int
    bias: bool
    channels: tuple[int, ...] | None
    head: bool = False


_TRAINING_KEYS = ("scheme", "input", "label", "loss", "logits", "state")


def training_info(graph: Graph) -> dict[str, Any]:
    """The ``metadata["training"]`` record of a training graph; raise if ``graph`` is not one.

    A forward graph can carry a ``"training"`` record of another kind (``tte train`` wrote how it
    trained there), so the record's keys, not its presence, tell a compiled training graph."""
    info = graph.metadata.get("training")
    if (
        not isinstance(info, Mapping)
        or any(key not in info for key in _TRAINING_KEYS)
        or not isinstance(info["state"], Mapping)
    ):
        raise SchemeError(
            f"graph '{graph.name}' is a forward graph, not a compiled training graph: run `tte compile` first"
        )
    return dict(info)


def _head(graph: Graph) -> Node:
    head = graph.nodes[-1]
    if head.op is not Op.LINEAR or graph.outputs != head.outputs:
        raise SchemeError(f"graph '{graph.name}' must end in a linear classifier head whose output is the logits")
    return head


def fp32_head(graph: Graph) -> Graph:
    """``graph`` with its int8 classifier head turned into the fp32 head a scheme with ``head: fp32``
    trains: ``W_f = s_w*w``, ``b_f = s_x*s_w*b`` (:func:`tte_ir.quant.dequantize_linear`), so the fp32
    logits are the real value of the int8 head's accumulator. An fp32 head is returned unchanged. The
    one conversion: the compiler and the simulation (``tte train``) both call it."""
    head = graph.producer(graph.outputs[0])
    if head is None or head.op is not Op.LINEAR:
        raise SchemeError(f"graph '{graph.name}': the output is not written by a linear classifier head")
    x, w, b = (graph.tensors[n] for n in head.inputs)
    if w.dtype is DType.FLOAT32:
        return graph
    logits = graph.tensors[head.outputs[0]]
    w_f, b_f = dequantize_linear(
        graph.constants[w.name], w.quant.scale_array(), graph.constants[b.name], x.quant.tensor_scale
    )
    tensors = dict(graph.tensors)
    for spec in (w, b, logits):
        tensors[spec.name] = TensorSpec(spec.name, spec.shape, DType.FLOAT32)
    nodes = [n if n is not head else Node(head.name, Op.LINEAR, head.inputs, head.outputs) for n in graph.nodes]
    constants = {**graph.constants, w.name: w_f, b.name: b_f}
    return verify(graph.replace(nodes=nodes, tensors=tensors, constants=constants))


def _linear_as_conv(node: Node, tensors: dict[str, TensorSpec], constants: dict[str, np.ndarray]) -> list[Node]:
    """The int8 linear ``node`` as reshape -> 1x1 conv -> reshape (reference.linear_s8 is a 1x1 conv
    on a 1x1 map, so the codes are the same): the conv trains with QAS and passes gradients like any
    pointwise conv. The conv keeps the linear layer's name; ``tensors`` and ``constants`` are updated
    (the weight becomes ``<name>.w4`` [O, I, 1, 1])."""
    x, w = tensors[node.inputs[0]], tensors[node.inputs[1]]
    y = tensors[node.outputs[0]]
    out_channels, in_channels = w.shape
    x4, y4, w4 = f"{node.name}.x4", f"{node.name}.y4", f"{node.name}.w4"
    tensors[x4] = TensorSpec(x4, (1, in_channels, 1, 1), DType.INT8, x.quant)
    tensors[y4] = TensorSpec(y4, (1, out_channels, 1, 1), DType.INT8, y.quant)
    tensors[w4] = TensorSpec(w4, (out_channels, in_channels, 1, 1), DType.INT8, w.quant)
    constants[w4] = constants.pop(w.name).reshape(out_channels, in_channels, 1, 1)
    del tensors[w.name]
    # TFLite's FULLY_CONNECTED rounds once under requant fixed; the conv keeps the linear layer's rounding
    attrs = {**{k: v for k, v in node.attrs.items() if k in ("act_min", "act_max")}, "requant_rounding": "single"}
    return [
        Node(f"{node.name}.in", Op.RESHAPE, (x.name,), (x4,), {"shape": [1, in_channels, 1, 1]}),
        Node(node.name, Op.CONV2D, (x4, w4, node.inputs[2]), (y4,), attrs),
        Node(f"{node.name}.out", Op.RESHAPE, (y4,), (y.name,), {"shape": [1, out_channels]}),
    ]


def _prepare_linears(graph: Graph, scheme: Scheme) -> tuple[Graph, str | None]:
    """Apply the scheme's head precision and turn every int8 linear layer (the hidden ones, and the head
    when it trains as int8) into its 1x1 conv; return the graph and the int8 head's conv name (if any)."""
    head = _head(graph)
    if graph.tensors[head.inputs[1]].dtype is DType.FLOAT32:
        if scheme.head == "int8":
            raise SchemeError(f"graph '{graph.name}' has an fp32 head; a scheme with head 'int8' needs an int8 head")
    elif scheme.head == "fp32":
        graph = fp32_head(graph)
    int8 = {n.name for n in graph.nodes if n.op is Op.LINEAR and graph.tensors[n.inputs[1]].dtype is DType.INT8}
    if not int8:
        return graph, None
    tensors = dict(graph.tensors)
    constants = dict(graph.constants)
    nodes: list[Node] = []
    for node in graph.nodes:
        nodes += _linear_as_conv(node, tensors, constants) if node.name in int8 else [node]
    converted = verify(graph.replace(nodes=nodes, tensors=tensors, constants=constants))
    return converted, head.name if head.name in int8 else None


def _trained_layers(forward: Graph, graph: Graph, scheme: Scheme, int8_head: str | None) -> dict[str, TrainedLayer]:
    convs = conv_nodes(forward)
    layers: dict[str, TrainedLayer] = {}
    for index, node in enumerate(convs):
        ratio = scheme.ratio_of(index)
        channels = None
        if ratio:
            w = forward.constants[node.inputs[1]]
            depthwise = is_depthwise(forward, node)
            if node.op is Op.CONV2D and node_attrs(node)["groups"] != 1 and not depthwise:
                raise SchemeError(f"conv {index} ('{node.name}') is grouped; only dense, pointwise and depthwise train")
            channels = tuple(int(c) for c in select_channels(w, ratio, depthwise))
        bias = scheme.trains_bias(index, len(convs))
        if bias or channels:
            layers[node.name] = TrainedLayer(index, bias, channels)
    if scheme.train_head:
        head = int8_head or _head(graph).name
        full = None
        if int8_head:
            full = tuple(range(graph.tensors[graph.node(head).inputs[0]].shape[1]))
        layers[head] = TrainedLayer(len(convs), True, full, head=True)
    if not layers:
        raise SchemeError("the scheme trains nothing (no bias, no weights, head frozen)")
    return layers


class _Emitter:
    """Builds the training graph: forward with saves, loss, then the backward by :data:`GRAD_RULES`."""

    def __init__(self, graph: Graph, scheme: Scheme, layers: dict[str, TrainedLayer]) -> None:
        self.graph = graph
        self.scheme = scheme
        self.layers = layers
        self.b = GraphBuilder(f"{graph.name}.train", dict(graph.metadata))
        self.grads: dict[str, str] = {}
        self.masks: dict[str, str] = {}
        self.saved: dict[str, str] = {}
        self.slices: dict[str, str] = {}
        self.state: dict[str, str] = {}
        self.accumulators: dict[str, str] = {}
        self.split_pieces: dict[str, list[tuple[int, str]]] = {}  # channel splits' gradients awaiting their input's
        self.needs = self._needs_grad()

    def _needs_grad(self) -> dict[str, bool]:
        """A tensor needs a gradient iff a trained parameter lies upstream of it."""
        needs: dict[str, bool] = {}
        for node in self.graph.nodes:
            upstream = any(needs.get(x, False) for x in node.inputs)
            for y in node.outputs:
                needs[y] = node.name in self.layers or upstream
        return needs

    def need(self, tensor: str) -> bool:
        return self.needs.get(tensor, False)

    def spec(self, tensor: str):  # type: ignore[no-untyped-def]
        return self.b.spec(tensor)

    def grad_tensor(self, name: str, shape: tuple[int, ...]) -> str:
        return self.b.tensor(name, shape, DType.FLOAT32)

    def const(self, name: str, array: np.ndarray) -> str:
        return self.b.constant(name, array)

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while self.b.has(name):
            name, k = f"{base}{k}", k + 1
        return name

    def contribute(self, tensor: str, grad: str) -> None:
        """Record a gradient contribution for ``tensor``; fan-out contributions are summed."""
        existing = self.grads.get(tensor)
        if existing is None:
            self.grads[tensor] = grad
            return
        total = self.grad_tensor(self.fresh(f"{tensor}.grad"), self.spec(tensor).shape)
        self.b.node(f"{total}.acc", Op.ACCUMULATE, (existing, grad), (total,))
        self.grads[tensor] = total

    def update_attrs(self, layer: TrainedLayer, tensor_id: int) -> dict[str, Any]:
        return {
            "rounding": self.scheme.rounding,
            "seed": self.scheme.seed,
            "lr_group": "head" if layer.head else "body",
            "tensor_id": tensor_id,
        }

    def next_state(self, param: str) -> str:
        spec = self.spec(param)
        name = self.b.tensor(f"{param}.next", spec.shape, spec.dtype, spec.quant)
        self.state[param] = name
        self.b.output(name)
        return name

    @property
    def batch(self) -> int:
        """Samples per update (the scheme's ``batch``); above 1 every update accumulates first."""
        return self.scheme.batch

    def accumulator(self, param: str) -> tuple[str, str]:
        """The float32 gradient accumulator of ``param`` (a zero constant: persistent state beside the
        parameters, like them outside the arena) and its value after the step, a graph output."""
        spec = self.spec(param)
        acc = self.b.constant(f"{param}.acc", np.zeros(spec.shape, np.float32))
        nxt = self.b.tensor(f"{acc}.next", spec.shape, DType.FLOAT32)
        self.accumulators[acc] = nxt
        self.b.output(nxt)
        return acc, nxt

    # -- forward -------------------------------------------------------------------------------

    def forward(self) -> None:
        g = self.graph
        for name, spec in g.tensors.items():
            if name in g.inputs:
                self.b.input(name, spec.shape, spec.dtype, spec.quant)
            elif name in g.constants:
                self.b.constant(name, g.constants[name], spec.quant)
            else:
                self.b.tensor(name, spec.shape, spec.dtype, spec.quant)
        for node in g.nodes:
            self.forward_node(node)

    def forward_node(self, node: Node) -> None:
        attrs = dict(node.attrs)
        inputs = list(node.inputs)
        outputs = list(node.outputs)
        if node.op in (Op.CONV2D, Op.ADD, Op.GLOBAL_AVG_POOL, Op.AVG_POOL) and self.need(node.outputs[0]):
            mask = self.b.tensor(f"{node.name}.mask", (mask_bytes(self.spec(node.outputs[0]).numel),), DType.UINT8)
            attrs["save_mask"] = True
            outputs.append(mask)
            self.masks[node.name] = mask
        if node.op is Op.MAX_POOL and self.need(node.outputs[0]):
            # one byte per output (the arg-max's window offset) instead of keeping the int8 input alive
            index = self.b.tensor(f"{node.name}.index", self.spec(node.outputs[0]).shape, DType.UINT8)
            attrs["save_index"] = True
            outputs.append(index)
            self.masks[node.name] = index
        if node.op is Op.MUL and self.need(node.outputs[0]):  # its clamp mask; mul_bwd also reads a and b
            mask = self.b.tensor(f"{node.name}.mask", (mask_bytes(self.spec(node.outputs[0]).numel),), DType.UINT8)
            attrs["save_mask"] = True
            outputs.append(mask)
            self.masks[node.name] = mask
        layer = self.layers.get(node.name)
        if node.op is Op.CONV2D and layer is not None and layer.channels is not None:
            self.split_weight(node, layer, attrs, inputs)
        self.b.node(node.name, node.op, inputs, outputs, **attrs)
        if node.op is Op.CONV2D and layer is not None and layer.channels is not None:
            self.save_input(node, layer)

    def split_weight(self, node: Node, layer: TrainedLayer, attrs: dict[str, Any], inputs: list[str]) -> None:
        """The trained channels move to an SRAM slice ``w_train``; ``w`` stays whole in flash."""
        w = self.graph.constants[node.inputs[1]]
        depthwise = is_depthwise(self.graph, node)
        chans = list(layer.channels or ())
        part = w[chans] if depthwise else w[:, chans]
        quant = self.spec(node.inputs[1]).quant
        if depthwise:
            quant = QuantParams.per_channel(np.asarray(quant.scale)[chans])
        name = self.b.constant(f"{node.name}.w_train", np.ascontiguousarray(part), quant)
        self.slices[node.name] = name
        attrs["channels"] = chans
        inputs.append(name)

    def save_input(self, node: Node, layer: TrainedLayer) -> None:
        x = node.inputs[0]
        chans = list(layer.channels or ())
        if len(chans) == self.spec(x).shape[1]:
            self.saved[node.name] = x  # every channel trains: keep x itself alive
            return
        spec = self.spec(x)
        saved = self.b.tensor(f"{node.name}.x_saved", (1, len(chans), *spec.shape[2:]), DType.INT8, spec.quant)
        self.b.node(f"{node.name}.save", Op.GATHER_CHANNELS, (x,), (saved,), channels=chans)
        self.saved[node.name] = saved

    # -- loss and backward ---------------------------------------------------------------------

    def loss_and_backward(self) -> None:
        logits = self.graph.outputs[0]
        if not self.need(logits):
            raise SchemeError("the scheme trains nothing the loss depends on")
        label = self.b.input(LABEL, (1,), DType.INT32)
        loss = self.b.tensor(LOSS, (1,), DType.FLOAT32)
        g = self.grad_tensor(f"{logits}.grad", self.spec(logits).shape)
        self.b.node("loss", Op.SOFTMAX_CE, (logits, label), (loss, g))
        self.b.output(loss)
        self.grads[logits] = g
        for node in reversed(self.graph.nodes):
            if node.outputs[0] in self.grads:
                GRAD_RULES[node.op](self, node, self.grads.pop(node.outputs[0]))


# -- gradient rules (NUMERICS.md §4): one per forward op -------------------------------------------


def _grad_conv2d(e: _Emitter, node: Node, g: str) -> None:
    x, w, b = node.inputs[:3]
    xs, ws, ys = e.spec(x), e.spec(w), e.spec(node.outputs[0])
    attrs = node_attrs(node)
    layer = e.layers.get(node.name)
    mult = conv_multiplier(xs.quant.tensor_scale, ws.quant.scale_array(), ys.quant.tensor_scale)
    scale = e.const(f"{node.name}.M", mult)
    gh = e.grad_tensor(f"{node.name}.gh", ys.shape)
    e.b.node(f"{node.name}.mask_scale", Op.MASK_SCALE, (g, e.masks[node.name], scale), (gh,))
    inv_w = inv_b = None
    if layer is not None:
        bias = e.graph.constants[b]
        inv_w, inv_b = qas_divisors(xs.quant.tensor_scale, ws.quant.scale_array(), bias)
    if layer is not None and layer.bias:
        inv = e.const(f"{node.name}.inv_b", inv_b)
        attrs_b = e.update_attrs(layer, bias_tensor_id(layer.index))
        if e.batch > 1:
            acc, acc_next = e.accumulator(b)
            outs = (e.next_state(b), acc_next)
            e.b.node(f"{node.name}.bias_acc", Op.BIAS_ACCUMULATE, (gh, b, inv, acc), outs, batch=e.batch, **attrs_b)
        else:
            e.b.node(f"{node.name}.bias_update", Op.BIAS_UPDATE, (gh, b, inv), (e.next_state(b),), **attrs_b)
    geometry = {k: attrs[k] for k in ("stride", "padding", "groups")}
    w_train = e.slices.get(node.name)
    if e.need(x):
        existing = e.grads.pop(x, None)
        ins = [gh, w]
        extra: dict[str, Any] = {}
        if w_train:
            ins.append(w_train)
            extra["channels"] = list(layer.channels or ())
        if existing:
            ins.append(existing)
            extra["accumulate"] = True
        gx = e.grad_tensor(e.fresh(f"{x}.grad"), xs.shape)
        e.b.node(f"{node.name}.bwd_x", Op.CONV2D_BWD_X, ins, (gx,), size=list(xs.shape[2:]), **geometry, **extra)
        e.grads[x] = gx
    if w_train:
        inv = e.const(f"{node.name}.inv_w", inv_w)
        attrs_w = {
            "channels": list(layer.channels or ()),
            "weight_shape": list(ws.shape),
            **geometry,
            **e.update_attrs(layer, weight_tensor_id(layer.index)),
        }
        ins_w = (e.saved[node.name], gh, w_train, inv)
        if e.batch > 1:
            acc, acc_next = e.accumulator(w_train)
            outs_w = (e.next_state(w_train), acc_next)
            e.b.node(f"{node.name}.w_acc", Op.CONV2D_BWD_W_ACCUMULATE, (*ins_w, acc), outs_w, batch=e.batch, **attrs_w)
        else:
            e.b.node(f"{node.name}.w_update", Op.CONV2D_BWD_W_UPDATE, ins_w, (e.next_state(w_train),), **attrs_w)


def _grad_add(e: _Emitter, node: Node, g: str) -> None:
    a, b = node.inputs
    m1, m2 = add_multipliers(
        e.spec(a).quant.tensor_scale, e.spec(b).quant.tensor_scale, e.spec(node.outputs[0]).quant.tensor_scale
    )
    mask = e.masks[node.name]
    shape = e.spec(node.outputs[0]).shape
    if e.need(a) and e.need(b):
        ga = e.grad_tensor(e.fresh(f"{a}.grad"), shape)
        gb = e.grad_tensor(e.fresh(f"{b}.grad"), shape)
        e.b.node(f"{node.name}.bwd", Op.ADD_BWD, (g, mask), (ga, gb), m1=float(m1), m2=float(m2))
        e.contribute(a, ga)
        e.contribute(b, gb)
        return
    # One side frozen: the same math as mask_scale with a constant per-channel scale, in place.
    target, m = (a, m1) if e.need(a) else (b, m2)
    scale = e.const(f"{node.name}.m", np.full(shape[1], m, dtype=np.float32))
    gt = e.grad_tensor(e.fresh(f"{target}.grad"), shape)
    e.b.node(f"{node.name}.bwd", Op.MASK_SCALE, (g, mask, scale), (gt,))
    e.contribute(target, gt)


def _grad_pool(e: _Emitter, node: Node, g: str) -> None:
    x = node.inputs[0]
    xs = e.spec(x)
    m = pool_multiplier(xs.quant.tensor_scale, e.spec(node.outputs[0]).quant.tensor_scale, xs.shape[2] * xs.shape[3])
    gx = e.grad_tensor(e.fresh(f"{x}.grad"), xs.shape)
    e.b.node(f"{node.name}.bwd", Op.POOL_BWD, (g, e.masks[node.name]), (gx,), m=float(m), size=list(xs.shape[2:]))
    e.contribute(x, gx)


def _grad_reshape(e: _Emitter, node: Node, g: str) -> None:
    x = node.inputs[0]
    gx = e.grad_tensor(e.fresh(f"{x}.grad"), e.spec(x).shape)
    order = {k: v for k, v in node.attrs.items() if k == "order"}  # an "hwc" flatten's gradient unflattens "hwc"
    e.b.node(f"{node.name}.bwd", Op.RESHAPE, (g,), (gx,), shape=list(e.spec(x).shape), **order)
    e.contribute(x, gx)


def _grad_linear(e: _Emitter, node: Node, g: str) -> None:
    x, w, b = node.inputs
    if e.spec(w).dtype is not DType.FLOAT32:
        raise SchemeError(f"{node.describe()}: an int8 linear layer trains as a 1x1 conv (see _linear_as_conv)")
    layer = e.layers.get(node.name)
    fused = layer is not None and e.batch == 1  # a mini-batch accumulates in its own node, after gx
    outputs = []
    if fused:
        outputs += [e.next_state(w), e.next_state(b)]
    need_x = e.need(x)
    if need_x:
        gx = e.grad_tensor(e.fresh(f"{x}.grad"), e.spec(x).shape)
        outputs.append(gx)
    if outputs:
        e.b.node(
            f"{node.name}.bwd_update",
            Op.LINEAR_F32_BWD_UPDATE,
            (x, w, b, g),
            outputs,
            update=fused,
            input_grad=need_x,
        )
    if layer is not None and not fused:
        (acc_w, acc_w_next), (acc_b, acc_b_next) = e.accumulator(w), e.accumulator(b)
        e.b.node(
            f"{node.name}.acc",
            Op.LINEAR_F32_ACCUMULATE,
            (x, g, w, b, acc_w, acc_b),
            (e.next_state(w), e.next_state(b), acc_w_next, acc_b_next),
            batch=e.batch,
        )
    if need_x:
        e.contribute(x, gx)


def _pool_geometry(node: Node, x: TensorSpec) -> dict[str, Any]:
    attrs = node_attrs(node)
    return {
        "kernel": attrs["kernel"],
        "stride": attrs["stride"],
        "padding": attrs["padding"],
        "size": list(x.shape[2:]),
    }


def _grad_max_pool(e: _Emitter, node: Node, g: str) -> None:
    x = node.inputs[0]
    xs = e.spec(x)
    gx = e.grad_tensor(e.fresh(f"{x}.grad"), xs.shape)
    e.b.node(f"{node.name}.bwd", Op.MAX_POOL_BWD, (g, e.masks[node.name]), (gx,), **_pool_geometry(node, xs))
    e.contribute(x, gx)


def _grad_avg_pool(e: _Emitter, node: Node, g: str) -> None:
    x = node.inputs[0]
    xs = e.spec(x)
    attrs = node_attrs(node)
    m = avg_pool_multipliers(xs.quant.tensor_scale, e.spec(node.outputs[0]).quant.tensor_scale, attrs["kernel"])
    table = e.const(f"{node.name}.m", m)
    gx = e.grad_tensor(e.fresh(f"{x}.grad"), xs.shape)
    e.b.node(
        f"{node.name}.bwd",
        Op.AVG_POOL_BWD,
        (g, e.masks[node.name], table),
        (gx,),
        count_include_pad=attrs["count_include_pad"],
        **_pool_geometry(node, xs),
    )
    e.contribute(x, gx)


def _grad_lut(e: _Emitter, node: Node, g: str) -> None:
    """``gx = g * slope[x]``: the forward's input codes stay alive until here (they are what it saves)."""
    x = node.inputs[0]
    slope = e.const(f"{node.name}.slope", node_multipliers(e.graph, node)["slope"])
    gx = e.grad_tensor(e.fresh(f"{x}.grad"), e.spec(x).shape)
    e.b.node(f"{node.name}.bwd", Op.LUT_BWD, (g, x, slope), (gx,))
    e.contribute(x, gx)


def _grad_mul(e: _Emitter, node: Node, g: str) -> None:
    """Both input gradients in one node (either may be left out); it reads the saved mask and both
    inputs' codes, which stay alive until here."""
    a, b = node.inputs
    need_a, need_b = e.need(a), e.need(b)
    outputs = []
    if need_a:
        ga = e.grad_tensor(e.fresh(f"{a}.grad"), e.spec(a).shape)
        outputs.append(ga)
    if need_b:
        gb = e.grad_tensor(e.fresh(f"{b}.grad"), e.spec(b).shape)
        outputs.append(gb)
    m = float(node_multipliers(e.graph, node)["m"])
    e.b.node(f"{node.name}.bwd", Op.MUL_BWD, (g, e.masks[node.name], a, b), outputs, m=m, grad_a=need_a, grad_b=need_b)
    if need_a:
        e.contribute(a, ga)
    if need_b:
        e.contribute(b, gb)


def _grad_concat(e: _Emitter, node: Node, g: str) -> None:
    """Each input's gradient is its channel range of ``g`` (a float32 channel split: a copy, or a view)."""
    a, b = node.inputs
    a_channels = e.spec(a).shape[1]
    for x, start in ((a, 0), (b, a_channels)):
        if not e.need(x):
            continue
        shape = e.spec(x).shape
        gx = e.grad_tensor(e.fresh(f"{x}.grad"), shape)
        e.b.node(
            f"{node.name}.bwd_{'a' if x == a else 'b'}", Op.CHANNEL_SPLIT, (g,), (gx,), start=start, count=shape[1]
        )
        e.contribute(x, gx)


def _grad_channel_shuffle(e: _Emitter, node: Node, g: str) -> None:
    """The inverse permutation: the shuffle with ``C / groups`` groups."""
    x = node.inputs[0]
    shape = e.spec(x).shape
    gx = e.grad_tensor(e.fresh(f"{x}.grad"), shape)
    e.b.node(f"{node.name}.bwd", Op.CHANNEL_SHUFFLE, (g,), (gx,), groups=shape[1] // node_attrs(node)["groups"])
    e.contribute(x, gx)


def _grad_channel_split(e: _Emitter, node: Node, g: str) -> None:
    """The splits of one input are differentiated together, when the earliest of them with a gradient
    comes up: two that tile the input (``x.chunk(2, dim=1)``) give its gradient as one concat of theirs;
    anything else writes each range into the input's gradient (``channel_insert``, the first into zeros
    or into the gradient the input already has, the others added in place)."""
    x = node.inputs[0]
    pieces = e.split_pieces.setdefault(x, [])
    pieces.append((int(node_attrs(node)["start"]), g))
    earlier = e.graph.nodes[: e.graph.nodes.index(node)]
    if any(n.op is Op.CHANNEL_SPLIT and n.inputs[0] == x and n.outputs[0] in e.grads for n in earlier):
        return
    del e.split_pieces[x]
    pieces.sort()
    shape = e.spec(x).shape
    counts = [e.spec(piece).shape[1] for _, piece in pieces]
    if len(pieces) == 2 and pieces[0][0] == 0 and pieces[1][0] == counts[0] and sum(counts) == shape[1]:
        gx = e.grad_tensor(e.fresh(f"{x}.grad"), shape)
        e.b.node(f"{node.name}.bwd", Op.CONCAT, (pieces[0][1], pieces[1][1]), (gx,))
        e.contribute(x, gx)
        return
    existing = e.grads.pop(x, None)
    for k, (start, piece) in enumerate(pieces):
        ins, extra = [piece], {}
        if existing is not None:
            ins.append(existing)
            extra["accumulate"] = True
        gx = e.grad_tensor(e.fresh(f"{x}.grad"), shape)
        e.b.node(f"{node.name}.bwd{k}", Op.CHANNEL_INSERT, ins, (gx,), start=start, channels=shape[1], **extra)
        existing = gx
    e.grads[x] = existing


GRAD_RULES: Mapping[Op, Callable[[_Emitter, Node, str], None]] = {
    Op.CONV2D: _grad_conv2d,
    Op.ADD: _grad_add,
    Op.GLOBAL_AVG_POOL: _grad_pool,
    Op.RESHAPE: _grad_reshape,
    Op.LINEAR: _grad_linear,
    Op.MAX_POOL: _grad_max_pool,
    Op.AVG_POOL: _grad_avg_pool,
    Op.LUT: _grad_lut,
    Op.MUL: _grad_mul,
    Op.CONCAT: _grad_concat,
    Op.CHANNEL_SPLIT: _grad_channel_split,
    Op.CHANNEL_SHUFFLE: _grad_channel_shuffle,
}

NOT_DIFFERENTIABLE = frozenset(
    {
        Op.GATHER_CHANNELS, Op.SOFTMAX_CE, Op.MASK_SCALE, Op.ADD_BWD, Op.POOL_BWD, Op.CONV2D_BWD_X,
        Op.CONV2D_BWD_W_UPDATE, Op.BIAS_UPDATE, Op.LINEAR_F32_BWD_UPDATE, Op.ACCUMULATE, Op.MAX_POOL_BWD,
        Op.AVG_POOL_BWD,
        Op.LUT_BWD, Op.MUL_BWD,
        Op.CONV2D_BWD_W_ACCUMULATE, Op.BIAS_ACCUMULATE, Op.LINEAR_F32_ACCUMULATE,
        Op.CHANNEL_INSERT,
    }
)  # fmt: skip
"""The training ops: :func:`build_training_graph` emits them and never differentiates them (their
gradients are what they compute). Every other op has a row in :data:`GRAD_RULES`."""


def eliminate_dead_code(graph: Graph) -> Graph:
    """Drop nodes no graph output depends on, then tensors and constants nothing reads."""
    live = set(graph.outputs)
    kept: list[Node] = []
    for node in reversed(graph.nodes):
        if any(out in live for out in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    kept.reverse()
    used = set(graph.inputs) | set(graph.outputs)
    for node in kept:
        used.update(node.inputs)
        used.update(node.outputs)
    tensors = {k: v for k, v in graph.tensors.items() if k in used}
    constants = {k: v for k, v in graph.constants.items() if k in used}
    return verify(graph.replace(nodes=kept, tensors=tensors, constants=constants))


def build_training_graph(forward: Graph, scheme: Scheme) -> Graph:
    """The verified training-step graph of ``forward`` under ``scheme`` (see the module docstring)."""
    verify(forward)
    scheme.validate_for(forward)
    if scheme.rounding not in ("nearest", "stochastic"):
        raise SchemeError(f"rounding '{scheme.rounding}' is simulation only; the device rounds nearest or stochastic")
    if scheme.momentum:
        raise SchemeError("momentum is not compiled yet (plain SGD, the paper's on-device setting); set momentum 0")
    graph, int8_head = _prepare_linears(forward, scheme)
    layers = _trained_layers(forward, graph, scheme, int8_head)
    e = _Emitter(graph, scheme, layers)
    e.forward()
    e.loss_and_backward()
    e.b.metadata["training"] = {
        "forward": forward.name,
        "scheme": scheme.to_json(),
        "input": graph.inputs[0],
        "label": LABEL,
        "loss": LOSS,
        "logits": graph.outputs[0],
        "state": dict(e.state),
        "accumulators": dict(e.accumulators),
        "layers": {
            name: {"index": layer.index, "bias": layer.bias, "channels": list(layer.channels or []), "head": layer.head}
            for name, layer in layers.items()
        },
    }
    return eliminate_dead_code(e.b.build())
