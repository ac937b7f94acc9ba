"""The sparse-update search benchmark (``nox -s search``): searched schemes against last-k, bias-only,
head-only and full update, at three memory budgets, after full simulated int8 training.

**Task.** The ImageNet-pretrained int8 seed model (MCUNet-5fps by default) adapted to the ten
built-in digits, 50/50 train/test split. The model runs at 64x64 instead of its 128x128: the digits
are 8x8 images, so 128x128 adds no information, and the simulation of a full update at 128x128 costs
about 16x a 64x64 one on a CPU (the whole benchmark must fit 30 minutes on 2 cores). Convolutions
and their quantization do not depend on the input size; only the graph's tensor shapes change
(:func:`at_resolution`), and every memory figure is the compiled plan at 64x64.

**Recipe.** The seed importer's new head is random; its first gradients, pushed through the int8
network, wreck the BN-folded weights (the first epoch's loss rises for every scheme that trains
more than the head), so the head is first linear-probed (``probe_epochs``, head only) and every row
starts from that probed model: the standard linear-probe-then-fine-tune recipe. Every row then
trains ``epochs`` epochs with the same lr, head lr, batch and stochastic rounding, over ``seeds``.

**Steps.** Contribution analysis (cached in ``OUT/cache``: a rerun resumes), then for each budget the
evolutionary search, and the last-k scheme (weights and biases of the last k convs, the largest k
whose compiled plan fits); budgets are 10% above the bias-only plan (every bias + head), the full
update's plan, and their geometric mean.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tte_algo.search.contrib import AnalysisSettings, PortableGraph, _run_task, _Task, analyze
from tte_algo.search.cost import CompiledCost
from tte_algo.search.driver import Budgets, search_scheme
from tte_algo.search.evolution import Genome
from tte_algo.search.executor import JobCache, LocalExecutor
from tte_ir import Graph, Scheme, TensorSpec, WeightUpdate, conv_nodes, load, save, verify
from tte_ir.ops import OP_TABLE, node_attrs, node_roles
from tte_ir.serialize import atomic_write_bytes

__all__ = ["SearchBench", "at_resolution", "main", "run_benchmark"]


@dataclass(frozen=True)
class SearchBench:
    """The benchmark's knobs (defaults fit 2 CPU cores and 30 minutes)."""

    model: str = "mcunet-5fps"
    resolution: int = 64
    test_fraction: float = 0.5
    probe_epochs: int = 4
    probe_lr: float = 0.05
    epochs: int = 5
    batch_size: int = 16
    lr: float = 1e-4
    head_lr: float = 0.01
    seeds: tuple[int, ...] = (0, 1)
    analysis_epochs: int = 3
    workers: int = 2


def at_resolution(graph: Graph, resolution: int) -> Graph:
    """``graph`` with a ``resolution`` x ``resolution`` input: every activation's shape re-inferred
    through the op table (weights, biases and quantization unchanged)."""
    tensors = dict(graph.tensors)
    x = tensors[graph.inputs[0]]
    tensors[x.name] = TensorSpec(x.name, (*x.shape[:2], resolution, resolution), x.dtype, x.quant)
    for node in graph.nodes:
        ins, _ = node_roles(node)
        inferred = OP_TABLE[node.op].infer(node, {role: tensors[t] for role, t in ins.items()}, node_attrs(node))
        for name, (shape, _dtype) in zip(node.outputs, inferred, strict=True):
            old = tensors[name]
            tensors[name] = TensorSpec(name, shape, old.dtype, old.quant)
    return verify(graph.replace(tensors=tensors, metadata={**graph.metadata, "resolution": resolution}))


def _probed(setup: SearchBench, shared: Path, out: Path, train: Any) -> Graph:
    """The seed model at the benchmark's resolution with its head linear-probed (cached in ``out``)."""
    from tte_algo.train import TrainConfig, train_int8
    from tte_ir import import_seed_pkl

    path = out / f"{setup.model}-r{setup.resolution}-probe{setup.probe_epochs}-lr{setup.probe_lr}.tte"
    if path.exists():
        return load(path)
    graph = at_resolution(import_seed_pkl(shared / "models" / f"{setup.model}.pkl", 10, head="fp32"), setup.resolution)
    probe = Scheme(n_bias=0, head_lr=setup.probe_lr, seed=0)
    config = TrainConfig(epochs=setup.probe_epochs, batch_size=setup.batch_size, eval_every_epoch=False)
    graph = train_int8(graph, probe, train, None, config).graph
    save(graph, path)
    return graph


