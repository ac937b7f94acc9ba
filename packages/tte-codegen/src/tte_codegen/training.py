"""Train and evaluate on the host with the generated C, and write the trained weights back.

The data are device input codes: images ``int8 [N, C, H, W]`` and integer labels ``[N]`` (an
``.npz`` with arrays ``x`` and ``y`` on the command line). Training is batch 1, one
``<name>_train_step`` per image, exactly what the firmware runs, visiting epoch ``e``'s samples in
:func:`tte_ir.order.sample_order` ``(N, seed, e)``: the order ``tte train`` uses for the same seed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tte_codegen.host import HostModel
from tte_ir import Graph, TteError
from tte_ir.autodiff import training_info
from tte_ir.order import sample_order
from tte_ir.progress import Advance
from tte_ir.serialize import save

__all__ = ["Dataset", "TrainLog", "epoch_orders", "evaluate", "load_npz", "train_host", "write_trained"]


@dataclass(frozen=True)
class Dataset:
    """Device input codes ``x`` int8 ``[N, C, H, W]`` and labels ``y`` int ``[N]``."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def load_npz(path: str | os.PathLike[str]) -> Dataset:
    """A dataset from an ``.npz`` holding ``x`` (int8 ``[N, C, H, W]``) and ``y`` (integers ``[N]``)."""
    try:
        with np.load(path) as data:
            x, y = data["x"], data["y"]
    except FileNotFoundError:
        raise TteError(f"{path}: no such file") from None
    except KeyError as exc:
        raise TteError(f"{path}: missing array {exc} (expected 'x' int8 [N, C, H, W] and 'y' labels [N])") from None
    except (OSError, ValueError) as exc:
        raise TteError(f"{path}: not a readable .npz ({exc})") from None
    if x.dtype != np.int8 or x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
        raise TteError(
            f"{path}: x must be int8 [N, C, H, W] and y [N]; got x {x.dtype}{list(x.shape)}, y {list(y.shape)}"
        )
    return Dataset(x, y.astype(np.int64))


@dataclass(frozen=True)
class TrainLog:
    """Per-step losses and statuses of a host training run, the sample each step trained on, and
    the wall time per step."""

    losses: np.ndarray
    statuses: tuple[str, ...]
    seconds_per_step: float
    order: np.ndarray

    @property
    def skipped(self) -> int:
        """Steps whose update was skipped (non-finite loss or gradient)."""
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
    called once per step with its loss."""
    import time

    order = epoch_orders(len(data), seed, epochs)[:steps]
    losses: list[float] = []
    statuses: list[str] = []
    started = time.perf_counter()
    for i in order:
        losses.append(model.train_step(data.x[i], int(data.y[i]), lr, head_lr))
        statuses.append(model.last_status)
        if advance is not None:
            advance(1, f"loss {losses[-1]:.4f}")
    elapsed = time.perf_counter() - started
    return TrainLog(np.asarray(losses, dtype=np.float32), tuple(statuses), elapsed / max(1, len(losses)), order)


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
