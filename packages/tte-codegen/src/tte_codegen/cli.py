"""``tte generate`` and ``tte run`` (entry points of the ``tte.commands`` group, see :mod:`tte_ir.cli`).

Every user error is a :class:`~tte_ir.TteError`: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from tte_ir import TteError

__all__ = ["memory_lines", "register_generate", "register_run"]


def register_generate(subparsers: Any) -> None:
    """Add ``tte generate``."""
    p = subparsers.add_parser(
        "generate",
        help="write the C project (model.h, model.c, weights.c, CMake) of a compiled training graph",
        description="Emit one training step as plain C: one static arena at the planner's offsets, frozen "
        "weights in flash, trained parameters in SRAM, and a CMake project for the host and the boards.",
    )
    p.add_argument("graph", help="a training graph (.tte) from `tte compile`")
    p.add_argument("-o", "--output", required=True, help="the folder to write the project into")
    p.add_argument("--name", default="model", help="project name (default: model)")
    p.add_argument("--root", help="tte checkout with engine/ and boards/ (default: $TTE_ROOT or this checkout)")
    p.set_defaults(func=_cmd_generate)


def _cmd_generate(args: argparse.Namespace) -> int:
    from tte_codegen.generate import generate
    from tte_ir import load

    project = generate(load(args.graph), args.output, name=args.name, root=args.root)
    m = project.manifest
    print(
        f"wrote {args.output}: model.h, model.c, weights.c, CMakeLists.txt; arena {m['planner']['arena_bytes']:,} B, "
        f"trained parameters {m['param_bytes']:,} B, frozen constants {m['flash_const_bytes']:,} B, "
        f"{m['macs_per_step']:,} MACs per step"
    )
    return 0


def register_run(subparsers: Any) -> None:
    """Add ``tte run``."""
    from tte_codegen.build import BOARDS

    p = subparsers.add_parser(
        "run",
        help="train a compiled graph with the generated C: on the host, or on a Cortex-M under QEMU",
        description="Generate the C of a training graph, build it, train on a dataset (batch 1, the device's "
        "arithmetic), evaluate, and write the trained parameters back into a .tte.",
    )
    p.add_argument("graph", help="a training graph (.tte) from `tte compile`")
    p.add_argument("--data", required=True, help=".npz with x (int8 [N, C, H, W] codes) and y (labels [N])")
    p.add_argument("--test", help="held-out .npz for accuracy before and after (host only)")
    p.add_argument("--board", choices=BOARDS, default="host", help="where to run (default host)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the data on the host (default 1)")
    p.add_argument("--steps", type=int, help="on a QEMU board: train on the first STEPS images (default all)")
    p.add_argument("--lr", type=float, help="body learning rate (default: the compiled scheme's)")
    p.add_argument("--head-lr", type=float, help="head learning rate (default: the compiled scheme's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data order on the host (default 0)")
    p.add_argument("--project", help="folder for the generated project (default: a temporary folder)")
    p.add_argument("-o", "--output", help="the trained training graph (.tte) to write")
    p.add_argument("--json", metavar="FILE", help="write the figures as one JSON object")
    p.set_defaults(func=_cmd_run)


def memory_lines(memory: dict[str, Any], planner: dict[str, Any]) -> list[str]:
    """The memory report of a linked image beside the planner's figures (ARCHITECTURE.md accounting)."""
    stack = memory["stack_high_water"]
    measured = "not measured (image not run)" if stack is None else f"{stack:,} B measured"
    if memory.get("model_stack") is not None:
        measured += f" (model calls alone: {memory['model_stack']:,} B; the rest is semihosting stdio)"
    ram = "-" if memory["firmware_ram"] is None else f"{memory['firmware_ram']:,} B"
    return [
        "memory          image (linked, measured)        planner",
        f"  .data         {memory['data']:>12,} B",
        f"  .bss          {memory['bss']:>12,} B            arena {planner['arena_bytes']:,} B + "
        f"trainable {planner['trainable_bytes']:,} B + label {planner['io_bytes']:,} B "
        f"= {planner['total_bytes']:,} B (the input image lives in the arena)",
        f"  stack         {measured}",
        f"  firmware RAM  {ram:>14}            (.data + .bss + measured stack)",
        f"  flash         {memory['flash']:>12,} B            frozen constants {planner['flash_bytes']:,} B",
    ]


