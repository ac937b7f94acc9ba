"""Helpers of the engine tests: building board projects and running them under QEMU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT, require_tool

BOARDS = ROOT / "boards"
sys.path.insert(0, str(BOARDS / "tools"))  # firmware_data: case builders shared with the firmware

# QEMU machine of each QEMU board project.
QEMU_BOARDS = {"qemu-mps2-an500": "mps2-an500", "qemu-mps2-an386": "mps2-an386"}

def build_board(board: str, build_dir: Path, **data: Path) -> Path:
    """Configure and build a board project with generated data files (TTE_GOLDEN_CASES=..., ...)."""
    require_tool("arm-none-eabi-gcc")
    defines = [f"-D{key}={value}" for key, value in data.items()]
    subprocess.run(
        ["cmake", "-S", str(BOARDS / board), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release", *defines],
        check=True,
        capture_output=True,
        text=True,
    )
    subprocess.run(["cmake", "--build", str(build_dir)], check=True, capture_output=True, text=True)
    return build_dir

def run_qemu(machine: str, elf: Path, *, icount: bool = False, timeout: float = 300) -> str:
    """Run a firmware image under qemu-system-arm with semihosting; its console output."""
    qemu = require_tool("qemu-system-arm")
    command = [qemu, "-M", machine, "-nographic", "-monitor", "none", "-serial", "none",
               "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]  # fmt: skip
    if icount:
        command[1:1] = ["-icount", "shift=0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    return result.stdout + result.stderr
