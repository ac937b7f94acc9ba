"""Fixtures of the search tests: a tiny quantized model (random weights, 12x12 digits, 5 classes).

Missing packages skip the tests, or fail them under ``TTE_REQUIRE_QEMU=1`` (``conftest.missing``);
a module lists what it needs in ``REQUIRES`` (default: tte_algo and torch).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import missing

from .helpers import CLASSES, RESOLUTION

HINTS = {
    "torch": "pip install torch==2.13.0 -c constraints.txt",
    "tte_algo": "pip install ./packages/tte-algo",
    "matplotlib": "pip install matplotlib",
    "ray": "pip install './packages/tte-algo[ray]'",
}


@pytest.fixture(autouse=True)
def _require_packages(request: pytest.FixtureRequest) -> None:
    for name in getattr(request.module, "REQUIRES", ("tte_algo", "torch")):
        if importlib.util.find_spec(name) is None:
            missing(f"{name} is not installed ({HINTS[name]})")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised MCUNet-style model (21 convs) quantized at 12x12 for 5 classes (.tte)."""
    for name in ("tte_algo", "torch"):
        if importlib.util.find_spec(name) is None:
            missing(f"{name} is not installed ({HINTS[name]})")
    import torch

    from tte_algo.data import load_digits, parse_classes
    from tte_algo.ptq import quantize_model
    from tte_algo.zoo import build_model
    from tte_ir import save

    data = load_digits(RESOLUTION, parse_classes(CLASSES))
    torch.manual_seed(0)
    graph = quantize_model(build_model("mcunet-tiny", 5, seed=0), data.codes[:64], name="tiny")
    path = tmp_path_factory.mktemp("model") / "tiny.tte"
    save(graph, path)
    return path