def _cmd_run(args: argparse.Namespace) -> int:
    from tte_codegen.generate import generate
    from tte_ir import load

    graph = load(args.graph)
    with tempfile.TemporaryDirectory(prefix="tte-run-") as tmp:
        project = generate(graph, Path(args.project) if args.project else Path(tmp) / "model")
        figures = _run_host(args, graph, project) if args.board == "host" else _run_board(args, graph, project)
    if args.json:
        from tte_ir.serialize import atomic_write_bytes

        atomic_write_bytes(Path(args.json), (json.dumps(figures, indent=1) + "\n").encode())
    return 0


def _run_host(args: argparse.Namespace, graph: Any, project: Any) -> dict[str, Any]:
    from tte_codegen.host import HostModel
    from tte_codegen.training import evaluate, load_npz, train_host, write_trained

    train = load_npz(args.data)
    test = load_npz(args.test) if args.test else None
    model = HostModel(project)
    before = evaluate(model, test) if test else None
    log = train_host(model, train, epochs=args.epochs, lr=args.lr, head_lr=args.head_lr, seed=args.seed)
    after = evaluate(model, test) if test else None
    figures: dict[str, Any] = {
        "board": "host",
        "steps": len(log.losses),
        "skipped_steps": log.skipped,
        "loss_first": float(log.losses[0]),
        "loss_last": float(log.losses[-1]),
        "host_ms_per_step": 1000 * log.seconds_per_step,
        "test_accuracy_before": before,
        "test_accuracy_after": after,
    }
    accuracy = "" if test is None else f"; test accuracy {100 * before:.1f}% -> {100 * after:.1f}%"
    print(
        f"trained {len(log.losses)} steps on the host ({1000 * log.seconds_per_step:.2f} ms/step, "
        f"{log.skipped} skipped): loss {log.losses[0]:.4f} -> {log.losses[-1]:.4f}{accuracy}"
    )
    if args.output:
        write_trained(graph, model.export_params(), args.output)
        print(f"wrote {args.output}")
    return figures


def _run_board(args: argparse.Namespace, graph: Any, project: Any) -> dict[str, Any]:
    from tte_codegen.build import build
    from tte_codegen.firmware import QEMU_MACHINES, firmware_memory, run_firmware
    from tte_codegen.training import load_npz, write_trained

    planner = project.manifest["planner"]
    if args.board not in QEMU_MACHINES:
        elf = build(project, args.board)
        memory = firmware_memory(elf, None, project.root)
        print(f"built {elf} for {args.board} (no emulator for this board: sizes only)")
        print("\n".join(memory_lines(memory, planner)))
        return {"board": args.board, "memory": memory, "planner": planner}
    data = load_npz(args.data)
    count = len(data) if args.steps is None else min(args.steps, len(data))
    if count < 1:
        raise TteError(f"{args.data}: no images to train on")
    lr = None
    if args.lr is not None or args.head_lr is not None:
        m = project.manifest
        lr = (m["lr"] if args.lr is None else args.lr, m["head_lr"] if args.head_lr is None else args.head_lr)
    run = run_firmware(project, data.x[:count], data.y[:count], board=args.board, lr=lr)
    macs = project.manifest["macs_per_step"]
    per_step = run.instructions_per_step
    print(
        f"trained {count} steps on {args.board} under QEMU: loss {run.losses[0]:.4f} -> {run.losses[-1]:.4f}; "
        f"{per_step:,.0f} {run.unit}/step ({per_step / macs:.2f} per MAC, {macs:,} MACs/step)"
    )
    print("\n".join(memory_lines(run.memory, planner)))
    if args.output:
        write_trained(graph, run.params, args.output)
        print(f"wrote {args.output}")
    return {
        "board": args.board,
        "steps": count,
        "losses": [float(v) for v in run.losses],
        "statuses": list(run.statuses),
        f"{run.unit}_per_step": per_step,
        f"{run.unit}_per_mac": per_step / macs,
        "macs_per_step": macs,
        "memory": run.memory,
        "planner": planner,
    }