def _last_k_fitting(cost: CompiledCost, n: int, budget: int) -> int | None:
    """The largest k whose last-k scheme (weights + biases of the last k convs) fits ``budget``."""
    fitting = [k for k in range(1, n + 1) if cost(_last_k(n, k)).total_bytes <= budget]
    return max(fitting, default=None)


def _last_k(n: int, k: int) -> Genome:
    return Genome(k, tuple((i, 1.0) for i in range(n - k, n)))


def _describe(genome: Genome, n: int) -> str:
    if not genome.ratios:
        return "head only" if genome.k == 0 else f"biases of last {genome.k}"
    if genome == _last_k(n, genome.k):
        return "full update" if genome.k == n else f"last {genome.k} convs"
    weights = " ".join(f"{i}@{r:g}" for i, r in genome.ratios)
    return f"bias {genome.k} + W {weights}"


def run_benchmark(setup: SearchBench, shared: Path, out: Path, progress: bool = True) -> dict[str, Any]:
    """Analysis, search at three budgets and full training of every row; returns rows and settings."""
    from tte_algo.data import load_digits

    started = time.time()
    say = print if progress else (lambda *a, **k: None)
    data = load_digits(setup.resolution)
    train, test = data.split(setup.test_fraction, seed=0)
    graph = _probed(setup, shared, out, train)
    n = len(conv_nodes(graph))
    executor = LocalExecutor(setup.workers)
    settings = AnalysisSettings(
        epochs=setup.analysis_epochs,
        batch_size=setup.batch_size,
        lr=setup.lr,
        head_lr=setup.head_lr,
        seeds=(0,),
    )
    say(f"contribution analysis of {graph.name} ({n} convs) on {len(train)} training images ...", flush=True)
    contrib = analyze(
        graph,
        train,
        settings,
        cache=JobCache(out / "cache"),
        executor=executor,
        progress=(lambda done, total, what: say(f"  [{done}/{total}] {what}", flush=True)),
    )
    contrib.save(out / "contrib.json")
    cost = CompiledCost(graph)
    low = math.ceil(cost(Genome(n)).total_bytes * 1.1)
    high = cost(_last_k(n, n)).total_bytes
    budgets = [low, round(math.sqrt(low * high)), high]
    rows: list[dict[str, Any]] = []

    def add(label: str, genome: Genome, budget: int | None, score: float | None = None) -> None:
        rows.append(
            {
                "budget": budget,
                "row": label,
                "scheme": _describe(genome, n),
                "genome": {"k": genome.k, "weights": [list(w) for w in genome.ratios]},
                "estimate": score,
                **cost(genome).to_json(),
            }
        )

    for budget in budgets:
        outcome = search_scheme(graph, contrib, Budgets(budget), seed=0)
        add("searched", outcome.result.best.genome, budget, outcome.result.best.score)
        k = _last_k_fitting(cost, n, budget)
        if k is not None:
            add("last-k", _last_k(n, k), budget)
    add("bias-only", Genome(n), None)
    add("head-only", Genome(0), None)
    add("full update", _last_k(n, n), None)
    portable = PortableGraph.of(graph)
    genomes = {row["scheme"]: Genome(row["genome"]["k"], tuple(map(tuple, row["genome"]["weights"]))) for row in rows}
    tasks, owners = [], []
    for label, genome in genomes.items():  # a scheme chosen at two budgets trains once
        for seed in setup.seeds:
            scheme = Scheme(
                n_bias=genome.k,
                weights=tuple(WeightUpdate(i, r) for i, r in genome.ratios),
                lr=setup.lr,
                head_lr=setup.head_lr,
                seed=seed,
            )
            tasks.append(_Task(portable, scheme.to_json(), train, test, setup.epochs, setup.batch_size))
            owners.append(label)
    say(f"training {len(genomes)} schemes x {len(setup.seeds)} seeds ...", flush=True)
    accuracies: dict[str, list[float]] = {label: [] for label in genomes}
    for done, (i, result) in enumerate(executor.imap_unordered(_run_task, tasks), 1):
        accuracies[owners[i]].append(result["accuracy"])
        say(f"  [{done}/{len(tasks)}] {owners[i]:<40} {100 * result['accuracy']:.1f}%", flush=True)
    for row in rows:
        row["accuracies"] = sorted(accuracies[row["scheme"]])
        row["accuracy"] = statistics.fmean(row["accuracies"])
    return {
        "setup": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(setup).items()},
        "model": graph.name,
        "n_convs": n,
        "train_images": len(train),
        "test_images": len(test),
        "budgets": budgets,
        "contrib": {k: contrib.metadata[k] for k in ("window", "candidates", "refined", "jobs", "seconds")},
        "rows": rows,
        "seconds": round(time.time() - started, 1),
    }


