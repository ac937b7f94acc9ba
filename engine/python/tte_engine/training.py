"""Run a compiled ``tte_ir`` training graph through the engine's kernels on the host, node by node.

One IR node is one kernel call, as ``tte_ir.kernels.kernel_call`` describes it, made through
:func:`tte_engine.calls.run_call` on engine-layout arrays (HWC activations and gradients, the
kernels' weight and slice layouts), with one :class:`~tte_engine.TrainContext` per step. Tiled
groups run untiled (whole tensors): the kernels' tiles are bit-identical to untiled calls, which the
engine's tests check kernel by kernel. The result compares directly with
``tte_ir.reference_train.train_step``; generated C (``tte_codegen``) makes the same calls from C.

``tte_ir`` is imported lazily: install ``tte-engine[ir]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tte_engine import _core
from tte_engine.calls import run_call

if TYPE_CHECKING:
    from tte_ir import Graph

__all__ = ["EngineStep", "train_step"]


@dataclass(frozen=True)
class EngineStep:
    """One training step through the engine: loss, step status (``tte_ir.reference_train``'s names)
    and the trained parameters (and a mini-batch's gradient accumulators) after it (IR layout, keyed
    like ``reference_train.initial_state``)."""

    loss: float
    status: str
    state: dict[str, np.ndarray]


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
    from tte_ir import Op, training_info
    from tte_ir.kernels import kernel_call
    from tte_ir.layout import to_engine_layout
    from tte_ir.ops import node_roles

    info = training_info(graph)
    scheme = info["scheme"]
    batch = int(scheme.get("batch", 1))  # step counts samples; the rounding's t counts updates
    ctx = _core.TrainContext(
        lr=scheme["lr"] if lr is None else lr,
        head_lr=scheme["head_lr"] if head_lr is None else head_lr,
        step=step // batch,
        seed=scheme["seed"],
        batch_end=step % batch == batch - 1,
    )
    spec = graph.tensors[info["input"]]
    x = np.asarray(x)
    if tuple(x.shape) != spec.shape or x.dtype != spec.dtype.numpy:
        raise ValueError(
            f"graph '{graph.name}': input '{spec.name}' must be {spec.dtype.name.lower()}{list(spec.shape)}, "
            f"got {x.dtype}{list(x.shape)}"
        )
    values: dict[str, np.ndarray] = {name: np.asarray(v) for name, v in state.items()}  # parameters: IR layout
    values[info["input"]] = to_engine_layout(x)
    values[info["label"]] = np.array([label], np.int32)
    loss = float("nan")
    for node in graph.nodes:
        run_call(kernel_call(graph, node), graph, values, ctx=ctx)
        if node.op is Op.SOFTMAX_CE:
            loss = float(values[node_roles(node)[1]["loss"]][0])
    carried = {**info["state"], **info.get("accumulators", {})}  # a mini-batch's accumulators persist too
    new_state = {name: np.asarray(values[nxt]).reshape(graph.tensors[nxt].shape) for name, nxt in carried.items()}
    return EngineStep(loss, ctx.status, new_state)
