"""``tte compile`` and ``tte plan``: build a training graph from a forward graph and a scheme, and
report its memory plan. Registered through the ``tte.commands`` entry points of tte-ir."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tte_ir._ir import TteError
from tte_ir.cli_args import output_file, parse_bytes

__all__ = ["BudgetError", "parse_bytes", "register_compile", "register_plan"]


class BudgetError(TteError):
    """A compiled training step needs more memory than the budget allows."""


def _add_layout_option(p: Any) -> None:
    p.add_argument(
        "--input-outside-arena",
        action="store_true",
        help="plan the input image as a separate I/O buffer (default: inside the arena, the layout "
        "`tte generate` emits, where the image's bytes serve later tensors once it is dead)",
    )


def _print_report(report: Any, graph: Any) -> None:
    from tte_ir.ops import node_macs
    from tte_ir.tiling import recomputed_macs

    for line in report.lines():
        print(line)
    recomputed = recomputed_macs(graph)
    forward = sum(node_macs(graph, n) for n in graph.nodes[: _loss_index(graph)])
    print(f"recomputed    {recomputed:>12,} MACs in row-tile halos ({100 * recomputed / max(forward, 1):.1f}% of the "
          f"forward's {forward:,})")  # fmt: skip


def _loss_index(graph: Any) -> int:
    from tte_ir._ir import Op

    return next((i for i, n in enumerate(graph.nodes) if n.op is Op.SOFTMAX_CE), len(graph.nodes))


def register_compile(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compile",
        help="compile a forward graph and a sparse-update scheme into a training graph",
        description="Derive, prune, reorder and tile one training step, plan its memory and print the report.",
    )
    p.add_argument("model", help="forward graph (.tte)")
    p.add_argument("--scheme", required=True, help="scheme JSON, or FILE:model/label in the seed-schemes file")
    p.add_argument("-o", "--output", required=True, help="the training graph (.tte) to write")
    p.add_argument(
        "--budget",
        help="the memory the step may use, e.g. 128KB: row tiles grow (fewer recomputed MACs, a faster step) while "
        "the total fits; exit 2 when even the smallest-peak schedule does not",
    )
    p.add_argument("--no-tiling", action="store_true", help="no row- or channel-tiled fused groups")
    _add_layout_option(p)
    p.set_defaults(func=_cmd_compile)


def _cmd_compile(args: argparse.Namespace) -> int:
    from tte_ir.compiler import compile_training
    from tte_ir.memory import memory_report
    from tte_ir.scheme import load_scheme
    from tte_ir.serialize import load, save

    budget = None if args.budget is None else parse_bytes(args.budget, "--budget")
    output_file(args.output, "-o")
    forward = load(args.model)
    scheme = load_scheme(args.scheme)
    try:
        graph = compile_training(
            forward, scheme, tiling=not args.no_tiling, budget=budget, input_in_arena=not args.input_outside_arena
        )
    except TteError as exc:
        raise TteError(f"{args.scheme}: {exc}") from None
    report = memory_report(graph, input_in_arena=not args.input_outside_arena)
    if budget is not None and report.total_bytes > budget:
        raise BudgetError(
            f"the training step needs {report.total_bytes:,} B (arena {report.arena_peak_bytes:,} + trainable "
            f"{report.trainable_bytes:,} + I/O {report.io_bytes:,}), over the budget of {budget:,} B; "
            f"the arena peaks at '{report.peak_op}'"
        )
    save(graph, args.output)
    print(f"wrote {args.output}: {len(graph.nodes)} nodes")
    _print_report(report, graph)
    return 0


def register_plan(subparsers: Any) -> None:
    p = subparsers.add_parser("plan", help="print the memory plan of a training graph")
    p.add_argument("file", help="a training graph (.tte) from `tte compile`")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--plot", metavar="PNG", help="write a picture of the arena plan, buffer by buffer")
    p.add_argument("--planner", choices=("auto", "best-fit", "first-fit", "naive"), default="auto")
    _add_layout_option(p)
    p.set_defaults(func=_cmd_plan)


def _cmd_plan(args: argparse.Namespace) -> int:
    from tte_ir.autodiff import training_info
    from tte_ir.memory import GreedyPlanner, NaivePlanner, memory_report
    from tte_ir.memory_plot import plot_memory
    from tte_ir.serialize import load

    if args.plot:
        output_file(args.plot, "--plot")
    graph = load(args.file)
    try:
        training_info(graph)
    except TteError as exc:
        raise TteError(f"{args.file}: {exc}") from None
    planner = NaivePlanner() if args.planner == "naive" else GreedyPlanner(args.planner)
    report = memory_report(graph, planner, input_in_arena=not args.input_outside_arena)
    if args.plot:
        plot_memory(graph, report, args.plot)
    if args.json:
        from tte_ir.tiling import recomputed_macs

        print(json.dumps({**report.to_json(), "recomputed_macs": recomputed_macs(graph)}))
    else:
        _print_report(report, graph)
    return 0
