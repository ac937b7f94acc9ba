"""The one dataset format every ``tte`` command takes with ``--data``: float inputs and integer labels.

A data set is float inputs ``x`` float32 ``[N, C, H, W]`` in the model's own input scale (what the
float model sees: the real value ``scale * (code - zero_point)`` of the int8 input codes) and labels
``y`` int64 ``[N]`` in ``0 .. len(classes)-1``. :func:`load_dataset` reads one from a ``--data`` value:

- ``digits`` (built in): scikit-learn's 1,797 handwritten 8x8 digits, which ship inside its wheel (no
  download). Intensities 0..16 map to pixels ``rne(v * 255 / 16)``, resized bilinearly with
  half-pixel centres (torch's ``interpolate(mode="bilinear", align_corners=False)``; the same pixels
  as torch's float32 at power-of-two ratios, within one pixel elsewhere) to the model's ``H x W``,
  rounded, one gray channel or three equal ones. For a model of audio-shaped input
  ([1, 49, 10], keyword spotting) they are a stand-in: the digits stretched to that shape.
- an image folder: one sub-folder per class (sorted names are the classes), any format Pillow reads,
  converted to gray (1 channel) or RGB (3), centre-cropped to the model's aspect ratio ``W : H`` and
  resized to ``H x W``. Before an image is decoded the folder's files must add up to at most
  :data:`~tte_ir.cli_args.MAX_DATA_FILE_BYTES` and each image must declare at most
  :data:`MAX_IMAGE_PIXELS` pixels, so a decompression bomb costs nothing.
- an ``.npz`` with ``x`` float ``[N, C, H, W]`` and ``y`` integer labels ``[N]`` (``numpy.savez(path,
  x=inputs, y=labels)``); where a command runs the int8 codes themselves (``tte run``), ``x`` may be
  int8 codes. The file is at most ``MAX_DATA_FILE_BYTES`` on disk and inflated, both checked before
  reading; arrays of Python objects are never unpickled.

A pixel ``p`` in [0, 255] is the input ``(p - 128) / 127.5`` (the seed models' convention: input scale
1/127.5, zero point 0, so it is the code ``p - 128``). A command that needs device codes turns the
inputs into codes with :func:`to_codes` and the graph's input quantization, the one formula
``q = clip(rne(x / scale + zero_point), -128, 127)``.

scikit-learn (digits) and Pillow (image folders) are imported only when asked for; without them the
loader says what to install. Any problem is one :class:`~tte_ir.cli_args.DataError` naming the file
or folder, and a shape that does not fit the model names both shapes.
"""

from __future__ import annotations

import math
import os
import struct
import sys
import tokenize
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tte_ir._ir import Graph, QuantParams
from tte_ir.cli_args import MAX_DATA_FILE_BYTES, DataError, check_file_size

__all__ = [
    "MAX_IMAGE_PIXELS",
    "MAX_LABEL",
    "Data",
    "input_quant",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "load_npz",
    "outside_range",
    "parse_classes",
    "pixels_to_inputs",
    "to_codes",
]

MAX_IMAGE_PIXELS = 50_000_000  # a 50-megapixel photo decodes to 150 MB of RGB; more is not a training image
MAX_LABEL = 2**20 - 1  # a class index past a million is a corrupt label, not a head tte builds
PIXEL_SCALE = 127.5  # input = (pixel - 128) / 127.5: the seed models' convention

_EXPECTED = "expected 'x' float inputs [N, C, H, W] and 'y' integer labels [N]"
_EXPECTED_CODES = "expected 'x' int8 codes or float inputs [N, C, H, W] and 'y' integer labels [N]"
_SAVE_HINT = "save one with numpy.savez(path, x=inputs, y=labels)"
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
class Data:
    """Inputs ``x`` (float32 ``[N, C, H, W]`` in the model's input scale, or int8 codes where a command
    allowed them), labels ``y`` int64 ``[N]`` in ``0 .. len(classes)-1``, the class names, and the
    ``source`` the data came from (the ``--data`` value, named in messages)."""

    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def codes(self, quant: Graph | QuantParams | None) -> np.ndarray:
        """The int8 input codes of ``x`` under ``quant`` (:func:`to_codes`; int8 codes are returned as
        they are). Inputs outside the range the codes represent are clipped, and said so in one
        warning line on stderr: a model's input scale that does not fit the data is worth knowing."""
        if self.x.dtype == np.int8:
            return self.x
        params = input_quant(quant, self.source)
        clipped = outside_range(self.x, params)
        if clipped:
            lo, hi = (params.scale[0] * (q - params.zero_point) for q in (-128, 127))
            print(
                f"warning: {self.source}: {clipped:,} of {self.x.size:,} inputs lie more than half a step outside "
                f"[{lo:.4g}, {hi:.4g}], the values of the model's int8 input codes, and are clipped",
                file=sys.stderr,
            )
        return to_codes(self.x, params, self.source)


