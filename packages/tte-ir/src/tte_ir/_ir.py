"""The immutable IR: dtypes, ops, quantization parameters, tensors, nodes, graphs.

Shapes are recorded in PyTorch order with an explicit batch of 1: activations ``[1, C, H, W]``,
flattened activations ``[1, C]``, conv weights ``[O, C/groups, KH, KW]``, linear weights ``[O, I]``.
Engines pick their own memory layout and permute constants when they load a graph.

Ids are explicit and stable: they are written into ``.tte`` files and into the generated C header
``engine/include/tte/tte_ops.h`` (see :mod:`tte_ir.gen_header`), so a member is never renumbered.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np


class TteError(Exception):
    """Base class of every error tte reports to a user (the CLI prints it as one line, exit 2)."""


class VerifyError(TteError):
    """A graph breaks an invariant; the message names the node, the op and the tensor."""


class DType(enum.Enum):
    """Element types. The value is the stable id written to files and the C header."""

    INT8 = 1
    INT32 = 2
    FLOAT32 = 3
    UINT8 = 4  # bit-packed masks and raw bytes

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(_NUMPY_DTYPES[self])

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @classmethod
    def from_name(cls, name: str) -> DType:
        try:
            return cls[name.upper()]
        except KeyError:
            allowed = ", ".join(m.name.lower() for m in cls)
            raise TteError(f"unknown dtype '{name}' (allowed: {allowed})") from None

    @classmethod
    def from_numpy(cls, dtype: np.dtype) -> DType:
        for member, np_name in _NUMPY_DTYPES.items():
            if np.dtype(np_name) == dtype:
                return member
        raise TteError(f"numpy dtype {dtype} has no tte dtype")


_NUMPY_DTYPES = {DType.INT8: "int8", DType.INT32: "int32", DType.FLOAT32: "float32", DType.UINT8: "uint8"}


class Op(enum.Enum):
    """Every operator of the IR. The value is the stable op id."""

    CONV2D = 1  # dense, depthwise (groups == C) and pointwise (1x1) convolution, int8
    ADD = 2  # quantized residual add, int8
    GLOBAL_AVG_POOL = 3  # [1,C,H,W] -> [1,C,1,1], int8
    LINEAR = 4  # int8 weights -> int8 output; float32 weights -> float32 logits
    RESHAPE = 5  # view change, same codes and quantization
    # Training ops (tte_ir.ops documents each; tte_ir.autodiff emits them).
    GATHER_CHANNELS = 6  # save the trained input channels of an int8 activation for backward
    SOFTMAX_CE = 7  # softmax cross-entropy: loss and the gradient w.r.t. the logits
    MASK_SCALE = 8  # g * mask * M[c]: gradient w.r.t. a conv accumulator
    ADD_BWD = 9  # residual add backward: both input gradients
    POOL_BWD = 10  # global average pool backward
    CONV2D_BWD_X = 11  # input gradient: transposed conv, optionally accumulated in place
    CONV2D_BWD_W_UPDATE = 12  # fused weight gradient + QAS update over the trained channels
    BIAS_UPDATE = 13  # fused bias gradient + QAS update
    LINEAR_F32_BWD_UPDATE = 14  # fp32 head: input gradient, then plain SGD on weight and bias
    ACCUMULATE = 15  # float32 fan-out sum, in place
    MAX_POOL = 16  # k x k max pool, int8, no requantization (the output keeps the input's quantization)
    MAX_POOL_BWD = 17  # max pool backward: the gradient routed to each window's saved arg-max
    AVG_POOL = 18  # k x k average pool with stride and padding, int8
    AVG_POOL_BWD = 19  # average pool backward
    LUT = 20  # elementwise int8 activation by a 256-entry table (hard_swish, hard_sigmoid, sigmoid)
    LUT_BWD = 21  # its input gradient: g * slope[x] (a float32 slope table over the input codes)
    MUL = 22  # int8 multiply of a feature map by a per-channel vector (squeeze-and-excite)
    MUL_BWD = 23  # its gradients with respect to both inputs
    CONV2D_BWD_W_ACCUMULATE = 28  # mini-batch: weight gradient summed into an accumulator, QAS update at batch end
    BIAS_ACCUMULATE = 29  # mini-batch: bias gradient summed into an accumulator, QAS update at batch end
    LINEAR_F32_ACCUMULATE = 30  # mini-batch: fp32 head gradients summed, SGD update at batch end
    CONCAT = 32  # two maps joined along channels (int8 forward, float32 for gradients); a copy or a view
    CHANNEL_SPLIT = 33  # a contiguous channel range of a map (int8 or float32); a copy or a view
    CHANNEL_SHUFFLE = 34  # ShuffleNet's channel permutation over `groups` (int8 or float32)
    CHANNEL_INSERT = 35  # channel split backward: g written (or added) into a channel range of gx

    @classmethod
    def from_name(cls, name: str) -> Op:
        try:
            return cls[name.upper()]
        except KeyError:
            allowed = ", ".join(m.name.lower() for m in cls)
            raise TteError(f"unsupported op '{name}' (supported: {allowed})") from None


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization ``real = scale * (code - zero_point)``.

    Per-tensor for activations (one ``scale``, one ``zero_point``); per-output-channel for weights
    (``scale`` has one entry per index of ``axis``, ``zero_point`` is 0). Scales are float32 values
    (NUMERICS.md §1) held as Python floats, which represent them exactly.
    """

    scale: tuple[float, ...]
    zero_point: int = 0
    axis: int | None = None  # None: per-tensor (len(scale) == 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", tuple(float(np.float32(s)) for s in self.scale))
        object.__setattr__(self, "zero_point", int(self.zero_point))

    @classmethod
    def per_tensor(cls, scale: float, zero_point: int) -> QuantParams:
        return cls((float(scale),), int(zero_point), None)

    @classmethod
    def per_channel(cls, scales: Iterable[float], axis: int = 0) -> QuantParams:
        return cls(tuple(float(s) for s in scales), 0, axis)

    @property
    def tensor_scale(self) -> float:
        """The single scale of a per-tensor quantization."""
        if self.axis is not None:
            raise TteError("per-channel quantization has no single scale")
        return self.scale[0]

    def scale_array(self) -> np.ndarray:
        """The scales as a float32 array."""
        return np.asarray(self.scale, dtype=np.float32)


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor: shape, dtype and, for int8 tensors, quantization."""

    name: str
    shape: tuple[int, ...]
    dtype: DType
    quant: QuantParams | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


def _frozen_mapping(items: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(items or {}))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _ints(value: Any, length: int) -> Any:
    """``value`` as a tuple of ``length`` ints: a plain int repeated, or a sequence of ``length`` ints;
    anything else unchanged, for :func:`tte_ir.verify` to name."""
    if _is_int(value):
        return (int(value),) * length
    if isinstance(value, (list, tuple)) and len(value) == length and all(_is_int(v) for v in value):
        return tuple(int(v) for v in value)
    return value


def as_pair(value: Any) -> Any:
    """A kernel size or stride as ``(along H, along W)``: a plain int means the same on both axes."""
    return _ints(value, 2)


def as_padding(value: Any) -> Any:
    """A padding as ``(top, left, bottom, right)`` (ONNX order): a plain int means the same on every side."""
    return _ints(value, 4)


# The window geometry of the conv and pool ops, normalized to tuples when a node is made, so that a
# plain int (older .tte files, builders, schemes) means the same on every axis or side.
_GEOMETRY_NORMALIZERS = {"kernel": as_pair, "stride": as_pair, "padding": as_padding}
_GEOMETRY_OPS = frozenset(
    (Op.CONV2D, Op.CONV2D_BWD_X, Op.CONV2D_BWD_W_UPDATE, Op.CONV2D_BWD_W_ACCUMULATE, Op.MAX_POOL, Op.MAX_POOL_BWD,
     Op.AVG_POOL, Op.AVG_POOL_BWD)
)  # fmt: skip


def _normalized_attrs(op: Op, attrs: Mapping[str, Any] | None) -> Mapping[str, Any]:
    attrs = dict(attrs or {})
    if op in _GEOMETRY_OPS:
        for key, normalize in _GEOMETRY_NORMALIZERS.items():
            if key in attrs:
                attrs[key] = normalize(attrs[key])
    return _frozen_mapping(attrs)


@dataclass(frozen=True)
class Node:
    """One operator application. ``attrs`` holds the op's attributes (see :mod:`tte_ir.ops`)."""

    name: str
    op: Op
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "attrs", _normalized_attrs(self.op, self.attrs))

    def describe(self) -> str:
        """How error messages name this node."""
        return f"node '{self.name}' ({self.op.name.lower()})"


