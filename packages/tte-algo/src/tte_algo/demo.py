"""``tte demo``: the whole pipeline on the built-in default, in a few minutes on a laptop.

1. **Pretrain** a small MCUNet-style float model (``mcunet-tiny``, 32x32) on scikit-learn's digits 0-4
   (the "cloud" model; cached in the output folder), then give it a fresh 5-class head for the
   new task, digits 5-9 (what the device will learn).
2. **Quantize** it (BN folding, calibration on the task's training images, per-channel int8, fp32 head).
3. **Choose a scheme under a budget**: the sparse-update schemes "biases of the last k convs, weights of
   the last k convs, and the head" for growing k, each compiled and memory-planned; the largest k whose
   planned total (arena + trainable state + I/O) fits the budget wins.
4. **Compile** (autodiff, pruning, reordering, tiling, planning), **generate** the C, **build** it for
   the host and **train** on the device-faithful engine: batch 1, the generated ``tte_model_train_step``.
5. With the ARM toolchain and QEMU present, **build the Cortex-M7 firmware** (STM32F746 limits), run a
   few training steps under QEMU and **measure** instructions per step, firmware RAM and flash.

One table: accuracy before and after on held-out digits, the loss curve, arena / trainable /
firmware RAM, flash, host time per step and QEMU instructions per step; ``--json FILE`` writes the
same figures as one JSON object.

This module lives in tte-algo because the demo needs torch (the pretrained model, quantization); it
drives tte-codegen, which needs no torch (dependencies stay one-way: tte-algo -> tte-codegen -> tte-ir).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tte_ir import TteError

__all__ = ["DemoConfig", "format_table", "register_demo", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """The demo's knobs; the defaults run in well under 5 minutes on 2 CPU cores."""

    model: str = "mcunet-tiny"
    resolution: int = 32
    source: tuple[int, ...] = (0, 1, 2, 3, 4)
    target: tuple[int, ...] = (5, 6, 7, 8, 9)
    pretrain_epochs: int = 4
    budget: int = 64 * 1024  # bytes: arena + trainable state + I/O of the compiled step
    epochs: int = 3
    lr: float = 0.05
    head_lr: float = 0.05
    test_fraction: float = 0.5
    qemu_steps: int = 3
    seed: int = 0  # the sample order (tte_ir.order.sample_order), heads, stochastic rounding
    split_seed: int = 0  # the held-out split (tte_ir.order.split_seed), independent of ``seed``


_STAGES = ("pretraining", "quantizing", "scheme", "building", "training", "QEMU")


def _pretrained(config: DemoConfig, out: Path) -> Any:
    """The float model pretrained on the source digits (cached in ``out`` by configuration)."""
    import torch

    from tte_algo.bench import fit_float_model
    from tte_algo.data import load_digits
    from tte_algo.zoo import build_model

    key = f"{config.model}-r{config.resolution}-src{''.join(map(str, config.source))}-e{config.pretrain_epochs}"
    path = out / f"pretrained-{key}.pt"
    model = build_model(config.model, len(config.source), seed=config.seed)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    fit_float_model(model, load_digits(config.resolution, config.source), config.pretrain_epochs, seed=config.seed)
    torch.save(model.state_dict(), path)
    return model


def _quantize(config: DemoConfig, model: Any, calibration: Any) -> Any:
    """The model with a fresh head for the target task, as an int8 forward graph (fp32 head)."""
    import torch
    from torch import nn

    from tte_algo.data import dequantize_input
    from tte_algo.floatgraph import FloatNet
    from tte_algo.fx_import import import_fx
    from tte_algo.ptq import calibrate, export_graph

    torch.manual_seed(config.seed)
    model.classifier = nn.Linear(model.classifier.in_features, len(config.target))
    fgraph = import_fx(model, config.model)
    ranges = calibrate(FloatNet(fgraph), [dequantize_input(calibration)])
    shape = (3, config.resolution, config.resolution)
    return export_graph(fgraph, ranges, shape, head="fp32", metadata={"source": f"tte demo ({config.model})"})


