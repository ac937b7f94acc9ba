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
from tte_ir.cli_args import bounded_int, distinct_outputs, learning_rate, output_file, output_folder, seed_value

__all__ = ["memory_lines", "register_generate", "register_run"]


def _root_option(p: Any) -> None:
    p.add_argument(
        "--root",
        help="folder with engine/ and boards/, a tte checkout (default: $TTE_ROOT, this checkout, else the C "
        "the installed tte-engine package carries)",
    )


def _load_training(path: str) -> Any:
    """The training graph in ``path``; a forward graph is refused in one line naming the file."""
    from tte_ir import load
    from tte_ir.autodiff import training_info

    graph = load(path)
    try:
        training_info(graph)
    except TteError as exc:
        raise TteError(f"{path}: {exc}") from None
    return graph


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
    _root_option(p)
    p.set_defaults(func=_cmd_generate)


def _cmd_generate(args: argparse.Namespace) -> int:
    from tte_codegen.generate import generate

    output_folder(args.output, "-o")
    project = generate(_load_training(args.graph), args.output, name=args.name, root=args.root)
    m = project.manifest
    print(
        f"wrote {args.output}: model.h, model.c, weights.c, CMakeLists.txt; arena {m['planner']['arena_bytes']:,} B "
        f"(the input image inside, as `tte plan` reports), trained parameters {m['param_bytes']:,} B, "
        f"frozen C constants {m['flash_const_bytes']:,} B (the graph's frozen tensors, `tte plan`'s flash figure, "
        f"are {m['planner']['flash_bytes']:,} B; the C holds the kernels' multipliers in place of the graph's own), "
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
        "arithmetic, epoch e visiting the samples in tte_ir.order.sample_order(N, seed, e), the order "
        "`tte train` uses), evaluate, and write the trained parameters back into a .tte.",
    )
    p.add_argument("graph", help="a training graph (.tte) from `tte compile`")
    p.add_argument(
        "--data",
        required=True,
        help="'digits' (built in, resized to the model's input), an image folder (one sub-folder per class), or an "
        ".npz with x (float inputs [N, C, H, W] in the model's input scale, or its int8 codes) and y (labels [N])",
    )
    p.add_argument("--classes", help="restrict --data and --test to these classes, e.g. 5-9 (relabelled 0..)")
    p.add_argument("--test", help="held-out data, in --data's formats, for accuracy before and after (host only)")
    p.add_argument("--board", choices=BOARDS, default="host", help="where to run (default host)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the data (default 1)")
    p.add_argument("--steps", type=int, help="stop after STEPS steps (default: all the epochs' steps)")
    p.add_argument("--lr", type=float, help="body learning rate (default: the compiled scheme's)")
    p.add_argument("--head-lr", type=float, help="head learning rate (default: the compiled scheme's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data order, as in `tte train` (default 0)")
    p.add_argument("--project", help="folder for the generated project (default: a temporary folder)")
    _root_option(p)
    p.add_argument("-o", "--output", help="the trained training graph (.tte) to write")
    p.add_argument("--json", metavar="FILE", help="write the figures as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress display")
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


def _check_run_arguments(args: argparse.Namespace) -> None:
    """Refuse bad numbers and unwritable outputs of ``tte run`` before anything is loaded or built."""
    bounded_int(args.epochs, "--epochs", 1)
    if args.steps is not None:
        bounded_int(args.steps, "--steps", 1)
    seed_value(args.seed, "--seed")
    for name, value in (("--lr", args.lr), ("--head-lr", args.head_lr)):
        if value is not None:
            learning_rate(value, name)
    if args.output:
        output_file(args.output, "-o")
    if args.json:
        output_file(args.json, "--json")
    distinct_outputs(("-o", args.output), ("--json", args.json))
    if args.project:
        output_folder(args.project, "--project")
    if args.test and args.board != "host":
        raise TteError(f"--test evaluates on the host only; drop it or use --board host (not {args.board})")


def _cmd_run(args: argparse.Namespace) -> int:
    from tte_codegen.generate import generate
    from tte_codegen.training import load_data
    from tte_ir.datasets import parse_classes

    _check_run_arguments(args)
    graph = _load_training(args.graph)
    classes = parse_classes(args.classes)
    data = load_data(args.data, graph, classes)
    test = load_data(args.test, graph, classes) if args.test else None
    with tempfile.TemporaryDirectory(prefix="tte-run-") as tmp:
        folder = Path(args.project) if args.project else Path(tmp) / "model"
        project = generate(graph, folder, root=args.root)
        if args.board == "host":
            figures = _run_host(args, graph, project, data, test)
        else:
            figures = _run_board(args, graph, project, data)
    if args.json:
        from tte_ir.serialize import atomic_write_bytes

        atomic_write_bytes(Path(args.json), (json.dumps(figures, indent=1) + "\n").encode())
    return 0