def input_quant(quant: Graph | QuantParams | None, source: str = "the data") -> QuantParams:
    """The per-tensor quantization of ``quant``: a graph's first input's, or ``quant`` itself (None,
    an input without quantization, is refused naming ``source``)."""
    params = quant.tensors[quant.inputs[0]].quant if isinstance(quant, Graph) else quant
    if params is None or params.axis is not None or len(params.scale) != 1:
        raise DataError(f"{source}: the model's input has no per-tensor quantization; save int8 codes")
    return params


def to_codes(x: np.ndarray, quant: Graph | QuantParams, source: str = "the data") -> np.ndarray:
    """The int8 codes ``clip(rne(x / scale + zero_point), -128, 127)`` of float inputs ``x`` under
    ``quant`` (a graph: its input's quantization), the one formula by which every command and the
    simulation's data path turn inputs into device codes. ``x`` must be finite."""
    params = input_quant(quant, source)
    values = np.asarray(x, dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"{source}: {int(values.size - np.isfinite(values).sum())} inputs are not finite")
    codes = np.rint(values / params.scale[0] + params.zero_point)
    return np.clip(codes, -128, 127).astype(np.int8)


def outside_range(x: np.ndarray, quant: Graph | QuantParams) -> int:
    """How many of the inputs ``x`` lie outside what int8 codes under ``quant`` represent (they round
    to a code below -128 or above 127 and :func:`to_codes` clips them)."""
    params = input_quant(quant)
    scaled = np.asarray(x, dtype=np.float64) / params.scale[0] + params.zero_point
    return int(np.count_nonzero((scaled < -128.5) | (scaled > 127.5)))


def pixels_to_inputs(pixels: np.ndarray) -> np.ndarray:
    """Pixels in [0, 255] as the float inputs ``(p - 128) / 127.5`` (float32), whose codes under the
    seed convention (scale 1/127.5, zero point 0) are ``p - 128``."""
    return ((pixels.astype(np.float32) - np.float32(128)) / np.float32(PIXEL_SCALE)).astype(np.float32)


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


def _select(
    x: np.ndarray, labels: np.ndarray, names: Sequence[str], classes: Sequence[int] | None, source: str
) -> Data:
    """The samples of ``classes`` (all when None), labels remapped to ``classes``' order."""
    if classes is None:
        return Data(x, labels.astype(np.int64), tuple(names), source)
    unknown = [c for c in classes if not 0 <= c < len(names)]
    if unknown:
        raise DataError(f"{source}: class {unknown[0]} does not exist (the data has classes 0..{len(names) - 1})")
    keep = np.flatnonzero(np.isin(labels, list(classes)))
    if keep.size == 0:
        raise DataError(f"{source}: the selected classes {list(classes)} hold no images")
    mapping = np.zeros(len(names), np.int64)
    mapping[list(classes)] = np.arange(len(classes))
    return Data(x[keep], mapping[labels[keep]], tuple(names[c] for c in classes), source)


def _image_shape(shape: Sequence[int] | None, source: str) -> tuple[int, int, int]:
    """``shape`` as ``(C, H, W)`` for the image loaders, which give 1 (gray) or 3 (RGB) channels."""
    if shape is None:
        raise DataError(f"{source}: give the model's input shape (C, H, W) to resize the images to")
    channels, height, width = (int(d) for d in shape)
    if channels not in (1, 3) or height < 1 or width < 1:
        raise DataError(
            f"{source}: the model takes [N, {channels}, {height}, {width}]; digits and image folders give 1 (gray) "
            f"or 3 (RGB) channels of at least 1x1 pixels: save your data as an .npz with x [N, {channels}, "
            f"{height}, {width}]"
        )
    return channels, height, width


