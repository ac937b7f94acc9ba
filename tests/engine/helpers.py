"""Helpers of the engine tests: the board tools (boards/tools) behind the skip-or-fail rule for
missing outside tools."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, missing, require_tool

sys.path.insert(0, str(ROOT / "boards" / "tools"))  # firmware, firmware_data: shared with nox and tte-codegen

import firmware

QEMU_BOARDS = firmware.QEMU_MACHINES
ARM_KERNEL_BOARDS = firmware.ARM_KERNEL_BOARDS


def build_board(board: str, build_dir: Path, **cache: object) -> Path:
    """firmware.build_board, skipping (or failing under TTE_REQUIRE_QEMU=1) without the toolchain."""
    require_tool("arm-none-eabi-gcc")
    return firmware.build_board(board, build_dir, **cache)


def run_qemu(machine: str, elf: Path, *, icount: bool = False, timeout: float = 300) -> tuple[int, str]:
    """firmware.run_qemu, skipping (or failing under TTE_REQUIRE_QEMU=1) without QEMU."""
    require_tool("qemu-system-arm")
    return firmware.run_qemu(machine, elf, icount=icount, timeout=timeout)


INSTALL_HINTS = {
    "tte_engine": "pip install ./engine",
    "tte_ir": "pip install ./packages/tte-ir",
    "tte_codegen": "pip install ./packages/tte-codegen",
    "elftools": "pip install pyelftools",
}


def require_packages(*names: str) -> None:
    """Skip the calling test module when a package is missing (fail under TTE_REQUIRE_QEMU=1)."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            reason = f"{name} is not installed ({INSTALL_HINTS[name]})"
            if os.environ.get("TTE_REQUIRE_QEMU") == "1":
                pytest.fail(f"{reason} (TTE_REQUIRE_QEMU=1 requires it)", pytrace=False)
            pytest.skip(reason, allow_module_level=True)


def host_cc() -> str:
    """The host C compiler (cc, gcc or clang) the C test programs build with; skip-or-fail without one."""
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return name
    missing("no host C compiler (cc, gcc or clang)")
    raise AssertionError


def run_kernel_check(program: Path, build_dir: Path, checks: int, *defines: str) -> None:
    """Builds a C check program (tests/engine/c) with the engine's portable kernels on the host (``defines``:
    extra -D flags, e.g. a path Cortex-M builds take), runs it and asserts that every CHECK line passed and that
    it ran ``checks`` checks."""
    kernels = ROOT / "engine" / "src" / "kernels"
    sources = [program, *sorted(kernels.glob("*.c")), *sorted((kernels / "ref").glob("*.c"))]
    exe = build_dir / program.stem
    command = [host_cc(), *defines, "-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror", "-pedantic"]
    command += ["-I", str(ROOT / "engine" / "include"), "-I", str(kernels), *map(str, sources), "-o", str(exe), "-lm"]
    subprocess.run(command, check=True, capture_output=True, text=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    failed = [line for line in result.stdout.splitlines() if line.startswith("CHECK") and not line.endswith("PASS")]
    assert not failed, "\n".join(failed)
    done = re.search(r"^DONE checks=(\d+) failed=(\d+)$", result.stdout, re.MULTILINE)
    assert done and done.groups() == (str(checks), "0"), result.stdout + result.stderr
    assert result.returncode == 0
