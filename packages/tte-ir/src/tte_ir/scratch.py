"""Kernel scratch sizes for the memory planner: one formula, owned by the engine.

Each engine kernel with scratch has a ``..._scratch_size()`` twin (STYLE.md). When the ``tte_engine``
module is importable the planner calls it; otherwise it uses the Python mirror below, which states the
same formula (a test compares the two whenever the engine is installed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tte_ir._ir import Graph, Node, Op
from tte_ir.ops import node_attrs
from tte_ir.scheme import is_depthwise

__all__ = ["MIRROR", "conv_params", "kernel_name", "scratch_bytes"]

ConvParams = Mapping[str, int]


def kernel_name(graph: Graph, node: Node) -> str:
    """The engine function a node calls (without the ``tte_`` prefix), e.g. ``pointwise_conv2d_fwd_s8``."""
    if node.op is Op.CONV2D:
        w = graph.tensors[node.inputs[1]].shape
        if is_depthwise(graph, node):
            return "depthwise_conv2d_fwd_s8"
        if w[2] == w[3] == 1 and node_attrs(node)["padding"] == 0 and node_attrs(node)["groups"] == 1:
            return "pointwise_conv2d_fwd_s8"
        return "conv2d_fwd_s8"
    return f"{node.op.name.lower()}"


def conv_params(graph: Graph, node: Node) -> dict[str, int]:
    """The keyword arguments of the engine's conv ``..._scratch_size`` functions for ``node``."""
    attrs = node_attrs(node)
    x = graph.tensors[node.inputs[0]].shape
    w = graph.tensors[node.inputs[1]].shape
    return {
        "in_h": x[2],
        "in_w": x[3],
        "in_c": x[1],
        "out_c": w[0],
        "kernel_h": w[2],
        "kernel_w": w[3],
        "stride": attrs["stride"],
        "padding": attrs["padding"],
        "groups": attrs["groups"],
    }


def _none(params: ConvParams) -> int:
    return 0


# The reference kernels read their operands in place: no scratch (engine/src/kernels/ref/*.c).
MIRROR: Mapping[str, Callable[[ConvParams], int]] = {
    "conv2d_fwd_s8": _none,
    "depthwise_conv2d_fwd_s8": _none,
    "pointwise_conv2d_fwd_s8": _none,
}


def _engine_function(name: str) -> Callable[..., int] | None:
    try:
        import tte_engine
    except ImportError:
        return None
    return getattr(tte_engine, f"{name}_scratch_size", None)


def scratch_bytes(graph: Graph, node: Node, *, use_engine: bool = True) -> int:
    """Scratch bytes ``node``'s kernel needs while it runs (0 for kernels without scratch)."""
    name = kernel_name(graph, node)
    if name not in MIRROR:
        return 0
    params = conv_params(graph, node)
    engine = _engine_function(name) if use_engine else None
    if engine is not None:
        return int(engine(**params))
    return MIRROR[name](params)
