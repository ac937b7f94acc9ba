"""The users' model zoo benchmark (``nox -s zoo``): one table per model of :data:`tte_algo.user_models.USER_MODELS`.

For each model: parameters and MACs of the float model, and for two schemes (last-k, and the evolutionary
search's under the same memory, from a short contribution analysis) the planned memory of the training step
(:func:`tte_ir.memory_report`, the input image in the arena), the firmware RAM
and QEMU ``-icount`` instructions per training step of that step generated as C and run on
``qemu-mps2-an500`` (skipped, with the reason, without the ARM toolchain or QEMU), and the held-out
accuracy before and after a short simulated transfer.

The transfer is labelled as what it is: the float model is pretrained briefly (``--pretrain-epochs``, Adam)
on digits 0-4 resized to its input shape and calibrated there, then each scheme trains with
:func:`tte_algo.train.train_int8` (simulated, QAS, batch 16) on digits 5-9; accuracy is on a held-out 30 %::

    python -m tte_algo.zoo_bench --models lenet5 resnet8 --epochs 2
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tte_algo.bench_tables import print_tables, usage_error
from tte_ir import TteError
from tte_ir.cli_args import bounded_int

__all__ = ["FIT", "format_table", "main", "model_report"]

_TOOLS = ("arm-none-eabi-gcc", "qemu-system-arm")

# factory options that shrink a model whose full size does not link into the STM32F746's 320 KB RAM / 1 MB
# flash (MnasNet 0.5's last-2 step needs about 355 KB of RAM and 1.4 MB of flash): the 3x3 and 5x5 stacks
# up to 40 channels are kept, the 96- and 160-channel stacks dropped, the last conv 512 wide instead of 1280
FIT: dict[str, dict[str, Any]] = {"mnasnet-0.5": {"depth": 4, "last": 512}}


def _firmware(training: Any, out: Path, steps: int, classes: int) -> dict[str, Any]:
    """Firmware RAM and QEMU instructions per step of ``training`` on qemu-mps2-an500, or why it was skipped."""
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return {"skipped": f"{', '.join(missing)} not installed"}
    from tte_codegen.firmware import run_firmware
    from tte_codegen.generate import generate

    project = generate(training, out)
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(steps, *project.input_shape[1:])).astype(np.int8)
    y = rng.integers(0, classes, size=steps)
    run = run_firmware(project, x, y, board="qemu-mps2-an500")
    return {
        "firmware_ram": run.memory["firmware_ram"],
        "flash": run.memory["flash"],
        "per_step": run.instructions_per_step,
        "unit": run.unit,
        "macs_per_step": project.manifest["macs_per_step"],
        "losses_finite": bool(np.all(np.isfinite(run.losses))),
    }


def _pretrain(model: torch.nn.Module, data: Any, epochs: int) -> None:
    """A brief float pretraining of ``model`` on ``data`` (Adam, batch 32): random deep features pool to nearly
    the same vector for every input, so a transfer from random weights measures nothing."""
    from torch.nn import functional as F

    from tte_algo.data import dequantize_input

    x, y = dequantize_input(data.codes), data.labels.long()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(32):
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()


# a small contribution analysis per model (the paper's, shortened): biases at three depths of the last half of the
# convs, weights of its pointwise convs at 1/4 and all channels, the best two refined at the other ratios
ANALYSIS = {
    "bias_points": 3,
    "first_ratios": (0.25, 1.0),
    "refine": 2,
    "epochs": 1,
    "batch_size": 16,
    "candidates": "all",
}


def _searched(graph: Any, train: Any, like: Any, budget: int, cache: Path) -> Any:
    """The scheme of the evolutionary search under ``budget`` bytes, from a contribution analysis on ``train``
    that trains with the learning rates and rounding of the scheme ``like`` (so both schemes train alike)."""
    from tte_algo.search import AnalysisSettings, Budgets, JobCache, LocalExecutor, analyze, search_scheme

    settings = AnalysisSettings(**ANALYSIS, lr=like.lr, head_lr=like.head_lr, rounding=like.rounding)
    contrib = analyze(graph, train, settings, cache=JobCache(cache), executor=LocalExecutor(1))
    return search_scheme(graph, contrib, Budgets(budget), population=20, generations=10, seed=0).scheme


def _describe(scheme: Any) -> str:
    """``biases of the last k convs + weights conv@ratio ...`` of a scheme."""
    weights = ", ".join(f"conv {w.conv} x{w.ratio:g}" for w in scheme.weights) or "none"
    return f"biases of the last {scheme.n_bias} convs; weights: {weights}; head"


def model_report(
    name: str, last_k: int, epochs: int, steps: int, out: Path, firmware: bool = True, pretrain_epochs: int = 2
) -> dict[str, Any]:
    """Every figure of model ``name``'s table; a model tte refuses raises its :class:`~tte_ir.TteError`."""
    from tte_algo.data import load_digits
    from tte_algo.ptq import quantize_model
    from tte_algo.train import TrainConfig, scheme_last_convs, train_int8
    from tte_algo.user_models import USER_MODELS, build
    from tte_ir import compile_training, conv_nodes, memory_report
    from tte_ir.ops import node_macs

    shape, source = USER_MODELS[name][1], USER_MODELS[name][2]
    fit = FIT.get(name, {})
    model = build(name, classes=5, **fit)
    reduced = ", ".join(f"{key}={value}" for key, value in fit.items())
    report: dict[str, Any] = {
        "model": name,
        "source": f"{source}; reduced to fit: {reduced}" if fit else source,
        "input": "x".join(map(str, shape)),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    source_task = load_digits(shape, classes=range(5))
    _pretrain(model, source_task, pretrain_epochs)
    generator = torch.Generator().manual_seed(0)
    calib = source_task.codes[torch.randperm(len(source_task), generator=generator)[:64]]
    graph = quantize_model(model, calib, head="fp32", name=name)
    report["macs"] = sum(node_macs(graph, node) for node in graph.nodes)
    data = load_digits(shape, classes=range(5, 10))
    train, test = data.split(0.3, 0)
    k = min(last_k, len(conv_nodes(graph)))
    last = scheme_last_convs(graph, k, head="fp32")
    # the search gets the memory the last-k step needs: the same SRAM, spent where the analysis says it pays
    budget = memory_report(compile_training(graph, last), input_in_arena=True).total_bytes
    schemes = {f"last {k} convs + head": last, "searched": _searched(graph, train, last, budget, out / name / "search")}
    report["schemes"] = []
    for label, scheme in schemes.items():
        training = compile_training(graph, scheme)
        planned = memory_report(training, input_in_arena=True)
        result = train_int8(graph, scheme, train, test, TrainConfig(epochs=epochs, batch_size=16))
        slug = "last-k" if label != "searched" else "searched"
        device = _firmware(training, out / name / slug, steps, 5) if firmware else {"skipped": "--no-firmware"}
        report["schemes"].append(
            {
                "label": label,
                "describe": _describe(scheme),
                "planned": {
                    "arena": planned.arena_peak_bytes,
                    "trainable": planned.trainable_bytes,
                    "io": planned.io_bytes,
                    "total": planned.total_bytes,
                    "flash": planned.flash_bytes,
                },
                "device": device,
                "transfer": {
                    "before": result.metrics["test_accuracy_before"],
                    "after": result.metrics["test_accuracy"],
                },
            }
        )
    report["transfer"] = {"epochs": epochs, "train": len(train), "test": len(test), "pretrain_epochs": pretrain_epochs}
    report["budget"] = budget
    return report


def _bytes(value: int | None) -> str:
    return "-" if value is None else f"{value:,} B"


def format_table(r: dict[str, Any]) -> str:
    """One model's table as text: the model, then one block per scheme."""
    lines = [f"{r['model']} ({r['source']}), input {r['input']}", f"  parameters      {r['parameters']:,}"]
    t = r["transfer"]
    lines.append(f"  MACs/inference  {r['macs']:,}")
    for s in r["schemes"]:
        p, d = s["planned"], s["device"]
        lines += [
            f"  [{s['label']}] {s['describe']}",
            f"    planned memory  {_bytes(p['total'])} (arena {p['arena']:,} + trainable {p['trainable']:,} + "
            f"label {p['io']:,}; input image in the arena), frozen flash {p['flash']:,} B",
        ]
        if "skipped" in d:
            lines.append(f"    firmware        skipped: {d['skipped']}")
        else:
            lines += [
                f"    firmware RAM    {_bytes(d['firmware_ram'])} (qemu-mps2-an500: .data + .bss + measured stack), "
                f"flash {d['flash']:,} B",
                f"    QEMU per step   {d['per_step']:,.0f} {d['unit']} ({d['macs_per_step']:,} MACs; losses finite: "
                f"{d['losses_finite']})",
            ]
        lines.append(
            f"    accuracy        {100 * s['transfer']['before']:.1f}% -> {100 * s['transfer']['after']:.1f}% held-out"
        )
    lines.append(
        f"  (float weights pretrained {t['pretrain_epochs']} epochs on digits 0-4 and calibrated there; "
        f"{t['epochs']} simulated int8 epochs on digits 5-9 at {r['input']}, {t['train']} train / {t['test']} test; "
        f"the search's budget: the last-k step's {r['budget']:,} B)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (``python -m tte_algo.zoo_bench``)."""
    from tte_algo.user_models import USER_MODELS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(USER_MODELS), default=list(USER_MODELS))
    parser.add_argument("--last-k", type=int, default=2, help="trained convs of the last-k scheme (default 2)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the simulated transfer (default 3)")
    parser.add_argument("--pretrain-epochs", type=int, default=2, help="float epochs on digits 0-4 (default 2)")
    parser.add_argument("--steps", type=int, default=2, help="training steps under QEMU (default 2)")
    parser.add_argument("--out", type=Path, default=Path("out/zoo"), help="folder for the generated projects")
    parser.add_argument("--no-firmware", action="store_true", help="skip the C generation and the QEMU run")
    args = parser.parse_args(argv)
    try:
        for flag in ("last_k", "epochs", "steps", "pretrain_epochs"):
            bounded_int(getattr(args, flag), f"--{flag.replace('_', '-')}", 1)
    except TteError as exc:
        return usage_error("zoo", exc)

    def report(name: str) -> dict[str, Any]:
        return model_report(
            name, args.last_k, args.epochs, args.steps, args.out, not args.no_firmware, args.pretrain_epochs
        )

    return print_tables("zoo", args.models, report, format_table)


if __name__ == "__main__":
    sys.exit(main())
