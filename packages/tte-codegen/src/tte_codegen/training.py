"""Train and evaluate on the host with the generated C, and write the trained weights back.

The data are device input codes: images ``int8 [N, C, H, W]`` and integer labels ``[N]``, from
``digits``, an image folder or an ``.npz`` of float inputs or int8 codes (:func:`load_data`, the
format of every command: :mod:`tte_ir.datasets`). Training is batch 1,
one ``<name>_train_step`` per image, exactly what the firmware runs, visiting epoch ``e``'s samples in
:func:`tte_ir.order.sample_order` ``(N, seed, e)``: the order ``tte train`` uses for the same seed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tte_codegen.host import HostModel
from tte_ir import Graph, TteError
from tte_ir.autodiff import training_info
from tte_ir.datasets import Data, load_dataset
from tte_ir.datasets import load_npz as tte_load_npz
from tte_ir.order import sample_order
from tte_ir.progress import Advance
from tte_ir.saturation import saturation, warn_saturation
from tte_ir.serialize import save

__all__ = ["Dataset", "TrainLog", "epoch_orders", "evaluate", "load_data", "load_npz", "train_host", "write_trained"]


@dataclass(frozen=True)
class Dataset:
    """Device input codes ``x`` int8 ``[N, C, H, W]`` and labels ``y`` int ``[N]``."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def _device_data(data: Data, graph: Graph) -> Dataset:
    """``data`` as the int8 codes of the training graph's input."""
    image = graph.tensors[training_info(graph)["input"]]
    return Dataset(np.ascontiguousarray(data.codes(image.quant)), data.y)


def _input_and_classes(graph: Graph) -> tuple[tuple[int, ...], int]:
    info = training_info(graph)
    return tuple(graph.tensors[info["input"]].shape[1:]), graph.tensors[info["logits"]].shape[1]


def load_data(spec: str, graph: Graph, classes: Sequence[int] | None = None) -> Dataset:
    """The ``--data`` value ``spec`` (:func:`tte_ir.datasets.load_dataset`: ``digits``, an image folder,
    or an ``.npz`` of float inputs or int8 codes) for the training graph ``graph``, restricted to
    ``classes``, as the device's input codes; checked before anything is built."""
    shape, head = _input_and_classes(graph)
    return _device_data(load_dataset(spec, shape=shape, classes=classes, head=head, int8_codes=True), graph)


def load_npz(path: str | os.PathLike[str], graph: Graph) -> Dataset:
    """The ``.npz`` at ``path`` for the training graph ``graph`` (:func:`tte_ir.datasets.load_npz`):
    ``x`` int8 input codes or float inputs ``[N, C, H, W]`` whose ``[C, H, W]`` is the model's, ``y``
    labels in ``0 .. classes-1``. Float inputs are quantized with the model input's scale and zero
    point (:func:`tte_ir.datasets.to_codes`). Any problem is one :class:`~tte_ir.cli_args.DataError`
    naming the file and what is wrong."""
    shape, head = _input_and_classes(graph)
    return _device_data(tte_load_npz(path, shape, head=head, int8_codes=True), graph)


@dataclass(frozen=True)
class TrainLog:
    """Per-step losses and statuses of a host training run, the sample each step trained on, the
    wall time per step, and the share of trained codes training left at their limits
    (:func:`tte_ir.saturation.saturation`)."""

    losses: np.ndarray
    statuses: tuple[str, ...]
    seconds_per_step: float
    order: np.ndarray
    saturation: dict[str, Any] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        """Steps whose update was skipped (non-finite loss, gradient or update value)."""
        return sum(s != "ok" for s in self.statuses)


def epoch_orders(count: int, seed: int, epochs: int) -> np.ndarray:
    """The samples ``epochs`` passes over ``count`` samples visit, one :func:`sample_order` per epoch."""
    return np.concatenate([np.zeros(0, np.int64), *(sample_order(count, seed, epoch) for epoch in range(epochs))])


def train_host(
    model: HostModel,
    data: Dataset,
    *,
    epochs: int = 1,
    lr: float | None = None,
    head_lr: float | None = None,
    seed: int = 0,
    steps: int | None = None,
    advance: Advance | None = None,
) -> TrainLog:
    """SGD over ``data`` for ``epochs`` (batch 1, epoch ``e`` in ``sample_order(len(data), seed, e)``),
    stopping after ``steps`` steps when given; ``advance`` (from :func:`tte_ir.progress.progress`) is
    called once per step with its loss. The log records the share of trained codes at their limits
    after training, and a share above :data:`~tte_ir.saturation.SATURATION_WARN` is warned about in
    one line on stderr."""
    import time

    order = epoch_orders(len(data), seed, epochs)[:steps]
    losses: list[float] = []
    statuses: list[str] = []
    before = model.export_params()
    started = time.perf_counter()
    for i in order:
        losses.append(model.train_step(data.x[i], int(data.y[i]), lr, head_lr))
        statuses.append(model.last_status)
        if advance is not None:
            advance(1, f"loss {losses[-1]:.4f}")
    elapsed = time.perf_counter() - started
    stats = saturation(before, model.export_params())
    warn_saturation(stats)
    return TrainLog(np.asarray(losses, dtype=np.float32), tuple(statuses), elapsed / max(1, len(losses)), order, stats)


def evaluate(model: HostModel, data: Dataset, advance: Advance | None = None) -> float:
    """Top-1 accuracy of the model's logits on ``data``; ``advance`` is called once per image."""
    if len(data) == 0:
        raise TteError("cannot evaluate on an empty dataset")
    correct = 0
    for x, y in zip(data.x, data.y, strict=True):
        correct += int(np.argmax(model.infer(x)) == int(y))
        if advance is not None:
            advance()
    return correct / len(data)


def write_trained(graph: Graph, params: Mapping[str, np.ndarray], path: str | os.PathLike[str]) -> Path:
    """Save the training graph with its trained parameters replaced by ``params`` (IR layouts), so
    it can be inspected, run again or trained further."""
    state = training_info(graph)["state"]
    missing = [name for name in state if name not in params]
    if missing:
        raise TteError(f"trained parameters missing: {', '.join(missing)}")
    constants = dict(graph.constants)
    for name in state:
        old = constants[name]
        new = np.asarray(params[name])
        if new.shape != old.shape or new.dtype != old.dtype:
            raise TteError(f"parameter '{name}' is {new.dtype}{list(new.shape)}, expected {old.dtype}{list(old.shape)}")
        constants[name] = new
    return save(graph.replace(constants=constants), path)
