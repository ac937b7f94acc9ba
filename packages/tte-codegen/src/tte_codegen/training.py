"""Train and evaluate on the host with the generated C, and write the trained weights back.

The data are device input codes: images ``int8 [N, C, H, W]`` and integer labels ``[N]`` (an
``.npz`` with arrays ``x`` and ``y`` on the command line, see :func:`load_npz`). Training is batch 1,
one ``<name>_train_step`` per image, exactly what the firmware runs, visiting epoch ``e``'s samples in
:func:`tte_ir.order.sample_order` ``(N, seed, e)``: the order ``tte train`` uses for the same seed.
"""

from __future__ import annotations

import math
import os
import tokenize
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tte_codegen.host import HostModel
from tte_ir import Graph, TteError
from tte_ir.autodiff import training_info
from tte_ir.cli_args import MAX_DATA_FILE_BYTES, DataError, check_file_size
from tte_ir.order import sample_order
from tte_ir.progress import Advance
from tte_ir.saturation import saturation, warn_saturation
from tte_ir.serialize import save

__all__ = ["Dataset", "TrainLog", "epoch_orders", "evaluate", "load_npz", "train_host", "write_trained"]

_EXPECTED = "expected 'x' int8 codes or float inputs [N, C, H, W] and 'y' integer labels [N]"
_SAVE_HINT = "save one with numpy.savez(path, x=images, y=labels)"
# what zipfile, zlib and numpy's .npy reader (whose header parser tokenizes and evaluates Python
# literals) raise on damaged bytes, unsupported compression and encrypted members included
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    OverflowError,
    SyntaxError,
    RecursionError,
    tokenize.TokenError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
)


@dataclass(frozen=True)
class Dataset:
    """Device input codes ``x`` int8 ``[N, C, H, W]`` and labels ``y`` int ``[N]``."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def load_npz(path: str | os.PathLike[str], graph: Graph) -> Dataset:
    """The dataset in ``path`` for the training graph ``graph``, checked before anything is built.

    The file is an ``.npz`` of at most :data:`~tte_ir.cli_args.MAX_DATA_FILE_BYTES` on disk and
    inflated (both checked before reading) holding ``x``, int8 input codes or float inputs
    ``[N, C, H, W]`` whose ``[C, H, W]`` is the model's, and ``y``, integer labels ``[N]`` in
    ``0 .. classes-1``, N at least 1. Float inputs must be finite; they are quantized with the model
    input's scale and zero point (``code = clamp(rne(x / scale) + zero_point, -128, 127)``). Arrays
    of Python objects are never unpickled. Any problem is one :class:`~tte_ir.cli_args.DataError`
    naming the file and what is wrong.
    """
    info = training_info(graph)
    image = graph.tensors[info["input"]]
    classes = graph.tensors[info["logits"]].shape[1]
    check_file_size(path)
    try:
        x, y = _read_npz(path, image.shape)
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: not a readable .npz, truncated or damaged ({type(exc).__name__}: {exc})") from None
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise DataError(f"{path}: x holds {int(np.size(x) - np.isfinite(x).sum())} non-finite inputs (NaN or Inf)")
        if image.quant is None or len(image.quant.scale) != 1:
            raise DataError(
                f"{path}: x holds floats but the model's input has no per-tensor quantization; save int8 codes"
            )
        codes = np.rint(x.astype(np.float64) / image.quant.scale[0]) + image.quant.zero_point
        x = np.clip(codes, -128, 127).astype(np.int8)
    labels = y.astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= classes))
    if bad.size:
        raise DataError(
            f"{path}: label {y[bad[0]]} (sample {bad[0]}) is outside 0..{classes - 1}, the model's {classes} classes"
        )
    return Dataset(np.ascontiguousarray(x), labels)


def _npy_header(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: object, name: str
) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of the ``.npy`` member ``info``, refused unless its data fill the member exactly."""
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DataError(f"{path}: array '{name}' is in .npy format {version}, not 1.0 or 2.0; {_SAVE_HINT}")
        offset = f.tell()
    if dtype.hasobject:
        raise DataError(f"{path}: array '{name}' holds Python objects, which are never unpickled; {_SAVE_HINT}")
    if any(d < 0 for d in shape) or math.prod(shape) * dtype.itemsize != info.file_size - offset:
        raise DataError(
            f"{path}: array '{name}' {list(shape)} does not match its {info.file_size - offset:,} data bytes"
        )
    return shape, dtype


def _read_npz(path: str | os.PathLike[str], image_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        magic = f.read(6)
        if magic == b"\x93NUMPY":
            raise DataError(f"{path}: a .npy file holds one array; x and y go together in an .npz: {_SAVE_HINT}")
        if magic[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip's first member, or an empty zip
            raise DataError(f"{path}: not an .npz ({_EXPECTED}); {_SAVE_HINT}")
        f.seek(0)
        with zipfile.ZipFile(f) as archive:
            members = {info.filename: info for info in archive.infolist()}
            for name in ("x", "y"):
                if f"{name}.npy" not in members:
                    raise DataError(f"{path}: missing array '{name}' ({_EXPECTED})")
            inflated = members["x.npy"].file_size + members["y.npy"].file_size
            if inflated > MAX_DATA_FILE_BYTES:
                raise DataError(f"{path}: x and y inflate to {inflated:,} B, over the {MAX_DATA_FILE_BYTES:,} B limit")
            x_shape, x_dtype = _npy_header(archive, members["x.npy"], path, "x")
            y_shape, y_dtype = _npy_header(archive, members["y.npy"], path, "y")
            _check_layout(path, x_shape, x_dtype, y_shape, y_dtype, image_shape)
            arrays = []
            for name in ("x", "y"):
                with archive.open(members[f"{name}.npy"]) as member:
                    arrays.append(np.lib.format.read_array(member, allow_pickle=False))
    return arrays[0], arrays[1]


def _check_layout(
    path: object,
    x_shape: tuple[int, ...],
    x_dtype: np.dtype,
    y_shape: tuple[int, ...],
    y_dtype: np.dtype,
    image_shape: tuple[int, ...],
) -> None:
    """Refuse dtypes and shapes that do not fit the model, from the headers alone."""
    if x_dtype != np.int8 and x_dtype.kind != "f":
        raise DataError(f"{path}: x is {x_dtype}; it must be int8 input codes or float inputs")
    if y_dtype.kind not in "iu":
        raise DataError(
            f"{path}: labels y are {y_dtype}; they must be integers (class indices), save them with an integer dtype"
        )
    if len(x_shape) != 4 or tuple(x_shape[1:]) != tuple(image_shape[1:]):
        raise DataError(
            f"{path}: x is {list(x_shape)}; the model takes [N, {', '.join(map(str, image_shape[1:]))}] "
            f"(its input is {list(image_shape)})"
        )
    if len(y_shape) != 1 or y_shape[0] != x_shape[0]:
        raise DataError(f"{path}: y is {list(y_shape)}; it must be [N] = [{x_shape[0]}], one label per image in x")
    if x_shape[0] == 0:
        raise DataError(f"{path}: holds no images (x is {list(x_shape)})")


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
