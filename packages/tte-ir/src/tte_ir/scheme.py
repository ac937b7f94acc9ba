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
      "lr": 0.05, "head_lr": 0.05, "momentum": 0.0, "seed": 0,
      "batch": 1                                     # samples whose gradients are summed before one update
    }

**Conv indices** count the convolutions of the forward graph in schedule order, 0 = the stem,
the classifier head excluded; this is the seed paper's ``manual_weight_idx`` convention, so its
published schemes (``../shared/schemes/seed-schemes.json``) load unchanged through
:func:`load_scheme` (``n_bias_update``, ``manual_weight_idx``, ``weight_update_ratio``). A seed ratio
of 0 means "no weights" and is dropped. **Linear layers before the head count as convs** (a linear
layer is a 1x1 conv on a 1x1 map and trains as one): LeNet-5's conv, conv, fc120, fc84, head are
convs 0-3 and the head, so ``n_bias: 2`` trains the biases of fc120 and fc84, and ``{"conv": 3}``
fc84's weights (ratio over its input features). :func:`conv_nodes` is the one numbering; the
compiler, the simulated training, ``scheme_last_convs`` and the search all read it.

**Ratios** are in {1/8, 1/4, 1/2, 1}, over **input** channels of a dense or pointwise conv and over
the channels of a depthwise conv. ``ceil(ratio * C)`` channels train, chosen by
:func:`select_channels`; the same list serves the simulator, the reference and the engine.

**Batch** ``B`` (1 to :data:`MAX_BATCH`): the device sums the trained tensors' gradients over ``B``
samples in float32 accumulators (persistent state beside the parameters, reported by the memory plan)
and applies one update from their mean on every ``B``-th sample; the stochastic-rounding counter ``t``
counts updates (NUMERICS.md §5). ``B`` = 1 is the fused per-sample update.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from tte_ir._ir import Graph, Node, Op, TteError
from tte_ir.cli_args import bounded_float, bounded_int, learning_rate, seed_value
from tte_ir.constants import INT32_MAX
from tte_ir.kernels import DEPTHWISE, POINTWISE, conv_family
from tte_ir.ops import MAX_BATCH, node_attrs

__all__ = [
    "ALLOWED_RATIOS",
    "MAX_BATCH",
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
MAX_INDEX = INT32_MAX  # a conv index or bias count the generated C holds in an int32
MAX_SCHEME_BYTES = 16 * 1024**2  # a scheme is a few hundred bytes; far larger is not one
MAX_METADATA_DEPTH = 16  # the metadata travels into the .tte header, whose loader limits nesting too
SEED_KEYS = ("n_bias_update", "manual_weight_idx", "weight_update_ratio", "weight_select_criteria")
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "conv", bounded_int(self.conv, '"conv"', 0, MAX_INDEX, SchemeError))
        ratio = _allowed_ratio(self.ratio)
        if ratio is None:
            raise SchemeError(f"conv {self.conv}: ratio {reprlib.repr(self.ratio)} is not one of 1/8, 1/4, 1/2, 1")
        object.__setattr__(self, "ratio", ratio)


