"""Shared fixtures: where ../shared is, and how tests that need outside tools skip or fail.

A test that needs ../shared or the ARM toolchain skips with a reason when it is absent, except
when ``TTE_REQUIRE_QEMU=1`` (set by .ci/run), where a missing piece is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED_MODELS = ("mbv2-w0.35", "mcunet-5fps", "proxyless-w0.3")


def _required() -> bool:
    return os.environ.get("TTE_REQUIRE_QEMU") == "1"


def missing(reason: str) -> None:
    """Skip with ``reason``, or fail when the environment requires everything to be present."""
    if _required():
        pytest.fail(f"{reason} (TTE_REQUIRE_QEMU=1 requires it)")
    pytest.skip(reason)


def shared_path() -> Path:
    return Path(os.environ.get("TTE_SHARED", ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = shared_path()
    if not (path / "models").is_dir():
        missing(f"{path}/models not found (the seed models live in ../shared)")
    return path


@pytest.fixture(scope="session")
def seed_model_path(shared_dir: Path):
    def get(name: str) -> Path:
        path = shared_dir / "models" / f"{name}.pkl"
        if not path.exists():
            missing(f"{path} not found")
        return path

    return get


def require_tool(name: str) -> str:
    """The path of an executable, or skip/fail naming it."""
    found = shutil.which(name)
    if found is None:
        missing(
            f"'{name}' is not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"
        )
    return found
