"""``tte eval``: the forward of a graph over a dataset, its accuracy and its int8 output codes.

Any graph with a forward: an imported one (``tte import-tflite``, ``tte import-pkl``), a quantized one
(``tte quantize``) or a training graph (``tte compile``, trained by ``tte run -o``), whose forward
nodes run with its trained parameters. The forward is the numpy reference (:mod:`tte_ir.reference`),
the executable form of NUMERICS.md, so its codes are what the C engine computes.

The data are any ``--data`` form (:mod:`tte_ir.datasets`): ``digits``, an image folder, or an ``.npz``
of float inputs or of the int8 input codes themselves ``x`` int8 ``[N, C, H, W]`` (how TFLite's
interpreter's inputs are fed unchanged: ``numpy.savez(f, x=inputs.transpose(0, 3, 1, 2), y=labels)``
for NHWC inputs). Images (digits, folders) fill the input's int8 range: pixel ``p`` is the code
``p - 128``, the seed convention's code and the one a TFLite model quantized from ``[0, 1]`` images
(scale 1/255, zero point -128) expects. Float inputs of an ``.npz`` take the graph input's scale and
zero point (:func:`tte_ir.datasets.to_codes`).

``--codes`` writes an ``.npz`` with ``codes`` (the output codes ``[N, classes]``: int8, or float32 logits
of an fp32 head) and ``labels``; a graph imported from TFLite with a final SOFTMAX (recorded in its
``metadata["softmax"]``) also gets ``logits`` (the codes before it), and ``codes`` are TFLite's int8
softmax of them (:func:`tte_ir.tflite_import.softmax_int8`), which is what TFLite's interpreter
outputs. Accuracy is top-1 of the logits.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tte_ir._ir import DType, Graph, Op, QuantParams, TteError
from tte_ir.datasets import Data, load_dataset, parse_classes
from tte_ir.quant import requant_mode
from tte_ir.reference import FORWARD, forward_node

__all__ = ["EvalResult", "evaluate_graph", "forward_of", "register_eval"]


@dataclass(frozen=True)
class EvalResult:
    """One evaluation: the logits (the graph's output codes, or an fp32 head's logits) ``[N, classes]``,
    the final codes (after a recorded softmax; else the logits themselves) and the labels."""

    logits: np.ndarray
    codes: np.ndarray
    labels: np.ndarray

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy of the logits (0 on no inputs)."""
        return float(np.mean(np.argmax(self.logits, axis=1) == self.labels)) if len(self.labels) else 0.0


def forward_of(graph: Graph) -> tuple[str, str, list[Any]]:
    """``(input, logits, nodes)``: the tensors and the forward nodes, in order, that compute a graph's
    logits from its image. A training graph's come from its training record; its training ops are
    left out (the forward reads only constants, the trained parameters among them, and forward
    outputs). Refused when the graph has no forward that ends in its logits."""
    info = graph.metadata.get("training")
    if isinstance(info, Mapping) and "input" in info and "logits" in info:
        image, logits = str(info["input"]), str(info["logits"])
    else:
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise TteError(
                f"graph '{graph.name}' has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; tte eval "
                "runs a model of one image and one output"
            )
        image, logits = graph.inputs[0], graph.outputs[0]
    nodes = []
    for node in graph.nodes:
        if node.op in FORWARD or node.op is Op.RESHAPE:
            nodes.append(node)
        if logits in node.outputs:
            break
    if not any(logits in node.outputs for node in nodes):
        raise TteError(f"graph '{graph.name}': no forward node writes its logits '{logits}'")
    return image, logits, nodes


def _codes(data: Data, graph: Graph, image: str, images: bool) -> np.ndarray:
    """The int8 input codes of ``data`` (module docstring: images fill the int8 range)."""
    if data.x.dtype == np.int8:
        return data.x
    if images:  # (p - 128) / 127.5 is exactly the code p - 128 under scale 1/127.5, zero point 0
        return data.codes(QuantParams.per_tensor(1 / 127.5, 0))
    return data.codes(graph.tensors[image].quant)


