"""One node as C: the kernel call of its :class:`tte_ir.kernels.KernelCall`, spelled out.

:class:`Emitter` holds what a training graph's C accumulates while it is lowered: arena pointers at
the planner's offsets, constant and trained-parameter arrays (in the layout each kernel argument
names), descriptors and channel lists. :meth:`Emitter.emit` turns a node's kernel call into one
checked C statement; nothing here decides a kernel, a field value or a weight layout: the
description (:mod:`tte_ir.kernels`) does. Tiles (:mod:`tte_codegen.groups`) only say which band a
call runs on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tte_codegen.cmodel import CArray, CodegenError, CTensor
from tte_codegen.cnames import CTYPES, c_ident, c_literal
from tte_ir import Graph, Node
from tte_ir.autodiff import training_info
from tte_ir.kernels import (
    PARAM_STRUCTS,
    Arg,
    CEnum,
    KernelCall,
    buffer_shape,
    call_requant,
    derived_array,
    kernel_call,
    weight_layout,
)
from tte_ir.memory import memory_report
from tte_ir.ops import OP_TABLE, node_roles
from tte_ir.views import storage

__all__ = ["Emitter", "Tile"]


@dataclass(frozen=True)
class Tile:
    """The group a node runs in: ``internal`` tensors hold one band (rows or channels); ``position``
    maps each tensor produced in the group to its producer's index (its entry of the row table)."""

    axis: str
    internal: frozenset[str]
    position: Mapping[str, int]

    def band(self, tensor: str | None) -> str:
        """The channel-band pointer of ``tensor``: ``&band`` when it holds one band, else NULL."""
        return "&band" if self.axis == "channels" and tensor in self.internal else "NULL"


def _aliases(graph: Graph) -> dict[str, str]:
    """Every tensor's storage owner: in-place outputs share their input's storage (the op table)."""
    owner: dict[str, str] = {}
    for node in graph.nodes:
        ins, outs = node_roles(node)
        for out_role, in_role in OP_TABLE[node.op].inplace.items():
            if out_role in outs and in_role in ins:
                owner[outs[out_role]] = owner.get(ins[in_role], ins[in_role])
    return owner