def _loss_ends(losses: Any) -> tuple[float, float, int]:
    """The mean loss over the first and over the last tenth of the steps (as `tte demo` reports it)."""
    import numpy as np

    window = max(1, len(losses) // 10)
    return float(np.mean(losses[:window])), float(np.mean(losses[-window:])), window


def _loss_text(losses: Any) -> str:
    first, last, window = _loss_ends(losses)
    return (
        f"loss {first:.4f} -> {last:.4f} (means over the first and the last tenth of the steps: "
        f"{window} of {len(losses)} each)"
    )


def _run_host(args: argparse.Namespace, graph: Any, project: Any, train: Any, test: Any) -> dict[str, Any]:
    from tte_codegen.host import HostModel
    from tte_codegen.training import evaluate, train_host, write_trained
    from tte_ir.progress import progress
    from tte_ir.saturation import saturation_text

    show = not args.quiet
    with progress("building for the host", 1, enabled=show) as advance:
        model = HostModel(project)
        advance()
    before = after = None
    if test is not None:
        with progress("test accuracy before", len(test), enabled=show) as advance:
            before = evaluate(model, test, advance)
    steps = args.epochs * len(train) if args.steps is None else min(args.steps, args.epochs * len(train))
    with progress("training on the host", steps, enabled=show) as advance:
        log = train_host(model, train, epochs=args.epochs, lr=args.lr, head_lr=args.head_lr, seed=args.seed,
                         steps=args.steps, advance=advance)  # fmt: skip
    if test is not None:
        with progress("test accuracy after", len(test), enabled=show) as advance:
            after = evaluate(model, test, advance)
    first, last, window = _loss_ends(log.losses)
    figures: dict[str, Any] = {
        "board": "host",
        "seed": args.seed,
        "steps": len(log.losses),
        "skipped_steps": log.skipped,
        "losses": [float(v) for v in log.losses],
        "loss_window": window,
        "loss_first": first,
        "loss_last": last,
        "host_ms_per_step": 1000 * log.seconds_per_step,
        "test_accuracy_before": before,
        "test_accuracy_after": after,
        "saturation": log.saturation,
    }
    accuracy = "" if test is None else f"; test accuracy {100 * before:.1f}% -> {100 * after:.1f}%"
    print(
        f"trained {len(log.losses)} steps on the host ({1000 * log.seconds_per_step:.2f} ms/step, "
        f"{log.skipped} skipped): {_loss_text(log.losses)}{accuracy}"
    )
    print(saturation_text(log.saturation))
    if args.output:
        write_trained(graph, model.export_params(), args.output)
        print(f"wrote {args.output}")
    return figures


def _run_board(args: argparse.Namespace, graph: Any, project: Any, data: Any) -> dict[str, Any]:
    from tte_codegen.build import build
    from tte_codegen.firmware import QEMU_MACHINES, firmware_memory, run_firmware
    from tte_codegen.training import epoch_orders, write_trained
    from tte_ir.progress import progress

    order = epoch_orders(len(data), args.seed, args.epochs)[: args.steps]
    planner = project.manifest["planner"]
    emulated = args.board in QEMU_MACHINES
    show = not args.quiet
    # The QEMU runner reports only when the run ends: the progress is per phase (build, train).
    with progress(f"tte run on {args.board}", 2 if emulated else 1, enabled=show) as advance:
        advance(0, "building the firmware")
        elf = build(project, args.board)
        if not emulated:
            advance(1, "built")
        else:
            advance(1, f"training {len(order)} steps under QEMU")
            lr = None
            if args.lr is not None or args.head_lr is not None:
                m = project.manifest
                lr = (m["lr"] if args.lr is None else args.lr, m["head_lr"] if args.head_lr is None else args.head_lr)
            run = run_firmware(project, data.x[order], data.y[order], board=args.board, lr=lr)
            advance(1, "trained")
    if not emulated:
        memory = firmware_memory(elf, None, project.root)
        print(f"built {elf} for {args.board} (no emulator for this board: sizes only)")
        print("\n".join(memory_lines(memory, planner)))
        return {"board": args.board, "memory": memory, "planner": planner}
    macs = project.manifest["macs_per_step"]
    per_step = run.instructions_per_step
    first, last, window = _loss_ends(run.losses)
    print(
        f"trained {len(order)} steps on {args.board} under QEMU: {_loss_text(run.losses)}; "
        f"{per_step:,.0f} {run.unit}/step ({per_step / macs:.2f} per MAC, {macs:,} MACs/step)"
    )
    print("\n".join(memory_lines(run.memory, planner)))
    if args.output:
        write_trained(graph, run.params, args.output)
        print(f"wrote {args.output}")
    return {
        "board": args.board,
        "seed": args.seed,
        "steps": len(order),
        "order": [int(i) for i in order],
        "losses": [float(v) for v in run.losses],
        "loss_window": window,
        "loss_first": first,
        "loss_last": last,
        "statuses": list(run.statuses),
        f"{run.unit}_per_step": per_step,
        f"{run.unit}_per_mac": per_step / macs,
        "macs_per_step": macs,
        "memory": run.memory,
        "planner": planner,
    }