@dataclass(frozen=True)
class Graph:
    """A verified-on-request, immutable dataflow graph.

    ``constants`` maps tensor names to read-only numpy arrays (weights, biases). ``metadata`` is
    free-form provenance (source file, importer, head init) that travels in the ``.tte`` file.
    """

    name: str
    tensors: Mapping[str, TensorSpec]
    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    constants: Mapping[str, np.ndarray]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tensors", _frozen_mapping(self.tensors))
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        frozen = {}
        for name, array in (self.constants or {}).items():
            array = np.array(array, copy=True)
            array.setflags(write=False)
            frozen[name] = array
        object.__setattr__(self, "constants", MappingProxyType(frozen))
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))

    def producer(self, tensor: str) -> Node | None:
        """The node that writes ``tensor`` (None for graph inputs and constants)."""
        for node in self.nodes:
            if tensor in node.outputs:
                return node
        return None

    def consumers(self, tensor: str) -> list[Node]:
        """The nodes that read ``tensor``, in schedule order."""
        return [node for node in self.nodes if tensor in node.inputs]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node named '{name}' in graph '{self.name}'")

    def replace(self, **changes: Any) -> Graph:
        """A copy with some fields changed (the graph itself is immutable)."""
        fields = {
            "name": self.name,
            "tensors": self.tensors,
            "nodes": self.nodes,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "constants": self.constants,
            "metadata": self.metadata,
        }
        fields.update(changes)
        return Graph(**fields)


