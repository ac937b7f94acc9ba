"""Simulated on-device training of an int8 graph with QAS-SGD (NUMERICS.md §5-6), and the fp32
baseline on the float twin of a model.

One int8 step, per trained tensor (weights ``[O, ...]`` and biases ``[O]`` as integer codes)::

    g      = dL/d(codes)                      (sim backward, float32; + momentum buffer if enabled)
    v      = -(lr_t * g) * inv[o]             inv_w = float32(1/s_w^2), inv_b = float32(1/(s_x*s_w)^2); 1 without QAS
    v      = 0 where the channel is frozen    (inverse not finite, dead channel, or not a selected channel)
    codes  = clamp(codes + round_mode(v))     weights to [-127, 127], biases saturate to int32
    float-master: master += v; codes = clamp(rne(master))

``round_mode`` is ``nearest`` (rne) or ``stochastic`` (the counter-based hash of
:mod:`tte_algo.rounding`, keyed by the scheme's seed, the step counter ``t`` (0-based, counting every
step including skipped ones), the tensor id of :mod:`tte_ir.rounding` and the flat element index).
A step whose loss, any gradient or any update value (a live element's ``v``, a new fp32 head value)
is not finite updates nothing and is counted in the metrics (``skipped_steps``): no NaN or infinity
is ever written, whatever the learning rate (the C update's rule, tte/tte_train.h). The fp32 head
trains with plain SGD (and momentum if enabled) at ``head_lr``. After training the metrics record
the share of trained codes at their limits (:func:`tte_ir.saturation.saturation`), and a share
above :data:`~tte_ir.saturation.SATURATION_WARN` is warned about in one line on stderr.

The frozen prefix of the graph (every node that depends on no trained tensor) is exact and never
changes, so its outputs are computed once per dataset and cached; training then runs only the live
suffix. This changes nothing numerically and makes batched simulation fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from tte_algo.data import Dataset, dequantize_input
from tte_algo.floatgraph import INPUT, FloatNet
from tte_algo.rounding import round_step
from tte_algo.sim import Int8Sim, head_node
from tte_ir import (
    DType,
    Graph,
    Node,
    Scheme,
    SchemeError,
    TteError,
    WeightUpdate,
    conv_nodes,
    is_depthwise,
    select_channels,
    verify,
)
from tte_ir.autodiff import fp32_head
from tte_ir.constants import INT32_MAX, INT32_MIN
from tte_ir.order import sample_order
from tte_ir.progress import progress
from tte_ir.quant import qas_divisors
from tte_ir.rounding import bias_tensor_id, weight_tensor_id
from tte_ir.saturation import saturation, warn_saturation

__all__ = [
    "TrainConfig",
    "TrainResult",
    "default_device",
    "evaluate",
    "scheme_last_convs",
    "train_float",
    "train_int8",
]


@dataclass(frozen=True)
class TrainConfig:
    """How to run training (the scheme says what trains and with which lr, rounding, momentum, seed).

    ``batch_size`` 1 is device-faithful; larger batches are the fast simulation (mean loss).
    ``schedule`` is "cosine" (decays to 0 over all steps) or "constant". ``qas=False`` applies the
    code gradients unscaled (the int8 baseline the paper compares against).
    """

    epochs: int = 10
    batch_size: int = 1
    qas: bool = True
    schedule: str = "cosine"
    device: str = "cpu"
    progress: bool = False
    eval_every_epoch: bool = True


@dataclass
class TrainResult:
    """The trained graph (or float net) and metrics (JSON-ready)."""

    graph: Any
    metrics: dict[str, Any] = field(default_factory=dict)


def default_device() -> str:
    """CUDA when present, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def scheme_last_convs(graph: Graph, count: int, **fields: Any) -> Scheme:
    """A scheme training the weights (ratio 1) and biases of the last ``count`` convs, and the head;
    ``fields`` set the other scheme fields (lr, rounding, seed...)."""
    n = len(conv_nodes(graph))
    if not 0 < count <= n:
        raise TteError(f"the number of trained convs must be in 1..{n} for graph '{graph.name}', got {count}")
    weights = tuple(WeightUpdate(i, 1.0) for i in range(n - count, n))
    return Scheme(n_bias=count, weights=weights, **fields)


