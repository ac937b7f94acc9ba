"""Contribution analysis (paper §2.2): what each part of a sparse update is worth, measured on the
user's model and data.

- ``dacc_bias[k]``: validation accuracy of training the biases of the last ``k`` convs plus the head,
  minus head-only training (``dacc_bias[0] = 0``);
- ``dacc_weight[(i, r)]``: accuracy of also training conv ``i``'s weights at ratio ``r`` (input
  channels by magnitude, :func:`tte_ir.select_channels`) on top of the widest bias-only run
  (``k = window``), minus that bias-only run.

Each measurement is a short, seeded run of the int8 QAS simulation (:func:`tte_algo.train.train_int8`)
on a fit split of the training data, scored on a held-out validation split (never on the test data).

**What is measured (the pruning that makes it fit a CPU).** The paper's searched schemes update
nothing in the first half of the network, where activations are large, and only pointwise convs
there (every trained weight of its 100 KB MCUNet scheme is a block's first pointwise conv). So:

- only the last ``window`` convs are analysed (default: half of them); the bias grid has
  ``bias_points`` values of ``k`` spread over ``1..window``, plus ``0``;
- weight candidates are the pointwise (1x1, dense) convs of that window (``candidates="all"``
  adds the depthwise and dense ones, or pass explicit ``convs``);
- ratios come in two stages: every candidate at ``first_ratios`` (default 1/4 and 1), then the
  ``refine`` candidates with the largest gain at the largest first ratio at the other ratios. A conv
  that gains nothing at full ratio is not worth measuring at a smaller one.

**Sharing the frozen prefix.** No job trains anything before the window, so the graph is cut at the
window's first conv (or the nearest earlier point where one tensor carries everything the rest
needs), the prefix runs once over the data, and every job trains the suffix graph on the cut
activations. The prefix is frozen, so this is the same caching ``train_int8`` does inside one run,
shared across runs: bit-exact with nearest rounding; with stochastic rounding the noise stream is
keyed by conv index (:mod:`tte_ir.rounding`), which the cut shifts, so a suffix run draws different
noise of the same distribution.

**Caching and resuming.** Every job's result is one file of a :class:`~tte_algo.search.JobCache`,
keyed by the model's digest, the data's digest, the training settings and the job's scheme (in the
full graph's conv indices), and written as soon as the job finishes. Running the analysis again
(after an interrupt, or with a larger window or more candidates) runs only the jobs not cached.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tte_algo.search.evolution import RATIOS, Contributions, SearchError
from tte_algo.search.executor import Executor, JobCache, LocalExecutor, job_key
from tte_ir import Graph, Node, Scheme, WeightUpdate, conv_nodes
from tte_ir.kernels import POINTWISE
from tte_ir.scheme import conv_node_family
from tte_ir.serialize import graph_from_json, graph_to_json

__all__ = [
    "AnalysisReport",
    "AnalysisSettings",
    "Job",
    "PortableGraph",
    "analyze",
    "candidate_convs",
    "data_digest",
    "graph_digest",
    "plan_analysis",
    "split_graph",
]


@dataclass(frozen=True)
class AnalysisSettings:
    """What the analysis measures and how long each fine-tuning run is (module docstring).

    The default ``lr`` (1e-4, int8 biases and weights; QAS makes it the float lr of the BN-folded
    weights) is small because SGD on folded weights is not scale invariant: on the MCUNet-5fps seed
    model adapted to digits (64x64, 5 epochs), 3e-4 already costs bias-only training 8 points and
    breaks the full update, and at 1e-3 training the weights of the last 12 convs diverges.
    """

    window: int | None = None
    bias_points: int = 6
    candidates: str = "pointwise"
    convs: tuple[int, ...] | None = None
    first_ratios: tuple[float, ...] = (0.25, 1.0)
    refine: int = 4
    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-4
    head_lr: float = 0.01
    rounding: str = "stochastic"
    seeds: tuple[int, ...] = (0,)
    val_fraction: float = 0.3

    def training(self) -> dict[str, Any]:
        """The settings a job's result depends on (part of every cache key)."""
        keys = ("epochs", "batch_size", "lr", "head_lr", "rounding", "val_fraction")
        return {k: getattr(self, k) for k in keys}


