"""The memory benchmark (``nox -s memory``): plan every published seed scheme, full update and bias-only
for the three seed models (128x128, 10 classes) and print one table.

Usage: ``python -m tte_ir.memory_bench [SHARED_DIR] [--json FILE]``. Uses ``rich`` for the table when
it is installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tte_ir.compiler import compile_training
from tte_ir.importers import import_seed_pkl
from tte_ir.memory import memory_report
from tte_ir.scheme import Scheme, WeightUpdate, conv_nodes, load_scheme
from tte_ir.serialize import atomic_write_bytes

__all__ = ["MODELS", "benchmark", "main"]

MODELS = ("mbv2-w0.35", "mcunet-5fps", "proxyless-w0.3")
COLUMNS = (
    "model",
    "scheme",
    "arena",
    "untiled arena",
    "trainable",
    "I/O",
    "total",
    "total, image in arena",
    "op at peak",
)
NUMERIC = range(2, 8)


def _schemes(shared: Path, model: str, n_convs: int) -> list[tuple[str, Scheme]]:
    path = shared / "schemes" / "seed-schemes.json"
    labels = [k for k in json.loads(path.read_text())[model] if not k.startswith("_")]
    schemes = [(label, load_scheme(path, (model, label))) for label in labels]
    full = Scheme(n_bias=n_convs, weights=tuple(WeightUpdate(i, 1.0) for i in range(n_convs)))
    return [*schemes, ("full update", full), ("bias-only", Scheme(n_bias=n_convs))]


def benchmark(shared: Path) -> list[dict[str, Any]]:
    """One row per (model, scheme), in bytes: the memory report, the arena without tiled groups, and the
    total when the input image is planned inside the arena (the layout the generated C uses: the image is
    dead after the stem, so its bytes serve later tensors)."""
    rows = []
    for model in MODELS:
        forward = import_seed_pkl(shared / "models" / f"{model}.pkl", 10)
        for label, scheme in _schemes(shared, model, len(conv_nodes(forward))):
            report = memory_report(compile_training(forward, scheme))
            untiled = memory_report(compile_training(forward, scheme, tiling=False))
            in_arena = memory_report(compile_training(forward, scheme), input_in_arena=True)
            rows.append(
                {
                    "model": model,
                    "scheme": label,
                    **report.to_json(),
                    "untiled_arena_bytes": untiled.arena_peak_bytes,
                    "total_image_in_arena_bytes": in_arena.total_bytes,
                }
            )
    return rows


def _kb(n: int) -> str:
    return f"{n / 1024:.1f}"


def _cells(row: dict[str, Any]) -> list[str]:
    return [
        row["model"],
        row["scheme"],
        _kb(row["arena_peak_bytes"]),
        _kb(row["untiled_arena_bytes"]),
        _kb(row["trainable_bytes"]),
        _kb(row["io_bytes"]),
        _kb(row["total_bytes"]),
        _kb(row["total_image_in_arena_bytes"]),
        row["peak_op"],
    ]


def _print(rows: list[dict[str, Any]]) -> None:
    title = "training-step memory, KB (1 KB = 1024 B); total = arena + trainable + I/O (input image + label)"
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        table = [list(COLUMNS)] + [_cells(r) for r in rows]
        widths = [max(len(t[c]) for t in table) for c in range(len(COLUMNS))]
        for t in table:
            print(
                "  ".join(
                    cell.rjust(w) if c in NUMERIC else cell.ljust(w)
                    for c, (cell, w) in enumerate(zip(t, widths, strict=True))
                )
            )
        return
    table = Table(title=title)
    for c, name in enumerate(COLUMNS):
        table.add_column(name, justify="right" if c in NUMERIC else "left")
    for row in rows:
        table.add_row(*_cells(row))
    Console(width=160).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tte_ir.memory_bench", description=__doc__.splitlines()[0])
    parser.add_argument("shared", nargs="?", default="../shared", help="folder with models/ and schemes/")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    shared = Path(args.shared)
    if not (shared / "models").is_dir():
        print(f"{shared}/models not found (the seed models live in ../shared)", file=sys.stderr)
        return 2
    rows = benchmark(shared)
    _print(rows)
    if args.json:
        atomic_write_bytes(Path(args.json), (json.dumps(rows, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
