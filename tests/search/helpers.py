"""Helpers of the search tests: the tiny model's data settings and the ``tte`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RESOLUTION = 12
CLASSES = "0-4"
# a small analysis: 3 bias points, the pointwise convs of the last 6 convs at ratio 1, one refined
ANALYZE_ARGS = ("--window", "6", "--bias-points", "2", "--ratios", "1", "--refine", "1", "--epochs", "1",
                "--batch-size", "64", "--classes", CLASSES)  # fmt: skip


def tte(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the ``tte`` command (through ``python -m tte_ir.cli``) in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "tte_ir.cli", *args],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
