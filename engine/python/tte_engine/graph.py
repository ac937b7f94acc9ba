"""Run a ``tte_ir`` forward graph through the C kernels on the host.

``tte_ir`` records shapes in PyTorch order (``x[1, C, H, W]``, conv weights ``[O, C/g, KH, KW]``);
the engine works in HWC with its own weight layouts (see ``tte/tte.h``). :func:`lower` turns a graph
into a list of :class:`Step` s, one kernel call each, with constants permuted once into the engine's
layouts; :func:`run_forward` executes them. The firmware data generator
(``boards/tools/firmware_data.py``) writes the same steps as C tables, so the host and the
microcontroller run the identical sequence of kernel calls.

This module needs ``tte_ir`` (install ``tte-engine[ir]``); the layout permutations live in
:mod:`tte_ir.layout`, shared with the C code generator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tte_engine import _core
from tte_ir.layout import conv_kernel, engine_shape, from_engine_layout, to_engine_layout

if TYPE_CHECKING:
    from tte_ir import Graph, Node

__all__ = ["Step", "conv_kernel", "from_engine_layout", "lower", "run_forward", "to_engine_layout"]


@dataclass(frozen=True)
class Step:
    """One kernel call of a lowered graph.

    ``kernel`` names the ``tte_engine`` function (the C kernel is ``tte_<kernel>``), or is
    ``"reshape"`` for a view change that moves no data. The call is
    ``kernel(*activations[inputs], *arrays, **params)``; shapes are in the engine's layout.
    """

    node: str
    kernel: str
    inputs: tuple[str, ...]
    output: str
    in_shapes: tuple[tuple[int, ...], ...]
    out_shape: tuple[int, ...]
    arrays: tuple[np.ndarray, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    macs: int = 0


def lower(graph: Graph) -> list[Step]:
    """The graph's forward as engine kernel calls, constants in engine layouts.

    Raises ``ValueError`` naming the node for anything the engine cannot run.
    """
    from tte_ir import DType, Op, node_attrs, node_multipliers

    if len(graph.inputs) != 1:
        raise ValueError(f"graph '{graph.name}' has {len(graph.inputs)} inputs; the engine runs graphs with one")
    steps = []
    for node in graph.nodes:
        specs = [graph.tensors[name] for name in node.inputs]
        out = graph.tensors[node.outputs[0]]
        attrs = node_attrs(node)
        consts = node_multipliers(graph, node)
        zero = [s.quant.zero_point if s.quant is not None else 0 for s in specs]
        y_zero = out.quant.zero_point if out.quant is not None else 0
        act = {"act_min": attrs.get("act_min", -128), "act_max": attrs.get("act_max", 127)}

        if node.op is Op.CONV2D:
            w = graph.constants[node.inputs[1]]
            b = graph.constants[node.inputs[2]]
            geometry = {k: attrs[k] for k in ("stride", "padding", "groups")}
            kernel, wl, conv = conv_kernel(w, specs[0].shape[1], **geometry)
            params = {**conv, "x_zero": zero[0], "y_zero": y_zero, **act}
            steps.append(_make_step(graph, node, kernel, (wl, b, consts["multiplier"]), params))
        elif node.op is Op.ADD:
            params = {"m1": consts["m1"], "m2": consts["m2"], "z1": zero[0], "z2": zero[1], "y_zero": y_zero, **act}
            steps.append(_make_step(graph, node, "add_fwd_s8", (), params))
        elif node.op is Op.GLOBAL_AVG_POOL:
            params = {"multiplier": consts["multiplier"], "x_zero": zero[0], "y_zero": y_zero}
            steps.append(_make_step(graph, node, "global_avg_pool_fwd_s8", (), params))
        elif node.op is Op.LINEAR and specs[1].dtype is DType.FLOAT32:
            w, b = graph.constants[node.inputs[1]], graph.constants[node.inputs[2]]
            params = {"x_scale": specs[0].quant.tensor_scale, "x_zero": zero[0]}
            steps.append(_make_step(graph, node, "linear_fwd_f32", (w, b), params))
        elif node.op is Op.LINEAR:
            w, b = graph.constants[node.inputs[1]], graph.constants[node.inputs[2]]
            params = {"x_zero": zero[0], "y_zero": y_zero, **act}
            steps.append(_make_step(graph, node, "linear_fwd_s8", (w, b, consts["multiplier"]), params))
        elif node.op is Op.RESHAPE:
            shape = specs[0].shape
            # HWC and NCHW order agree only when the spatial map or the channels are a single element.
            if len(shape) == 4 and shape[1] > 1 and shape[2] * shape[3] > 1:
                raise ValueError(
                    f"{node.describe()}: reshaping {list(shape)} would reorder data in the engine's HWC layout"
                )
            steps.append(_make_step(graph, node, "reshape", (), {}))
        else:
            raise ValueError(f"{node.describe()}: the engine has no kernel for this op")
    return steps


def _make_step(graph: Graph, node: Node, kernel: str, arrays: tuple[np.ndarray, ...], params: dict[str, Any]) -> Step:
    from tte_ir import node_macs

    acts = tuple(n for n in node.inputs if n not in graph.constants)  # activations; constants go to arrays
    return Step(
        node=node.name,
        kernel=kernel,
        inputs=acts,
        output=node.outputs[0],
        in_shapes=tuple(engine_shape(graph.tensors[n].shape) for n in acts),
        out_shape=engine_shape(graph.tensors[node.outputs[0]].shape),
        arrays=tuple(np.ascontiguousarray(a) for a in arrays),
        params=params,
        macs=node_macs(graph, node),
    )


def _run_steps(steps: list[Step], x: np.ndarray, input_name: str) -> dict[str, np.ndarray]:
    """Every activation (engine layout) after running ``steps`` on ``x`` (engine layout)."""
    values = {input_name: x}
    for s in steps:
        ins = [values[name] for name in s.inputs]
        y = ins[0] if s.kernel == "reshape" else getattr(_core, s.kernel)(*ins, *s.arrays, **s.params)
        # The pool kernel writes [C] for the IR's [1, C, 1, 1], whose engine shape is [1, 1, C].
        values[s.output] = y.reshape(s.out_shape)
    return values


def run_forward(graph: Graph, x: np.ndarray, *, return_all: bool = False) -> Any:
    """Execute a forward graph on one input through the C kernels.

    ``x`` and the results use the IR's layout (``[1, C, H, W]``), so they compare directly with
    ``tte_ir.reference.run_forward``. Returns the graph's single output, or with ``return_all`` a
    dict of every activation tensor (graph input and node outputs; constants are left out).
    """
    in_spec = graph.tensors[graph.inputs[0]]
    x = np.asarray(x)
    if tuple(x.shape) != in_spec.shape or x.dtype != in_spec.dtype.numpy:
        raise ValueError(
            f"graph '{graph.name}': input '{in_spec.name}' must be {in_spec.dtype.name.lower()}{list(in_spec.shape)}, "
            f"got {x.dtype}{list(x.shape)}"
        )
    values = _run_steps(lower(graph), to_engine_layout(x), in_spec.name)
    if return_all:
        return {name: from_engine_layout(v, graph.tensors[name].shape) for name, v in values.items()}
    out = graph.outputs[0]
    return from_engine_layout(values[out], graph.tensors[out].shape)
