"""Run a ``tte_ir`` forward graph through the C kernels on the host.

``tte_ir`` records shapes in PyTorch order (``x[1, C, H, W]``, conv weights ``[O, C/g, KH, KW]``);
the engine works in HWC with its own weight layouts (see ``tte/tte.h``). Every node runs as the
kernel call ``tte_ir.kernels.kernel_call`` describes, through :func:`tte_engine.calls.run_call`.
:func:`lower` lists the same calls as :class:`Step` s with their constants in the engine's layouts,
for the firmware data generator (``boards/tools/firmware_data.py``), so the host and the
microcontroller run the identical sequence of kernel calls.

This module needs ``tte_ir`` (install ``tte-engine[ir]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tte_engine.calls import c_params, run_call
from tte_ir.layout import from_engine_layout, to_engine_layout

if TYPE_CHECKING:
    from tte_ir import Graph

__all__ = ["Step", "from_engine_layout", "lower", "run_forward", "to_engine_layout"]


@dataclass(frozen=True)
class Step:
    """One kernel call of a lowered forward graph.

    ``kernel`` names the C kernel (``tte_<kernel>``), or is ``"reshape"`` for a view change that
    moves no data. ``inputs`` are the activations it reads, ``arrays`` its constant arguments (in C
    order, in the engine's layouts), ``params`` its descriptor's fields; shapes are in the engine's
    layout.
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


def _check_inputs(graph: Graph) -> None:
    if len(graph.inputs) != 1:
        raise ValueError(f"graph '{graph.name}' has {len(graph.inputs)} inputs; the engine runs graphs with one")


def lower(graph: Graph) -> list[Step]:
    """The graph's forward as engine kernel calls (``tte_ir.kernels.kernel_call``), constants in
    engine layouts. A node the engine cannot run raises ``tte_ir.TteError`` naming it."""
    from tte_ir import node_macs
    from tte_ir.kernels import buffer_shape, derived_array, kernel_call, weight_layout

    _check_inputs(graph)
    steps = []
    for node in graph.nodes:
        call = kernel_call(graph, node)
        inputs, arrays = [], []
        for arg in call.args:
            if arg.kind == "derived":
                arrays.append(derived_array(arg.value))
            elif arg.kind == "tensor" and arg.reads in graph.constants:
                value = graph.constants[arg.reads]
                arrays.append(weight_layout(arg.layout).to_engine(value) if arg.layout else np.ascontiguousarray(value))
            elif arg.kind == "tensor" and arg.reads is not None:
                inputs.append(arg.reads)
        steps.append(
            Step(
                node=node.name,
                kernel=call.kernel or "reshape",
                inputs=tuple(inputs),
                output=node.outputs[0],
                in_shapes=tuple(buffer_shape(graph.tensors[n]) for n in inputs),
                out_shape=buffer_shape(graph.tensors[node.outputs[0]]),
                arrays=tuple(arrays),
                params=c_params(call.params),
                macs=node_macs(graph, node),
            )
        )
    return steps


def run_forward(graph: Graph, x: np.ndarray, *, return_all: bool = False) -> Any:
    """Execute a forward graph on one input through the C kernels.

    ``x`` and the results use the IR's layout (``[1, C, H, W]``), so they compare directly with
    ``tte_ir.reference.run_forward``. Returns the graph's single output, or with ``return_all`` a
    dict of every activation tensor (graph input and node outputs; constants are left out).
    """
    from tte_ir.kernels import kernel_call

    _check_inputs(graph)
    in_spec = graph.tensors[graph.inputs[0]]
    x = np.asarray(x)
    if tuple(x.shape) != in_spec.shape or x.dtype != in_spec.dtype.numpy:
        raise ValueError(
            f"graph '{graph.name}': input '{in_spec.name}' must be {in_spec.dtype.name.lower()}{list(in_spec.shape)}, "
            f"got {x.dtype}{list(x.shape)}"
        )
    values: dict[str, np.ndarray] = {in_spec.name: to_engine_layout(x)}
    for node in graph.nodes:
        run_call(kernel_call(graph, node), graph, values)
    if return_all:
        return {name: from_engine_layout(v, graph.tensors[name].shape) for name, v in values.items()}
    out = graph.outputs[0]
    return from_engine_layout(values[out], graph.tensors[out].shape)
