"""Where the engine's C lives: its sources, public headers and CMake package, and the board projects.

The wheel carries them inside this package (``tte_engine/c/engine``, ``tte_engine/c/boards``), laid
out as in a tte checkout, so a project built without the checkout finds the engine with
``find_package(tte_engine)`` and ``-Dtte_engine_DIR=<cmake_dir()>`` (``python -m tte_engine.sources``
prints it). tte::engine is then compiled from the sources by the consuming project, with its own
toolchain (host or Cortex-M).
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["boards_dir", "cmake_dir", "include_dir", "root", "source_dir"]

_HERE = Path(__file__).resolve().parent


def _holds_c(folder: Path) -> bool:
    return (folder / "engine" / "CMakeLists.txt").is_file() and (folder / "boards" / "common").is_dir()


def root() -> Path:
    """The folder holding ``engine/`` and ``boards/``: the copy in this installed package, else the
    checkout this module is imported from (``engine/python/tte_engine``)."""
    for candidate in (_HERE / "c", _HERE.parents[2]):
        if _holds_c(candidate):
            return candidate
    raise FileNotFoundError(
        f"the engine's C sources are not beside {_HERE} (no c/engine/CMakeLists.txt): reinstall tte-engine "
        "from a wheel built in a tte checkout (pip install ./engine)"
    )


def source_dir() -> Path:
    """The engine's CMake project: ``CMakeLists.txt``, ``src/``, ``include/``, ``cmake/``."""
    return root() / "engine"


def include_dir() -> Path:
    """The public headers (``tte/tte.h``, ``tte/tte_train.h``, ...)."""
    return source_dir() / "include"


def cmake_dir() -> Path:
    """The folder of ``tte_engineConfig.cmake``, for ``-Dtte_engine_DIR=``: ``find_package(tte_engine)``
    then builds ``tte::engine`` from :func:`source_dir` with the consumer's toolchain."""
    return source_dir() / "cmake"


def boards_dir() -> Path:
    """The board projects: toolchain files, startup, linker script, ``programs/train_main.c``."""
    return root() / "boards"


if __name__ == "__main__":
    sys.stdout.write(f"{cmake_dir()}\n")