def evaluate_graph(graph: Graph, x: np.ndarray, y: np.ndarray) -> EvalResult:
    """Run the forward of ``graph`` (:func:`forward_of`) on every int8 input ``x[i]`` ``[C, H, W]``;
    the codes of a recorded TFLite softmax are computed from the logits."""
    image, logits, nodes = forward_of(graph)
    spec = graph.tensors[image]
    if tuple(x.shape[1:]) != spec.shape[1:]:
        raise TteError(
            f"the data are {list(x.shape)}; graph '{graph.name}' takes [N, {', '.join(map(str, spec.shape[1:]))}]"
        )
    out = graph.tensors[logits]
    rows = []
    for sample in x:
        values: dict[str, np.ndarray] = dict(graph.constants)
        values[image] = np.ascontiguousarray(sample[None], dtype=np.int8)
        for node in nodes:
            values.update(forward_node(graph, node, values))
        rows.append(np.asarray(values[logits]).reshape(-1))
    result = np.stack(rows) if rows else np.zeros((0, out.shape[-1]), out.dtype.numpy)
    codes = result
    softmax = graph.metadata.get("softmax")
    if isinstance(softmax, Mapping) and out.dtype is DType.INT8:
        from tte_ir.tflite_import import softmax_int8

        codes = softmax_int8(result, input_scale=out.quant.tensor_scale, beta=float(softmax["beta"]))
    return EvalResult(result, codes, np.asarray(y, dtype=np.int64))


def register_eval(subparsers: Any) -> None:
    """Add ``tte eval``."""
    p = subparsers.add_parser(
        "eval",
        help="run a graph's forward over a dataset: accuracy and its int8 output codes",
        description="The numpy reference forward of an imported, quantized or trained graph over --data: top-1 "
        "accuracy, and with --codes the output codes of every input (what a TFLite interpreter is compared with).",
    )
    p.add_argument("graph", help="a .tte graph (forward or training)")
    p.add_argument(
        "--data",
        required=True,
        help="'digits', an image folder (one sub-folder per class), or an .npz with x (int8 input codes or float "
        "inputs [N, C, H, W]) and y (labels [N])",
    )
    p.add_argument("--classes", help="restrict --data to these classes, e.g. 5-9 (relabelled 0..)")
    p.add_argument("--limit", type=int, help="evaluate the first LIMIT inputs only")
    p.add_argument("--codes", metavar="FILE", help="write the output codes (and labels) as an .npz")
    p.add_argument("--json", metavar="FILE", help="write the figures as one JSON object")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from tte_ir.cli_args import bounded_int, distinct_outputs, output_file
    from tte_ir.serialize import atomic_write_bytes, load

    if args.limit is not None:
        bounded_int(args.limit, "--limit", 1)
    for name, value in (("--codes", args.codes), ("--json", args.json)):
        if value:
            output_file(value, name)
    distinct_outputs(("--codes", args.codes), ("--json", args.json))
    graph = load(args.graph)
    try:
        image, logits, _ = forward_of(graph)
    except TteError as exc:
        raise TteError(f"{args.graph}: {exc}") from None
    shape = graph.tensors[image].shape[1:]
    head = graph.tensors[logits].shape[-1]
    classes = parse_classes(args.classes)
    data = load_dataset(args.data, shape=shape, classes=classes, head=head, int8_codes=True)
    images = args.data == "digits" or Path(args.data).is_dir()
    x, y = _codes(data, graph, image, images), data.y
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    result = evaluate_graph(graph, x, y)
    print(f"{args.graph}: {len(y)} inputs from {data.source}, top-1 accuracy {result.accuracy:.4f}")
    if args.codes:
        arrays = {"codes": result.codes, "labels": result.labels}
        if result.codes is not result.logits:
            arrays["logits"] = result.logits
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(Path(args.codes), buffer.getvalue())
        print(f"wrote {args.codes}: codes {result.codes.dtype}{list(result.codes.shape)}")
    if args.json:
        figures = {
            "graph": args.graph, "data": data.source, "inputs": len(y), "accuracy": result.accuracy,
            "requant": requant_mode(graph), "softmax": "softmax" in graph.metadata,
        }  # fmt: skip
        atomic_write_bytes(Path(args.json), (json.dumps(figures, indent=1) + "\n").encode())
    return 0
