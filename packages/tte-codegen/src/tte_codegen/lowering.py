"""A training graph as C: arena pointers, constant arrays and one engine kernel call per node.

:func:`lower` turns a compiled training graph (``tte compile``) into a :class:`CModel`, the plain data
the jinja2 templates print. Every activation, saved tensor, mask, gradient and scratch buffer is a
pointer into one static arena at the offset the memory planner (:func:`tte_ir.memory.memory_report`)
assigned; nothing here computes an offset. Frozen constants become ``const`` arrays (flash); the
trained parameters (weight slices, biases, the fp32 head) are writable arrays (SRAM) that the update
kernels change in place.

What each node's kernel call is (kernel, descriptor, arguments, weight layouts) comes from
:func:`tte_ir.kernels.kernel_call`; this package only spells it in C: :mod:`tte_codegen.cnames`
(literals and identifiers), :mod:`tte_codegen.emit` (arrays, pointers, descriptors, the call),
:mod:`tte_codegen.groups` (tiled groups as loops), :mod:`tte_codegen.cmodel` (what the templates
print). A node whose op has no kernel, or whose kernel the engine's headers do not declare, is
refused with a :class:`CodegenError` that names the node and the op.
"""

from __future__ import annotations

from tte_codegen.cmodel import CArray, CBlock, CModel, CodegenError, CTensor, ParamLayout
from tte_codegen.cnames import CTYPES, c_ident, c_literal, c_values
from tte_codegen.emit import Emitter
from tte_codegen.groups import channel_group, emit_node, row_group, schedule_runs
from tte_ir import Graph, Op, node_macs
from tte_ir.digest import graph_digest
from tte_ir.kernels import REQUANT

__all__ = [
    "CArray",
    "CBlock",
    "CModel",
    "CTensor",
    "CodegenError",
    "ParamLayout",
    "c_ident",
    "c_literal",
    "c_values",
    "lower",
]


def lower(graph: Graph, *, name: str = "model", declared: frozenset[str] | None = None) -> CModel:
    """Lower a compiled training graph to a :class:`CModel`.

    ``declared`` is the set of C functions the engine's headers declare (:func:`tte_codegen.build.engine_kernels`);
    a node needing any other kernel is refused. ``None`` skips that check.
    """
    em = Emitter(graph, declared)
    info = em.info
    loss_at = next((i for i, n in enumerate(graph.nodes) if n.op is Op.SOFTMAX_CE), None)
    if loss_at is None:
        raise CodegenError(f"graph '{graph.name}' has no softmax_ce loss node")
    forward: list[CBlock] = []
    backward: list[CBlock] = []
    rows: list[str] = []
    done = 0
    for run in schedule_runs(graph):
        tile = run[0].attrs.get("tile")
        macs = sum(node_macs(graph, n) for n in run)
        if tile and tile["axis"] == "rows":
            decl, code = row_group(em, run, int(tile["group"]))
            rows.append(decl)
        elif tile:
            code = channel_group(em, run, int(tile["group"]))
        else:
            code = emit_node(em, run[0])
        block = CBlock(tuple(n.name for n in run), code, macs)
        (forward if done < loss_at else backward).append(block)
        done += len(run)
    params = []
    offset = 0
    for tensor in info["state"]:
        ident = em.array_of.get(tensor) or em.constant(tensor)  # in the layout its kernels read it
        spec = graph.tensors[tensor]
        shape, axes = em.layouts[tensor]
        layout = ParamLayout(tensor, spec.dtype.numpy.str, spec.shape, shape, axes, offset, spec.nbytes)
        params.append((layout, ident))
        offset += spec.nbytes
    logits = graph.tensors[info["logits"]]
    scheme = info["scheme"]
    return CModel(
        name=name,
        graph=graph.name,
        report=em.report,
        arena_bytes=max(em.report.plan.arena_bytes, 4),
        tensors=tuple(sorted(em.tensors.values(), key=lambda t: (t.offset, t.ident))),
        arrays=tuple(em.arrays.values()),
        descriptors=tuple(em.descriptors),
        rows=tuple(rows),
        forward=tuple(forward),
        backward=tuple(backward),
        params=tuple(params),
        input_shape=graph.tensors[info["input"]].shape,
        input=em.ptr(info["input"]),
        logits=em.ptr(info["logits"]),
        logits_ctype=CTYPES[logits.dtype],
        classes=logits.shape[1],
        loss=em.ptr(info["loss"]),
        lr=float(scheme["lr"]),
        head_lr=float(scheme["head_lr"]),
        seed=int(scheme["seed"]),
        digest=graph_digest(graph),
        kernels=tuple(em.kernels),
        requant=tuple(mode for mode in REQUANT if mode in em.requant),
        batch=int(scheme.get("batch", 1)),
    )