@dataclass(frozen=True, order=True)
class Job:
    """One measurement: ``k`` trailing biases + head, plus conv ``conv``'s weights at ``ratio``
    (``conv`` None: bias-only; ``k`` 0 and no conv: head-only), with training seed ``seed``."""

    k: int
    conv: int | None = None
    ratio: float | None = None
    seed: int = 0

    def scheme(self, settings: AnalysisSettings, offset: int = 0) -> Scheme:
        """The job's scheme, its conv indices shifted down by ``offset`` (for a suffix graph)."""
        weights = () if self.conv is None else (WeightUpdate(self.conv - offset, float(self.ratio or 0)),)
        return Scheme(
            n_bias=self.k,
            weights=weights,
            lr=settings.lr,
            head_lr=settings.head_lr,
            rounding=settings.rounding,
            seed=self.seed,
        )

    def describe(self) -> str:
        what = "head only" if self.k == 0 else f"biases of the last {self.k} convs"
        if self.conv is not None:
            what += f" + conv {self.conv} weights at {self.ratio:g}"
        return f"{what} (seed {self.seed})"


@dataclass(frozen=True)
class PortableGraph:
    """A graph as plain JSON and arrays, so it can travel to worker processes and Ray tasks
    (:class:`tte_ir.Graph` holds read-only mapping proxies, which do not pickle)."""

    structure: dict[str, Any]
    constants: dict[str, np.ndarray]

    @classmethod
    def of(cls, graph: Graph) -> PortableGraph:
        return cls(graph_to_json(graph), {name: np.array(a) for name, a in graph.constants.items()})

    def graph(self) -> Graph:
        return graph_from_json(self.structure, dict(self.constants))


def graph_digest(graph: Graph) -> str:
    """sha256 of a graph's structure and constant data (its identity in cache keys)."""
    h = hashlib.sha256(json.dumps(graph_to_json(graph), sort_keys=True, default=str).encode())
    for name in sorted(graph.constants):
        array = np.ascontiguousarray(graph.constants[name])
        h.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def data_digest(data: Any) -> str:
    """sha256 of a dataset's codes, labels and class names."""
    h = hashlib.sha256()
    h.update(data.codes.contiguous().numpy().tobytes())
    h.update(data.labels.contiguous().numpy().tobytes())
    h.update(json.dumps(list(data.classes)).encode())
    return h.hexdigest()


def candidate_convs(graph: Graph, window: int, kind: str = "pointwise") -> list[int]:
    """Weight candidates among the last ``window`` convs: ``pointwise`` (1x1, one group) or ``all``."""
    if kind not in ("pointwise", "all"):
        raise SearchError(f"candidate kind '{kind}' is unknown (pointwise or all)")
    convs = conv_nodes(graph)
    first = len(convs) - window
    if kind == "all":
        return list(range(first, len(convs)))
    return [i for i in range(first, len(convs)) if _is_pointwise(graph, convs[i])]


def _is_pointwise(graph: Graph, node: Node) -> bool:
    return conv_node_family(graph, node) == POINTWISE


def split_graph(graph: Graph, first_conv: int) -> tuple[list[Node], Graph, int]:
    """Cut ``graph`` before conv ``first_conv``: (prefix nodes, suffix graph, conv offset).

    The cut moves to an earlier node until one tensor (the suffix graph's input) carries everything
    the suffix reads; the suffix's conv ``j`` is the graph's conv ``j + offset``.
    """
    convs = conv_nodes(graph)
    start = graph.nodes.index(convs[first_conv])
    while True:
        produced = {t for node in graph.nodes[start:] for t in node.outputs}
        frontier = sorted(
            {t for node in graph.nodes[start:] for t in node.inputs if t not in graph.constants and t not in produced}
        )
        if len(frontier) == 1 or start == 0:
            break
        start -= 1
    prefix, suffix = list(graph.nodes[:start]), graph.nodes[start:]
    if not prefix:
        return [], graph, 0
    used = {t for node in suffix for t in (*node.inputs, *node.outputs)}
    sub = graph.replace(
        name=f"{graph.name}[{suffix[0].name}:]",
        tensors={n: s for n, s in graph.tensors.items() if n in used},
        nodes=suffix,
        inputs=(frontier[0],),
        constants={n: a for n, a in graph.constants.items() if n in used},
    )
    cut = {node.name for node in prefix}
    offset = sum(1 for node in convs if node.name in cut)  # hidden linear layers count as convs
    return prefix, sub, offset