def choose_scheme(config: DemoConfig, graph: Any) -> tuple[Any, Any, list[dict[str, Any]]]:
    """The largest "last k convs + head" scheme whose compiled step fits the budget: (scheme, training
    graph, every candidate's figures)."""
    from tte_algo.train import scheme_last_convs
    from tte_ir import conv_nodes
    from tte_ir.compiler import compile_training
    from tte_ir.memory import memory_report

    best = None
    candidates = []
    for k in range(1, len(conv_nodes(graph)) + 1):
        scheme = scheme_last_convs(graph, k, lr=config.lr, head_lr=config.head_lr, seed=config.seed)
        training = compile_training(graph, scheme)
        report = memory_report(training, input_in_arena=True)  # as the generated code lays it out
        fits = report.total_bytes <= config.budget
        candidates.append({"last_convs": k, "total_bytes": report.total_bytes, "fits": fits})
        if not fits:
            break
        best = (scheme, training)
    if best is None:
        raise TteError(
            f"no scheme fits the budget of {config.budget:,} B (the smallest needs {candidates[0]['total_bytes']:,} B)"
        )
    return best[0], best[1], candidates


def _qemu(project: Any, test: Any, steps: int) -> dict[str, Any] | None:
    """A few training steps of the firmware under QEMU (Cortex-M7), or None without the toolchain."""
    from tte_codegen import run_firmware

    if steps < 1 or any(shutil.which(t) is None for t in ("arm-none-eabi-gcc", "qemu-system-arm")):
        return None
    x = test.codes[:steps].numpy()
    y = test.labels[:steps].numpy()
    run = run_firmware(project, x, y, board="qemu-mps2-an500")
    macs = project.manifest["macs_per_step"]
    return {
        "steps": steps,
        "unit": run.unit,
        "per_step": run.instructions_per_step,
        "per_mac": run.instructions_per_step / macs,
        "memory": run.memory,
    }


