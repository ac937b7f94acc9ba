"""Build a generated project with CMake: the host shared library or a board's firmware image.

``BOARDS`` are the targets of the generated ``CMakeLists.txt``. The project finds the engine through
``find_package(tte_engine)`` in the project's root (:func:`~tte_codegen.find_root`: a checkout or the
installed tte-engine package). Board builds go through its ``boards/<board>`` project (toolchain file,
startup with stack painting, linker script capped at the STM32F746's 320 KB RAM and 1 MB flash, so an
oversized model fails to link).

Warnings are errors when ``TTE_WERROR=1`` (our CI: ``nox -s tests``), not otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tte_codegen.generate import GeneratedProject, engine_cmake_dir
from tte_ir import TteError

__all__ = ["BOARDS", "BuildError", "build", "require_tools"]

BOARDS = ("host", "qemu-mps2-an500", "qemu-mps2-an386", "qemu-mps2-an385", "stm32f746g-disco")


class BuildError(TteError):
    """CMake could not configure or build a generated project (the message holds the compiler's output)."""


def require_tools(board: str) -> None:
    """Fail with an install hint when the tools a board's build needs are missing."""
    tools = ["cmake"] + (["cc"] if board == "host" else ["arm-none-eabi-gcc"])
    for tool in tools:
        if shutil.which(tool) is None:
            raise TteError(
                f"'{tool}' is not installed; building for {board} needs cmake and "
                + ("a C compiler" if board == "host" else "gcc-arm-none-eabi and libnewlib-arm-none-eabi")
            )


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        tail = "\n".join(output[-40:])
        raise BuildError(f"{what} failed ({' '.join(command)}):\n{tail}")


def build(
    project: GeneratedProject, board: str = "host", build_dir: str | os.PathLike[str] | None = None, *, jobs: int = 2
) -> Path:
    """Configure and build ``project`` for ``board``; returns the shared library ``lib<name>.so``
    (host) or the firmware image ``tte_train.elf`` (boards)."""
    if board not in BOARDS:
        raise TteError(f"unknown board '{board}' (one of {', '.join(BOARDS)})")
    require_tools(board)
    folder = Path(build_dir) if build_dir is not None else project.path / f"build-{board}"
    configure = [
        "cmake",
        "-S",
        str(project.path),
        "-B",
        str(folder),
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DTTE_BOARD={board}",
        f"-Dtte_engine_DIR={engine_cmake_dir(project.root)}",
        f"-DTTE_ENGINE_WERROR={'ON' if os.environ.get('TTE_WERROR') == '1' else 'OFF'}",
    ]
    _run(configure, f"configuring {project.path} for {board}")
    _run(["cmake", "--build", str(folder), "-j", str(jobs)], f"building {project.path} for {board}")
    artifact = (folder / (f"lib{project.manifest['name']}.so" if board == "host" else "tte_train.elf")).resolve()
    if not artifact.exists():
        raise BuildError(f"the build of {project.path} for {board} did not produce {artifact}")
    return artifact