@dataclass(frozen=True)
class _Task:
    """Everything one worker needs to run one job (picklable)."""

    graph: PortableGraph
    scheme: dict[str, Any]
    fit: Any
    val: Any
    epochs: int
    batch_size: int


def _run_task(task: _Task) -> dict[str, Any]:
    """Train one job's scheme on the fit split and score it on the validation split, on one thread:
    the analysis runs jobs side by side, and torch's thread pool on a busy core only spins."""
    import torch

    from tte_algo.train import TrainConfig, train_int8

    torch.set_num_threads(1)
    started = time.perf_counter()
    config = TrainConfig(epochs=task.epochs, batch_size=task.batch_size, eval_every_epoch=False)
    result = train_int8(task.graph.graph(), Scheme.from_json(task.scheme), task.fit, task.val, config)
    return {
        "accuracy": result.metrics["test_accuracy"],
        "train_loss": result.metrics["epochs_log"][-1]["train_loss"],
        "skipped_steps": result.metrics["skipped_steps"],
        "seconds": round(time.perf_counter() - started, 3),
    }


@dataclass
class AnalysisReport:
    """How an analysis went: jobs in total, found in the cache, and run now."""

    total: int = 0
    cached: int = 0
    ran: int = 0
    results: dict[Job, dict[str, Any]] = field(default_factory=dict)


def _bias_grid(window: int, points: int) -> list[int]:
    steps = {max(1, round(window * j / points)) for j in range(1, points + 1)}
    return [0, *sorted(steps)]


def _cut_data(graph: Graph, prefix: Sequence[Node], cut: str, data: Any, cache: JobCache, key: str) -> Any:
    """``data`` with its images replaced by the prefix's output codes at ``cut`` (cached on disk)."""
    import torch

    from tte_algo.data import Dataset
    from tte_algo.sim import Int8Sim

    path = cache.folder / f"prefix-{key}.pt"
    if path.exists():
        try:
            return Dataset(torch.load(path, weights_only=True), data.labels, data.classes)
        except (OSError, RuntimeError):
            pass  # a damaged file is recomputed
    sim = Int8Sim(graph)
    chunks = []
    with torch.no_grad():
        for start in range(0, len(data), 256):
            x = data.codes[start : start + 256].to(sim.dtype)
            chunks.append(sim.run({graph.inputs[0]: x}, prefix)[cut].to(torch.int8))
    codes = torch.cat(chunks)
    cache.folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(codes, tmp)
    os.replace(tmp, path)
    return Dataset(codes, data.labels, data.classes)


def _mean_accuracy(results: dict[Job, dict[str, Any]], job: Job, seeds: Sequence[int]) -> float:
    return float(np.mean([results[Job(job.k, job.conv, job.ratio, s)]["accuracy"] for s in seeds]))


def plan_analysis(graph: Graph, settings: AnalysisSettings) -> tuple[int, list[int], list[int]]:
    """Check ``settings`` against ``graph`` and resolve them: (window, bias grid, weight candidates)."""
    n = len(conv_nodes(graph))
    window = settings.window or math.ceil(n / 2)
    if not 1 <= window <= n:
        raise SearchError(f"the analysis window must be in 1..{n} convs for graph '{graph.name}', got {window}")
    if not settings.seeds or settings.bias_points < 1 or settings.refine < 0 or settings.epochs < 1:
        raise SearchError("the analysis needs at least one seed, one bias point and one epoch, and refine >= 0")
    bad = [r for r in settings.first_ratios if r not in RATIOS]
    if bad or not settings.first_ratios:
        raise SearchError(f"first ratios must be among {', '.join(f'{r:g}' for r in RATIOS)}, got {bad or 'none'}")
    if settings.convs is None:
        return window, _bias_grid(window, settings.bias_points), candidate_convs(graph, window, settings.candidates)
    outside = [i for i in settings.convs if not n - window <= i < n]
    if outside:
        raise SearchError(f"candidate conv {outside[0]} is outside the analysis window (convs {n - window}..{n - 1})")
    return window, _bias_grid(window, settings.bias_points), sorted(set(settings.convs))


