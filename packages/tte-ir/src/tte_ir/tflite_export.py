"""Trained weights back into TensorFlow Lite (``tte export-tflite``).

:func:`export_tflite` writes the weights and biases of a tte graph imported from a ``.tflite`` file
(:mod:`tte_ir.tflite_import`; a forward graph, trained by ``tte train``, or a training graph, trained
by ``tte run -o``) into a copy of that file. The copy keeps the file's graph, operators and
quantization byte for byte: only the bytes of the CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED
weight and bias buffers change, in place (their sizes do not), so TFLite Micro runs it as it ran the
original. The importer keeps TFLite's tensor names, which is how each parameter finds its tensor;
the layouts go back from tte's (OIHW, depthwise ``[O, 1, KH, KW]``) to TFLite's (OHWI, ``1HWO``), and
a conv whose trained channels live in a slice (``w_train``) is written with that slice merged in.

A graph that does not match the file is refused in one line: a parameter without a tensor of the same
name (a new head from ``--classes``), another shape, dtype (an fp32 head), per-channel scale or zero
point, an activation whose quantization differs, a graph imported from another file (its
``source_sha256``), or a linear layer that reads a channels-first flatten.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tte_ir._ir import Graph, Node, Op, TteError
from tte_ir.ops import OP_TABLE
from tte_ir.reference import effective_weight
from tte_ir.scheme import is_depthwise
from tte_ir.tflite_file import TfliteModel, TfliteTensor, parse_tflite, read_tflite

__all__ = ["TO_TFLITE_LAYOUT", "ExportSummary", "TfliteExportError", "export_tflite", "register_export_tflite"]

TO_TFLITE_LAYOUT: dict[str, tuple[int, ...] | None] = {
    "CONV_2D": (0, 2, 3, 1),  # tte [O, I, KH, KW] -> TFLite OHWI
    "DEPTHWISE_CONV_2D": (1, 2, 3, 0),  # tte [O, 1, KH, KW] -> TFLite 1HWO
    "FULLY_CONNECTED": None,  # [O, I] in both (the importer flattens a map channels-last, as TFLite does)
}
"""The axes that take a tte weight to the TFLite layout of the op reading it (``np.transpose``)."""

_OPS = {"CONV_2D": Op.CONV2D, "DEPTHWISE_CONV_2D": Op.CONV2D, "FULLY_CONNECTED": Op.LINEAR}
_NUMPY = {"INT8": np.dtype("i1"), "INT32": np.dtype("<i4")}


class TfliteExportError(TteError):
    """A graph cannot be written into a ``.tflite`` file."""


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_tflite` wrote: tensors written, how many changed, the largest change (codes)."""

    path: Path
    tensors: int
    changed: int
    max_change: int
    sha256: str


@dataclass(frozen=True)
class _FileOp:
    """A CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED of the file: its constant weights and bias."""

    index: int
    opcode: str
    weights: TfliteTensor
    bias: TfliteTensor | None


@dataclass(frozen=True)
class _GraphLayer:
    """A conv or linear node of the graph: which TFLite op it is, its weights (trained slice merged,
    in the TFLite op's layout) and its bias, with the tensor names they have in the graph."""

    node: Node
    opcode: str
    weights_name: str
    weights: np.ndarray
    bias_name: str | None
    bias: np.ndarray | None


def _file_ops(model: TfliteModel) -> list[_FileOp]:
    out = []
    for op in model.operators:
        if op.opcode not in TO_TFLITE_LAYOUT or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        weights = model.tensors[op.inputs[1]]
        bias = model.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        if weights.data is None or (bias is not None and bias.data is None):
            raise TfliteExportError(f"{op.opcode} #{op.index} computes its weights or bias at run time")
        out.append(_FileOp(op.index, op.opcode, weights, bias))
    return out


def _graph_layers(graph: Graph) -> list[_GraphLayer]:
    out = []
    for node in graph.nodes:
        if node.op not in (Op.CONV2D, Op.LINEAR):
            continue
        roles = dict(zip(OP_TABLE[node.op].roles(node.attrs)[0], node.inputs, strict=False))
        w_name, b_name = roles["w"], roles.get("b")
        if w_name not in graph.constants:
            continue  # weights computed by the graph: not a layer of an imported model
        w = np.asarray(graph.constants[w_name])
        if node.op is Op.LINEAR:
            _check_flatten_order(graph, node)
            opcode = "FULLY_CONNECTED"
        elif w_name == f"{node.name}.w4":
            # a training graph's int8 linear, run as a 1x1 conv on a 1x1 map (autodiff._linear_as_conv)
            opcode = "FULLY_CONNECTED"
            w = effective_weight(w, _constant(graph, roles.get("w_train")), node.attrs.get("channels"), False)
            w = w.reshape(w.shape[0], -1)
        else:
            depthwise = is_depthwise(graph, node)
            w = effective_weight(w, _constant(graph, roles.get("w_train")), node.attrs.get("channels"), depthwise)
            opcode = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
            w = w.transpose(TO_TFLITE_LAYOUT[opcode])
        bias = _constant(graph, b_name)
        out.append(_GraphLayer(node, opcode, w_name, np.ascontiguousarray(w), b_name, bias))
    return out


