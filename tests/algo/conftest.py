"""Fixtures of the tte-algo tests: a small float CNN pretrained on digits 0-4 (seconds on a CPU)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def pretrained_plain():
    """(model, source data) : a plain CNN at 16x16 trained 4 epochs on digits 0-4."""
    pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")
    from tte_algo.bench import fit_float_model
    from tte_algo.data import load_digits
    from tte_algo.zoo import build_model

    source = load_digits(16, [0, 1, 2, 3, 4])
    model = build_model("plain-cnn", 5, seed=0)
    return fit_float_model(model, source, epochs=4, seed=0), source
