"""The mini-batch update kernels (conv2d / depthwise / pointwise ``*_bwd_w_acc_s8``, ``bias_acc_s32``)
run band by band, as a channel-tiled group calls them, against the untiled call: tests/engine/c/
batch_band_main.c, built with the host C compiler from the engine's portable sources, compares acc after
every sample of a 3-sample batch and the parameters after its end, bit for bit, for band sizes 1-4 and
both roundings (the binding passes no band to these kernels, so the check is in C)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import ROOT

from .helpers import host_cc

ENGINE = ROOT / "engine"
PROGRAM = Path(__file__).parent / "c" / "batch_band_main.c"


def test_acc_kernels_band_by_band_equal_the_whole_tensor(tmp_path: Path) -> None:
    kernels = ENGINE / "src" / "kernels"
    sources = [PROGRAM, *sorted(kernels.glob("*.c")), *sorted((kernels / "ref").glob("*.c"))]
    exe = tmp_path / "batch_band"
    command = [host_cc(), "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]
    command += ["-I", str(ENGINE / "include"), "-I", str(kernels), *map(str, sources), "-o", str(exe), "-lm"]
    subprocess.run(command, check=True, capture_output=True, text=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    failed = [line for line in result.stdout.splitlines() if line.startswith("CHECK") and not line.endswith("PASS")]
    assert not failed, "\n".join(failed)
    done = re.search(r"^DONE checks=(\d+) failed=(\d+)$", result.stdout, re.MULTILINE)
    assert done and done.groups() == ("32", "0"), result.stdout + result.stderr
    assert result.returncode == 0