def _allowed_ratio(value: Any) -> float | None:
    """``value`` as the exact float of an allowed ratio, or None when it is not one."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        fraction = Fraction(int(value))
    elif isinstance(value, (float, np.floating)) and math.isfinite(value):
        fraction = Fraction(float(value)).limit_denominator(64)
    else:
        return None
    return float(fraction) if fraction in ALLOWED_RATIOS else None


def _check_metadata(value: Any, depth: int) -> None:
    """Refuse metadata the .tte header could not carry: deep nesting, non-string keys, non-JSON or
    non-finite values."""
    if depth > MAX_METADATA_DEPTH:
        raise SchemeError(f'"metadata" is nested deeper than {MAX_METADATA_DEPTH} levels')
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SchemeError(f'"metadata" keys must be strings, got {reprlib.repr(key)}')
            _check_metadata(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_metadata(item, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise SchemeError(f'"metadata" holds {value!r}; only finite numbers are allowed')
    elif value is not None and not isinstance(value, (str, int, float)):
        raise SchemeError(f'"metadata" holds a {type(value).__name__}; only JSON values are allowed')


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
    batch: int = 1
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.weights, (tuple, list)) or not all(isinstance(w, WeightUpdate) for w in self.weights):
            raise SchemeError(f'"weights" must be a list of weight updates, got {reprlib.repr(self.weights)}')
        object.__setattr__(self, "weights", tuple(sorted(self.weights, key=lambda w: w.conv)))
        object.__setattr__(self, "n_bias", bounded_int(self.n_bias, '"n_bias"', 0, MAX_INDEX, SchemeError))
        seen = set()
        for w in self.weights:
            if w.conv in seen:
                raise SchemeError(f'"weights": conv {w.conv} appears twice')
            seen.add(w.conv)
        for name, allowed in (
            ("channel_selection", ("magnitude",)),
            ("head", HEAD_PRECISIONS),
            ("rounding", ROUNDING_MODES),
        ):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in allowed:
                raise SchemeError(f'"{name}" {reprlib.repr(value)} is unknown (allowed: {", ".join(allowed)})')
        if not isinstance(self.train_head, bool):
            raise SchemeError(f'"train_head" must be true or false, got {reprlib.repr(self.train_head)}')
        object.__setattr__(self, "lr", learning_rate(self.lr, '"lr"', SchemeError))
        object.__setattr__(self, "head_lr", learning_rate(self.head_lr, '"head_lr"', SchemeError))
        momentum = bounded_float(self.momentum, '"momentum"', 0.0, 1.0, high_open=True, error=SchemeError)
        object.__setattr__(self, "momentum", momentum)
        object.__setattr__(self, "seed", seed_value(self.seed, '"seed"', SchemeError))
        object.__setattr__(self, "batch", bounded_int(self.batch, '"batch"', 1, MAX_BATCH, SchemeError))
        if not isinstance(self.metadata, Mapping):
            raise SchemeError(f'"metadata" must be a JSON object, got {reprlib.repr(self.metadata)}')
        _check_metadata(self.metadata, 0)
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
        """Check the scheme's indices against ``graph``; raise :class:`SchemeError` naming the field."""
        seed = self.metadata.get("converted_from") == "seed"
        bias_field, conv_field = ('"n_bias_update"', '"manual_weight_idx"') if seed else ('"n_bias"', '"weights"')
        convs = conv_nodes(graph)
        if self.n_bias > len(convs):
            raise SchemeError(
                f"{bias_field}: n_bias {self.n_bias} exceeds the {len(convs)} convs of graph '{graph.name}'"
            )
        for w in self.weights:
            if w.conv >= len(convs):
                raise SchemeError(
                    f"{conv_field}: weight update of conv {w.conv} is out of range: graph '{graph.name}' has convs "
                    f"0..{len(convs) - 1} (0 = stem, head excluded)"
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
            "batch": self.batch,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "scheme") -> Scheme:
        """Parse a scheme in tte form or the seed paper's form (see the module docstring); every field is
        checked by type and range, and any problem is one :class:`SchemeError` naming ``source`` and the
        field."""
        if not isinstance(data, dict):
            raise SchemeError(f"{source}: a scheme is a JSON object, got {type(data).__name__}")
        try:
            return cls._from_seed(data) if "n_bias_update" in data else cls._from_tte(data)
        except SchemeError as exc:
            raise SchemeError(f"{source}: {exc}") from None

    @classmethod
    def _from_tte(cls, data: Mapping[str, Any]) -> Scheme:
        if data.get("format") != "tte-scheme":
            raise SchemeError('not a tte scheme (expects "format": "tte-scheme" or the seed paper\'s keys)')
        version = bounded_int(data.get("version", SCHEME_VERSION), '"version"', 1, error=SchemeError)
        if version > SCHEME_VERSION:
            raise SchemeError(f"scheme version {version} is newer than this tte-ir reads ({SCHEME_VERSION})")
        known = set(cls().to_json())
        unknown = set(data) - known
        if unknown:
            raise SchemeError(f"unknown key {reprlib.repr(sorted(unknown)[0])} (allowed: {', '.join(sorted(known))})")
        raw = data.get("weights", [])
        if not isinstance(raw, list):
            raise SchemeError(f'"weights" must be a list of {{"conv": INDEX, "ratio": R}}, got {reprlib.repr(raw)}')
        weights = []
        for i, entry in enumerate(raw):
            if not isinstance(entry, dict) or set(entry) != {"conv", "ratio"}:
                raise SchemeError(
                    f'"weights"[{i}] must be an object with exactly "conv" and "ratio", got {reprlib.repr(entry)}'
                )
            try:
                weights.append(WeightUpdate(entry["conv"], entry["ratio"]))
            except SchemeError as exc:
                raise SchemeError(f'"weights"[{i}]: {exc}') from None
        fields = {k: data[k] for k in known - {"format", "version", "weights"} if k in data}
        return cls(weights=tuple(weights), **fields)

    @classmethod
    def _from_seed(cls, data: Mapping[str, Any]) -> Scheme:
        unknown = set(data) - set(SEED_KEYS)
        if unknown:
            raise SchemeError(
                f"unknown key {reprlib.repr(sorted(unknown)[0])} in a seed-paper scheme (allowed: {', '.join(SEED_KEYS)})"
            )
        n_bias = bounded_int(data["n_bias_update"], '"n_bias_update"', 0, MAX_INDEX, SchemeError)
        idx = data.get("manual_weight_idx", [])
        ratios = data.get("weight_update_ratio", [])
        if not isinstance(idx, list) or not isinstance(ratios, list):
            raise SchemeError('"manual_weight_idx" and "weight_update_ratio" must be lists')
        if len(idx) != len(ratios):
            raise SchemeError('"manual_weight_idx" and "weight_update_ratio" differ in length')
        criteria = data.get("weight_select_criteria", "magnitude+")
        if criteria != "magnitude+":
            raise SchemeError(f'"weight_select_criteria" {reprlib.repr(criteria)} is unsupported (only "magnitude+")')
        weights = []
        for i, (conv, ratio) in enumerate(zip(idx, ratios, strict=True)):
            where = f'"manual_weight_idx"[{i}] / "weight_update_ratio"[{i}]'
            try:
                bounded_int(conv, '"conv"', 0, MAX_INDEX, SchemeError)
                if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and ratio == 0:
                    continue  # the seed paper's "no weights for this conv"
                weights.append(WeightUpdate(conv, ratio))
            except SchemeError as exc:
                raise SchemeError(f"{where}: {exc}") from None
        return cls(n_bias=n_bias, weights=tuple(weights), metadata={"converted_from": "seed"})


