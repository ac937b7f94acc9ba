"""Checks of the values every ``tte`` command takes: numbers, learning rates, seeds, sizes, output paths.

A value is checked where it enters, before any work starts, so a bad one costs nothing: each check
raises a :class:`~tte_ir.TteError` (or the error type it is given) naming the option and what is
allowed, which the ``tte`` command prints as one line before exiting with status 2.

The bounds are documented here once and shared with the scheme loader (:mod:`tte_ir.scheme`):

- a learning rate is finite and in ``[0, MAX_LR]``: the defaults are 0.05 and the seed paper's rates
  are below 1; far above that, every trained int8 code saturates in one step and a float32 head
  overflows to Inf;
- a seed is an integer in ``[0, 2**32)``, what the generated C stores in a ``uint32_t``;
- a data file is at most ``MAX_DATA_FILE_BYTES`` on disk and once inflated, checked before reading.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import reprlib
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

from tte_ir._ir import TteError

__all__ = [
    "MAX_DATA_FILE_BYTES",
    "MAX_LR",
    "MAX_SEED",
    "DataError",
    "bounded_float",
    "bounded_int",
    "check_file_size",
    "distinct_outputs",
    "learning_rate",
    "output_file",
    "output_folder",
    "parse_bytes",
    "seed_value",
]

MAX_LR = 100.0
MAX_SEED = 2**32 - 1
MAX_DATA_FILE_BYTES = 2 * 1024**3

_UNITS = {"": 1, "b": 1, "kb": 1024, "kib": 1024, "mb": 1024**2, "mib": 1024**2, "gb": 1024**3, "gib": 1024**3}


class DataError(TteError):
    """A data file or data set cannot be read, or does not fit the model it is meant for."""


def _is_real(value: Any) -> bool:
    # bool is an int subclass: true would read as 1 (numpy's bool is no numbers.Real)
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def bounded_float(
    value: Any,
    name: str,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
    error: type[TteError] = TteError,
) -> float:
    """``value`` as a float when it is a finite number in the interval (open ends as asked), else ``error``
    naming ``name`` and the interval."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if _is_real(value):
        # float() of an int past the float range raises; such an int is out of any range here
        number = math.inf if isinstance(value, numbers.Integral) and abs(int(value)) >= 2**1024 else float(value)
        if (
            math.isfinite(number)
            and (number > low if low_open else number >= low)
            and (number < high if high_open else number <= high)
        ):
            return number
    raise error(f"{name} must be a finite number in {interval}, got {reprlib.repr(value)}")


def learning_rate(value: Any, name: str, error: type[TteError] = TteError) -> float:
    """A learning rate: a finite number in ``[0, MAX_LR]`` (see the module docstring), else ``error``."""
    return bounded_float(value, name, 0.0, MAX_LR, error=error)


def bounded_int(value: Any, name: str, low: int, high: int | None = None, error: type[TteError] = TteError) -> int:
    """``value`` as an int when it is an integer (Python's or numpy's; not a bool, not a float) in
    ``[low, high]``, else ``error``."""
    if (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and value >= low
        and (high is None or value <= high)
    ):
        return int(value)
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    raise error(f"{name} must be {allowed}, got {reprlib.repr(value)}")


def seed_value(value: Any, name: str, error: type[TteError] = TteError) -> int:
    """A seed: an integer in ``[0, 2**32)`` (the generated C's ``uint32_t``), else ``error``."""
    return bounded_int(value, name, 0, MAX_SEED, error)


def parse_bytes(text: str, name: str = "size") -> int:
    """``"128KB"``, ``"131072"`` or ``"0.5MB"`` as a positive number of bytes (KB = 1024 B); an empty,
    unreadable, zero or negative size is refused naming ``name``."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text or "")
    if not match or match.group(2).lower() not in _UNITS:
        raise TteError(f"{name}: cannot read '{text}' as a size (examples: 128KB, 131072, 0.25MB)")
    size = int(Fraction(match.group(1)) * _UNITS[match.group(2).lower()])
    if size < 1:
        raise TteError(f"{name}: '{text}' is {size} B; a size must be at least 1 B")
    return size


def _writable_ancestor(path: Path, name: str) -> None:
    """Refuse ``path`` unless its nearest existing ancestor is a folder a file can be created in (the
    writers create missing folders below it)."""
    folder = path.parent
    while not folder.exists():
        if folder == folder.parent:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise TteError(f"{name} {path}: {folder} is not a folder")
    try:
        # a real creation, not os.access: it also sees read-only mounts and runs the same as root
        fd, probe = tempfile.mkstemp(prefix=".tte-probe-", dir=folder)
    except OSError as exc:
        raise TteError(f"{name} {path}: cannot write into {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def output_file(path: str | os.PathLike[str], name: str) -> Path:
    """The file an option ``name`` writes, refused unless it can be written: not a folder, and inside a
    folder that exists (or can be created) and is writable."""
    text = os.fspath(path)
    if not text or text.endswith(("/", os.sep)):
        raise TteError(f"{name} '{text}': name a file to write")
    target = Path(text)
    if target.is_dir():
        raise TteError(f"{name} {target}: is a folder; name a file to write")
    _writable_ancestor(target, name)
    return target


def output_folder(path: str | os.PathLike[str], name: str) -> Path:
    """The folder an option ``name`` writes into, refused unless it is a folder or can be created as one."""
    text = os.fspath(path)
    if not text:
        raise TteError(f"{name} '': name a folder to write")
    target = Path(text)
    if target.exists() and not target.is_dir():
        raise TteError(f"{name} {target}: is a file; name a folder to write into")
    _writable_ancestor(target / "probe", name)
    return target


def distinct_outputs(*outputs: tuple[str, str | os.PathLike[str] | None]) -> None:
    """Refuse two options (``(name, path)`` pairs, None for unset) naming the same file: one would
    overwrite the other."""
    seen: dict[Path, str] = {}
    for name, path in outputs:
        if path is None:
            continue
        resolved = Path(path).resolve()
        if resolved in seen:
            raise TteError(f"{seen[resolved]} and {name} both name {path}: give each its own file")
        seen[resolved] = name


def check_file_size(path: str | os.PathLike[str], limit: int = MAX_DATA_FILE_BYTES) -> int:
    """The size of the regular file ``path``, refused as a :class:`DataError` when it is missing, not a
    file, empty or over ``limit`` bytes: checked before a byte is read."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not os.path.isfile(path):
        raise DataError(f"{path}: not a file")
    if info.st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if info.st_size > limit:
        raise DataError(f"{path}: {info.st_size:,} B is over the {limit:,} B limit of a data file")
    return info.st_size
