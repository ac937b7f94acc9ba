"""The blocked depthwise backward kernels on the shapes the random property tests do not reach: 7x7
kernels at stride 2 and 3 and 5x5 at stride 2 (the input gradient's weight tiles then hold one class of
kernel rows each, ky = c mod stride, and visit only the input rows that read it),
kernels wider than a weight tile, channel counts that leave blocks of 16, 8, 4 and 1, with and without an
entry gx, against the numpy reference bit for bit; and the input gradient's plane path (stride 1 on Cortex-M),
forced on the host in C."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from .helpers import host_cc, require_packages

require_packages("tte_engine", "tte_ir")

import train_cases as tc  # noqa: E402

from .test_train_kernels import assert_matches_reference  # noqa: E402

ENGINE = ROOT / "engine"
PLANE_PROGRAM = Path(__file__).parent / "c" / "dw_plane_main.c"


@pytest.mark.parametrize(
    ("c", "k", "stride", "padding", "size"),
    [
        (13, 7, 2, 3, 8),
        (40, 7, 2, 3, 8),
        (10, 7, 3, 3, 9),
        (6, 7, 2, 2, 11),
        (8, 7, 1, 3, 9),
        (21, 5, 2, 2, 7),
        (12, 3, 1, 1, 4),
        (3, 33, 1, 16, 3),
        (45, 3, 1, 1, 5),
        (37, 3, 2, 1, 6),
    ],
)
@pytest.mark.parametrize("entry", [False, True])
def test_depthwise_bwd_x_blocks_match_reference(c: int, k: int, stride: int, padding: int, size: int,
                                                 entry: bool) -> None:  # fmt: skip
    rng = np.random.default_rng(c * 100 + k)
    w = rng.integers(-127, 128, size=(c, 1, k, k), dtype=np.int8)
    out = (size + 2 * padding - k) // stride + 1
    gh = (rng.standard_normal((1, c, out, out)) * 1e-3).astype(np.float32)
    acc = (rng.standard_normal((1, c, size, size)) * 1e-3).astype(np.float32) if entry else None
    channels = [1, c - 1]
    w_train = rng.integers(-127, 128, size=(2, 1, k, k), dtype=np.int8)
    for slice_args in ({}, {"channels": channels, "w_train": w_train}):
        case = tc.conv_bwd_x_case(
            "depthwise", gh, w, size=(size, size), stride=stride, padding=padding, groups=c, acc=acc, **slice_args
        )
        assert_matches_reference(case)


@pytest.mark.parametrize("kind", ["pointwise", "depthwise"])
@pytest.mark.parametrize("bad", [np.nan, -np.nan, np.inf, -np.inf, -1e-45])
def test_weight_update_gate_refuses_every_nonfinite_gradient(kind: str, bad: float) -> None:
    """One pass finds both the largest |gh| and any NaN or infinity (either sign): a non-finite gh fails the
    step and writes nothing; a tiny negative one (a denormal) steps."""
    rng = np.random.default_rng(7)
    c, o, k = 6, (6 if kind == "depthwise" else 9), (3 if kind == "depthwise" else 1)
    channels = [0, 2, 5]
    full = (c, 1, k, k) if kind == "depthwise" else (o, c, k, k)
    w_train = rng.integers(-127, 128, size=(3, 1, k, k) if kind == "depthwise" else (o, 3, k, k), dtype=np.int8)
    gh = (rng.standard_normal((1, o, 4, 4)) * 1e-3).astype(np.float32)
    gh[0, o - 1, 3, 2] = np.float32(bad)
    if np.isnan(bad):  # both signs of NaN: the sign bit must not hide it
        bits = gh.view(np.uint32)
        bits[0, o - 1, 3, 2] = 0xFFC00000 if np.signbit(bad) else 0x7FC00000
    inv = np.full(o, 1e4, np.float32)
    case = tc.conv_w_update_case(
        "gate", kind, rng.integers(-128, 128, size=(1, 3, 4, 4), dtype=np.int8), gh, w_train, inv, full=full,
        channels=channels, stride=1, padding=k // 2, x_zero=0, rounding="nearest", tensor_id=3,
    )  # fmt: skip
    assert case.step_status == ("ok" if bad == -1e-45 else "nonfinite-grad")
    assert_matches_reference(case)


@pytest.mark.parametrize(("k", "padding", "size"), [(7, 3, 8), (7, 1, 9), (5, 0, 6), (3, 2, 4), (3, 1, 1)])
def test_depthwise_weight_update_row_sums_match_reference(k: int, padding: int, size: int) -> None:
    """Stride 1 sums a kernel row's taps side by side: the same chains, inside and at every border."""
    rng = np.random.default_rng(k * 10 + padding)
    c, channels = 5, [0, 3, 4]
    out = size + 2 * padding - k + 1
    case = tc.conv_w_update_case(
        "rows", "depthwise", rng.integers(-128, 128, size=(1, 3, size, size), dtype=np.int8),
        (rng.standard_normal((1, c, out, out)) * 1e-3).astype(np.float32),
        rng.integers(-127, 128, size=(3, 1, k, k), dtype=np.int8), np.full(c, 1e4, np.float32), full=(c, 1, k, k),
        channels=channels, stride=1, padding=padding, x_zero=-3, rounding="nearest", tensor_id=5,
    )  # fmt: skip
    assert case.step_status == "ok"
    assert_matches_reference(case)


def test_depthwise_bwd_x_plane_path_keeps_the_contract(tmp_path: Path) -> None:
    """The input gradient's plane path, which Cortex-M builds take (the host binding takes the general path),
    built on the host with TTE_DW_PLANE=1: tests/engine/c/dw_plane_main.c checks it bit for bit against the
    contract written out, with slices and entry values (-0 included), and that nothing past gx is written."""
    kernels = ENGINE / "src" / "kernels"
    sources = [PLANE_PROGRAM, *sorted(kernels.glob("*.c")), *sorted((kernels / "ref").glob("*.c"))]
    exe = tmp_path / "dw_plane"
    command = [host_cc(), "-DTTE_DW_PLANE=1", "-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror"]
    command += ["-pedantic", "-I", str(ENGINE / "include"), "-I", str(kernels), *map(str, sources), "-o", str(exe)]
    subprocess.run([*command, "-lm"], check=True, capture_output=True, text=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    failed = [line for line in result.stdout.splitlines() if line.startswith("CHECK") and not line.endswith("PASS")]
    assert not failed, "\n".join(failed)
    done = re.search(r"^DONE checks=(\d+) failed=(\d+)$", result.stdout, re.MULTILINE)
    assert done and done.groups() == ("66", "0"), result.stdout + result.stderr
    assert result.returncode == 0
