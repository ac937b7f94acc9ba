"""A training graph as C: arena pointers, constant arrays and one engine kernel call per node.

:func:`lower` turns a compiled training graph (``tte compile``) into a :class:`CModel`, the plain data
the jinja2 templates print. Every activation, saved tensor, mask, gradient and scratch buffer is a
pointer into one static arena at the offset the memory planner (:func:`tte_ir.memory.memory_report`)
assigned; nothing here computes an offset. Frozen constants become ``const`` arrays (flash); the
trained parameters (weight slices, biases, the fp32 head) are writable arrays (SRAM) that the update
kernels change in place. Constants are permuted into the engine's layouts by :mod:`tte_ir.layout`.

Each op has one emitter in :data:`EMITTERS`; a node whose op has none, or whose kernel the engine's
headers do not declare, is refused with a :class:`CodegenError` that names the node and the op.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tte_ir import DType, Graph, Node, Op, TteError, node_attrs, node_macs
from tte_ir.autodiff import training_info
from tte_ir.constants import INT32_MAX, INT32_MIN
from tte_ir.layout import conv_kernel, engine_shape
from tte_ir.memory import MemoryReport, memory_report
from tte_ir.ops import OP_TABLE, node_roles
from tte_ir.quant import node_multipliers

__all__ = ["EMITTERS", "CArray", "CBlock", "CModel", "CTensor", "CodegenError", "ParamLayout", "lower"]

_C_INT32_MIN = f"(-{INT32_MAX} - 1)"  # C has no INT32_MIN literal: its magnitude does not fit int32
_CTYPES = {DType.INT8: "int8_t", DType.INT32: "int32_t", DType.FLOAT32: "float", DType.UINT8: "uint8_t"}


class CodegenError(TteError):
    """A training graph that cannot become C for this engine (an op without a kernel, a layout the
    engine cannot run)."""


@dataclass(frozen=True)
class ParamLayout:
    """Where one trained parameter sits in the exported parameter blob, and how to read it back:
    ``blob[offset:offset+nbytes]`` viewed as ``dtype``, reshaped to ``engine_shape``, transposed by
    ``to_ir_axes`` and reshaped to ``ir_shape`` is the IR tensor."""

    tensor: str
    dtype: str
    ir_shape: tuple[int, ...]
    engine_shape: tuple[int, ...]
    to_ir_axes: tuple[int, ...]
    offset: int
    nbytes: int

    def to_ir(self, blob: bytes | np.ndarray) -> np.ndarray:
        """This parameter's IR array out of an exported blob."""
        raw = np.frombuffer(bytes(blob[self.offset : self.offset + self.nbytes]), dtype=self.dtype)
        return np.ascontiguousarray(raw.reshape(self.engine_shape).transpose(self.to_ir_axes).reshape(self.ir_shape))

    def to_engine(self, array: np.ndarray) -> bytes:
        """The blob bytes of an IR array of this parameter."""
        inverse = tuple(int(a) for a in np.argsort(self.to_ir_axes))
        folded = np.asarray(array, dtype=self.dtype).reshape(tuple(self.engine_shape[a] for a in self.to_ir_axes))
        return np.ascontiguousarray(folded.transpose(inverse)).tobytes()


@dataclass(frozen=True)
class CArray:
    """A constant or trained-parameter array: ``ident`` is its C name, ``values`` its flat contents
    in the engine's layout; ``sram`` arrays are writable (trained), the others ``const`` (flash)."""

    ident: str
    ctype: str
    values: np.ndarray
    sram: bool
    comment: str


@dataclass(frozen=True)
class CTensor:
    """An arena tensor: its pointer macro ``ident`` at byte ``offset`` of the arena."""

    ident: str
    ctype: str
    offset: int
    comment: str


@dataclass(frozen=True)
class CBlock:
    """The C statements of one node, or of one tiled group of nodes (a loop over its tiles)."""

    nodes: tuple[str, ...]
    code: str
    macs: int


@dataclass(frozen=True)
class CModel:
    """Everything the templates print for one training graph."""

    name: str
    graph: str
    report: MemoryReport
    arena_bytes: int
    tensors: tuple[CTensor, ...]
    arrays: tuple[CArray, ...]
    descriptors: tuple[str, ...]
    rows: tuple[str, ...]  # row-band tables of the row-tiled groups
    forward: tuple[CBlock, ...]  # the nodes before the loss: inference
    backward: tuple[CBlock, ...]  # the loss and everything after it
    params: tuple[tuple[ParamLayout, str], ...]  # (layout, array ident) in blob order
    input_shape: tuple[int, ...]  # IR shape [1, C, H, W]
    input: str  # pointer expression of the input image's arena slot
    logits: str  # pointer expression of the logits
    logits_ctype: str
    classes: int
    loss: str  # pointer expression of the loss
    lr: float
    head_lr: float
    seed: int
    kernels: tuple[str, ...] = field(default=())

    @property
    def param_bytes(self) -> int:
        """Bytes of the exported parameter blob."""
        return sum(p.nbytes for p, _ in self.params)


