"""The blocked depthwise backward kernels on the shapes the random property tests do not reach: 7x7
kernels at stride 2 (the input gradient's weight tiles then hold a kernel's rows in two passes),
kernels wider than a weight tile, channel counts that leave blocks of 16, 8, 4 and 1, with and without an
entry gx, against the numpy reference bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import require_packages

require_packages("tte_engine", "tte_ir")

import train_cases as tc  # noqa: E402

from .test_train_kernels import assert_matches_reference  # noqa: E402


@pytest.mark.parametrize(
    ("c", "k", "stride", "padding", "size"),
    [
        (13, 7, 2, 3, 8),
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
