"""Datasets as the simulation sees them: int8 input codes ``[N, C, H, W]`` and integer labels.

Every command reads its ``--data`` with :func:`tte_ir.datasets.load_dataset` (``digits``, an image
folder or an ``.npz`` of float inputs, see there) and turns the float inputs into device codes with
the graph's input quantization (:meth:`tte_ir.datasets.Data.codes`, the one formula
``clip(rne(x / scale + zero_point), -128, 127)``): :func:`load_data` does both. Without a graph
(``tte quantize``'s calibration) the codes are the seed models' convention, :data:`SEED_INPUT`:
scale 1/127.5, zero point 0, so a pixel ``p`` is the code ``p - 128`` and the float models see
``code / 127.5``.

Any problem is one :class:`DataError` (:class:`tte_ir.cli_args.DataError`, shared with ``tte run``)
naming the file or folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tte_ir import Graph, QuantParams
from tte_ir.cli_args import DataError
from tte_ir.datasets import MAX_IMAGE_PIXELS, Data, load_dataset, parse_classes
from tte_ir.datasets import load_digits as _load_digits
from tte_ir.datasets import load_image_folder as _load_image_folder
from tte_ir.order import split_seed

__all__ = [
    "MAX_IMAGE_PIXELS",
    "SEED_INPUT",
    "DataError",
    "Dataset",
    "dequantize_input",
    "load_data",
    "load_digits",
    "load_image_folder",
    "parse_classes",
]

SEED_INPUT = QuantParams.per_tensor(1 / 127.5, 0)  # the seed models' input: pixel p -> code p - 128


@dataclass(frozen=True)
class Dataset:
    """int8 input codes ``[N, C, H, W]``, int64 labels ``[N]`` in ``0..len(classes)-1``, class names."""

    codes: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor | np.ndarray) -> Dataset:
        """The samples at ``index``."""
        index = torch.as_tensor(index, dtype=torch.long)
        return Dataset(self.codes[index], self.labels[index], self.classes)

    def split(self, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
        """A stratified (train, test) split drawn from :func:`tte_ir.order.split_seed` ``(seed)``: a split
        seed of its own, so a training seed never changes which samples are held out."""
        rng = split_seed(seed)
        train, test = [], []
        labels = self.labels.numpy()
        for label in range(len(self.classes)):
            members = np.flatnonzero(labels == label)
            rng.shuffle(members)
            n_test = round(len(members) * test_fraction)
            test.extend(members[:n_test])
            train.extend(members[n_test:])
        return self.subset(np.sort(train)), self.subset(np.sort(test))


def dequantize_input(codes: torch.Tensor) -> torch.Tensor:
    """The float value ``code / 127.5`` of int8 input codes under :data:`SEED_INPUT` (what the float
    model is trained on)."""
    return codes.to(torch.float32) / 127.5


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (3, shape, shape) if isinstance(shape, int) else tuple(shape)


def _codes(data: Data, quant: Graph | QuantParams) -> Dataset:
    return Dataset(torch.from_numpy(np.ascontiguousarray(data.codes(quant))), torch.from_numpy(data.y), data.classes)


def load_digits(shape: int | Sequence[int], classes: Sequence[int] | None = None) -> Dataset:
    """scikit-learn's digits at ``shape`` (``(C, H, W)``, or R for 3 x R x R) as :data:`SEED_INPUT`
    codes, labels remapped to ``classes``' order."""
    return _codes(_load_digits(_shape(shape), classes), SEED_INPUT)


def load_image_folder(path: str, shape: int | Sequence[int], classes: Sequence[int] | None = None) -> Dataset:
    """Images from ``path/<class>/*`` at ``shape`` (``(C, H, W)``, or R for 3 x R x R) as
    :data:`SEED_INPUT` codes (:func:`tte_ir.datasets.load_image_folder`)."""
    return _codes(_load_image_folder(path, _shape(shape), classes), SEED_INPUT)


def load_data(
    source: str,
    shape: int | Sequence[int] | None,
    classes: Sequence[int] | None = None,
    *,
    quant: Graph | QuantParams = SEED_INPUT,
    head: int | None = None,
) -> Dataset:
    """The ``--data`` value ``source`` (:func:`tte_ir.datasets.load_dataset`: ``digits``, an image
    folder or an ``.npz`` of float inputs) at ``shape`` (``(C, H, W)``, R for 3 x R x R, None for an
    ``.npz``'s own), as the int8 codes of ``quant`` (a graph: its input's quantization); ``head``
    refuses labels the classifier cannot name."""
    data = load_dataset(source, shape=None if shape is None else _shape(shape), classes=classes, head=head)
    return _codes(data, quant)