def _schedule(kind: str, total: int) -> Callable[[int], float]:
    if kind == "cosine":
        return lambda t: 0.5 * (1.0 + math.cos(math.pi * t / max(total, 1)))
    if kind == "constant":
        return lambda t: 1.0
    raise TteError(f"unknown lr schedule '{kind}' (cosine or constant)")


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> Iterator[torch.Tensor]:
    """Epoch ``epoch``'s :func:`~tte_ir.order.sample_order` (the order ``tte run`` visits) cut into batches."""
    order = torch.from_numpy(sample_order(n, seed, epoch))
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


@dataclass
class _Trained:
    """One trained int8 tensor: integer codes, update mask, QAS inverse, optional master and momentum."""

    name: str
    tensor_id: int
    codes: torch.Tensor  # int64, the graph layout
    mask: torch.Tensor  # float32, broadcastable: 1 where the element may change
    inv: torch.Tensor  # float32 [O, 1, ...]
    is_bias: bool
    is_head: bool  # an int8 head trains at the scheme's head_lr
    master: torch.Tensor | None = None
    momentum: torch.Tensor | None = None

    def leaf(self) -> torch.Tensor:
        dtype = torch.float64 if self.is_bias else torch.float32
        return self.codes.to(dtype).requires_grad_(True)

    def clamp(self, values: torch.Tensor) -> torch.Tensor:
        return values.clamp(INT32_MIN, INT32_MAX) if self.is_bias else values.clamp(-127, 127)


def _trained_tensors(graph: Graph, scheme: Scheme, qas: bool, device: torch.device) -> tuple[list[_Trained], list[str]]:
    """The scheme's int8 tensors (with masks and inverses) and the names of trained fp32 head tensors."""
    scheme.validate_for(graph)
    convs = conv_nodes(graph)
    head = head_node(graph)
    entries: list[tuple[int, Node, bool, np.ndarray | None]] = []  # (conv index, node, bias?, channels)
    for i, node in enumerate(convs):
        ratio = scheme.ratio_of(i)
        if ratio:
            weight = graph.constants[node.inputs[1]]
            entries.append((i, node, False, select_channels(weight, ratio, is_depthwise(graph, node))))
        if scheme.trains_bias(i, len(convs)):
            entries.append((i, node, True, None))
    float_head: list[str] = []
    if scheme.train_head:
        if graph.tensors[head.inputs[1]].dtype is DType.FLOAT32:
            float_head = [head.inputs[1], head.inputs[2]]
        else:
            entries += [(len(convs), head, False, None), (len(convs), head, True, None)]
    trained = []
    for index, node, is_bias, channels in entries:
        s_x = graph.tensors[node.inputs[0]].quant.tensor_scale
        s_w = graph.tensors[node.inputs[1]].quant.scale_array()
        # 0 marks a frozen channel: a non-finite divisor, or a dead channel whose bias sits at an int32 limit
        inv_w, inv_b = qas_divisors(s_x, s_w, graph.constants[node.inputs[2]])
        alive = inv_w != 0
        name = node.inputs[2] if is_bias else node.inputs[1]
        codes = graph.constants[name].astype(np.int64)
        shape = (-1,) + (1,) * (codes.ndim - 1)
        mask = np.broadcast_to(alive.reshape(shape), codes.shape).astype(np.float32)
        if channels is not None:
            selected = np.zeros(codes.shape[0] if is_depthwise(graph, node) else codes.shape[1], dtype=np.float32)
            selected[channels] = 1.0
            # a hidden linear layer's weight [O, I] selects input features like a pointwise conv
            mask = mask * (selected.reshape(shape) if is_depthwise(graph, node) else selected.reshape(1, *shape[:-1]))
        inv = (inv_b if is_bias else inv_w) if qas else np.ones_like(inv_w)
        inv = np.where(alive, inv, np.float32(0)).reshape(shape)  # without QAS too, a frozen channel's step is 0
        tensor_id = bias_tensor_id(index) if is_bias else weight_tensor_id(index)
        trained.append(
            _Trained(
                name,
                tensor_id,
                torch.tensor(codes, device=device),
                torch.tensor(mask, device=device),
                torch.tensor(inv, device=device),
                is_bias,
                node is head,
            )
        )
    return trained, float_head


