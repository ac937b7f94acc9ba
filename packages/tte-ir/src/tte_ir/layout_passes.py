"""Layout passes: forward-graph rewrites that fit the IR's PyTorch (NCHW) order to the engine's
channels-last (HWC) buffers, so that a reshape stays a view and moves no data.

The engine stores a feature map ``[1, C, H, W]`` as ``[H][W][C]`` (:func:`tte_ir.kernels.buffer_shape`).
PyTorch's flatten of a map with more than one channel and more than one pixel lists its elements
channel by channel, an order the engine's buffer does not hold; a flatten in the engine's own order
(``order: "hwc"``, see :mod:`tte_ir.ops`) is a view. When only linear layers read the flattened
vector, permuting the columns of their weights from ``(c, h, w)`` to ``(h, w, c)`` order computes the
same dot products, term for term, from the channels-last vector.
"""

from __future__ import annotations

import numpy as np

from tte_ir._ir import Graph, Node, Op, TensorSpec
from tte_ir.ops import node_attrs
from tte_ir.verify import verify

__all__ = ["flatten_channels_last"]


def _spatial_flatten(graph: Graph, node: Node) -> bool:
    """An NCHW flatten ``[1, C, H, W] -> [1, C*H*W]`` of a map with C > 1 and H*W > 1."""
    if node.op is not Op.RESHAPE or node_attrs(node)["order"] != "nchw":
        return False
    x, y = graph.tensors[node.inputs[0]].shape, graph.tensors[node.outputs[0]].shape
    return len(x) == 4 and x[1] > 1 and x[2] * x[3] > 1 and y == (1, x[1] * x[2] * x[3])


def _linear_readers(graph: Graph, tensor: str) -> list[Node] | None:
    """The linear layers reading ``tensor`` as ``x`` with a constant weight, or None when anything
    else reads it (or it is a graph output)."""
    readers = graph.consumers(tensor)
    if not readers or tensor in graph.outputs:
        return None
    for node in readers:
        if node.op is not Op.LINEAR or node.inputs[0] != tensor or tensor in node.inputs[1:]:
            return None
        if node.inputs[1] not in graph.constants:
            return None
    return readers


def _fresh(graph: Graph, taken: dict[str, TensorSpec], base: str) -> str:
    name, n = f"{base}.hwc", 1
    while name in graph.tensors or name in taken:
        n += 1
        name = f"{base}.hwc{n}"
    return name


def flatten_channels_last(graph: Graph) -> Graph:
    """``graph`` with every NCHW flatten of a spatial map that only linear layers read turned into an
    "hwc" flatten (a view in the engine), and those linear layers' weights ``[O, C*H*W]`` (int8 or
    float32) permuted from ``(c, h, w)`` to ``(h, w, c)`` column order; the logits are unchanged.

    A weight that another node reads too is copied into a new constant (``<name>.hwc``); per-output
    channel quantization is untouched. Any other flatten of a spatial map is left as it is, for
    :func:`tte_ir.kernels.kernel_call` to refuse. The result is verified.
    """
    nodes = list(graph.nodes)
    position = {node.name: i for i, node in enumerate(nodes)}
    tensors = dict(graph.tensors)
    constants = dict(graph.constants)
    replaced: set[str] = set()
    for node in graph.nodes:
        readers = _linear_readers(graph, node.outputs[0]) if _spatial_flatten(graph, node) else None
        if readers is None:
            continue
        _, channels, height, width = graph.tensors[node.inputs[0]].shape
        nodes[position[node.name]] = Node(node.name, node.op, node.inputs, node.outputs, {**node.attrs, "order": "hwc"})
        for linear in readers:
            w = linear.inputs[1]
            out_features = graph.tensors[w].shape[0]
            permuted = graph.constants[w].reshape(out_features, channels, height, width).transpose(0, 2, 3, 1)
            permuted = np.ascontiguousarray(permuted).reshape(out_features, -1)
            if len(graph.consumers(w)) == 1:
                constants[w] = permuted
                continue
            spec = graph.tensors[w]
            name = _fresh(graph, tensors, w)
            tensors[name] = TensorSpec(name, spec.shape, spec.dtype, spec.quant)
            constants[name] = permuted
            inputs = (linear.inputs[0], name, *linear.inputs[2:])
            nodes[position[linear.name]] = Node(linear.name, linear.op, inputs, linear.outputs, linear.attrs)
            replaced.add(w)
    still_read = {t for node in nodes for t in node.inputs}
    for w in replaced - still_read:
        del tensors[w], constants[w]
    return verify(graph.replace(nodes=nodes, tensors=tensors, constants=constants))
