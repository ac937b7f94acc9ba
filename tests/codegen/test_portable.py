"""A generated project embeds anywhere: its C pulls in no stdio (a firmware may have none), and its CMake
names no path of the machine that generated it, so a copy builds elsewhere against the installed
tte-engine package (find_package(tte_engine) through tte_engine.cmake_dir())."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import _host_tools

STDIO = re.compile(r"#\s*include\s*<stdio\.h>|\b(s?n?printf|puts|putchar|fputs|fprintf|FILE)\b")


def _code(text: str) -> str:
    """C without its comments (model.h's usage example may mention puts)."""
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)


def test_generated_c_pulls_in_no_stdio(project) -> None:
    sources = sorted(project.path.glob("*.[ch]"))
    assert {p.name for p in sources} >= {"model.c", "model.h", "weights.c", "weights.h", "tte_model.h"}
    for source in sources:
        found = STDIO.findall(_code(source.read_text()))
        assert not found, f"{source.name}: {found}"


def test_generated_cmake_names_no_path_of_this_machine(project) -> None:
    from tte_codegen import find_root

    for name in ("CMakeLists.txt", "model.cmake"):
        text = (project.path / name).read_text()
        assert str(find_root()) not in text and str(project.path) not in text, name


@pytest.mark.slow
def test_a_copied_project_builds_against_the_installed_engine(project, tmp_path: Path) -> None:
    import tte_engine

    _host_tools()
    copy = tmp_path / "elsewhere"
    shutil.copytree(project.path, copy, ignore=shutil.ignore_patterns("build*"))
    build = tmp_path / "build"
    for command in (
        ["cmake", "-S", str(copy), "-B", str(build), f"-Dtte_engine_DIR={tte_engine.cmake_dir()}"],
        ["cmake", "--build", str(build), "-j", "2"],
    ):
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert (build / "libmodel.so").is_file()
    cache = (build / "CMakeCache.txt").read_text()
    assert f"tte_engine_SOURCE_DIR:STATIC={tte_engine.source_dir()}" in cache