def c_ident(name: str) -> str:
    """A C identifier for a tensor or node name (``blocks.8.pw1.w`` -> ``blocks_8_pw1_w``)."""
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return f"_{ident}" if ident[:1].isdigit() else ident


def c_literal(value: Any, ctype: str) -> str:
    """An exact C literal: floats in hexadecimal (bit exact), INT32_MIN spelled out."""
    if ctype == "float":
        v = float(np.float32(value))
        if np.isnan(v):
            return "NAN"
        if np.isinf(v):
            return "INFINITY" if v > 0 else "-INFINITY"
        return f"{v.hex()}f" if v != 0 else ("-0.0f" if np.signbit(v) else "0.0f")
    v = int(value)
    if ctype == "int32_t" and v == INT32_MIN:
        return _C_INT32_MIN
    return str(v)


def c_values(values: np.ndarray, ctype: str, per_line: int) -> list[str]:
    """Initializer lines of an array."""
    flat = np.asarray(values).ravel()
    if ctype == "float":
        items = [c_literal(v, ctype) for v in flat.tolist()]
    else:
        items = [str(v) for v in flat.astype(np.int64).tolist()]
        if ctype == "int32_t":
            items = [_C_INT32_MIN if s == str(INT32_MIN) else s for s in items]
    return [", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line)]


def _aliases(graph: Graph) -> dict[str, str]:
    """Every tensor's storage owner: in-place outputs share their input's storage (the op table)."""
    owner: dict[str, str] = {}
    for node in graph.nodes:
        ins, outs = node_roles(node)
        for out_role, in_role in OP_TABLE[node.op].inplace.items():
            if out_role in outs and in_role in ins:
                owner[outs[out_role]] = owner.get(ins[in_role], ins[in_role])
    return owner


def _conv_geometry(graph: Graph, node: Node, weight: str) -> tuple[int, dict[str, int]]:
    """Input channels and geometry of the conv (forward or backward) that reads ``weight``."""
    attrs = node_attrs(node)
    geometry = {k: attrs[k] for k in ("stride", "padding", "groups")}
    w_shape = graph.tensors[weight].shape
    if node.op is Op.CONV2D:
        return graph.tensors[node.inputs[0]].shape[1], geometry
    if node.op is Op.CONV2D_BWD_W_UPDATE:
        full = attrs["weight_shape"]
        return full[1] * attrs["groups"], geometry
    return w_shape[1] * attrs["groups"], geometry


def _weight_layout(graph: Graph, tensor: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """A 4-D conv weight (or trained slice) in its kernel's layout, and the axes back to IR order."""
    array = np.asarray(graph.constants[tensor])
    for node in graph.consumers(tensor):
        ins, _ = node_roles(node)
        role = next(r for r, t in ins.items() if t == tensor)
        channels, geometry = _conv_geometry(graph, node, tensor)
        if role == "w_train":
            depthwise = geometry["groups"] > 1
            k = array.shape[0] if depthwise else array.shape[1]
            geometry = {**geometry, "groups": k if depthwise else 1}
            channels = k
        _, engine, _ = conv_kernel(array, channels, **geometry)
        if engine.ndim == 3:  # depthwise [KH][KW][C] from [C, 1, KH, KW]
            return engine, (2, 0, 1)
        if engine.ndim == 2:  # pointwise [O][C] from [O, C, 1, 1]
            return engine, (0, 1)
        return engine, (0, 3, 1, 2)  # dense OHWI from OIHW
    raise CodegenError(f"conv weight '{tensor}' is read by no conv")


class _Lowering:
    """Per-graph state of :func:`lower`: the plan, the arrays emitted so far, the descriptors."""

    def __init__(self, graph: Graph, declared: frozenset[str] | None) -> None:
        self.graph = graph
        self.info = training_info(graph)
        # The image lives in the arena: its bytes serve later tensors once the first layers have read it.
        self.report = memory_report(graph, input_in_arena=True)
        self.declared = declared
        self.owner = _aliases(graph)
        self.buffer_of = {t: buf.name for buf in self.report.plan.buffers for t in buf.tensors}
        self.state = set(self.info["state"])
        self.arrays: dict[str, CArray] = {}
        self.array_of: dict[str, str] = {}
        self.by_content: dict[tuple[str, bytes], str] = {}
        self.layouts: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self.tensors: dict[str, CTensor] = {}
        self.descriptors: list[str] = []
        self.descriptor_of: dict[tuple[str, str], str] = {}
        self.kernels: list[str] = []
        self.idents: set[str] = set()

    # -- names ---------------------------------------------------------------------------------

    def unique(self, base: str) -> str:
        ident, k = base, 1
        while ident in self.idents:
            ident, k = f"{base}_{k}", k + 1
        self.idents.add(ident)
        return ident

    # -- arrays --------------------------------------------------------------------------------

    def array(self, ident_base: str, values: np.ndarray, ctype: str, *, sram: bool, comment: str) -> str:
        """Add an array; identical frozen arrays are emitted once."""
        values = np.ascontiguousarray(values)
        key = (ctype, values.tobytes())
        if not sram and key in self.by_content:
            return self.by_content[key]
        ident = self.unique(f"{'p' if sram else 'c'}_{c_ident(ident_base)}")
        self.arrays[ident] = CArray(ident, ctype, values, sram, comment)
        if not sram:
            self.by_content[key] = ident
        return ident

    def constant(self, tensor: str) -> str:
        """The C array of a graph constant (in its kernel's layout); trained parameters live in SRAM."""
        if tensor in self.array_of:
            return self.array_of[tensor]
        spec = self.graph.tensors[tensor]
        data = np.asarray(self.graph.constants[tensor])
        axes: tuple[int, ...] = tuple(range(data.ndim))
        if data.ndim == 4 and spec.dtype is DType.INT8:
            data, axes = _weight_layout(self.graph, tensor)
        shape = "][".join(map(str, data.shape))
        sram = tensor in self.state
        where = "trained, SRAM" if sram else "frozen, flash"
        comment = f"{tensor}: {spec.dtype.name.lower()} [{shape}] ({where})"
        ident = self.array(tensor, data, _CTYPES[spec.dtype], sram=sram, comment=comment)
        self.array_of[tensor] = ident
        self.layouts[tensor] = (tuple(data.shape), axes)
        return ident

    def derived(self, node: Node, what: str, values: np.ndarray) -> str:
        """A float32 constant computed at compile time for a kernel (multipliers, NUMERICS.md §1)."""
        values = np.asarray(values, dtype=np.float32).ravel()
        return self.array(
            f"{node.name}.{what}", values, "float", sram=False, comment=f"{node.name}: {what} [{values.size}]"
        )

    # -- tensors -------------------------------------------------------------------------------

    def ptr(self, tensor: str) -> str:
        """The C expression of a tensor's data pointer."""
        root = self.owner.get(tensor, tensor)
        if root == self.info["label"]:
            return "label"
        if root in self.graph.constants:
            return self.constant(root)
        if tensor in self.tensors:
            return self.tensors[tensor].ident
        buffer = self.buffer_of.get(tensor) or self.buffer_of.get(root)
        if buffer is None:
            raise CodegenError(f"tensor '{tensor}' has no place in the memory plan")
        spec = self.graph.tensors[tensor]
        shape = "][".join(map(str, engine_shape(spec.shape) if len(spec.shape) in (2, 4) else spec.shape))
        offset = self.report.plan.offsets[buffer]
        ident = self.unique(f"T_{c_ident(tensor)}")
        comment = f"{tensor}: {spec.dtype.name.lower()} [{shape}], {spec.nbytes} B at arena offset {offset}"
        self.tensors[tensor] = CTensor(ident, _CTYPES[spec.dtype], offset, comment)
        return ident

    def optional(self, roles: Mapping[str, str], role: str) -> str:
        return self.ptr(roles[role]) if role in roles else "NULL"

    def scratch(self, node: Node) -> str:
        name = f"{node.name}.scratch"
        if name not in self.report.plan.offsets:
            return "NULL"
        return f"(void *)(tte_arena.bytes + {self.report.plan.offsets[name]})"

    # -- calls ---------------------------------------------------------------------------------

    def descriptor(self, node: Node, ctype: str, fields: Mapping[str, Any], name: str | None = None) -> str:
        """A ``static const`` kernel descriptor (identical ones are shared), named after ``node`` or
        ``name``; returns its address."""
        body = ", ".join(f".{k} = {v}" for k, v in fields.items())
        key = (ctype, body)
        if key not in self.descriptor_of:
            ident = self.unique(f"d_{c_ident(name or node.name)}")
            self.descriptors.append(f"static const {ctype} {ident} = {{{body}}};")
            self.descriptor_of[key] = ident
        return f"&{self.descriptor_of[key]}"

    def channel_list(self, node: Node, channels: list[int]) -> str:
        """A ``static const int32_t`` list of trained channels (shared when identical)."""
        key = ("int32_t[]", ", ".join(map(str, channels)))
        if key not in self.descriptor_of:
            ident = self.unique(f"ch_{c_ident(node.name)}")
            self.descriptors.append(f"static const int32_t {ident}[{len(channels)}] = {{{key[1]}}};")
            self.descriptor_of[key] = ident
        return self.descriptor_of[key]

    def kernel(self, node: Node, name: str) -> str:
        """The C function of a kernel, checked against the engine's headers."""
        function = f"tte_{name}"
        if self.declared is not None and function not in self.declared:
            raise CodegenError(
                f"{node.describe()}: the engine has no kernel '{function}' for op '{node.op.name.lower()}' "
                "(its headers do not declare it)"
            )
        if function not in self.kernels:
            self.kernels.append(function)
        return function

    def call(self, node: Node, name: str, *args: str) -> str:
        """One checked kernel call: on an error the step stops and names the node."""
        return f'TTE_MODEL_TRY("{node.name}", {self.kernel(node, name)}({", ".join(args)}));'


# -- tiles -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tile:
    """The group a node runs in: ``internal`` tensors hold one band (rows or channels); ``position``
    maps each tensor produced in the group to its producer's index (its entry of the row table)."""

    axis: str
    internal: frozenset[str]
    position: Mapping[str, int]


def _hwc(spec_shape: tuple[int, ...]) -> tuple[int, int]:
    """(pixels, channels) of a [1, C, H, W] or [1, C] tensor."""
    if len(spec_shape) == 4:
        return spec_shape[2] * spec_shape[3], spec_shape[1]
    return 1, spec_shape[1]


def _zero(graph: Graph, tensor: str) -> int:
    quant = graph.tensors[tensor].quant
    return quant.zero_point if quant is not None else 0


def _row_bytes(graph: Graph, tensor: str) -> int:
    _, channels, _, width = graph.tensors[tensor].shape
    return channels * width


def _band(tile: _Tile | None, tensor: str) -> str:
    return "&band" if tile is not None and tile.axis == "channels" and tensor in tile.internal else "NULL"


def _conv_fields(
    lw: _Lowering,
    node: Node,
    *,
    size: tuple[int, int],
    in_c: int,
    w_shape: tuple[int, ...],
    x_zero: int = 0,
    y_zero: int = 0,
    act: tuple[int, int] = (-128, 127),
) -> dict[str, Any]:
    attrs = node_attrs(node)
    channels = attrs.get("channels")
    fields: dict[str, Any] = {
        "in_h": size[0],
        "in_w": size[1],
        "in_c": in_c,
        "out_c": w_shape[0],
        "kernel_h": w_shape[2],
        "kernel_w": w_shape[3],
        "stride": attrs["stride"],
        "padding": attrs["padding"],
        "groups": attrs["groups"],
        "x_zero": x_zero,
        "y_zero": y_zero,
        "act_min": act[0],
        "act_max": act[1],
    }
    if channels:  # the trained slice w_train replaces these channels of w
        fields["train_channels"] = lw.channel_list(node, list(channels))
        fields["train_count"] = len(channels)
    return fields


def _conv_variant(graph: Graph, node: Node, in_c: int, w_shape: tuple[int, ...]) -> str:
    """dense, depthwise or pointwise: the engine kernel family of a conv (tte_ir.layout.conv_kernel)."""
    attrs = node_attrs(node)
    probe = np.zeros(w_shape, dtype=np.int8)
    name, _, _ = conv_kernel(probe, in_c, stride=attrs["stride"], padding=attrs["padding"], groups=attrs["groups"])
    return name.removesuffix("_fwd_s8")


# -- emitters: one per op --------------------------------------------------------------------------


def _emit_conv2d(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    g = lw.graph
    x = g.tensors[ins["x"]]
    w_shape = g.tensors[ins["w"]].shape
    fields = _conv_fields(
        lw,
        node,
        size=(x.shape[2], x.shape[3]),
        in_c=x.shape[1],
        w_shape=w_shape,
        x_zero=_zero(g, ins["x"]),
        y_zero=_zero(g, outs["y"]),
        act=(attrs["act_min"], attrs["act_max"]),
    )
    desc = lw.descriptor(node, "tte_conv2d_params", fields)
    m = lw.derived(node, "multiplier", node_multipliers(g, node)["multiplier"])
    y, rows = lw.ptr(outs["y"]), "NULL"
    if tile is not None:
        k = tile.position[outs["y"]]
        rows = f"&r[{k}]"
        if outs["y"] not in tile.internal:
            y = f"{y} + r[{k}].y_row * {_row_bytes(g, outs['y'])}"
    kernel = f"{_conv_variant(g, node, x.shape[1], w_shape)}_fwd_s8"
    w_train = lw.constant(ins["w_train"]) if "w_train" in ins else "NULL"
    args = (desc, lw.ptr(ins["x"]), lw.constant(ins["w"]), w_train, lw.constant(ins["b"]), m, y)
    return lw.call(node, kernel, *args, lw.optional(outs, "mask"), rows, lw.scratch(node))


def _emit_add(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    ins, outs = node_roles(node)
    g = lw.graph
    m = node_multipliers(g, node)
    attrs = node_attrs(node)
    fields = {
        "size": g.tensors[outs["y"]].numel,
        "m1": c_literal(m["m1"], "float"),
        "m2": c_literal(m["m2"], "float"),
        "z1": _zero(g, ins["a"]),
        "z2": _zero(g, ins["b"]),
        "y_zero": _zero(g, outs["y"]),
        "act_min": attrs["act_min"],
        "act_max": attrs["act_max"],
    }
    desc = lw.descriptor(node, "tte_add_params", fields)
    operands = [lw.ptr(ins["a"]), lw.ptr(ins["b"]), lw.ptr(outs["y"])]
    if tile is None:
        return lw.call(node, "add_fwd_s8", desc, *operands, lw.optional(outs, "mask"))
    # A row band of an elementwise op: the same rows of every operand, each from where its buffer starts.
    k = tile.position[outs["y"]]
    row = _row_bytes(g, outs["y"])
    for i, tensor in enumerate((ins["a"], ins["b"], outs["y"])):
        start = f"r[{tile.position[tensor]}].y_row" if tensor in tile.internal else "0"
        operands[i] = f"{operands[i]} + (r[{k}].y_row - {start}) * {row}"
    call = lw.call(node, "add_fwd_s8", "&p", *operands, "NULL")
    return f"{{\n    tte_add_params p = *{desc};\n    p.size = r[{k}].y_rows * {row};\n    {call}\n}}"


def _emit_pool(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    ins, outs = node_roles(node)
    g = lw.graph
    x = g.tensors[ins["x"]]
    fields = {
        "in_h": x.shape[2],
        "in_w": x.shape[3],
        "in_c": x.shape[1],
        "multiplier": c_literal(node_multipliers(g, node)["multiplier"], "float"),
        "x_zero": _zero(g, ins["x"]),
        "y_zero": _zero(g, outs["y"]),
    }
    desc = lw.descriptor(node, "tte_global_avg_pool_params", fields)
    args = (desc, lw.ptr(ins["x"]), lw.ptr(outs["y"]), lw.optional(outs, "mask"))
    return lw.call(node, "global_avg_pool_fwd_s8", *args)


def _linear_f32_desc(lw: _Lowering, node: Node, x: str, w_shape: tuple[int, ...]) -> str:
    fields = {
        "in_features": w_shape[1],
        "out_features": w_shape[0],
        "x_scale": c_literal(lw.graph.tensors[x].quant.tensor_scale, "float"),
        "x_zero": _zero(lw.graph, x),
    }
    return lw.descriptor(node, "tte_linear_f32_params", fields)


def _emit_linear(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    ins, outs = node_roles(node)
    g = lw.graph
    w = g.tensors[ins["w"]]
    weights = (lw.constant(ins["w"]), lw.constant(ins["b"]))
    if w.dtype is DType.FLOAT32:
        desc = _linear_f32_desc(lw, node, ins["x"], w.shape)
        return lw.call(node, "linear_fwd_f32", desc, lw.ptr(ins["x"]), *weights, lw.ptr(outs["y"]))
    attrs = node_attrs(node)
    fields = {
        "in_features": w.shape[1],
        "out_features": w.shape[0],
        "x_zero": _zero(g, ins["x"]),
        "y_zero": _zero(g, outs["y"]),
        "act_min": attrs["act_min"],
        "act_max": attrs["act_max"],
    }
    desc = lw.descriptor(node, "tte_linear_params", fields)
    m = lw.derived(node, "multiplier", node_multipliers(g, node)["multiplier"])
    args = (desc, lw.ptr(ins["x"]), *weights, m, lw.ptr(outs["y"]), lw.optional(outs, "mask"))
    return lw.call(node, "linear_fwd_s8", *args)


def _emit_reshape(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    shape = lw.graph.tensors[node.inputs[0]].shape
    # HWC and NCHW order agree only when the spatial map or the channels are a single element.
    if len(shape) == 4 and shape[1] > 1 and shape[2] * shape[3] > 1:
        raise CodegenError(f"{node.describe()}: reshaping {list(shape)} would reorder data in the engine's HWC layout")
    return f"/* {node.name}: a view, the output shares the input's storage */"


def _emit_gather(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    x = lw.graph.tensors[node.inputs[0]]
    channels = list(node_attrs(node)["channels"])
    pixels, in_c = _hwc(x.shape)
    fields = {
        "pixels": pixels,
        "in_c": in_c,
        "channels": lw.channel_list(node, channels),
        "count": len(channels),
    }
    desc = lw.descriptor(node, "tte_gather_params", fields)
    return lw.call(node, "gather_channels_s8", desc, lw.ptr(node.inputs[0]), lw.ptr(node.outputs[0]))


def _emit_softmax_ce(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    ins, outs = node_roles(node)
    logits = lw.graph.tensors[ins["logits"]]
    fields: dict[str, Any] = {"classes": logits.shape[1]}
    kernel = "softmax_ce_f32"
    if logits.dtype is DType.INT8:
        fields.update(scale=c_literal(logits.quant.tensor_scale, "float"), zero=logits.quant.zero_point)
        kernel = "softmax_ce_s8"
    desc = lw.descriptor(node, "tte_softmax_ce_params", fields)
    args = (desc, "ctx", lw.ptr(ins["logits"]), "label", lw.ptr(outs["loss"]), lw.ptr(outs["g"]))
    return lw.call(node, kernel, *args)


def _hwc_desc(lw: _Lowering, node: Node, tensor: str) -> str:
    pixels, channels = _hwc(lw.graph.tensors[tensor].shape)
    fields = {"pixels": pixels, "channels": channels}
    return lw.descriptor(node, "tte_hwc_params", fields, name=f"hwc_{pixels}x{channels}")


def _emit_mask_scale(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    ins, outs = node_roles(node)
    desc = _hwc_desc(lw, node, ins["g"])
    args = (desc, lw.ptr(ins["g"]), lw.ptr(ins["mask"]), lw.constant(ins["scale"]), lw.ptr(outs["gh"]))
    return lw.call(node, "mask_scale_f32", *args, _band(tile, ins["g"]))


def _emit_add_bwd(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    fields = {
        "size": lw.graph.tensors[ins["g"]].numel,
        "m1": c_literal(attrs["m1"], "float"),
        "m2": c_literal(attrs["m2"], "float"),
    }
    desc = lw.descriptor(node, "tte_add_bwd_params", fields)
    args = (desc, lw.ptr(ins["g"]), lw.ptr(ins["mask"]), lw.ptr(outs["ga"]), lw.ptr(outs["gb"]))
    return lw.call(node, "add_bwd_f32", *args)


def _emit_pool_bwd(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    height, width = attrs["size"]
    fields = {
        "in_h": height,
        "in_w": width,
        "in_c": lw.graph.tensors[ins["g"]].shape[1],
        "multiplier": c_literal(attrs["m"], "float"),
    }
    desc = lw.descriptor(node, "tte_global_avg_pool_bwd_params", fields)
    args = (desc, lw.ptr(ins["g"]), lw.ptr(ins["mask"]), lw.ptr(outs["gx"]))
    return lw.call(node, "global_avg_pool_bwd_f32", *args)


def _emit_conv2d_bwd_x(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    w_shape = lw.graph.tensors[ins["w"]].shape
    in_c = w_shape[1] * attrs["groups"]
    fields = _conv_fields(lw, node, size=tuple(attrs["size"]), in_c=in_c, w_shape=w_shape)
    desc = lw.descriptor(node, "tte_conv2d_params", fields)
    kernel = f"{_conv_variant(lw.graph, node, in_c, w_shape)}_bwd_x_f32"
    accumulate = "1" if attrs["accumulate"] else "0"
    chunked_in = tile is not None and tile.axis == "channels" and ins["gh"] in tile.internal
    if chunked_in and outs["gx"] not in tile.internal and not attrs["accumulate"]:
        accumulate = "band.begin > 0"  # the bands of gh add up into the whole gx, in ascending order
    w_train = lw.constant(ins["w_train"]) if "w_train" in ins else "NULL"
    args = (desc, lw.ptr(ins["gh"]), lw.constant(ins["w"]), w_train, lw.ptr(outs["gx"]), accumulate)
    return lw.call(node, kernel, *args, _band(tile, ins["gh"]), _band(tile, outs["gx"]))


def _update_desc(lw: _Lowering, node: Node) -> str:
    attrs = node_attrs(node)
    fields = {
        "rounding": "TTE_ROUND_STOCHASTIC" if attrs["rounding"] == "stochastic" else "TTE_ROUND_NEAREST",
        "lr_group": "TTE_LR_HEAD" if attrs["lr_group"] == "head" else "TTE_LR_BODY",
        "tensor_id": f"{int(attrs['tensor_id'])}u",
    }
    return lw.descriptor(node, "tte_update_params", fields)


def _emit_conv2d_bwd_w_update(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    ins, _ = node_roles(node)
    attrs = node_attrs(node)
    x = lw.graph.tensors[ins["x_saved"]]
    full = tuple(attrs["weight_shape"])
    in_c = full[1] * attrs["groups"]
    fields = _conv_fields(
        lw, node, size=(x.shape[2], x.shape[3]), in_c=in_c, w_shape=full, x_zero=_zero(lw.graph, x.name)
    )
    desc = lw.descriptor(node, "tte_conv2d_params", fields)
    kernel = f"{_conv_variant(lw.graph, node, in_c, full)}_bwd_w_update_s8"
    args = (desc, "ctx", _update_desc(lw, node), lw.ptr(ins["x_saved"]), lw.ptr(ins["gh"]))
    return lw.call(node, kernel, *args, lw.constant(ins["inv_w"]), lw.ptr(ins["w_train"]), _band(tile, ins["gh"]))


def _emit_bias_update(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    ins, _ = node_roles(node)
    desc = _hwc_desc(lw, node, ins["gh"])
    args = (desc, "ctx", _update_desc(lw, node), lw.ptr(ins["gh"]), lw.constant(ins["inv_b"]), lw.ptr(ins["b"]))
    return lw.call(node, "bias_update_s32", *args, _band(tile, ins["gh"]))


def _emit_linear_f32_bwd_update(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    ins, outs = node_roles(node)
    attrs = node_attrs(node)
    desc = _linear_f32_desc(lw, node, ins["x"], lw.graph.tensors[ins["w"]].shape)
    group = "TTE_LR_HEAD" if attrs["lr_group"] == "head" else "TTE_LR_BODY"
    params = (lw.ptr(ins["w"]), lw.ptr(ins["b"]))
    updated = (lw.optional(outs, "w_next"), lw.optional(outs, "b_next"), lw.optional(outs, "gx"))
    args = (desc, "ctx", group, lw.ptr(ins["x"]), lw.ptr(ins["g"]), *params, *updated)
    return lw.call(node, "linear_bwd_update_f32", *args)


def _emit_accumulate(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    ins, outs = node_roles(node)
    size = str(lw.graph.tensors[ins["acc"]].numel)
    return lw.call(node, "accumulate_f32", size, lw.ptr(ins["acc"]), lw.ptr(ins["g"]), lw.ptr(outs["y"]))


Emitter = Callable[[_Lowering, Node, "_Tile | None"], str]

EMITTERS: Mapping[Op, Emitter] = {
    Op.CONV2D: _emit_conv2d,
    Op.ADD: _emit_add,
    Op.GLOBAL_AVG_POOL: _emit_pool,
    Op.LINEAR: _emit_linear,
    Op.RESHAPE: _emit_reshape,
    Op.GATHER_CHANNELS: _emit_gather,
    Op.SOFTMAX_CE: _emit_softmax_ce,
    Op.MASK_SCALE: _emit_mask_scale,
    Op.ADD_BWD: _emit_add_bwd,
    Op.POOL_BWD: _emit_pool_bwd,
    Op.CONV2D_BWD_X: _emit_conv2d_bwd_x,
    Op.CONV2D_BWD_W_UPDATE: _emit_conv2d_bwd_w_update,
    Op.BIAS_UPDATE: _emit_bias_update,
    Op.LINEAR_F32_BWD_UPDATE: _emit_linear_f32_bwd_update,
    Op.ACCUMULATE: _emit_accumulate,
}


def _emit(lw: _Lowering, node: Node, tile: _Tile | None) -> str:
    emitter = EMITTERS.get(node.op)
    if emitter is None:
        raise CodegenError(f"{node.describe()}: the engine has no kernel for op '{node.op.name.lower()}'")
    return f"/* {node.describe()} */\n{emitter(lw, node, tile)}"


# -- groups ----------------------------------------------------------------------------------------


def _groups(graph: Graph) -> list[list[Node]]:
    """The schedule as runs: one node, or the consecutive nodes of one tiled group."""
    runs: list[list[Node]] = []
    for node in graph.nodes:
        tile = node.attrs.get("tile")
        previous = runs[-1][-1].attrs.get("tile") if runs else None
        if tile and previous and tile["group"] == previous["group"]:
            runs[-1].append(node)
        else:
            runs.append([node])
    return runs


def _internal(graph: Graph, nodes: list[Node]) -> frozenset[str]:
    """Tensors written and read only inside the group (they hold one band; tte_ir.memory)."""
    names = {n.name for n in nodes}
    produced = {t for n in nodes for t in n.outputs}
    return frozenset(
        t
        for t in produced
        if t not in graph.outputs and graph.consumers(t) and all(c.name in names for c in graph.consumers(t))
    )


def _indent(code: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line if line else line for line in code.split("\n"))


def _row_tables(lw: _Lowering, nodes: list[Node], internal: frozenset[str]) -> list[list[tuple[int, int, int, int]]]:
    """Per tile, per node: (x_row, x_rows, y_row, y_rows) of the node's output rows and of the rows
    its input buffer holds (an internal input holds its producer's band, an outside one all rows)."""
    g = lw.graph
    last = nodes[-1]
    height = g.tensors[last.outputs[0]].shape[2]
    step = int(last.attrs["tile"]["tile"])
    tables = []
    for top in range(0, height, step):
        need = {last.outputs[0]: (top, min(top + step, height))}
        for node in reversed(nodes):
            lo, hi = need[node.outputs[0]]
            attrs = node_attrs(node)
            for x in node.inputs[:2] if node.op is Op.ADD else node.inputs[:1]:
                if x not in internal:
                    continue
                if node.op is Op.CONV2D:
                    kh, s, pad = g.tensors[node.inputs[1]].shape[2], attrs["stride"], attrs["padding"]
                    span = (max(0, lo * s - pad), min(g.tensors[x].shape[2], (hi - 1) * s - pad + kh))
                else:
                    span = (lo, hi)
                old = need.get(x, span)
                need[x] = (min(old[0], span[0]), max(old[1], span[1]))
        row = []
        for node in nodes:
            y = node.outputs[0]
            lo, hi = need[y]
            band = int(node.attrs["tile"]["band"])
            if y in internal and hi - lo > band:
                raise CodegenError(f"{node.describe()}: a tile needs rows {lo}..{hi - 1}, more than its band of {band}")
            x = node.inputs[0]
            x_lo, x_hi = need[x] if x in internal else (0, g.tensors[x].shape[2])
            row.append((x_lo, x_hi - x_lo, lo, hi - lo))
        tables.append(row)
    return tables


def _row_group(lw: _Lowering, nodes: list[Node], group: int) -> tuple[str, str]:
    internal = _internal(lw.graph, nodes)
    position = {t: k for k, n in enumerate(nodes) for t in n.outputs}
    tile = _Tile("rows", internal, position)
    tables = _row_tables(lw, nodes, internal)
    table = f"g{group}_rows"
    rows = ",\n".join(
        "    {" + ", ".join("{" + ", ".join(map(str, entry)) + "}" for entry in tile_rows) + "}" for tile_rows in tables
    )
    decl = (
        f"/* Row bands of group {group} ({nodes[0].name} .. {nodes[-1].name}), per tile and node: "
        f"input rows held, output rows computed. */\n"
        f"static const tte_row_band {table}[{len(tables)}][{len(nodes)}] = {{\n{rows}\n}};"
    )
    body = "\n".join(_emit(lw, node, tile) for node in nodes)
    code = (
        f"/* row-tiled group {group}: {len(nodes)} nodes, {len(tables)} tiles of "
        f"{nodes[-1].attrs['tile']['tile']} output rows */\n"
        f"for (int32_t t = 0; t < {len(tables)}; ++t) {{\n"
        f"    const tte_row_band *r = {table}[t];\n{_indent(body, 4)}\n}}"
    )
    return decl, code


def _channel_group(lw: _Lowering, nodes: list[Node], group: int) -> str:
    internal = _internal(lw.graph, nodes)
    tile = _Tile("channels", internal, {})
    channels = lw.graph.tensors[nodes[0].outputs[0]].shape[1]
    band = int(nodes[0].attrs["tile"]["band"])
    body = "\n".join(_emit(lw, node, tile) for node in nodes)
    return (
        f"/* channel-tiled group {group}: {len(nodes)} nodes over {channels} channels in bands of {band} */\n"
        f"for (int32_t c = 0; c < {channels}; c += {band}) {{\n"
        f"    const tte_channel_band band = {{c, c + {band} <= {channels} ? {band} : {channels} - c}};\n"
        f"{_indent(body, 4)}\n}}"
    )


def lower(graph: Graph, *, name: str = "model", declared: frozenset[str] | None = None) -> CModel:
    """Lower a compiled training graph to a :class:`CModel`.

    ``declared`` is the set of C functions the engine's headers declare (:func:`tte_codegen.build.engine_kernels`);
    a node needing any other kernel is refused. ``None`` skips that check.
    """
    lw = _Lowering(graph, declared)
    info = lw.info
    loss_at = next((i for i, n in enumerate(graph.nodes) if n.op is Op.SOFTMAX_CE), None)
    if loss_at is None:
        raise CodegenError(f"graph '{graph.name}' has no softmax_ce loss node")
    forward: list[CBlock] = []
    backward: list[CBlock] = []
    rows: list[str] = []
    done = 0
    for run in _groups(graph):
        tile = run[0].attrs.get("tile")
        macs = sum(node_macs(graph, n) for n in run)
        if tile and tile["axis"] == "rows":
            decl, code = _row_group(lw, run, int(tile["group"]))
            rows.append(decl)
        elif tile:
            code = _channel_group(lw, run, int(tile["group"]))
        else:
            code = _emit(lw, run[0], None)
        block = CBlock(tuple(n.name for n in run), code, macs)
        (forward if done < loss_at else backward).append(block)
        done += len(run)
    params = []
    offset = 0
    for tensor in info["state"]:
        ident = lw.constant(tensor)
        spec = graph.tensors[tensor]
        shape, axes = lw.layouts[tensor]
        layout = ParamLayout(tensor, spec.dtype.numpy.str, spec.shape, shape, axes, offset, spec.nbytes)
        params.append((layout, ident))
        offset += spec.nbytes
    logits = graph.tensors[info["logits"]]
    scheme = info["scheme"]
    return CModel(
        name=name,
        graph=graph.name,
        report=lw.report,
        arena_bytes=max(lw.report.plan.arena_bytes, 4),
        tensors=tuple(sorted(lw.tensors.values(), key=lambda t: (t.offset, t.ident))),
        arrays=tuple(lw.arrays.values()),
        descriptors=tuple(lw.descriptors),
        rows=tuple(rows),
        forward=tuple(forward),
        backward=tuple(backward),
        params=tuple(params),
        input_shape=graph.tensors[info["input"]].shape,
        input=lw.ptr(info["input"]),
        logits=lw.ptr(info["logits"]),
        logits_ctype=_CTYPES[logits.dtype],
        classes=logits.shape[1],
        loss=lw.ptr(info["loss"]),
        lr=float(scheme["lr"]),
        head_lr=float(scheme["head_lr"]),
        seed=int(scheme["seed"]),
        kernels=tuple(lw.kernels),
    )
