"""The device benchmark (``nox -s device``): a seed model under a sparse-update scheme as Cortex-M7
firmware, trained for a few steps under QEMU.

Prints the memory table of the linked image (``.data``, ``.bss``, measured stack, firmware RAM,
flash) beside the planner's figures, for ``qemu-mps2-an500`` (run) and ``stm32f746g-disco`` (linked
only: both use the STM32F746's 320 KB RAM / 1 MB flash), and the QEMU ``-icount`` instruction count
per training step, per inference and per MAC::

    python -m tte_codegen.bench --model ../shared/models/mcunet-5fps.pkl \\
        --scheme ../shared/schemes/seed-schemes.json:mcunet-5fps/49kb --steps 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tte_ir import TteError

__all__ = ["device_report", "main"]


def device_report(
    model: Path, scheme_spec: str, out: Path, steps: int, classes: int = 10, budget: int | None = None
) -> dict[str, Any]:
    """Compile (within ``budget`` bytes: row tiles grow, fewer MACs recomputed; see
    :func:`tte_ir.compile_training`), generate, build for both boards and run ``steps`` training steps
    under QEMU."""
    from tte_codegen.build import build
    from tte_codegen.firmware import firmware_memory, run_firmware
    from tte_codegen.generate import generate
    from tte_ir import import_seed_pkl, load_scheme
    from tte_ir.compiler import compile_training
    from tte_ir.tiling import recomputed_macs

    training = compile_training(import_seed_pkl(model, classes), load_scheme(scheme_spec), budget=budget)
    project = generate(training, out / "model")
    shape = project.input_shape[1:]
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(steps, *shape)).astype(np.int8)
    y = rng.integers(0, classes, size=steps)
    run = run_firmware(project, x, y, board="qemu-mps2-an500")
    stm32 = firmware_memory(build(project, "stm32f746g-disco"), None, project.root)
    macs, infer_macs = project.manifest["macs_per_step"], project.manifest["macs_per_infer"]
    infer = float(np.mean(run.infer_counts))
    return {
        "model": model.stem,
        "scheme": scheme_spec,
        "budget": budget,
        "recomputed_macs": recomputed_macs(training),
        "steps": steps,
        "planner": project.manifest["planner"],
        "qemu-mps2-an500": run.memory,
        "stm32f746g-disco": stm32,
        "unit": run.unit,
        "per_step": run.instructions_per_step,
        "per_step_mac": run.instructions_per_step / macs,
        "macs_per_step": macs,
        "per_infer": infer,
        "per_infer_mac": infer / infer_macs,
        "macs_per_infer": infer_macs,
        "losses": [float(v) for v in run.losses],
    }


def format_report(r: dict[str, Any]) -> str:
    """The report as text."""
    from tte_codegen.cli import memory_lines

    within = f", compiled within a {r['budget']:,} B budget" if r["budget"] else ", smallest-peak schedule"
    lines = [f"{r['model']} under {r['scheme']}{within}: Cortex-M7 firmware (320 KB RAM / 1 MB flash limits)"]
    lines.append("qemu-mps2-an500 (run under QEMU, stack measured):")
    lines += memory_lines(r["qemu-mps2-an500"], r["planner"])
    lines.append("stm32f746g-disco (linked; not run):")
    lines += memory_lines(r["stm32f746g-disco"], r["planner"])
    unit = r["unit"]
    lines += [
        f"QEMU -icount: {r['per_step']:,.0f} {unit} per training step ({r['macs_per_step']:,} MACs, "
        f"{r['per_step_mac']:.2f} per MAC), mean of {r['steps']} steps",
        f"              {r['per_infer']:,.0f} {unit} per inference ({r['macs_per_infer']:,} MACs, "
        f"{r['per_infer_mac']:.2f} per MAC)",
        f"              row tiles recompute {r['recomputed_macs']:,} MACs (not in the MAC counts above)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (``python -m tte_codegen.bench``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="seed model .pkl")
    parser.add_argument("--scheme", required=True, help="scheme file, or FILE:model/label")
    parser.add_argument("--steps", type=int, default=3, help="training steps under QEMU (default 3)")
    parser.add_argument("--out", type=Path, default=Path("out/device"), help="folder for the project and builds")
    parser.add_argument("--json", type=Path, help="write the figures as one JSON object")
    parser.add_argument("--budget", help="compile within this planned total, e.g. 123KB (default: smallest peak)")
    args = parser.parse_args(argv)
    try:
        from tte_ir.cli_args import parse_bytes

        budget = None if args.budget is None else parse_bytes(args.budget, "--budget")
        report = device_report(args.model, args.scheme, args.out, args.steps, budget=budget)
    except TteError as exc:
        print(f"device benchmark: error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json:
        from tte_ir.serialize import atomic_write_bytes

        atomic_write_bytes(args.json, (json.dumps(report, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
