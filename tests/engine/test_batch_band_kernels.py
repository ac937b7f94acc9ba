"""The mini-batch update kernels (conv2d / depthwise / pointwise ``*_bwd_w_acc_s8``, ``bias_acc_s32``)
run band by band, as a channel-tiled group calls them, against the untiled call: tests/engine/c/
batch_band_main.c, built with the host C compiler from the engine's portable sources, compares acc after
every sample of a 3-sample batch and the parameters after its end, bit for bit, for band sizes 1-4 and
both roundings (the binding passes no band to these kernels, so the check is in C)."""

from __future__ import annotations

from pathlib import Path

from .helpers import run_kernel_check

PROGRAM = Path(__file__).parent / "c" / "batch_band_main.c"


def test_acc_kernels_band_by_band_equal_the_whole_tensor(tmp_path: Path) -> None:
    run_kernel_check(PROGRAM, tmp_path, 32)