class Emitter:
    """Per-graph state of the lowering: the plan, the arrays emitted so far, the descriptors."""

    def __init__(self, graph: Graph, declared: frozenset[str] | None) -> None:
        self.graph = graph
        self.info = training_info(graph)
        # The image lives in the arena: its bytes serve later tensors once the first layers have read it.
        self.report = memory_report(graph, input_in_arena=True)
        self.declared = declared
        self.owner = _aliases(graph)
        self.buffer_of = {t: buf.name for buf in self.report.plan.buffers for t in buf.tensors}
        # channel views (tte_ir.views): no call; the tensor lies at its byte offset inside its buffer
        self.views = storage(graph).views
        self.view_offset = {t: off for buf in self.report.plan.buffers for t, off in buf.views}
        # trained parameters and a mini-batch's gradient accumulators: writable arrays (SRAM)
        self.state = set(self.info["state"]) | set(self.info.get("accumulators", {}))
        self.arrays: dict[str, CArray] = {}
        self.array_of: dict[str, str] = {}
        self.by_content: dict[tuple[str, bytes], str] = {}
        self.layouts: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self.layout_of: dict[str, str | None] = {}
        self.tensors: dict[str, CTensor] = {}
        self.descriptors: list[str] = []
        self.descriptor_of: dict[tuple[str, str], str] = {}
        self.kernels: list[str] = []
        self.requant: set[str] = set()  # the requantization modes of the calls described
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

    def constant(self, tensor: str, layout: str | None = None) -> str:
        """The C array of a graph constant, in the engine layout its kernel argument names (a conv
        weight family's, else its own); trained parameters live in SRAM, frozen constants in flash."""
        if tensor in self.array_of:
            if self.layout_of[tensor] != layout:
                raise CodegenError(
                    f"constant '{tensor}' is read in two layouts ({self.layout_of[tensor]} and {layout})"
                )
            return self.array_of[tensor]
        spec = self.graph.tensors[tensor]
        data = np.asarray(self.graph.constants[tensor])
        axes: tuple[int, ...] = tuple(range(data.ndim))
        if layout is not None:
            permutation = weight_layout(layout)
            data, axes = permutation.to_engine(data), permutation.to_ir_axes
        shape = "][".join(map(str, data.shape))
        sram = tensor in self.state
        where = "trained, SRAM" if sram else "frozen, flash"
        comment = f"{tensor}: {spec.dtype.name.lower()} [{shape}] ({where})"
        ident = self.array(tensor, data, CTYPES[spec.dtype], sram=sram, comment=comment)
        self.array_of[tensor] = ident
        self.layout_of[tensor] = layout
        self.layouts[tensor] = (tuple(data.shape), axes)
        return ident

    def derived(self, node: str, what: str, values: np.ndarray) -> str:
        """A constant computed at compile time for a kernel: float32 multipliers (NUMERICS.md §1) or an
        int8 lookup table (:func:`tte_ir.kernels.derived_array`)."""
        values = derived_array(values).ravel()
        ctype = "int8_t" if values.dtype == np.int8 else "float"
        return self.array(f"{node}.{what}", values, ctype, sram=False, comment=f"{node}: {what} [{values.size}]")

    # -- tensors -------------------------------------------------------------------------------

    def ptr(self, tensor: str, layout: str | None = None) -> str:
        """The C expression of a tensor's data pointer."""
        root = self.owner.get(tensor, tensor)
        if root == self.info["label"]:
            return "label"
        if root in self.graph.constants:
            return self.constant(root, layout)
        if tensor in self.tensors:
            return self.tensors[tensor].ident
        buffer = self.buffer_of.get(tensor) or self.buffer_of.get(root)
        if buffer is None:
            raise CodegenError(f"tensor '{tensor}' has no place in the memory plan")
        spec = self.graph.tensors[tensor]
        shape = "][".join(map(str, buffer_shape(spec)))
        offset = self.report.plan.offsets[buffer] + self.view_offset.get(tensor, 0)
        ident = self.unique(f"T_{c_ident(tensor)}")
        comment = f"{tensor}: {spec.dtype.name.lower()} [{shape}], {spec.nbytes} B at arena offset {offset}"
        self.tensors[tensor] = CTensor(ident, CTYPES[spec.dtype], offset, comment)
        return ident

    def scratch(self, node: str) -> str:
        name = f"{node}.scratch"
        if name not in self.report.plan.offsets:
            return "NULL"
        return f"(void *)(tte_arena.bytes + {self.report.plan.offsets[name]})"

    # -- descriptors ---------------------------------------------------------------------------

    def descriptor(self, node: str, ctype: str, fields: Mapping[str, Any]) -> str:
        """A ``static const`` kernel descriptor (identical ones are shared), named after ``node`` (or
        after its shape, for the shape-only ``tte_hwc_params``); returns its address."""
        types = dict(PARAM_STRUCTS[ctype])
        body = ", ".join(f".{k} = {self.field(node, types[k], v)}" for k, v in fields.items())
        key = (ctype, body)
        if key not in self.descriptor_of:
            name = f"hwc_{fields['pixels']}x{fields['channels']}" if ctype == "tte_hwc_params" else node
            ident = self.unique(f"d_{c_ident(name)}")
            self.descriptors.append(f"static const {ctype} {ident} = {{{body}}};")
            self.descriptor_of[key] = ident
        return f"&{self.descriptor_of[key]}"

    def field(self, node: str, ctype: str, value: Any) -> str:
        """A descriptor field's C value."""
        if isinstance(value, CEnum):
            return value.name
        if isinstance(value, tuple):
            return self.channel_list(node, list(value))
        if ctype == "float":
            return c_literal(value, "float")
        if ctype == "uint32_t":
            return f"{int(value)}u"
        return c_literal(value, ctype)

    def channel_list(self, node: str, channels: list[int]) -> str:
        """A ``static const int32_t`` list of channels (shared when identical)."""
        key = ("int32_t[]", ", ".join(map(str, channels)))
        if key not in self.descriptor_of:
            ident = self.unique(f"ch_{c_ident(node)}")
            self.descriptors.append(f"static const int32_t {ident}[{len(channels)}] = {{{key[1]}}};")
            self.descriptor_of[key] = ident
        return self.descriptor_of[key]

    # -- calls ---------------------------------------------------------------------------------

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

    def describe(self, node: Node) -> KernelCall:
        """The node's kernel call (:func:`tte_ir.kernels.kernel_call`), refused as a CodegenError."""
        try:
            call = kernel_call(self.graph, node)
        except CodegenError:
            raise
        except Exception as error:  # the description's refusal, in the code generator's words
            raise CodegenError(str(error)) from error
        mode = call_requant(call)
        if mode is not None:
            self.requant.add(mode)
        return call

    def arg(self, node: Node, call: KernelCall, arg: Arg, tile: Tile | None) -> str:
        """The C expression of one argument of ``call``."""
        if arg.kind == "tensor":
            return self.ptr(arg.writes or arg.reads, arg.layout)
        if arg.kind == "derived":
            return self.derived(node.name, arg.name, arg.value)
        if arg.kind == "params":
            ctype, fields = arg.value
            return self.descriptor(node.name, ctype, fields)
        if arg.kind == "int":
            return arg.value.name if isinstance(arg.value, CEnum) else str(int(arg.value))
        if arg.kind == "ctx":
            return "ctx"
        if arg.kind == "band":
            return tile.band(arg.reads) if tile is not None else "NULL"
        if arg.kind == "scratch":
            return self.scratch(node.name)
        if arg.kind in ("null", "rows"):
            return "NULL"
        raise CodegenError(f"{node.describe()}: argument '{arg.name}' of kind '{arg.kind}' has no C form")

    def emit(self, node: Node, tile: Tile | None = None, overrides: Mapping[str, str] | None = None) -> str:
        """The C statement of ``node``'s kernel call; ``overrides`` replaces arguments by name (a tile's
        row band and output offset, a band's accumulate flag; ``p`` the descriptor)."""
        if node.name in self.views:
            return f"/* {node.name}: a channel view, its tensors share one buffer at their offsets (tte_ir.views) */"
        call = self.describe(node)
        if call.kernel is None:
            return f"/* {node.name}: a view, the output shares the input's storage */"
        overrides = overrides or {}
        args = []
        if call.params_type:
            args.append(overrides.get("p") or self.descriptor(node.name, call.params_type, call.params))
        for arg in call.args:
            args.append(overrides.get(arg.name) or self.arg(node, call, arg, tile))
        return self.call(node, call.kernel, *args)

    def elements_per_row(self, tensor: str) -> int:
        """Elements of one row of a feature map in the engine's HWC layout."""
        _, channels, _, width = self.graph.tensors[tensor].shape
        return channels * width
