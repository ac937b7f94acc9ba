"""The TFLite import benchmark (``nox -s tflite``): one table per model of ``../shared/models/tflite``.

For each ``.tflite`` file: its ops, parameters and import time (:func:`tte_ir.tflite_import.import_tflite`);
parity with TensorFlow Lite's own interpreter under both requantizations (``fixed``, TFLite's integer
arithmetic, and ``float``, tte's float32 rounding), against the reference-kernel goldens (``output_ref``,
``ref_tensor/...``: the arithmetic TFLite Micro runs) and the optimized-kernel ones (``output``,
``tensor/...``): the share of differing codes and the largest difference, over every intermediate tensor of
the first golden image and over the 32 golden outputs (after TFLite's int8 softmax,
:func:`tte_ir.tflite_import.softmax_int8`); and the held-out accuracy before and after a short transfer
run: the model imported with a new fp32 head of 5 classes, a sparse scheme (its last convs and the head)
trained with :func:`tte_algo.train.train_int8` (the simulation of the device's int8 arithmetic, QAS) on
digits 5-9 resized to the model's input (pixel ``p`` is the code ``p - 128``, which is what the models'
input quantization, scale 1/255 and zero point -128, gives images in ``[0, 1]``)::

    python -m tte_algo.tflite_bench --models lenet5 dscnn_b1 --epochs 2

The models were trained on digits 0-9 with another split, so "held-out" means held out of the transfer,
not unseen by the model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tte_algo.bench_tables import print_tables, usage_error
from tte_ir import TteError
from tte_ir.cli_args import bounded_int

__all__ = ["format_table", "main", "model_report", "parity"]

_GOLDENS = {"ref": ("ref_tensor", "output_ref"), "optimized": ("tensor", "output")}


def _nchw(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 3, 1, 2) if a.ndim == 4 else a


def _difference(got: np.ndarray, expected: np.ndarray) -> tuple[int, int, int]:
    """(differing codes, codes, largest difference)."""
    diff = np.abs(got.astype(np.int64) - expected.astype(np.int64))
    return int(np.count_nonzero(diff)), int(diff.size), int(diff.max(initial=0))


def parity(graph: Any, golden: Any) -> dict[str, dict[str, Any]]:
    """Per golden kind ("ref", "optimized"): the intermediate tensors of the first image (how many are
    compared and equal, share of differing codes, largest difference) and the 32 outputs (same figures)."""
    from tte_ir.eval_cli import evaluate_graph
    from tte_ir.reference import run_forward

    values = run_forward(graph, _nchw(golden["input"][:1]), return_all=True)
    outputs = evaluate_graph(graph, _nchw(golden["input"]), golden["labels"]).codes
    result = {}
    for kind, (prefix, output_key) in _GOLDENS.items():
        compared = equal = differing = total = worst = 0
        for key in golden.files:
            name = key[len(prefix) + 1 :]
            if key.startswith(prefix + "/") and name in values:
                d, n, m = _difference(values[name], _nchw(golden[key]))
                compared, equal = compared + 1, equal + (d == 0)
                differing, total, worst = differing + d, total + n, max(worst, m)
        d, n, m = _difference(outputs, golden[output_key])
        result[kind] = {
            "tensors": compared, "equal": equal, "share": differing / max(total, 1), "max": worst,
            "output_share": d / n, "output_max": m,
        }  # fmt: skip
    return result


def model_report(path: Path, epochs: int, last_k: int) -> dict[str, Any]:
    """Every figure of the table of the model at ``path`` (its golden ``.npz`` beside it)."""
    from tte_algo.data import load_digits
    from tte_algo.train import TrainConfig, scheme_last_convs, train_int8
    from tte_ir import conv_nodes
    from tte_ir.tflite_import import import_tflite

    started = time.perf_counter()
    graph = import_tflite(path)
    seconds = time.perf_counter() - started
    golden = np.load(path.with_suffix(".golden.npz"))
    report: dict[str, Any] = {
        "model": path.stem,
        "input": "x".join(map(str, graph.tensors[graph.inputs[0]].shape[1:])),
        "ops": graph.metadata["tflite_ops"],
        "parameters": sum(int(a.size) for a in graph.constants.values()),
        "import_s": seconds,
        "parity": {"fixed": parity(graph, golden), "float": parity(import_tflite(path, requant="float"), golden)},
    }
    head = import_tflite(path, num_classes=5, head="fp32")
    k = min(last_k, len(conv_nodes(head)))
    scheme = scheme_last_convs(head, k, head="fp32")
    shape = head.tensors[head.inputs[0]].shape[1:]
    train, test = load_digits(shape, classes=range(5, 10)).split(0.3, 0)
    result = train_int8(head, scheme, train, test, TrainConfig(epochs=epochs, batch_size=16))
    report["transfer"] = {
        "before": result.metrics["test_accuracy_before"], "after": result.metrics["test_accuracy"],
        "scheme": f"last {k} convs + fp32 head (5 classes)", "epochs": epochs, "train": len(train), "test": len(test),
    }  # fmt: skip
    return report


def _parity_line(p: dict[str, Any]) -> str:
    return (
        f"{p['equal']}/{p['tensors']} tensors equal, {100 * p['share']:.3f}% codes differ (max {p['max']}); "
        f"outputs {100 * p['output_share']:.2f}% (max {p['output_max']})"
    )


def format_table(r: dict[str, Any]) -> str:
    """One model's table as text."""
    ops = ", ".join(f"{name} x{count}" for name, count in r["ops"].items())
    t = r["transfer"]
    lines = [
        f"{r['model']}, input {r['input']}",
        f"  ops             {ops}",
        f"  parameters      {r['parameters']:,}",
        f"  import          {1000 * r['import_s']:.0f} ms",
    ]
    for requant in ("fixed", "float"):
        for kind, label in (("ref", "reference kernels"), ("optimized", "optimized kernels")):
            lines.append(f"  {requant:5} vs {label:17} {_parity_line(r['parity'][requant][kind])}")
    lines.append(
        f"  accuracy        {100 * t['before']:.1f}% -> {100 * t['after']:.1f}% held-out ({t['scheme']}, {t['epochs']} "
        f"simulated int8 epochs on digits 5-9, {t['train']} train / {t['test']} test)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (``python -m tte_algo.tflite_bench``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("../shared/models/tflite"), help="the models' folder")
    parser.add_argument("--models", nargs="+", help="model names (default: every .tflite in --dir)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the simulated transfer (default 2)")
    parser.add_argument("--last-k", type=int, default=2, help="trained convs of the sparse scheme (default 2)")
    args = parser.parse_args(argv)
    try:
        bounded_int(args.epochs, "--epochs", 1)
        bounded_int(args.last_k, "--last-k", 1)
        names = args.models or sorted(p.stem for p in args.dir.glob("*.tflite"))
        if not names:
            raise TteError(f"{args.dir}: holds no .tflite models")
    except TteError as exc:
        return usage_error("tflite", exc)
    return print_tables(
        "tflite", names, lambda name: model_report(args.dir / f"{name}.tflite", args.epochs, args.last_k), format_table
    )


if __name__ == "__main__":
    sys.exit(main())