def _split_frozen(graph: Graph, trained: set[str]) -> tuple[list[Node], list[Node], list[str]]:
    """(prefix nodes, live nodes, frontier tensors): live nodes depend on a trained tensor."""
    live_tensors = set(trained)
    prefix, live = [], []
    for node in graph.nodes:
        if any(name in live_tensors for name in node.inputs):
            live.append(node)
            live_tensors.update(node.outputs)
        else:
            prefix.append(node)
    produced_live = {out for node in live for out in node.outputs}
    frontier = sorted({n for node in live for n in node.inputs if n not in graph.constants and n not in produced_live})
    return prefix, live, frontier


def _cache_frontier(
    sim: Int8Sim, prefix: list[Node], frontier: list[str], data: Dataset, batch: int
) -> dict[str, torch.Tensor]:
    """The frontier tensors of every sample, as int8 codes (the frozen prefix runs once)."""
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in frontier}
    with torch.no_grad():
        for start in range(0, len(data), batch):
            x = data.codes[start : start + batch].to(device=sim.device, dtype=sim.dtype)
            values = sim.run({sim.graph.inputs[0]: x}, prefix)
            for name in frontier:
                parts[name].append(values[name].to(torch.int8))
    return {name: torch.cat(chunks) for name, chunks in parts.items()}


def evaluate(sim: Int8Sim, data: Dataset, batch: int = 256) -> float:
    """Top-1 accuracy of ``sim`` on ``data``."""
    correct = 0
    with torch.no_grad():
        for start in range(0, len(data), batch):
            logits = sim(data.codes[start : start + batch])
            correct += int((logits.argmax(1).cpu() == data.labels[start : start + batch]).sum())
    return correct / max(len(data), 1)