def load_scheme(path: str | os.PathLike[str], key: Sequence[str] = ()) -> Scheme:
    """Read a scheme file. ``key`` selects a nested entry (e.g. ``("mcunet-5fps", "49kb")`` in the
    seed-schemes file); ``path`` may also be written ``FILE:model/label``."""
    text = str(path)
    if not key and ":" in text and not Path(text).exists():
        text, _, selector = text.rpartition(":")
        key = tuple(selector.split("/"))
    try:
        size = os.stat(text).st_size
        if size > MAX_SCHEME_BYTES:
            raise SchemeError(f"{text}: {size:,} B is too large for a scheme (at most {MAX_SCHEME_BYTES:,} B)")
        data = json.loads(Path(text).read_bytes())
    except OSError as exc:
        raise SchemeError(f"{text}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError, bad UTF-8, integers past Python's digit limit, nesting past the recursion limit
        raise SchemeError(f"{text}: invalid JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    for part in key:
        if not isinstance(data, dict) or part not in data:
            keys = [k for k in data if not k.startswith("_")] if isinstance(data, dict) else []
            options = ", ".join(k if k.isprintable() else repr(k) for k in keys)
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
    """The layers a scheme numbers (module docstring), in schedule order: the graph's conv2d nodes and
    its linear layers before the head; index 0 is the stem. The head, the linear layer that writes the
    graph's output, is not one."""
    head = graph.producer(graph.outputs[0]) if graph.outputs else None
    return [node for node in graph.nodes if node.op is Op.CONV2D or (node.op is Op.LINEAR and node is not head)]


def is_depthwise(graph: Graph, node: Node) -> bool:
    """A depthwise conv (:func:`tte_ir.kernels.conv_family`, the one decision)."""
    return conv_node_family(graph, node) == DEPTHWISE


def conv_node_family(graph: Graph, node: Node) -> str:
    """The kernel family (dense, depthwise, pointwise) of a conv2d node; a linear layer is pointwise
    (it trains as a 1x1 conv)."""
    if node.op is Op.LINEAR:
        return POINTWISE
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