def _constant(graph: Graph, name: str | None) -> np.ndarray | None:
    return None if name is None or name not in graph.constants else np.asarray(graph.constants[name])


def _match(layers: list[_GraphLayer], ops: list[_FileOp]) -> list[tuple[_GraphLayer, _FileOp]]:
    """Each graph layer with the file op whose weights (else, for a linear run as a conv, whose bias)
    have its tensor's name; every layer and every op matched exactly once."""
    by_weights = {op.weights.name: op for op in ops}
    by_bias = {op.bias.name: op for op in ops if op.bias is not None}
    pairs, taken = [], set()
    for layer in layers:
        op = by_weights.get(layer.weights_name)
        if op is None and layer.weights_name == f"{layer.node.name}.w4" and layer.bias_name is not None:
            op = by_bias.get(layer.bias_name)
        if op is None:
            raise TfliteExportError(
                f"{layer.node.op.name.lower()} '{layer.node.name}' (weights '{layer.weights_name}') has no "
                "operator of the file with those weights (a new head from --classes cannot go back into the "
                "original model)"
            )
        if op.index in taken:
            raise TfliteExportError(f"two layers of the graph take the weights of {op.opcode} #{op.index}")
        taken.add(op.index)
        pairs.append((layer, op))
    for op in ops:
        if op.index not in taken:
            raise TfliteExportError(
                f"the file's {op.opcode} #{op.index} (weights '{op.weights.name}') is not a layer of the graph: "
                "export a graph imported from this file"
            )
    return pairs


def _check_flatten_order(graph: Graph, node: Node) -> None:
    producer = graph.producer(node.inputs[0])
    if producer is None or producer.op is not Op.RESHAPE:
        return
    if len(graph.tensors[producer.inputs[0]].shape) == 4 and producer.attrs.get("order", "nchw") != "hwc":
        raise TfliteExportError(
            f"linear '{node.name}' reads a channels-first flatten of a map; TFLite's FULLY_CONNECTED reads "
            "NHWC order, so its weights would not mean the same: export a graph made by tte import-tflite"
        )


def _check_quant(graph: Graph, name: str, tensor: TfliteTensor, what: str) -> None:
    """The graph keeps the file's scales and zero points (tte's int32 biases carry none: their scale is
    the input's times the weights', both checked)."""
    spec = graph.tensors[name]
    q = tensor.quantization
    if what == "bias" and spec.quant is None:
        return
    if spec.quant is None or q is None:
        if spec.quant is not None or q is not None:
            where = "the file" if spec.quant is None else "the graph"
            raise TfliteExportError(f"{what} '{name}' is quantized only in {where}")
        return
    scales = np.asarray(spec.quant.scale, dtype=np.float32)
    if scales.shape != q.scales.shape or not np.array_equal(scales, q.scales):
        raise TfliteExportError(
            f"{what} '{name}' has scales {_short(scales)} in the graph and {_short(q.scales)} in the file: "
            "the quantization must stay the file's"
        )
    zero = {int(spec.quant.zero_point)}
    if set(q.zero_points.tolist()) != zero:
        raise TfliteExportError(
            f"{what} '{name}' has zero point {zero.pop()} in the graph and {_short(q.zero_points)} in the file"
        )


def _short(values: np.ndarray) -> str:
    shown = ", ".join(f"{v:.9g}" for v in values.tolist()[:3])
    return f"[{shown}{', ...' if len(values) > 3 else ''}]"


def export_tflite(
    graph: Graph, like: str | os.PathLike[str], output: str | os.PathLike[str], *, graph_path: str | None = None
) -> ExportSummary:
    """Write ``graph``'s weights and biases into a copy of the ``.tflite`` file ``like`` at ``output``.

    ``graph_path`` names the graph in messages. Raises :class:`TfliteExportError` (one line) when the
    graph does not match the file; the output is written atomically, only after every check passed."""
    from tte_ir.serialize import atomic_write_bytes

    model = read_tflite(like)
    label = graph_path or f"graph '{graph.name}'"
    try:
        data, tensors, changed, max_change = _patched(graph, model, Path(like).read_bytes())
    except TfliteExportError as exc:
        raise TfliteExportError(f"{label} does not fit {like}: {exc}") from None
    except OSError as exc:
        raise TfliteExportError(f"{like}: cannot read ({exc.strerror or exc})") from None
    written = parse_tflite(data, str(output))  # the copy reads back as a TFLite model
    atomic_write_bytes(Path(output), data)
    return ExportSummary(Path(output), tensors, changed, max_change, written.digest)


