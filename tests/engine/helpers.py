"""Helpers of the engine tests: the board tools (boards/tools) behind the skip-or-fail rule for
missing outside tools."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import ROOT, require_tool

sys.path.insert(0, str(ROOT / "boards" / "tools"))  # firmware, firmware_data: shared with nox and the firmware

import firmware

QEMU_BOARDS = firmware.QEMU_MACHINES


def build_board(board: str, build_dir: Path, **cache: object) -> Path:
    """firmware.build_board, skipping (or failing under TTE_REQUIRE_QEMU=1) without the toolchain."""
    require_tool("arm-none-eabi-gcc")
    return firmware.build_board(board, build_dir, **cache)


def run_qemu(machine: str, elf: Path, *, icount: bool = False, timeout: float = 300) -> str:
    """firmware.run_qemu, skipping (or failing under TTE_REQUIRE_QEMU=1) without QEMU."""
    require_tool("qemu-system-arm")
    return firmware.run_qemu(machine, elf, icount=icount, timeout=timeout)
