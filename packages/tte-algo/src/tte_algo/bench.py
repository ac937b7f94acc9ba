"""The QAS accuracy benchmark (``nox -s accuracy``): the paper's Table 1 on a task that runs on a laptop.

A small MCUNet-style float model is pretrained on a source task (digits 0-4), its classifier is
replaced by a fresh 5-class head, and it is adapted to a target task (digits 5-9) by training the
last two blocks and the head, at each learning rate of a small grid, over several seeds:

- ``fp32``: the float twin (BN folded) trained with float SGD;
- ``int8 w/o QAS``: the int8 graph trained on its codes with unscaled gradients (float-master rounding,
  so rounding does not hide the effect of scaling);
- ``int8+QAS (float-master | stochastic | nearest)``: the int8 graph with QAS and each rounding mode.

Each row reports its best learning rate (by mean final test accuracy over seeds), the mean and the
spread (min..max) over seeds. The pretrained float model is cached in the output folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from tte_algo.data import Dataset, dequantize_input, load_digits
from tte_algo.floatgraph import FloatNet
from tte_algo.fx_import import import_fx
from tte_algo.ptq import calibrate, export_graph
from tte_algo.train import TrainConfig, scheme_last_convs, train_float, train_int8
from tte_algo.zoo import build_model
from tte_ir import conv_nodes
from tte_ir.serialize import atomic_write_bytes

__all__ = ["ROWS", "BenchSetup", "fit_float_model", "main", "run_benchmark"]

ROWS = (
    ("fp32", None, True),
    ("int8 w/o QAS", "float-master", False),
    ("int8+QAS float-master", "float-master", True),
    ("int8+QAS stochastic", "stochastic", True),
    ("int8+QAS nearest", "nearest", True),
)


@dataclass(frozen=True)
class BenchSetup:
    """The benchmark's knobs (defaults fit 2 CPU cores and 15 minutes)."""

    model: str = "mcunet-tiny"
    resolution: int = 32
    source: tuple[int, ...] = (0, 1, 2, 3, 4)
    target: tuple[int, ...] = (5, 6, 7, 8, 9)
    pretrain_epochs: int = 15
    last_convs: int = 6  # the last two inverted-residual blocks: (pw1, dw, pw2) x 2
    epochs: int = 15
    batch_size: int = 16
    lrs: tuple[float, ...] = (0.03, 0.1, 0.2, 0.3)
    seeds: tuple[int, ...] = (0, 1, 2)
    target_train_per_class: int = 50  # a small labelled set, as collected on a device