def format_table(result: dict[str, Any]) -> str:
    """One table: per budget the searched and last-k rows, then the reference rows."""
    kb = 1024
    lines = [
        f"{'budget KB':>9}  {'row':<11} {'scheme':<44} {'total KB':>8} {'trainable KB':>12} {'est. gain':>9} "
        f"{'accuracy %':>10}  per seed"
    ]
    for row in result["rows"]:
        budget = f"{row['budget'] / kb:.1f}" if row["budget"] is not None else "-"
        estimate = f"{100 * row['estimate']:+.1f}" if row["estimate"] is not None else ""
        seeds = " ".join(f"{100 * a:.1f}" for a in row["accuracies"])
        lines.append(
            f"{budget:>9}  {row['row']:<11} {row['scheme'][:44]:<44} {row['total_bytes'] / kb:>8.1f} "
            f"{row['trainable_bytes'] / kb:>12.1f} {estimate:>9} {100 * row['accuracy']:>10.1f}  {seeds}"
        )
    by_budget: dict[int, dict[str, dict[str, Any]]] = {}
    for row in result["rows"]:
        if row["budget"] is not None:
            by_budget.setdefault(row["budget"], {})[row["row"]] = row
    for budget, pair in by_budget.items():
        if "last-k" in pair:
            s, k = pair["searched"], pair["last-k"]
            lines.append(
                f"budget {budget / kb:.1f} KB: searched {100 * s['accuracy']:.1f}% at {s['total_bytes'] / kb:.1f} KB vs "
                f"last-k {100 * k['accuracy']:.1f}% at {k['total_bytes'] / kb:.1f} KB "
                f"(last-k / searched memory {k['total_bytes'] / s['total_bytes']:.2f}x)"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: prints the table and writes ``OUT/results.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("shared", nargs="?", default="../shared", help="folder with models/ (the seed models)")
    parser.add_argument("--out", default="out/search", help="folder for the probed model, cache and results")
    parser.add_argument("--model", default=SearchBench.model, help="seed model (mcunet-5fps, mbv2-w0.35, ...)")
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, 1-epoch analysis (smoke test)")
    args = parser.parse_args(argv)
    shared = Path(args.shared)
    if not (shared / "models" / f"{args.model}.pkl").exists():
        print(f"{shared}/models/{args.model}.pkl not found (the seed models live in ../shared)")
        return 2
    setup = SearchBench(model=args.model, workers=min(2, os.cpu_count() or 1))
    if args.quick:
        setup = replace(setup, seeds=(0,), epochs=1, analysis_epochs=1, probe_epochs=1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = run_benchmark(setup, shared, out)
    s = result["setup"]
    print(
        f"\n{result['model']} (ImageNet int8 seed model) -> digits, {s['resolution']}x{s['resolution']}, "
        f"{result['train_images']} train / {result['test_images']} test images; head probed {s['probe_epochs']} epochs, "
        f"then {s['epochs']} epochs per row, batch {s['batch_size']}, lr {s['lr']:g}, head lr {s['head_lr']:g}, "
        f"stochastic rounding, seeds {s['seeds']}. Memory: compiled plan, total = arena + trainable + I/O. "
        f"Analysis: last {result['contrib']['window']} convs, {result['contrib']['jobs']}"
    )
    print(format_table(result))
    print(f"({result['seconds']:.0f} s)")
    atomic_write_bytes(out / "results.json", (json.dumps(result, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
