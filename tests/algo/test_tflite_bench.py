"""`nox -s tflite`'s table: ops, parameters, import time, parity rows and the transfer's accuracy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("tflite", reason="the tflite package (tte-ir[tflite]) is not installed")


@pytest.mark.slow
def test_table_of_lenet5(shared_dir: Path, capsys) -> None:
    from tte_algo.tflite_bench import main

    models = shared_dir / "models" / "tflite"
    if not models.is_dir():
        pytest.skip(f"{models} not found")
    assert main(["--dir", str(models), "--models", "lenet5", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "lenet5, input 1x28x28\n  ops             CONV_2D v3 x2, FULLY_CONNECTED v4 x3" in out
    assert "parameters      61,706" in out
    assert re.search(r"fixed vs reference kernels 9/9 tensors equal, 0\.000% codes differ \(max 0\)", out), out
    assert re.search(r"float vs optimized kernels \d+/9 tensors equal", out), out
    before, after = (float(v) for v in re.search(r"accuracy +([\d.]+)% -> ([\d.]+)% held-out", out).groups())
    assert after > before + 30
    assert main(["--dir", str(models), "--epochs", "0"]) == 2
    assert capsys.readouterr().err == "tflite: error: --epochs must be an integer >= 1, got 0\n"
