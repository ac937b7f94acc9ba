"""The engine's CMake chooses its ARMv7E-M kernels from what the compiler targets (its __ARM_ARCH_7EM__ and
__ARM_FEATURE_DSP macros under the toolchain file's flags): ON for the Cortex-M4 and M7, OFF for the Cortex-M3
(no DSP) and M33, and asking for them on the M3 is refused at configure time with a line that says what to do."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, require_tool

TOOLCHAINS = ROOT / "boards" / "cmake"


def configure(core: str, build: Path, *options: str) -> subprocess.CompletedProcess:
    require_tool("arm-none-eabi-gcc")
    command = [
        "cmake",
        "-S",
        str(ROOT / "engine"),
        "-B",
        str(build),
        f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAINS / core}.cmake",
    ]
    return subprocess.run([*command, *options], capture_output=True, text=True)


@pytest.mark.parametrize(
    ("core", "arm"), [("cortex-m3", "OFF"), ("cortex-m4", "ON"), ("cortex-m7", "ON"), ("cortex-m33", "OFF")]
)
def test_the_arm_kernels_follow_the_target(core: str, arm: str, tmp_path: Path) -> None:
    result = configure(core, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"TTE_ENGINE_ARM_KERNELS:BOOL={arm}" in (tmp_path / "CMakeCache.txt").read_text()


def test_arm_kernels_on_a_core_without_dsp_are_refused(tmp_path: Path) -> None:
    result = configure("cortex-m3", tmp_path, "-DTTE_ENGINE_ARM_KERNELS=ON")
    assert result.returncode != 0
    assert "TTE_ENGINE_ARM_KERNELS=ON needs an ARMv7E-M target with the DSP extension" in result.stderr
    assert "-DTTE_ENGINE_ARM_KERNELS=OFF" in result.stderr
