"""The generic host runner of one kernel call: a :class:`tte_ir.kernels.KernelCall` through
``_core.call``.

``tte_ir.kernels.kernel_call`` says, for every node, which kernel runs, its descriptor and every
argument in C order; :func:`run_call` builds those arguments from the step's values, calls the
kernel and stores what it wrote. Nothing here knows an op: a new kernel needs its description in
``tte_ir.kernels`` and the regenerated binding (``python -m tte_ir.gen_binding``), not a runner.

Values: activations and gradients are kept in the engine's layout (``tte_ir.kernels.buffer_shape``),
constants and trained parameters in the IR's layout; an argument with a weight ``layout`` is
permuted into its family's engine layout for the call and back for the result. Every call runs
whole (row and channel bands NULL): the kernels' tiles are bit-identical to untiled calls, which the
engine's tests check kernel by kernel.

``tte_ir`` is imported lazily: install ``tte-engine[ir]``.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tte_engine import _core

if TYPE_CHECKING:
    from tte_ir import Graph
    from tte_ir.kernels import Arg, KernelCall

__all__ = ["bound_kernels", "c_params", "run_call"]


def _c_value(value: Any) -> Any:
    from tte_ir.kernels import CEnum

    return value.value if isinstance(value, CEnum) else value


def c_params(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A descriptor's fields as ``_core.call`` takes them: C enum values as their integers."""
    return {k: _c_value(v) for k, v in fields.items()}


def _value(graph: Graph, values: Mapping[str, np.ndarray], name: str, node: str) -> np.ndarray:
    if name in values:
        return values[name]
    if name in graph.constants:
        return graph.constants[name]
    raise ValueError(f"graph '{graph.name}': node '{node}' reads tensor '{name}', which has no value yet")


def _checked(graph: Graph, call: KernelCall, arg: Arg, name: str, buffer: np.ndarray) -> np.ndarray:
    spec = graph.tensors[name]
    if buffer.dtype != spec.dtype.numpy or buffer.nbytes != spec.nbytes:
        raise ValueError(
            f"{call.kernel}: argument '{arg.name}' (tensor '{name}') holds {buffer.dtype}{list(buffer.shape)}, "
            f"the tensor is {spec.dtype.name.lower()}{list(spec.shape)}"
        )
    return buffer


def _tensor(graph: Graph, values: Mapping[str, np.ndarray], call: KernelCall, arg: Arg) -> np.ndarray:
    """The buffer of a tensor argument, in the kernel's layout."""
    from tte_ir.kernels import buffer_shape, weight_layout

    if arg.reads is not None:
        value = np.asarray(_value(graph, values, arg.reads, call.node))
        buffer = weight_layout(arg.layout).to_engine(value) if arg.layout else np.ascontiguousarray(value)
        if arg.writes is not None:  # in place: the kernel updates a copy, the step's value stays as it was
            buffer = buffer.copy()
        return _checked(graph, call, arg, arg.reads, buffer)
    spec = graph.tensors[arg.writes]
    shape = weight_layout(arg.layout).engine_shape(spec.shape) if arg.layout else buffer_shape(spec)
    # Zeros rather than empty: bits a kernel leaves alone (a mask's last byte) are the same every run.
    return _checked(graph, call, arg, arg.writes, np.zeros(shape, spec.dtype.numpy))


def run_call(
    call: KernelCall,
    graph: Graph,
    values: MutableMapping[str, np.ndarray],
    *,
    ctx: _core.TrainContext | None = None,
) -> None:
    """Run ``call`` (a node of ``graph``) on ``values`` and store what it writes into ``values``.

    ``values`` maps tensor names to arrays: activations in the engine's layout, trained parameters in
    the IR's layout; a tensor it lacks is read from ``graph.constants`` (IR layout). ``ctx`` is the
    step's context, for the loss and update kernels. A view (reshape, no kernel) stores its input as
    its output. Raises ``ValueError`` naming the kernel for a buffer that does not match its tensor
    or a status other than OK.
    """
    from tte_ir.kernels import buffer_shape, derived_array, weight_layout

    if call.kernel is None:
        (arg,) = call.args
        source = _value(graph, values, arg.reads, call.node)
        values[arg.writes] = np.asarray(source).reshape(buffer_shape(graph.tensors[arg.writes]))
        return
    args: list[Any] = []
    written: list[tuple[Arg, np.ndarray]] = []
    for arg in call.args:
        if arg.kind == "tensor":
            buffer = _tensor(graph, values, call, arg)
            if arg.writes is not None:
                written.append((arg, buffer))
            args.append(buffer)
        elif arg.kind == "derived":
            args.append(derived_array(arg.value))
        elif arg.kind == "params":
            args.append(c_params(arg.value[1]))
        elif arg.kind == "int":
            args.append(_c_value(arg.value))
        elif arg.kind == "ctx":
            args.append(ctx)
        elif arg.kind == "scratch":
            size = _core.scratch_size(call.kernel, c_params(call.params))
            args.append(np.zeros(size, np.uint8) if size else None)
        else:  # null, rows, band: an absent pointer, or a call that runs whole
            args.append(None)
    _core.call(call.kernel, c_params(call.params) if call.params_type else None, args)
    for arg, buffer in written:
        spec = graph.tensors[arg.writes]
        values[arg.writes] = weight_layout(arg.layout).to_ir(buffer, spec.shape) if arg.layout else buffer


def bound_kernels() -> tuple[str, ...]:
    """The kernels the binding can call (its table, generated from ``tte_ir.kernels.SIGNATURES``)."""
    return tuple(_core.kernels())
