"""Datasets as the device sees them: int8 image codes ``[N, 3, H, W]`` and integer labels.

A pixel ``p`` in [0, 255] becomes the code ``p - 128`` (input scale 1/127.5, zero point 0, the seed
models' convention); the float models see the dequantized value ``code / 127.5``.

- ``digits`` (the built-in default): scikit-learn's 1,797 handwritten 8x8 digits, which ship inside
  the wheel (no download). Intensities 0..16 map to pixels ``rne(v * 255 / 16)``, are resized
  bilinearly to the model's resolution and replicated to 3 channels.
- an image folder: one sub-folder per class (sorted names are the classes), any format Pillow
  reads, converted to RGB, centre-cropped to a square and resized. Before an image is decoded the
  folder's files must add up to at most :data:`~tte_ir.cli_args.MAX_DATA_FILE_BYTES` and each image
  must declare at most ``MAX_IMAGE_PIXELS`` pixels, so a decompression bomb costs nothing.

Any problem is one :class:`DataError` (:class:`tte_ir.cli_args.DataError`, shared with ``tte run``'s
data loader) naming the file or folder.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from tte_ir.cli_args import MAX_DATA_FILE_BYTES, DataError
from tte_ir.order import split_seed

__all__ = [
    "MAX_IMAGE_PIXELS",
    "DataError",
    "Dataset",
    "dequantize_input",
    "load_data",
    "load_digits",
    "load_image_folder",
    "parse_classes",
]

MAX_IMAGE_PIXELS = 50_000_000  # a 50-megapixel photo decodes to 150 MB of RGB; more is not a training image


@dataclass(frozen=True)
class Dataset:
    """int8 image codes ``[N, 3, H, W]``, int64 labels ``[N]`` in ``0..len(classes)-1``, class names."""

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
    """The float value ``code / 127.5`` of int8 input codes (what the float model is trained on)."""
    return codes.to(torch.float32) / 127.5


def parse_classes(text: str | None) -> list[int] | None:
    """``"0-4"`` or ``"5,6,7"`` -> a list of class indices; None or "" -> None (all classes)."""
    if not text:
        return None
    result: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            result.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    except ValueError:
        raise DataError(f"cannot parse classes '{text}' (expected e.g. '0-4' or '5,6,7')") from None
    if len(set(result)) != len(result):
        raise DataError(f"classes '{text}' name a class twice")
    return result


def _pixels_to_codes(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels.to(torch.int16) - 128).to(torch.int8)


def _select(codes: torch.Tensor, labels: np.ndarray, names: Sequence[str], classes: Sequence[int] | None) -> Dataset:
    if classes is None:
        classes = range(len(names))
    mapping = {c: i for i, c in enumerate(classes)}
    unknown = [c for c in classes if not 0 <= c < len(names)]
    if unknown:
        raise DataError(f"class {unknown[0]} does not exist (the data has classes 0..{len(names) - 1})")
    keep = np.flatnonzero(np.isin(labels, list(classes)))
    if keep.size == 0:
        raise DataError(f"the selected classes {list(classes)} hold no images")
    remapped = torch.tensor([mapping[int(c)] for c in labels[keep]], dtype=torch.int64)
    return Dataset(codes[torch.as_tensor(keep)], remapped, tuple(names[c] for c in classes))


def load_digits(resolution: int, classes: Sequence[int] | None = None) -> Dataset:
    """scikit-learn's digits at ``resolution`` x ``resolution``, labels remapped to ``classes``' order."""
    from sklearn.datasets import load_digits as sk_load_digits

    digits = sk_load_digits()
    pixels = torch.tensor(np.rint(digits.images * (255.0 / 16.0)), dtype=torch.float32)[:, None]
    resized = F.interpolate(pixels, size=(resolution, resolution), mode="bilinear", align_corners=False)
    pixels = torch.round(resized).clamp(0, 255).expand(-1, 3, -1, -1)
    return _select(_pixels_to_codes(pixels).contiguous(), digits.target, [str(d) for d in range(10)], classes)


def load_image_folder(path: str | Path, resolution: int, classes: Sequence[int] | None = None) -> Dataset:
    """Images from ``path/<class>/*``, centre-cropped, resized to ``resolution``, as int8 codes."""

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (expected one sub-folder of images per class)")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(f"{root}: has no class sub-folders")
    listing = []
    for label, name in enumerate(names):
        files = sorted(f for f in (root / name).iterdir() if f.is_file() and not f.name.startswith("."))
        listing.extend((label, file) for file in files)
    total = sum(file.stat().st_size for _, file in listing)
    if total > MAX_DATA_FILE_BYTES:
        raise DataError(f"{root}: the images add up to {total:,} B, over the {MAX_DATA_FILE_BYTES:,} B limit")
    images, labels = [], []
    for label, file in listing:
        images.append(_read_image(file, resolution))
        labels.append(label)
    if not images:
        raise DataError(f"{root}: the class sub-folders hold no images")
    pixels = torch.from_numpy(np.stack(images))
    return _select(_pixels_to_codes(pixels), np.asarray(labels), names, classes)


def _read_image(file: Path, resolution: int) -> np.ndarray:
    """One image file as uint8 ``[3, resolution, resolution]`` (centre crop, bilinear resize)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise DataError(
                    f"{file}: {image.width}x{image.height} pixels, over the {MAX_IMAGE_PIXELS:,}-pixel limit of an image"
                )
            image = image.convert("RGB")
            side = min(image.size)
            if side == 0:
                raise DataError(f"{file}: the image has no pixels")
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image = image.crop((left, top, left + side, top + side))
            image = image.resize((resolution, resolution), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError, EOFError,
            struct.error) as exc:  # fmt: skip
        # Pillow's decoders report damaged files with all of these
        raise DataError(f"{file}: not a readable image ({type(exc).__name__}: {exc})") from None


def load_data(source: str, resolution: int, classes: Sequence[int] | None = None) -> Dataset:
    """``source`` is ``digits`` (built in) or the path of an image folder."""
    if source == "digits":
        return load_digits(resolution, classes)
    return load_image_folder(source, resolution, classes)
