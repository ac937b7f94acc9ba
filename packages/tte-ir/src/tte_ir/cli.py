"""The ``tte`` command. Each installed tte package contributes subcommands through the
``tte.commands`` entry-point group: an entry point is a function ``register(subparsers)`` that adds
one subparser and sets its ``func(args) -> int``. Installing a package gives exactly its commands.

Every error a user can cause is a :class:`~tte_ir.TteError`: it is printed as one line on stderr
and the command exits with status 2 (no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from importlib.metadata import entry_points
from typing import Any

from tte_ir._ir import DType, Op, TteError

__all__ = ["main", "register_import_pkl", "register_inspect"]


def register_import_pkl(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "import-pkl",
        help="import a seed-paper int8 MCU model (.pkl) as a .tte forward graph",
        description="Import one of the seed paper's int8 MCU models, replacing its 1000-class head.",
    )
    p.add_argument("model", help="seed model file, e.g. ../shared/models/mcunet-5fps.pkl")
    p.add_argument("-o", "--output", required=True, help="the .tte file to write")
    p.add_argument("--classes", type=int, default=10, help="classes of the new head (default 10)")
    p.add_argument("--head", choices=("int8", "fp32"), default="int8", help="head precision (default int8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the head initialisation (default 0)")
    p.set_defaults(func=_cmd_import_pkl)


def _cmd_import_pkl(args: argparse.Namespace) -> int:
    from tte_ir.cli_args import bounded_int, output_file, seed_value
    from tte_ir.importers import import_seed_pkl
    from tte_ir.serialize import save

    bounded_int(args.classes, "--classes", 1)
    seed_value(args.seed, "--seed")
    output_file(args.output, "-o")
    graph = import_seed_pkl(args.model, args.classes, head=args.head, seed=args.seed)
    save(graph, args.output)
    print(f"wrote {args.output}: {len(graph.nodes)} nodes, {len(graph.constants)} constant tensors")
    return 0


def register_inspect(subparsers: Any) -> None:
    p = subparsers.add_parser("inspect", help="print a per-layer table of a .tte graph")
    p.add_argument("file", help="a .tte file")
    p.set_defaults(func=_cmd_inspect)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from tte_ir.quant import requant_mode
    from tte_ir.serialize import load
    from tte_ir.summary import summarize

    graph = load(args.file)
    rows = summarize(graph)
    header = ("#", "node", "kind", "input", "output", "MACs", "param B", "act B")
    table = [
        (
            str(i),
            r.name,
            r.kind,
            "x".join(map(str, r.input_shape)),
            "x".join(map(str, r.output_shape)),
            f"{r.macs:,}",
            f"{r.param_bytes:,}",
            f"{r.activation_bytes:,}",
        )
        for i, r in enumerate(rows)
    ]
    widths = [max(len(h), *(len(row[c]) for row in table)) for c, h in enumerate(header)]
    numeric = {0, 5, 6, 7}

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(w) if c in numeric else cell.ljust(w)
            for c, (cell, w) in enumerate(zip(row, widths, strict=False))
        )

    print(
        f"graph '{graph.name}'  inputs {list(graph.inputs)}  outputs {list(graph.outputs)}  "
        f"requant {requant_mode(graph)}"
    )
    print(fmt(header))
    for row in table:
        print(fmt(row))
    counts = Counter(node.op for node in graph.nodes)
    int8_weight_bytes = sum(
        graph.tensors[node.inputs[1]].nbytes
        for node in graph.nodes
        if node.op in (Op.CONV2D, Op.LINEAR) and graph.tensors[node.inputs[1]].dtype is DType.INT8
    )
    float_weight_bytes = sum(
        graph.tensors[node.inputs[1]].nbytes
        for node in graph.nodes
        if node.op is Op.LINEAR and graph.tensors[node.inputs[1]].dtype is DType.FLOAT32
    )
    print(
        f"totals: {_count(counts[Op.CONV2D], 'conv')}, {_count(counts[Op.LINEAR], 'linear layer')}, "
        f"{_count(counts[Op.ADD], 'add')}, {sum(r.macs for r in rows):,} MACs, "
        f"{sum(r.param_bytes for r in rows):,} parameter bytes, "
        f"{int8_weight_bytes:,} int8 weight bytes, {float_weight_bytes:,} fp32 weight bytes, "
        f"largest activation {max(r.activation_bytes for r in rows):,} B"
    )
    for line in _provenance(graph.metadata):
        print(line)
    return 0


# what an importer records about the file a graph came from, in the order `tte inspect` shows it
_PROVENANCE_KEYS = ("source", "source_sha256", "importer", "tflite_ops", "quantization", "provenance", "softmax",
                    "head")  # fmt: skip


def _provenance(metadata: Any) -> list[str]:
    """One line per recorded provenance entry of a graph's metadata (nested mappings as ``key=value``)."""
    lines = []
    for key in _PROVENANCE_KEYS:
        if key not in metadata:
            continue
        value = metadata[key]
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        lines.append(f"{key}: {value}")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tte", description="tte, the Tiny Training Engine")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for ep in sorted(entry_points(group="tte.commands"), key=lambda e: e.name):
        ep.load()(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except TteError as exc:
        print(f"tte {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tte {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`tte inspect m.tte | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