def fit_float_model(model: nn.Module, data: Dataset, epochs: int, seed: int, lr: float = 0.05) -> nn.Module:
    """Train a float model (BN in training mode) on ``data`` with SGD-momentum and a cosine schedule."""
    torch.manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    steps = epochs * ((len(data) + 31) // 32)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    x_all = dequantize_input(data.codes)
    model.train()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), 32):
            index = order[start : start + 32]
            loss = F.cross_entropy(model(x_all[index]), data.labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.eval()


def _pretrained(setup: BenchSetup, out: Path) -> nn.Module:
    """The float model pretrained on the source classes (cached by configuration in ``out``)."""
    key = f"{setup.model}-r{setup.resolution}-src{''.join(map(str, setup.source))}-e{setup.pretrain_epochs}"
    path = out / f"pretrained-{key}.pt"
    model = build_model(setup.model, len(setup.source), seed=0)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    source = load_digits(setup.resolution, setup.source)
    fit_float_model(model, source, setup.pretrain_epochs, seed=0)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model


def _target_data(setup: BenchSetup) -> tuple[Dataset, Dataset]:
    data = load_digits(setup.resolution, setup.target)
    train, test = data.split(0.5, seed=0)
    keep = torch.cat(
        [torch.nonzero(train.labels == c).flatten()[: setup.target_train_per_class] for c in range(len(setup.target))]
    )
    return train.subset(keep.sort().values), test


def run_benchmark(setup: BenchSetup, out: Path, progress: bool = True) -> dict[str, Any]:
    """Run every row at every lr and seed; return the table (rows with best lr, mean, spread) and all runs."""
    started, cpu_started = time.time(), time.process_time()
    model = _pretrained(setup, out)
    train, test = _target_data(setup)
    source_acc = _source_accuracy(model, setup)
    model.classifier = nn.Linear(model.classifier.in_features, len(setup.target))
    runs: list[dict[str, Any]] = []
    for seed in setup.seeds:
        torch.manual_seed(1000 + seed)
        model.classifier.reset_parameters()  # a fresh head per seed: the seed also varies the head init
        fgraph = import_fx(model, setup.model)
        ranges = calibrate(FloatNet(fgraph), [dequantize_input(train.codes)])
        graph = export_graph(fgraph, ranges, (3, setup.resolution, setup.resolution), head="fp32")
        convs = conv_nodes(graph)
        trained_ops = [node.name for node in convs[-setup.last_convs :]] + [graph.producer(graph.outputs[0]).name]
        config = TrainConfig(epochs=setup.epochs, batch_size=setup.batch_size, eval_every_epoch=False)
        for lr in setup.lrs:
            for row, rounding, qas in ROWS:
                if rounding is None:
                    result = train_float(FloatNet(fgraph), trained_ops, train, test, config, lr=lr, seed=seed)
                else:
                    scheme = scheme_last_convs(graph, setup.last_convs, rounding=rounding, lr=lr, head_lr=lr, seed=seed)
                    result = train_int8(graph, scheme, train, test, replace(config, qas=qas))
                runs.append({"row": row, "lr": lr, "seed": seed, "test_accuracy": result.metrics["test_accuracy"]})
                if progress:
                    print(
                        f"  seed {seed} lr {lr:<5} {row:<22} {100 * result.metrics['test_accuracy']:.1f}%", flush=True
                    )
    table = []
    for row, _, _ in ROWS:
        best = None
        for lr in setup.lrs:
            accs = [r["test_accuracy"] for r in runs if r["row"] == row and r["lr"] == lr]
            mean = statistics.fmean(accs)
            if best is None or mean > best["mean"]:
                best = {
                    "row": row,
                    "lr": lr,
                    "mean": mean,
                    "min": min(accs),
                    "max": max(accs),
                    "std": statistics.pstdev(accs),
                }
        table.append(best)
    return {
        "setup": {k: list(v) if isinstance(v, tuple) else v for k, v in setup.__dict__.items()},
        "source_train_accuracy": source_acc,
        "target_train_size": len(train),
        "target_test_size": len(test),
        "table": table,
        "runs": runs,
        "seconds": time.time() - started,
        "cpu_seconds": time.process_time() - cpu_started,
    }


def _source_accuracy(model: nn.Module, setup: BenchSetup) -> float:
    data = load_digits(setup.resolution, setup.source)
    with torch.no_grad():
        pred = model(dequantize_input(data.codes)).argmax(1)
    return float((pred == data.labels).float().mean())


def format_table(result: dict[str, Any]) -> str:
    """The table as text: row, best lr, mean ± std and min..max over seeds (percent)."""
    lines = [
        f"{'precision / update':<24} {'best lr':>8} {'accuracy (mean ± std)':>22} {'min..max':>14}",
    ]
    for r in result["table"]:
        lines.append(
            f"{r['row']:<24} {r['lr']:>8g} {100 * r['mean']:>13.1f} ± {100 * r['std']:<5.1f} "
            f"{100 * r['min']:>6.1f}..{100 * r['max']:<5.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the benchmark: prints the table and writes it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="out/accuracy", help="folder for the cached model and results.json")
    parser.add_argument("--quick", action="store_true", help="one seed, one lr, two epochs (smoke test)")
    args = parser.parse_args(argv)
    setup = BenchSetup()
    if args.quick:
        setup = replace(setup, seeds=(0,), lrs=(0.03,), epochs=2, pretrain_epochs=3)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    out = Path(args.out)
    result = run_benchmark(setup, out)
    s = result["setup"]
    print(
        f"\nTransfer digits {s['source']} -> {s['target']} ({s['model']}, {s['resolution']}x{s['resolution']}, "
        f"{result['target_train_size']} train / {result['target_test_size']} test images), last {s['last_convs']} convs "
        f"+ fp32 head, {s['epochs']} epochs, batch {s['batch_size']}, cosine lr; best lr of {s['lrs']}, "
        f"seeds {s['seeds']}; source-task training accuracy of the pretrained float model {100 * result['source_train_accuracy']:.1f}%"
    )
    print(format_table(result))
    print(f"({result['seconds']:.0f} s wall, {result['cpu_seconds']:.0f} s CPU)")
    atomic_write_bytes(out / "results.json", (json.dumps(result, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