class GraphBuilder:
    """Mutable helper that assembles a :class:`Graph` node by node, then verifies it."""

    def __init__(self, name: str, metadata: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.metadata = dict(metadata or {})
        self._tensors: dict[str, TensorSpec] = {}
        self._nodes: list[Node] = []
        self._inputs: list[str] = []
        self._outputs: list[str] = []
        self._constants: dict[str, np.ndarray] = {}

    def tensor(self, name: str, shape: Iterable[int], dtype: DType, quant: QuantParams | None = None) -> str:
        if name in self._tensors:
            raise VerifyError(f"graph '{self.name}': tensor '{name}' defined twice")
        self._tensors[name] = TensorSpec(name, tuple(shape), dtype, quant)
        return name

    def input(self, name: str, shape: Iterable[int], dtype: DType, quant: QuantParams | None = None) -> str:
        self.tensor(name, shape, dtype, quant)
        self._inputs.append(name)
        return name

    def constant(self, name: str, array: np.ndarray, quant: QuantParams | None = None) -> str:
        array = np.ascontiguousarray(array)
        self.tensor(name, array.shape, DType.from_numpy(array.dtype), quant)
        self._constants[name] = array
        return name

    def node(self, name: str, op: Op, inputs: Iterable[str], outputs: Iterable[str], **attrs: Any) -> Node:
        node = Node(name, op, tuple(inputs), tuple(outputs), attrs)
        self._nodes.append(node)
        return node

    def output(self, name: str) -> None:
        self._outputs.append(name)

    def spec(self, name: str) -> TensorSpec:
        return self._tensors[name]

    def has(self, name: str) -> bool:
        """Whether a tensor called ``name`` is declared."""
        return name in self._tensors

    def build(self, verify: bool = True) -> Graph:
        graph = Graph(
            self.name,
            dict(self._tensors),
            tuple(self._nodes),
            tuple(self._inputs),
            tuple(self._outputs),
            dict(self._constants),
            dict(self.metadata),
        )
        if verify:
            from tte_ir.verify import verify as _verify

            _verify(graph)
        return graph
