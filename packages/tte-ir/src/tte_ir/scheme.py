"""Sparse-update schemes (NUMERICS.md §6): which biases and which weight slices train.

A scheme is a small versioned JSON object::

    {
      "format": "tte-scheme", "version": 1,
      "n_bias": 20,                                  # biases of the last 20 convs train (head excluded)
      "weights": [{"conv": 24, "ratio": 0.25}, ...], # conv index -> fraction of channels whose weights train
      "channel_selection": "magnitude",              # the only rule: largest L2 norm first, ties by lower index
      "head": "fp32",                                # classifier head precision while training: "fp32" or "int8"
      "train_head": true,                            # the head's weights and bias train
      "rounding": "stochastic",                      # "stochastic", "nearest" or "float-master" (simulation only)
      "lr": 0.05, "head_lr": 0.05, "momentum": 0.0, "seed": 0
    }

**Conv indices** count the convolutions of the forward graph in schedule order, 0 = the stem,
the classifier head excluded; this is the seed paper's ``manual_weight_idx`` convention, so its
published schemes (``../shared/schemes/seed-schemes.json``) load unchanged through
:func:`load_scheme` (``n_bias_update``, ``manual_weight_idx``, ``weight_update_ratio``). A seed ratio
of 0 means "no weights" and is dropped.

**Ratios** are in {1/8, 1/4, 1/2, 1}, over **input** channels of a dense or pointwise conv and over
the channels of a depthwise conv. ``ceil(ratio * C)`` channels train, chosen by
:func:`select_channels`; the same list serves the simulator, the reference and the engine.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from tte_ir._ir import Graph, Node, Op, TteError
from tte_ir.kernels import DEPTHWISE, conv_family
from tte_ir.ops import node_attrs

__all__ = [
    "ALLOWED_RATIOS",
    "ROUNDING_MODES",
    "Scheme",
    "SchemeError",
    "WeightUpdate",
    "conv_node_family",
    "conv_nodes",
    "is_depthwise",
    "load_scheme",
    "save_scheme",
    "select_channels",
]

SCHEME_VERSION = 1
ALLOWED_RATIOS = (Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), Fraction(1, 1))
ROUNDING_MODES = ("stochastic", "nearest", "float-master")
HEAD_PRECISIONS = ("fp32", "int8")


class SchemeError(TteError):
    """A scheme is malformed or does not fit the graph it is applied to."""


@dataclass(frozen=True)
class WeightUpdate:
    """Train ``ratio`` of the channels of conv ``conv`` (see the module docstring)."""

    conv: int
    ratio: float


@dataclass(frozen=True)
class Scheme:
    """A validated sparse-update scheme. Construct through :meth:`from_json` or directly."""

    n_bias: int = 0
    weights: tuple[WeightUpdate, ...] = ()
    channel_selection: str = "magnitude"
    head: str = "fp32"
    train_head: bool = True
    rounding: str = "stochastic"
    lr: float = 0.05
    head_lr: float = 0.05
    momentum: float = 0.0
    seed: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", tuple(sorted(self.weights, key=lambda w: w.conv)))
        if not isinstance(self.n_bias, int) or self.n_bias < 0:
            raise SchemeError(f"n_bias must be a non-negative integer, got {self.n_bias!r}")
        seen = set()
        for w in self.weights:
            if not isinstance(w.conv, int) or w.conv < 0:
                raise SchemeError(f"weight update conv index must be a non-negative integer, got {w.conv!r}")
            if w.conv in seen:
                raise SchemeError(f"conv {w.conv} appears twice in the weight updates")
            seen.add(w.conv)
            if Fraction(w.ratio).limit_denominator(64) not in ALLOWED_RATIOS:
                raise SchemeError(f"conv {w.conv}: ratio {w.ratio} is not one of 1/8, 1/4, 1/2, 1")
        if self.channel_selection != "magnitude":
            raise SchemeError(f"channel_selection '{self.channel_selection}' is unknown (only 'magnitude')")
        if self.head not in HEAD_PRECISIONS:
            raise SchemeError(f"head precision '{self.head}' is unknown (fp32 or int8)")
        if self.rounding not in ROUNDING_MODES:
            raise SchemeError(f"rounding '{self.rounding}' is unknown ({', '.join(ROUNDING_MODES)})")
        for name in ("lr", "head_lr", "momentum"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise SchemeError(f"{name} must be a finite non-negative number, got {value!r}")
        object.__setattr__(self, "metadata", dict(self.metadata))

    def ratio_of(self, conv: int) -> float:
        """The weight-update ratio of conv ``conv`` (0 when its weights are frozen)."""
        for w in self.weights:
            if w.conv == conv:
                return w.ratio
        return 0.0

    def trains_bias(self, conv: int, n_convs: int) -> bool:
        """Whether conv ``conv`` (of ``n_convs`` body convs) has a trainable bias."""
        return conv >= n_convs - self.n_bias

    def validate_for(self, graph: Graph) -> None:
        """Check the scheme's indices against ``graph``; raise :class:`SchemeError` naming the problem."""
        convs = conv_nodes(graph)
        if self.n_bias > len(convs):
            raise SchemeError(f"n_bias {self.n_bias} exceeds the {len(convs)} convs of graph '{graph.name}'")
        for w in self.weights:
            if w.conv >= len(convs):
                raise SchemeError(
                    f"weight update of conv {w.conv} is out of range: graph '{graph.name}' has convs 0..{len(convs) - 1} "
                    "(0 = stem, head excluded)"
                )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "tte-scheme",
            "version": SCHEME_VERSION,
            "n_bias": self.n_bias,
            "weights": [{"conv": w.conv, "ratio": w.ratio} for w in self.weights],
            "channel_selection": self.channel_selection,
            "head": self.head,
            "train_head": self.train_head,
            "rounding": self.rounding,
            "lr": self.lr,
            "head_lr": self.head_lr,
            "momentum": self.momentum,
            "seed": self.seed,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "scheme") -> Scheme:
        """Parse a scheme in tte form or the seed paper's form (see the module docstring)."""
        if not isinstance(data, dict):
            raise SchemeError(f"{source}: a scheme is a JSON object")
        if "n_bias_update" in data:
            return cls._from_seed(data, source)
        if data.get("format") != "tte-scheme":
            raise SchemeError(f'{source}: not a tte scheme (expects "format": "tte-scheme" or the seed paper\'s keys)')
        if int(data.get("version", 0)) > SCHEME_VERSION:
            raise SchemeError(
                f"{source}: scheme version {data['version']} is newer than this tte-ir reads ({SCHEME_VERSION})"
            )
        known = set(cls().to_json())
        unknown = set(data) - known
        if unknown:
            raise SchemeError(f"{source}: unknown key '{sorted(unknown)[0]}'")
        try:
            weights = tuple(WeightUpdate(int(w["conv"]), float(w["ratio"])) for w in data.get("weights", []))
            fields = {k: data[k] for k in known - {"format", "version", "weights"} if k in data}
            return cls(weights=weights, **fields)
        except SchemeError as exc:
            raise SchemeError(f"{source}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemeError(f"{source}: malformed weight update ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _from_seed(cls, data: Mapping[str, Any], source: str) -> Scheme:
        idx = data.get("manual_weight_idx", [])
        ratios = data.get("weight_update_ratio", [])
        if len(idx) != len(ratios):
            raise SchemeError(f"{source}: manual_weight_idx and weight_update_ratio differ in length")
        criteria = data.get("weight_select_criteria", "magnitude+")
        if criteria != "magnitude+":
            raise SchemeError(f"{source}: weight_select_criteria '{criteria}' is unsupported (only 'magnitude+')")
        try:
            weights = tuple(
                WeightUpdate(int(i), float(r)) for i, r in zip(idx, ratios, strict=False) if float(r) != 0.0
            )
            return cls(n_bias=int(data["n_bias_update"]), weights=weights, metadata={"converted_from": "seed"})
        except SchemeError as exc:
            raise SchemeError(f"{source}: {exc}") from None


def load_scheme(path: str | os.PathLike[str], key: Sequence[str] = ()) -> Scheme:
    """Read a scheme file. ``key`` selects a nested entry (e.g. ``("mcunet-5fps", "49kb")`` in the
    seed-schemes file); ``path`` may also be written ``FILE:model/label``."""
    text = str(path)
    if not key and ":" in text and not Path(text).exists():
        text, _, selector = text.rpartition(":")
        key = tuple(selector.split("/"))
    try:
        data = json.loads(Path(text).read_text())
    except OSError as exc:
        raise SchemeError(f"{text}: cannot read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise SchemeError(f"{text}: invalid JSON ({exc})") from None
    for part in key:
        if not isinstance(data, dict) or part not in data:
            options = ", ".join(k for k in data if not k.startswith("_")) if isinstance(data, dict) else ""
            raise SchemeError(f"{text}: no entry '{part}' (available: {options})")
        data = data[part]
    return Scheme.from_json(data, text + (":" + "/".join(key) if key else ""))


def save_scheme(scheme: Scheme, path: str | os.PathLike[str]) -> Path:
    """Write ``scheme`` as JSON, atomically."""
    from tte_ir.serialize import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, (json.dumps(scheme.to_json(), indent=1) + "\n").encode())
    return path


def conv_nodes(graph: Graph) -> list[Node]:
    """The graph's conv2d nodes in schedule order: index 0 is the stem; the head (linear) is not one."""
    return [node for node in graph.nodes if node.op is Op.CONV2D]


def is_depthwise(graph: Graph, node: Node) -> bool:
    """A depthwise conv (:func:`tte_ir.kernels.conv_family`, the one decision)."""
    return conv_node_family(graph, node) == DEPTHWISE


def conv_node_family(graph: Graph, node: Node) -> str:
    """The kernel family (dense, depthwise, pointwise) of a conv2d node."""
    attrs = node_attrs(node)
    channels = graph.tensors[node.inputs[0]].shape[1]
    return conv_family(graph.tensors[node.inputs[1]].shape, channels, attrs["padding"], attrs["groups"])


def select_channels(weight: np.ndarray, ratio: float, depthwise: bool) -> np.ndarray:
    """The trained channel indices of a conv weight ``[O, C/g, KH, KW]`` at ``ratio``, ascending.

    Input channels (axis 1) of a dense/pointwise conv, channels (axis 0) of a depthwise conv;
    ``ceil(ratio * C)`` of them, the largest L2 norms of the int8 codes over the other axes first,
    ties broken by the lower index.
    """
    w = np.asarray(weight, dtype=np.int64)
    axis = 0 if depthwise else 1
    other = tuple(a for a in range(w.ndim) if a != axis)
    norms = (w * w).sum(axis=other)  # squared L2 norms, exact in int64
    count = math.ceil(float(Fraction(ratio).limit_denominator(64)) * norms.shape[0])
    order = sorted(range(norms.shape[0]), key=lambda c: (-int(norms[c]), c))
    return np.array(sorted(order[:count]), dtype=np.int32)
