"""Train and evaluate on the host with the generated C, and write the trained weights back.

The data are device input codes: images ``int8 [N, C, H, W]`` and integer labels ``[N]`` (an
``.npz`` with arrays ``x`` and ``y`` on the command line). Training is batch 1, one
``tte_model_train_step`` per image, exactly what the firmware runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tte_codegen.host import HostModel
from tte_ir import Graph, TteError
from tte_ir.autodiff import training_info
from tte_ir.serialize import save

__all__ = ["Dataset", "TrainLog", "evaluate", "load_npz", "train_host", "write_trained"]


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
    """Per-step losses and statuses of a host training run, and its wall time per step."""

    losses: np.ndarray
    statuses: tuple[str, ...]
    seconds_per_step: float

    @property
    def skipped(self) -> int:
        """Steps whose update was skipped (non-finite loss or gradient)."""
        return sum(s != "ok" for s in self.statuses)


def train_host(
    model: HostModel,
    data: Dataset,
    *,
    epochs: int = 1,
    lr: float | None = None,
    head_lr: float | None = None,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainLog:
    """SGD over ``data`` for ``epochs`` (batch 1, a fresh shuffle per epoch from ``seed``)."""
    import time

    rng = np.random.default_rng(seed)
    losses: list[float] = []
    statuses: list[str] = []
    total = epochs * len(data)
    started = time.perf_counter()
    for _ in range(epochs):
        for i in rng.permutation(len(data)):
            losses.append(model.train_step(data.x[i], int(data.y[i]), lr, head_lr))
            statuses.append(model.last_status)
            if progress is not None:
                progress(len(losses), total, losses[-1])
    elapsed = time.perf_counter() - started
    return TrainLog(np.asarray(losses, dtype=np.float32), tuple(statuses), elapsed / max(1, len(losses)))


def evaluate(model: HostModel, data: Dataset) -> float:
    """Top-1 accuracy of the model's logits on ``data``."""
    if len(data) == 0:
        raise TteError("cannot evaluate on an empty dataset")
    correct = sum(int(np.argmax(model.infer(x)) == int(y)) for x, y in zip(data.x, data.y, strict=True))
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
