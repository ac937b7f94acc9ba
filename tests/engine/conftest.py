"""Fixtures of the engine tests: generated golden data and firmware built once per session (in a
temporary directory)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import build_board


@pytest.fixture(scope="session")
def golden_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import firmware_data

    path = tmp_path_factory.mktemp("golden") / "golden_cases.c"
    path.write_text(firmware_data.golden_source())
    return path


@pytest.fixture(scope="session")
def board_build(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``board_build(board, **data)``: the build directory, built once per board and data."""
    built: dict[tuple, Path] = {}

    def get(board: str, **data: Path) -> Path:
        key = (board, *sorted(data.items()))
        if key not in built:
            try:
                built[key] = build_board(board, tmp_path_factory.mktemp(board), **data)
            except subprocess.CalledProcessError as error:
                pytest.fail(f"building {board} failed:\n{error.stdout}\n{error.stderr}")
        return built[key]

    return get