def analyze(
    graph: Graph,
    train: Any,
    settings: AnalysisSettings,
    *,
    cache: JobCache,
    executor: Executor | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    report: AnalysisReport | None = None,
) -> Contributions:
    """Measure the contribution table of ``graph`` on the training data ``train`` (module docstring).

    ``executor`` runs the jobs (default: a local process pool); ``progress(done, total, what)`` is
    called after each job; ``report`` (optional) is filled with the job counts, also when an
    interrupt stops the analysis half way.
    """
    started = time.time()
    report = report if report is not None else AnalysisReport()
    executor = executor or LocalExecutor()
    n = len(conv_nodes(graph))
    window, grid, convs = plan_analysis(graph, settings)
    fit, val = train.split(settings.val_fraction, seed=0)
    if len(fit) == 0 or len(val) == 0:
        raise SearchError(
            f"{len(train)} training samples are too few for a validation split of {settings.val_fraction}"
        )
    model_id, data_id = graph_digest(graph), data_digest(train)
    prefix, suffix, offset = split_graph(graph, n - window)
    if prefix:
        cut_key = job_key(model=model_id, data=data_id, cut=suffix.inputs[0], val_fraction=settings.val_fraction)
        fit = _cut_data(graph, prefix, suffix.inputs[0], fit, cache, cut_key + "-fit")
        val = _cut_data(graph, prefix, suffix.inputs[0], val, cache, cut_key + "-val")
    portable = PortableGraph.of(suffix)

    def key(job: Job) -> str:
        return job_key(
            model=model_id, data=data_id, training=settings.training(), scheme=job.scheme(settings).to_json()
        )

    def run(jobs: list[Job]) -> None:
        todo = []
        for job in jobs:
            found = cache.get(key(job))
            if found is None:
                todo.append(job)
            else:
                report.results[job] = found
                report.cached += 1
        report.total += len(jobs)
        tasks = [
            _Task(
                portable,
                job.scheme(settings, offset).to_json(),
                fit,
                val,
                settings.epochs,
                settings.batch_size,
            )
            for job in todo
        ]
        done = report.cached + report.ran
        if progress is not None:
            progress(done, report.total, f"{report.cached} cached")
        for index, result in executor.imap_unordered(_run_task, tasks):
            job = todo[index]
            cache.put(key(job), result)
            report.results[job] = result
            report.ran += 1
            if progress is not None:
                progress(report.cached + report.ran, report.total, job.describe())

    seeds = settings.seeds
    stage1 = [Job(k, seed=s) for k in grid for s in seeds]
    stage1 += [Job(window, i, r, s) for i in convs for r in settings.first_ratios for s in seeds]
    run(stage1)
    acc = {job: _mean_accuracy(report.results, job, seeds) for job in stage1 if job.seed == seeds[0]}
    acc_head = acc[Job(0)]
    acc_bias = acc[Job(window)]
    top = max(settings.first_ratios)
    ranked = sorted(convs, key=lambda i: (-acc[Job(window, i, top)], i))[: settings.refine]
    rest = [r for r in RATIOS if r not in settings.first_ratios]
    stage2 = [Job(window, i, r, s) for i in sorted(ranked) for r in rest for s in seeds]
    run(stage2)
    acc.update({job: _mean_accuracy(report.results, job, seeds) for job in stage2 if job.seed == seeds[0]})
    dacc_bias = {k: (acc[Job(k)] - acc_head if k else 0.0) for k in grid}
    dacc_weight = {(job.conv, job.ratio): a - acc_bias for job, a in acc.items() if job.conv is not None}
    metadata = {
        "model": graph.name,
        "model_digest": model_id,
        "data_digest": data_id,
        "fit_samples": len(fit),
        "val_samples": len(val),
        "window": window,
        "candidates": convs,
        "refined": sorted(ranked),
        "accuracy_head_only": acc_head,
        "accuracy_bias_only": acc_bias,
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()},
        "jobs": {"total": report.total, "cached": report.cached, "ran": report.ran},
        "seconds": round(time.time() - started, 1),
    }
    return Contributions(n, dacc_bias, dacc_weight, metadata)