def train_int8(graph: Graph, scheme: Scheme, train: Dataset, test: Dataset | None, config: TrainConfig) -> TrainResult:
    """Train ``graph``'s int8 codes by ``scheme`` on ``train``; return the trained graph and metrics.

    The scheme's head precision applies as in the training-graph compiler: ``fp32`` turns an int8 head
    into its fp32 equivalent first (:func:`fp32_head`), ``int8`` trains an int8 head with QAS (conv
    index ``n_convs``) and refuses an fp32 one. ``test`` (optional) is evaluated before and after.
    """
    if config.epochs < 1 or config.batch_size < 1:
        raise TteError(f"epochs and batch size must be positive, got {config.epochs} and {config.batch_size}")
    device = torch.device(config.device)
    torch.manual_seed(scheme.seed)
    if scheme.head == "fp32":
        graph = fp32_head(graph)
    elif graph.tensors[head_node(graph).inputs[1]].dtype is DType.FLOAT32:
        raise SchemeError(f"graph '{graph.name}' has an fp32 head; a scheme with head 'int8' needs an int8 head")
    sim = Int8Sim(graph, device=device)
    trained, float_head = _trained_tensors(graph, scheme, config.qas, device)
    if not trained and not float_head:
        raise TteError("the scheme trains nothing (no biases, no weights, no head)")
    for t in trained:
        if scheme.rounding == "float-master":
            t.master = t.codes.to(torch.float64 if t.is_bias else torch.float32)
        if scheme.momentum:
            t.momentum = torch.zeros(t.codes.shape, device=device)
    head_params = {name: sim.constants[name].clone() for name in float_head}
    head_momentum = {name: torch.zeros_like(p) for name, p in head_params.items()}
    prefix, live, frontier = _split_frozen(graph, {t.name for t in trained} | set(float_head))
    cache_batch = max(config.batch_size, 256)
    cached_train = _cache_frontier(sim, prefix, frontier, train, cache_batch)
    cached_test = _cache_frontier(sim, prefix, frontier, test, cache_batch) if test is not None else None

    def params(with_grad: bool) -> dict[str, torch.Tensor]:
        out = {
            t.name: (t.leaf() if with_grad else t.codes.to(torch.float64 if t.is_bias else torch.float32))
            for t in trained
        }
        for name, p in head_params.items():
            out[name] = p.detach().requires_grad_(with_grad)
        return out

    def logits_of(cache: dict[str, torch.Tensor], index: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        values = {name: cache[name][index].to(sim.dtype) for name in frontier}
        return sim.logits(sim.run(values, live, p))

    def accuracy(cache: dict[str, torch.Tensor] | None, data: Dataset | None) -> float | None:
        if cache is None or data is None:
            return None
        correct = 0
        with torch.no_grad():
            p = params(False)
            for start in range(0, len(data), cache_batch):
                index = torch.arange(start, min(start + cache_batch, len(data)), device=device)
                pred = logits_of(cache, index, p).argmax(1).cpu()
                correct += int((pred == data.labels[start : start + cache_batch]).sum())
        return correct / len(data)

    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    factor = _schedule(config.schedule, total)
    labels = train.labels.to(device)
    metrics: dict[str, Any] = {
        "scheme": scheme.to_json(),
        "qas": config.qas,
        "rounding": scheme.rounding,
        "batch_size": config.batch_size,
        "epochs": config.epochs,
        "schedule": config.schedule,
        "head": scheme.head,
        "trained_tensors": [t.name for t in trained] + float_head,
        "test_accuracy_before": accuracy(cached_test, test),
        "epochs_log": [],
        "skipped_steps": 0,
    }
    step = 0
    with progress(
        "training (int8 + QAS)" if config.qas else "training (int8)", total, enabled=config.progress
    ) as advance:
        for epoch in range(config.epochs):
            loss_sum, seen, skipped = 0.0, 0, 0
            for index in _batches(len(train), config.batch_size, scheme.seed, epoch):
                index = index.to(device)
                p = params(True)
                loss = F.cross_entropy(logits_of(cached_train, index, p), labels[index])
                leaves = [p[t.name] for t in trained] + [p[n] for n in float_head]
                grads = torch.autograd.grad(loss, leaves)
                finite = bool(torch.isfinite(loss)) and all(bool(torch.isfinite(g).all()) for g in grads)
                if finite:
                    lr_t = scheme.lr * factor(step)
                    head_lr_t = scheme.head_lr * factor(step)
                    values = [
                        _step_value(t, g.to(torch.float32), head_lr_t if t.is_head else lr_t, scheme)
                        for t, g in zip(trained, grads[: len(trained)], strict=True)
                    ]
                    head_values = {}
                    for name, g in zip(float_head, grads[len(trained) :], strict=True):
                        momentum = scheme.momentum * head_momentum[name] + g if scheme.momentum else None
                        head_values[name] = (
                            head_params[name] - head_lr_t * (g if momentum is None else momentum),
                            momentum,
                        )
                    finite = all(bool(torch.isfinite(v).all()) for v, _ in values) and all(
                        bool(torch.isfinite(p).all()) for p, _ in head_values.values()
                    )
                if not finite:
                    skipped += 1
                else:
                    for t, (v, momentum) in zip(trained, values, strict=True):
                        _apply(t, v, momentum, scheme, step)
                    for name, (p, momentum) in head_values.items():
                        head_params[name] = p
                        if momentum is not None:
                            head_momentum[name] = momentum
                    loss_sum += float(loss.detach()) * len(index)
                    seen += len(index)
                step += 1
                advance(status=f"epoch {epoch + 1}/{config.epochs} loss {loss_sum / max(seen, 1):.3f}")
            metrics["skipped_steps"] += skipped
            entry = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "skipped_steps": skipped}
            if config.eval_every_epoch or epoch == config.epochs - 1:
                entry["test_accuracy"] = accuracy(cached_test, test)
            metrics["epochs_log"].append(entry)
    metrics["test_accuracy"] = metrics["epochs_log"][-1].get("test_accuracy")
    metrics["saturation"] = _saturation(graph, trained)
    warn_saturation(metrics["saturation"])
    constants = dict(graph.constants)
    for t in trained:
        constants[t.name] = t.codes.cpu().numpy().astype(graph.constants[t.name].dtype)
    for name, p in head_params.items():
        constants[name] = p.detach().cpu().numpy().astype(np.float32)
    trained_meta = {k: metrics[k] for k in ("qas", "rounding", "batch_size", "epochs", "schedule")}
    # "training" is the compiled training graph's record (tte_ir.autodiff.training_info); a forward graph
    # carries none, also when it comes from an older tte train that wrote its record there
    metadata = {k: v for k, v in graph.metadata.items() if k != "training"}
    metadata["trained"] = {**trained_meta, "scheme": scheme.to_json()}
    out = graph.replace(constants=constants, metadata=metadata)
    return TrainResult(verify(out), metrics)


