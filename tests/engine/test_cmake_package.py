"""Firmware embeds the engine either with add_subdirectory(engine) or through the installed CMake
package (find_package(tte_engine) -> tte::engine). A tiny consumer is built both ways with the
host compiler and must compute what the Python binding computes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from .helpers import require_packages

require_packages("tte_engine", "tte_ir")

from conftest import ROOT  # noqa: E402

import tte_engine  # noqa: E402
import tte_ir  # noqa: E402

CONSUMER_C = """
#include <stdio.h>
#include "tte/tte.h"

int main(void) {
    const int8_t a[4] = {-128, -1, 0, 127}; /* [4] int8 */
    const int8_t b[4] = {127, 3, -7, 127};  /* [4] int8 */
    int8_t y[4];                            /* [4] int8 */
    const tte_add_params p = {.size = 4, .m1 = 0.5f, .m2 = 0.75f, .z1 = -3, .z2 = 2,
                              .y_zero = 1, .act_min = -128, .act_max = 127};
    if (tte_add_fwd_s8(&p, a, b, y, NULL) != TTE_OK) {
        return 1;
    }
    printf("%d %d %d %d op=%d\\n", y[0], y[1], y[2], y[3], (int)TTE_OP_ADD);
    return 0;
}
"""

ENGINE_BY_SUBDIRECTORY = f"add_subdirectory({(ROOT / 'engine').as_posix()} tte_engine)"
ENGINE_BY_PACKAGE = "find_package(tte_engine 0.1 REQUIRED)"


def consumer(tmp_path: Path, how: str) -> Path:
    src = tmp_path / "consumer"
    src.mkdir()
    (src / "main.c").write_text(CONSUMER_C)
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(consumer C)\n"
        f"{how}\nadd_executable(consumer main.c)\ntarget_link_libraries(consumer PRIVATE tte::engine)\n"
    )
    return src


def cmake(*args: str) -> None:
    result = subprocess.run(["cmake", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def expected_line() -> str:
    a = np.array([-128, -1, 0, 127], np.int8)
    b = np.array([127, 3, -7, 127], np.int8)
    y = tte_engine.add_fwd_s8(a, b, m1=0.5, m2=0.75, z1=-3, z2=2, y_zero=1)
    return " ".join(str(v) for v in y.tolist()) + f" op={tte_ir.Op.ADD.value}"


@pytest.fixture(autouse=True)
def _need_a_host_compiler() -> None:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no host C compiler")


def test_consumer_with_add_subdirectory(tmp_path: Path) -> None:
    src = consumer(tmp_path, ENGINE_BY_SUBDIRECTORY)
    cmake("-S", str(src), "-B", str(tmp_path / "build"))
    cmake("--build", str(tmp_path / "build"))
    run = subprocess.run([str(tmp_path / "build" / "consumer")], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == expected_line()


def test_consumer_with_installed_package(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    cmake("-S", str(ROOT / "engine"), "-B", str(tmp_path / "engine-build"), "-DCMAKE_BUILD_TYPE=Release")
    cmake("--build", str(tmp_path / "engine-build"))
    cmake("--install", str(tmp_path / "engine-build"), "--prefix", str(prefix))
    assert (prefix / "include" / "tte" / "tte.h").exists() and (prefix / "include" / "tte" / "tte_ops.h").exists()
    assert list(prefix.glob("lib*/libtte_engine.a"))
    src = consumer(tmp_path, ENGINE_BY_PACKAGE)
    cmake("-S", str(src), "-B", str(tmp_path / "build"), f"-DCMAKE_PREFIX_PATH={prefix}")
    cmake("--build", str(tmp_path / "build"))
    run = subprocess.run([str(tmp_path / "build" / "consumer")], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == expected_line()
