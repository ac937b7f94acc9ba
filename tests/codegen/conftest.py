"""Fixtures of the code generator tests: the residual network's training graph, its generated project
and the host build, made once per session in a temporary directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tte_ir import Graph
from tte_ir.compiler import compile_training

from .nets import scheme, tiled_residual_net


def _host_tools() -> None:
    for tool in ("cmake", "cc"):
        if shutil.which(tool) is None:
            pytest.skip(f"'{tool}' is not installed: the generated code cannot be built for the host")


@pytest.fixture(scope="session")
def forward() -> Graph:
    return tiled_residual_net()


@pytest.fixture(scope="session")
def training(forward: Graph) -> Graph:
    return compile_training(forward, scheme())


@pytest.fixture(scope="session")
def project(training: Graph, tmp_path_factory: pytest.TempPathFactory):
    from tte_codegen import generate

    return generate(training, tmp_path_factory.mktemp("codegen") / "model")


@pytest.fixture(scope="session")
def host_library(project) -> Path:
    """The host shared library of the project, built once (with -Wall -Wextra -Werror)."""
    from tte_codegen import build

    _host_tools()
    return build(project, "host")


@pytest.fixture
def host_model(project, host_library: Path, training: Graph):
    """The project on the host, reset to the graph's initial parameters and step 0."""
    from tte_codegen import HostModel
    from tte_ir.reference_train import initial_state

    model = HostModel(project)
    model.import_params(initial_state(training))
    model.step = 0
    return model


def qemu_tools() -> None:
    """Skip (or fail under TTE_REQUIRE_QEMU=1) without the ARM toolchain and QEMU."""
    from conftest import require_tool  # tests/conftest.py (tests/ is on sys.path)

    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