def run_demo(config: DemoConfig, out: Path, progress: bool = True) -> dict[str, Any]:
    """Run the demo; returns every figure of the table. ``progress`` shows its stages and steps on stderr."""
    import torch

    from tte_algo.data import load_digits
    from tte_codegen import HostModel, generate
    from tte_codegen.training import Dataset, evaluate, train_host
    from tte_ir import save
    from tte_ir.progress import progress as progress_bar

    started = time.perf_counter()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    out.mkdir(parents=True, exist_ok=True)
    with progress_bar("tte demo", len(_STAGES), enabled=progress) as advance:
        stages = enumerate(_STAGES)

        def say(message: str) -> None:
            """Start the next stage (the bar counts the stages finished)."""
            index, name = next(stages)
            advance(1 if index else 0, f"{name}: {message}")

        say(f"{config.model} on digits {config.source} (cached in {out})")
        model = _pretrained(config, out)
        data = load_digits(config.resolution, config.target)
        train, test = data.split(config.test_fraction, config.split_seed)
        say(f"fresh head for digits {config.target} ({len(train)} train / {len(test)} test images)")
        graph = _quantize(config, model, train.codes)
        save(graph, out / "forward.tte")
        scheme, training, candidates = choose_scheme(config, graph)
        save(training, out / "train.tte")
        k = len(scheme.weights)
        say(f"weights and biases of the last {k} convs + the fp32 head, under {config.budget:,} B")
        project = generate(training, out / "model")
        say("the generated C for the host")
        host = HostModel(project)
        train_set = Dataset(train.codes.numpy(), train.labels.numpy())
        test_set = Dataset(test.codes.numpy(), test.labels.numpy())
        before = evaluate(host, test_set)
        say(f"{config.epochs} epochs x {len(train_set)} steps on the host engine")
        done, total = 0, config.epochs * len(train_set)

        def step(count: int = 1, status: str = "") -> None:
            """One host training step: the bar counts stages, so the steps go into its note."""
            nonlocal done
            done += count
            advance(0, f"training: step {done}/{total}, {status}")

        log = train_host(host, train_set, epochs=config.epochs, seed=config.seed, advance=step)
        after = evaluate(host, test_set)
        say("the Cortex-M7 firmware under QEMU")
        qemu = _qemu(project, test, config.qemu_steps)
        advance(1, "done")
    planner = project.manifest["planner"]
    n = len(log.losses)
    window = max(1, n // 10)
    result = {
        "config": {k_: list(v) if isinstance(v, tuple) else v for k_, v in asdict(config).items()},
        "scheme": scheme.to_json(),
        "candidates": candidates,
        "train_images": len(train_set),
        "test_images": len(test_set),
        "accuracy_before": before,
        "accuracy_after": after,
        "steps": n,
        "skipped_steps": log.skipped,
        "loss_first": float(np.mean(log.losses[:window])),
        "loss_last": float(np.mean(log.losses[-window:])),
        "loss_per_epoch": [float(np.mean(e)) for e in np.array_split(log.losses, config.epochs)],
        "arena_bytes": planner["arena_bytes"],
        "trainable_bytes": planner["trainable_bytes"],
        "io_bytes": planner["io_bytes"],
        "planned_total_bytes": planner["total_bytes"],
        "macs_per_step": project.manifest["macs_per_step"],
        "host_ms_per_step": 1000 * log.seconds_per_step,
        "qemu": qemu,
        "seconds": time.perf_counter() - started,
        "output": str(out),
    }
    return result


def format_table(r: dict[str, Any]) -> str:
    """The demo's one table."""
    kb = 1024
    q = r["qemu"]
    rows = [
        ("task", f"digits {r['config']['target']} ({r['train_images']} train / {r['test_images']} held-out images)"),
        ("model", f"{r['config']['model']} {r['config']['resolution']}x{r['config']['resolution']}, int8, fp32 head"),
        (
            "scheme",
            f"last {len(r['scheme']['weights'])} convs (weights + biases) + head, budget "
            f"{r['config']['budget'] / kb:.0f} KB",
        ),
        ("accuracy before -> after", f"{100 * r['accuracy_before']:.1f}% -> {100 * r['accuracy_after']:.1f}%"),
        (
            "loss (first -> last 10%)",
            f"{r['loss_first']:.3f} -> {r['loss_last']:.3f} over {r['steps']} steps ({r['skipped_steps']} skipped)",
        ),
        ("loss per epoch", "  ".join(f"{v:.3f}" for v in r["loss_per_epoch"])),
        ("arena (planned)", f"{r['arena_bytes'] / kb:.1f} KB (the input image's slot included)"),
        ("trainable state", f"{r['trainable_bytes'] / kb:.1f} KB"),
        ("planned total", f"{r['planned_total_bytes'] / kb:.1f} KB (arena + trainable + label)"),
    ]
    if q is not None:
        m = q["memory"]
        rows += [
            (
                "firmware RAM (Cortex-M7)",
                f"{m['firmware_ram'] / kb:.1f} KB = .data {m['data']:,} + .bss {m['bss']:,} "
                f"+ stack {m['stack_high_water']:,} B (measured)",
            ),
            ("flash", f"{m['flash'] / kb:.1f} KB"),
        ]
    else:
        rows.append(("firmware RAM, flash", "ARM toolchain or QEMU not installed"))
    rows.append(("host time per step", f"{r['host_ms_per_step']:.2f} ms ({r['macs_per_step']:,} MACs)"))
    if q is not None:
        rows.append(("QEMU Cortex-M7 per step", f"{q['per_step']:,.0f} {q['unit']} ({q['per_mac']:.1f} per MAC)"))
    width = max(len(k) for k, _ in rows)
    lines = [f"tte demo: on-device training, end to end ({r['seconds']:.0f} s)", "-" * (width + 60)]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def register_demo(subparsers: Any) -> None:
    """Add ``tte demo``."""
    p = subparsers.add_parser(
        "demo",
        help="the whole pipeline on the built-in default: pretrain, quantize, choose a scheme, compile, "
        "generate C, train on the device engine, measure",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--out", default="out/demo", help="folder for the cached model and every artifact (out/demo)")
    p.add_argument("--budget", help="memory budget of the training step, e.g. 64KB (default 64KB)")
    p.add_argument("--epochs", type=int, help=f"training epochs on the device engine (default {DemoConfig.epochs})")
    p.add_argument("--qemu-steps", type=int, help=f"training steps under QEMU, 0 to skip ({DemoConfig.qemu_steps})")
    p.add_argument("--json", metavar="FILE", help="write the figures as one JSON object")
    p.add_argument("--quiet", action="store_true", help="only the table (no progress on stderr)")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from tte_ir.cli_args import bounded_int, output_file, output_folder, parse_bytes
    from tte_ir.serialize import atomic_write_bytes

    config = DemoConfig()
    if args.budget is not None:
        config = replace(config, budget=parse_bytes(args.budget, "--budget"))
    if args.epochs is not None:
        config = replace(config, epochs=bounded_int(args.epochs, "--epochs", 1))
    if args.qemu_steps is not None:
        config = replace(config, qemu_steps=bounded_int(args.qemu_steps, "--qemu-steps", 0))
    output_folder(args.out, "--out")
    if args.json:
        output_file(args.json, "--json")
    result = run_demo(config, Path(args.out), progress=not args.quiet)
    print(format_table(result))
    if args.json:
        atomic_write_bytes(Path(args.json), (json.dumps(result, indent=1) + "\n").encode())
    return 0
