"""The blocked dense mini-batch kernel (conv2d_bwd_w_acc_s8) equals the per-element walk of batch-impl.h
that it replaced (tte_conv2d_acc_apply, which the pointwise and depthwise families still run) bit for bit:
tests/engine/c/dense_acc_main.c, built with the host C compiler from the engine's portable sources, compares
acc and the slice on random dense shapes, bands and both roundings (the binding has no call of this kernel)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import ROOT

from .helpers import host_cc

ENGINE = ROOT / "engine"
PROGRAM = Path(__file__).parent / "c" / "dense_acc_main.c"


def test_dense_acc_kernel_equals_the_per_element_walk(tmp_path: Path) -> None:
    kernels = ENGINE / "src" / "kernels"
    sources = [PROGRAM, *sorted(kernels.glob("*.c")), *sorted((kernels / "ref").glob("*.c"))]
    exe = tmp_path / "dense_acc"
    command = [host_cc(), "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]
    command += ["-I", str(ENGINE / "include"), "-I", str(kernels), *map(str, sources), "-o", str(exe), "-lm"]
    subprocess.run(command, check=True, capture_output=True, text=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    failed = [line for line in result.stdout.splitlines() if line.startswith("CHECK") and not line.endswith("PASS")]
    assert not failed, "\n".join(failed)
    done = re.search(r"^DONE checks=(\d+) failed=(\d+)$", result.stdout, re.MULTILINE)
    assert done and done.groups() == ("60", "0"), result.stdout + result.stderr
    assert result.returncode == 0
