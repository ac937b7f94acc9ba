"""The C from a pip install: wheels of tte-ir, tte-codegen and tte-engine built from the tree, installed
into a fresh virtual environment outside the checkout; there, with no TTE_ROOT and the working directory
outside any checkout, `tte generate`, a CMake build of the generated host project (the engine found
through find_package in the installed package) and a training run through `tte run` all work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT  # tests/conftest.py (tests/ is on sys.path)

from tte_ir import save
from tte_ir.compiler import compile_training

from .conftest import _host_tools
from .nets import images, scheme, tiled_residual_net

PACKAGES = ("packages/tte-ir", "packages/tte-codegen", "engine")
# What pip prints when the package index cannot be reached (the build backends come from it).
OFFLINE = ("No matching distribution found", "Could not find a version", "Failed to establish a new connection")


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 240) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)}:\n{(result.stdout + result.stderr)[-4000:]}"
    return result.stdout


def _outside_env(venv: Path) -> dict[str, str]:
    """The environment of a user of the venv: its bin first on PATH, no TTE_ROOT, no checkout on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("TTE_ROOT", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the three packages installed from wheels built from the tree (their dependencies,
    and the wheels' build backends, from the package index)."""
    _host_tools()
    tmp = tmp_path_factory.mktemp("pip-install")
    wheels = tmp / "wheels"
    env = {k: v for k, v in os.environ.items() if k != "TTE_ROOT"}
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels)]
    built = subprocess.run([*command, *(str(ROOT / p) for p in PACKAGES)], env=env, capture_output=True, text=True)
    if built.returncode != 0 and any(s in built.stdout + built.stderr for s in OFFLINE):
        pytest.skip(f"the wheels' build backends are not available from the package index: {built.stderr[-300:]}")
    assert built.returncode == 0, (built.stdout + built.stderr)[-4000:]
    found = sorted(p.name.split("-")[0] for p in wheels.glob("*.whl"))
    assert found == ["tte_codegen", "tte_engine", "tte_ir"], found
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp, env)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *map(str, wheels.glob("*.whl"))], tmp, env)
    return venv


@pytest.mark.slow
def test_generate_build_and_run_from_wheels_outside_the_checkout(venv: Path, tmp_path: Path) -> None:
    work = tmp_path / "user"
    work.mkdir()
    assert ROOT not in work.resolve().parents and ROOT not in venv.resolve().parents
    forward = tiled_residual_net()
    graph = save(compile_training(forward, scheme()), work / "train.tte")
    np.savez(work / "data.npz", x=images(forward, 6), y=np.arange(6) % 4)
    env = _outside_env(venv)
    tte = str(venv / "bin" / "tte")

    _run([tte, "generate", str(graph), "-o", "proj"], work, env)
    project = work / "proj"
    manifest = json.loads((project / "manifest.json").read_text())
    assert venv.resolve() in Path(manifest["root"]).parents, manifest["root"]  # the installed package's C
    for cmake_file in ("CMakeLists.txt", "model.cmake"):
        text = (project / cmake_file).read_text()
        assert str(ROOT) not in text and str(venv) not in text and str(work) not in text, cmake_file

    cmake_dir = _run([str(venv / "bin" / "python"), "-m", "tte_engine.sources"], work, env).strip()
    _run(
        ["cmake", "-S", "proj", "-B", "build", "-DCMAKE_BUILD_TYPE=Release", f"-Dtte_engine_DIR={cmake_dir}"], work, env
    )
    _run(["cmake", "--build", "build", "-j", "2"], work, env)
    assert (work / "build" / "libmodel.so").is_file()

    _run([tte, "run", str(graph), "--data", "data.npz", "--epochs", "2", "--quiet", "--json", "run.json"], work, env)
    result = json.loads((work / "run.json").read_text())
    assert result["steps"] == 12 and result["skipped_steps"] == 0
    assert np.isfinite(result["losses"]).all()