def _patched(graph: Graph, model: TfliteModel, original: bytes) -> tuple[bytes, int, int, int]:
    """The patched file's bytes, the parameters written, how many changed, the largest change."""
    source = graph.metadata.get("source_sha256")
    if source is not None and source != model.digest:
        raise TfliteExportError(
            f"it was imported from {graph.metadata.get('source', 'another file')} (sha256 {str(source)[:12]}...), "
            f"not from this file ({model.digest[:12]}...)"
        )
    pairs = _match(_graph_layers(graph), _file_ops(model))
    data = bytearray(original)
    changed = max_change = written = 0
    regions: dict[int, bytes] = {}
    for layer, op in pairs:
        kind = f"{op.opcode} #{op.index}"
        if layer.opcode != op.opcode:
            raise TfliteExportError(f"{kind} is a {layer.opcode} in the graph ('{layer.node.name}')")
        parts = [("weights", layer.weights_name, layer.weights, op.weights)]
        if op.bias is not None:
            if layer.bias is None:
                raise TfliteExportError(f"{kind}: the graph's '{layer.node.name}' has no constant bias")
            parts.append(("bias", layer.bias_name, layer.bias, op.bias))
        elif layer.bias is not None and np.any(layer.bias):
            raise TfliteExportError(
                f"{kind} has no bias tensor in the file to hold the trained bias '{layer.bias_name}'"
            )
        for role, name, value, tensor in parts:
            what = f"{kind} {role} '{name}'"
            dtype = _NUMPY.get(tensor.dtype)
            if dtype is None or value.dtype.kind != dtype.kind or value.dtype.itemsize != dtype.itemsize:
                hint = ": train with an int8 head (--head int8)" if value.dtype.kind == "f" else ""
                raise TfliteExportError(f"{what} is {value.dtype} in the graph and {tensor.dtype} in the file{hint}")
            out = value.reshape(tensor.shape) if role == "bias" and value.size == math.prod(tensor.shape) else value
            if out.shape != tensor.shape:
                raise TfliteExportError(
                    f"{what} has shape {list(out.shape)} in TFLite's layout; the file's is {list(tensor.shape)}"
                )
            _check_quant(graph, name, tensor, role)
            raw = out.astype(dtype, copy=False).tobytes()
            start = tensor.data_offset
            if regions.get(start, raw) != raw:
                raise TfliteExportError(f"{what} shares its buffer with another parameter that trained differently")
            regions[start] = raw
            written += 1
            if raw != original[start : start + len(raw)]:
                changed += 1
                diff = np.abs(out.astype(np.int64) - tensor.data.astype(np.int64))
                max_change = max(max_change, int(diff.max()))
            data[start : start + len(raw)] = raw
    by_name = {t.name: t for t in model.tensors}
    for name in graph.tensors:
        if name not in graph.constants and name in by_name:
            _check_quant(graph, name, by_name[name], "activation")
    return bytes(data), written, changed, max_change


def register_export_tflite(subparsers: Any) -> None:
    """Add ``tte export-tflite``."""
    p = subparsers.add_parser(
        "export-tflite",
        help="write a trained graph's weights and biases into a copy of the .tflite it was imported from",
        description="Write the weights and biases of a .tte graph imported with tte import-tflite (then trained) "
        "into a copy of the original .tflite: same operators, same quantization, only the parameter bytes change.",
    )
    p.add_argument("graph", help="the trained .tte graph (forward or training)")
    p.add_argument("--like", required=True, help="the .tflite file the graph was imported from")
    p.add_argument("-o", "--output", required=True, help="the .tflite file to write")
    p.set_defaults(func=_cmd_export_tflite)


def _cmd_export_tflite(args: Any) -> int:
    from tte_ir.cli_args import distinct_outputs, output_file
    from tte_ir.serialize import load

    output_file(args.output, "-o")
    distinct_outputs(("--like", args.like), ("-o", args.output))
    graph = load(args.graph)
    summary = export_tflite(graph, args.like, args.output, graph_path=args.graph)
    print(
        f"wrote {args.output}: {summary.tensors} weight and bias tensors from {args.graph} into a copy of "
        f"{args.like} ({summary.changed} changed, largest change {summary.max_change} codes), "
        f"sha256 {summary.sha256[:16]}"
    )
    return 0