def _linear_axis(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sampling along one axis with half-pixel centres (torch's ``align_corners=False``): the
    two source indices of each output index and their weights."""
    source = np.maximum((np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5, 0.0)
    first = np.minimum(source.astype(np.int64), size_in - 1)
    second = np.minimum(first + 1, size_in - 1)
    weight = np.clip(source - first, 0.0, 1.0)
    return first, second, 1.0 - weight, weight


def _bilinear(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[N, h, w]`` resized bilinearly to ``[N, height, width]`` (float64)."""
    r0, r1, rw0, rw1 = _linear_axis(images.shape[1], height)
    c0, c1, cw0, cw1 = _linear_axis(images.shape[2], width)
    rows = images[:, r0] * rw0[:, None] + images[:, r1] * rw1[:, None]
    return rows[:, :, c0] * cw0 + rows[:, :, c1] * cw1


def load_digits(shape: Sequence[int], classes: Sequence[int] | None = None) -> Data:
    """scikit-learn's digits as inputs of ``shape`` ``(C, H, W)`` (C 1 or 3), labels remapped to
    ``classes``' order."""
    channels, height, width = _image_shape(shape, "digits")
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise DataError("--data digits needs scikit-learn: pip install scikit-learn") from None
    digits = sk_load_digits()
    pixels = np.rint(digits.images * (255.0 / 16.0))
    resized = np.clip(np.rint(_bilinear(pixels, height, width)), 0, 255)
    inputs = np.repeat(pixels_to_inputs(resized)[:, None], channels, axis=1)
    return _select(inputs, digits.target, [str(d) for d in range(10)], classes, "digits")


def load_image_folder(path: str | os.PathLike[str], shape: Sequence[int], classes: Sequence[int] | None = None) -> Data:
    """Images from ``path/<class>/*`` as inputs of ``shape`` ``(C, H, W)`` (module docstring)."""
    root = Path(path)
    channels, height, width = _image_shape(shape, str(root))
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (expected one sub-folder of images per class, or an .npz)")
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
    if not listing:
        raise DataError(f"{root}: the class sub-folders hold no images")
    try:
        from PIL import Image  # noqa: F401  (checked before the first image, so the message names the folder)
    except ImportError:
        raise DataError(f"{root}: image folders need Pillow: pip install pillow") from None
    images = np.stack([_read_image(file, channels, height, width) for _, file in listing])
    labels = np.asarray([label for label, _ in listing], dtype=np.int64)
    return _select(pixels_to_inputs(images), labels, names, classes, str(root))


def _read_image(file: Path, channels: int, height: int, width: int) -> np.ndarray:
    """One image file as uint8 ``[channels, height, width]`` (centre crop to ``width : height``,
    bilinear resize)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise DataError(
                    f"{file}: {image.width}x{image.height} pixels, over the {MAX_IMAGE_PIXELS:,}-pixel limit of an image"
                )
            image = image.convert("L" if channels == 1 else "RGB")
            if image.width == 0 or image.height == 0:
                raise DataError(f"{file}: the image has no pixels")
            # the largest centred box of the model's aspect ratio
            crop_w = min(image.width, max(1, round(image.height * width / height)))
            crop_h = min(image.height, max(1, round(crop_w * height / width)))
            left, top = (image.width - crop_w) // 2, (image.height - crop_h) // 2
            image = image.crop((left, top, left + crop_w, top + crop_h))
            image = image.resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
            return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError, EOFError,
            struct.error) as exc:  # fmt: skip
        # Pillow's decoders report damaged files with all of these
        raise DataError(f"{file}: not a readable image ({type(exc).__name__}: {exc})") from None


def load_npz(
    path: str | os.PathLike[str],
    shape: Sequence[int] | None = None,
    classes: Sequence[int] | None = None,
    *,
    head: int | None = None,
    int8_codes: bool = False,
) -> Data:
    """The ``.npz`` at ``path`` (module docstring): ``x`` float ``[N, C, H, W]`` with ``[C, H, W]`` the
    model's ``shape`` (any when None), finite, as float32; int8 codes only where ``int8_codes``;
    ``y`` integer labels in ``0 .. head-1`` (``head`` the classifier's outputs; with ``classes``
    selected, or without a head, in ``0 .. MAX_LABEL``). Everything but the values is checked from
    the headers before the arrays are read."""
    source = os.fspath(path)
    check_file_size(path)
    try:
        x, y = _read_npz(source, shape, int8_codes)
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise DataError(f"{source}: not a readable .npz, truncated or damaged ({type(exc).__name__}: {exc})") from None
    if x.dtype.kind == "f":
        x = x.astype(np.float32)
        finite = np.isfinite(x)
        if not finite.all():
            raise DataError(
                f"{source}: x holds {int(x.size - finite.sum())} non-finite inputs (NaN or Inf, or past float32's range)"
            )
    top, meaning = (head - 1, f"the model's {head} classes") if head and classes is None else (MAX_LABEL, "a class")
    bad = np.flatnonzero((y < 0) | (y > top))
    if bad.size:
        raise DataError(f"{source}: label {y[bad[0]]} (sample {bad[0]}) is outside 0..{top}, {meaning}")
    labels = y.astype(np.int64)
    names = [str(c) for c in range(int(labels.max()) + 1)]
    return _select(np.ascontiguousarray(x), labels, names, classes, source)


def _npy_header(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, name: str
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


def _read_npz(path: str, shape: Sequence[int] | None, int8_codes: bool) -> tuple[np.ndarray, np.ndarray]:
    expected = _EXPECTED_CODES if int8_codes else _EXPECTED
    with open(path, "rb") as f:
        magic = f.read(6)
        if magic == b"\x93NUMPY":
            raise DataError(f"{path}: a .npy file holds one array; x and y go together in an .npz: {_SAVE_HINT}")
        if magic[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip's first member, or an empty zip
            raise DataError(f"{path}: not an .npz ({expected}); {_SAVE_HINT}")
        f.seek(0)
        with zipfile.ZipFile(f) as archive:
            members = {info.filename: info for info in archive.infolist()}
            for name in ("x", "y"):
                if f"{name}.npy" not in members:
                    raise DataError(f"{path}: missing array '{name}' ({expected})")
            inflated = members["x.npy"].file_size + members["y.npy"].file_size
            if inflated > MAX_DATA_FILE_BYTES:
                raise DataError(f"{path}: x and y inflate to {inflated:,} B, over the {MAX_DATA_FILE_BYTES:,} B limit")
            x_shape, x_dtype = _npy_header(archive, members["x.npy"], path, "x")
            y_shape, y_dtype = _npy_header(archive, members["y.npy"], path, "y")
            _check_layout(path, x_shape, x_dtype, y_shape, y_dtype, shape, int8_codes)
            arrays = []
            for name in ("x", "y"):
                with archive.open(members[f"{name}.npy"]) as member:
                    arrays.append(np.lib.format.read_array(member, allow_pickle=False))
    return arrays[0], arrays[1]


def _check_layout(
    path: str,
    x_shape: tuple[int, ...],
    x_dtype: np.dtype,
    y_shape: tuple[int, ...],
    y_dtype: np.dtype,
    shape: Sequence[int] | None,
    int8_codes: bool,
) -> None:
    """Refuse dtypes and shapes that do not fit the model, from the headers alone."""
    if x_dtype == np.int8 and not int8_codes:
        raise DataError(
            f"{path}: x holds int8 codes; this command takes float inputs in the model's input scale "
            "(x = scale * (code - zero_point)); int8 codes are accepted by `tte run` only"
        )
    if x_dtype != np.int8 and x_dtype.kind != "f":
        allowed = "int8 input codes or float inputs" if int8_codes else "float inputs"
        raise DataError(f"{path}: x is {x_dtype}; it must be {allowed}")
    if y_dtype.kind not in "iu":
        raise DataError(
            f"{path}: labels y are {y_dtype}; they must be integers (class indices), save them with an integer dtype"
        )
    if shape is not None and (len(x_shape) != 4 or tuple(x_shape[1:]) != tuple(shape)):
        raise DataError(
            f"{path}: x is {list(x_shape)}; the model takes [N, {', '.join(map(str, shape))}] "
            f"(its input is {[1, *shape]})"
        )
    if len(x_shape) != 4 or min(x_shape[1:], default=0) < 1:
        raise DataError(f"{path}: x is {list(x_shape)}; it must be [N, C, H, W] inputs")
    if len(y_shape) != 1 or y_shape[0] != x_shape[0]:
        raise DataError(f"{path}: y is {list(y_shape)}; it must be [N] = [{x_shape[0]}], one label per image in x")
    if x_shape[0] == 0:
        raise DataError(f"{path}: holds no images (x is {list(x_shape)})")


def load_dataset(
    spec: str,
    *,
    shape: Sequence[int] | None = None,
    classes: Sequence[int] | None = None,
    head: int | None = None,
    int8_codes: bool = False,
) -> Data:
    """The data set a ``--data`` value ``spec`` names (module docstring): ``digits``, an ``.npz`` file
    or an image folder, as inputs of ``shape`` ``(C, H, W)`` (an ``.npz`` must hold that shape; None
    takes the file's), restricted to ``classes`` (relabelled 0..). With ``head``, the classifier's
    number of outputs, every label must be one of them. ``int8_codes`` lets an ``.npz`` hold int8
    codes (``tte run``)."""
    if spec == "digits":
        data = load_digits(_image_shape(shape, "digits"), classes)
    elif Path(spec).is_dir():
        data = load_image_folder(spec, _image_shape(shape, spec), classes)
    elif spec.endswith(".npz") or Path(spec).is_file():
        data = load_npz(spec, shape, classes, head=head, int8_codes=int8_codes)
    else:
        raise DataError(f"{spec}: no such file, and not a folder (--data takes digits, an image folder or an .npz)")
    if head is not None and len(data.classes) > head:
        raise DataError(
            f"{data.source}: the data has {len(data.classes)} classes, the graph's head {head}; pass --classes "
            f"(e.g. 0-{head - 1})"
        )
    return data