def _saturation(graph: Graph, trained: list[_Trained]) -> dict[str, Any]:
    """:func:`tte_ir.saturation.saturation` over the elements the scheme trains (its masks)."""
    before, after = {}, {}
    for t in trained:
        original = graph.constants[t.name]
        selected = np.broadcast_to(t.mask.cpu().numpy() != 0, original.shape)
        before[t.name] = original[selected]
        after[t.name] = t.codes.cpu().numpy().astype(original.dtype)[selected]
    return saturation(before, after)


def _step_value(t: _Trained, g: torch.Tensor, lr: float, scheme: Scheme) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The step values ``v`` of one QAS-SGD update of ``t`` from its code gradient ``g`` (0 where
    frozen or not selected), and the new momentum buffer (None without momentum); nothing changes."""
    momentum = None
    if t.momentum is not None:
        momentum = scheme.momentum * t.momentum + g
        g = momentum
    v = -(torch.tensor(lr, dtype=torch.float32, device=g.device) * g) * t.inv
    return torch.where(t.mask != 0, v, torch.zeros((), dtype=v.dtype, device=v.device)), momentum


def _apply(t: _Trained, v: torch.Tensor, momentum: torch.Tensor | None, scheme: Scheme, step: int) -> None:
    """Apply the finite step values ``v`` (:func:`_step_value`) to ``t`` (module docstring)."""
    if momentum is not None:
        t.momentum = momentum
    if t.master is not None:
        t.master = t.clamp(t.master + v.to(t.master.dtype))
        t.codes = t.clamp(torch.round(t.master)).to(torch.int64)
        return
    index = torch.arange(t.codes.numel(), device=v.device).reshape(t.codes.shape)
    s = round_step(v, scheme.rounding, seed=scheme.seed, step=step, tensor_id=t.tensor_id, element_index=index)
    t.codes = t.clamp(t.codes + s)


def train_float(
    net: FloatNet,
    trainable: list[str],
    train: Dataset,
    test: Dataset | None,
    config: TrainConfig,
    *,
    lr: float,
    momentum: float = 0.0,
    seed: int = 0,
) -> TrainResult:
    """fp32 SGD of the ops named in ``trainable`` (weights and biases) of a float net; the rest is frozen.

    The float net's frozen prefix is cached like the int8 trainer's, the same batches and schedule
    are used, so the fp32 row of a comparison differs from the int8 rows only in precision.
    """
    device = torch.device(config.device)
    net = net.to(device)
    torch.manual_seed(seed)
    ops = net.graph.ops
    names = set(trainable)
    first = min((i for i, op in enumerate(ops) if op.name in names), default=None)
    if first is None:
        raise TteError("train_float: no trainable op")
    prefix_ops, live_ops = ops[:first], ops[first:]
    needed = {n for op in live_ops for n in op.inputs} - {op.output for op in live_ops}
    params = [p for name in trainable for p in (net.weight(name), net.bias(name))]
    for p in net.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)

    def cache(data: Dataset) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            values = net.run({INPUT: dequantize_input(data.codes).to(device)}, prefix_ops)
        return {name: values[name] for name in needed}

    cached_train = cache(train)
    cached_test = cache(test) if test is not None else None
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config.schedule, total))
    labels = train.labels.to(device)

    def accuracy() -> float | None:
        if cached_test is None or test is None:
            return None
        with torch.no_grad():
            out = net.run(dict(cached_test), live_ops)[net.graph.output]
        return float((out.argmax(1).cpu() == test.labels).float().mean())

    log = []
    before = accuracy()
    for epoch in range(config.epochs):
        loss_sum = 0.0
        for index in _batches(len(train), config.batch_size, seed, epoch):
            index = index.to(device)
            values = {name: value[index] for name, value in cached_train.items()}
            loss = F.cross_entropy(net.run(values, live_ops)[net.graph.output], labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach()) * len(index)
        entry = {"epoch": epoch + 1, "train_loss": loss_sum / len(train)}
        if config.eval_every_epoch or epoch == config.epochs - 1:
            entry["test_accuracy"] = accuracy()
        log.append(entry)
    return TrainResult(
        net, {"test_accuracy_before": before, "test_accuracy": log[-1].get("test_accuracy"), "epochs_log": log}
    )
