"""Kernel scratch sizes for the memory planner: one formula, owned by the engine.

Each engine kernel with scratch has a ``..._scratch_size()`` twin (STYLE.md), taking the kernel's own
descriptor. The planner asks it through the engine binding (``tte_engine._core.scratch_size``) with the
descriptor of the node's kernel call (:func:`tte_ir.kernels.kernel_call`); where the engine is not
installed it uses the Python mirror below, which states the same formula (a test compares the two
whenever the engine is installed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tte_ir._ir import Graph, Node
from tte_ir.kernels import SCRATCH_KERNELS, CEnum, kernel_call

__all__ = ["MIRROR", "scratch_bytes"]

Params = Mapping[str, Any]


def _none(params: Params) -> int:
    return 0


# The reference kernels read their operands in place: no scratch (engine/src/kernels/ref/*.c).
MIRROR: Mapping[str, Callable[[Params], int]] = dict.fromkeys(sorted(SCRATCH_KERNELS), _none)


def _engine_scratch_size() -> Callable[[str, dict[str, Any]], int] | None:
    try:
        from tte_engine import _core
    except ImportError:
        return None
    return _core.scratch_size


def scratch_bytes(graph: Graph, node: Node, *, use_engine: bool = True) -> int:
    """Scratch bytes ``node``'s kernel needs while it runs (0 for kernels without scratch)."""
    call = kernel_call(graph, node)
    if call.kernel not in SCRATCH_KERNELS:
        return 0
    engine = _engine_scratch_size() if use_engine else None
    if engine is not None:
        fields = {k: v.value if isinstance(v, CEnum) else v for k, v in call.params.items()}
        return int(engine(call.kernel, fields))
    return MIRROR[call.kernel](call.params)
