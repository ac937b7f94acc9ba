"""The blocked dense mini-batch kernel (conv2d_bwd_w_acc_s8) equals the per-element walk of batch-impl.h
that it replaced (tte_conv2d_acc_apply, which the pointwise and depthwise families still run) bit for bit:
tests/engine/c/dense_acc_main.c, built with the host C compiler from the engine's portable sources, compares
acc and the slice on random dense shapes, bands and both roundings (the binding has no call of this kernel)."""

from __future__ import annotations

from pathlib import Path

from .helpers import run_kernel_check

PROGRAM = Path(__file__).parent / "c" / "dense_acc_main.c"


def test_dense_acc_kernel_equals_the_per_element_walk(tmp_path: Path) -> None:
    run_kernel_check(PROGRAM, tmp_path, 60)
