"""The blocked depthwise and dense backward kernels on the shapes the random property tests do not reach: 7x7
kernels at stride 2 and 3 and 5x5 at stride 2 (the input gradient's weight tiles then hold one class of
kernel rows each, ky = c mod stride, and visit only the input rows that read it),
kernels wider than a weight tile, channel counts that leave blocks of 16, 8, 4 and 1, with and without an
entry gx; dense input gradients on rows long enough for every pixel block (4, 2 and 1 pixels of each stride
class) beside the borders, more output channels than a weight tile, channel blocks cut by a group's end,
filters too large for a tile, slices and bands; dense weight updates in blocks of 8 output x 3 trained
channels, both writing passes (clamped or not); against the numpy reference bit for bit; and the depthwise
input gradient's plane path (stride 1 on Cortex-M), forced on the host in C."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .helpers import require_packages, run_kernel_check

require_packages("tte_engine", "tte_ir")

import train_cases as tc  # noqa: E402

from tte_ir.ops import window_output_size  # noqa: E402

from .test_train_kernels import (  # noqa: E402
    SETTINGS,
    assert_matches_reference,
    channel_list,
    grad,
    rng_of,
    step_limit_targets,
)

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
    """The input gradient's plane paths (stride 1 and the stride-2 parity classes), which Cortex-M builds take (the
    host binding takes the general path), built on the host with TTE_DW_PLANE=1: tests/engine/c/dw_plane_main.c
    checks them bit for bit against the contract written out, with slices and entry values (-0 included), and
    that nothing past gx is written."""
    run_kernel_check(PLANE_PROGRAM, tmp_path, 138, "-DTTE_DW_PLANE=1")


@pytest.mark.parametrize(
    ("k", "stride", "padding", "size"),
    [
        ((7, 7), 2, 3, 8),
        ((7, 7), 2, 3, 9),
        ((5, 5), 2, 2, 8),
        ((3, 3), 2, 1, 7),
        ((7, 7), 3, 3, 10),
        ((5, 3), (1, 2), (2, 0, 1, 2), 9),
        ((3, 5), 1, (0, 4, 1, 0), 6),
        ((3, 7), 1, (1, 6, 1, 6), 2),
        ((3, 3), 1, 1, 13),
        ((5, 5), 1, 2, 4),
        ((3, 3), 1, 1, 20),
        ((5, 5), 1, 2, 18),
        ((7, 7), 2, 3, 23),
        ((4, 6), 1, (1, 2, 2, 3), 17),
    ],
)
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_depthwise_weight_update_tap_classes_match_reference(k, stride, padding, size: int, rounding: str) -> None:
    """The taps of a kernel row are summed by classes kx mod stride_w over a window of registers, from padded
    planes of converted codes where they fit (sizes to 13) and from x and gh directly where they do not (17
    and up): every stride, padding on each side, rows shorter and longer than a class, both rounding modes."""
    rng = np.random.default_rng(k[0] * 100 + k[1] * 10 + size)
    c, channels = 6, [0, 1, 3, 5]
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    top, left, bottom, right = (padding,) * 4 if isinstance(padding, int) else padding
    out = ((size + top + bottom - k[0]) // sh + 1, (size + left + right - k[1]) // sw + 1)
    case = tc.conv_w_update_case(
        "classes", "depthwise", rng.integers(-128, 128, size=(1, 4, size, size), dtype=np.int8),
        (rng.standard_normal((1, c, *out)) * 1e-3).astype(np.float32),
        rng.integers(-127, 128, size=(4, 1, *k), dtype=np.int8), np.full(c, 3e3, np.float32), full=(c, 1, *k),
        channels=channels, stride=(sh, sw), padding=(top, left, bottom, right), x_zero=5, rounding=rounding,
        tensor_id=9,
    )  # fmt: skip
    assert case.step_status == "ok"
    assert_matches_reference(case)


@pytest.mark.parametrize("rounding_mode", ["nearest", "stochastic"])
@pytest.mark.parametrize("spread", [1.0, 1e5])
def test_depthwise_weight_update_around_the_step_limits(rounding_mode: str, spread: float) -> None:
    """The depthwise update writes its steps by the pointwise kernel's passes: step values clamped to +-512,
    the clamp left out where the bound is below 2^21 (spread 1) and kept where it is not (spread 1e5). The
    centre tap of each channel gets a step value just inside or outside +-254 and +-512, ties included."""
    rng = np.random.default_rng(6)
    targets, inv = step_limit_targets(rng, spread, 9)
    c = targets.size
    gh = np.zeros((1, c, 3, 3), np.float32)
    gh[0, :, 0, 0] = targets / (np.float32(0.05) * inv)  # lr 0.05 (train_cases.new_ctx); x codes 1 at (0, 0)
    gh[0, :, 2, 1] = rng.standard_normal(c).astype(np.float32) * 1e-3
    x = rng.integers(-3, 4, size=(1, c, 3, 3), dtype=np.int8)
    x[0, :, 0, 0] = 1
    x[0, :, 1:, :] = 0
    x[0, :, :, 1:] = 0
    w = rng.choice(np.array([-127, -126, -1, 0, 1, 126, 127], np.int8), size=(c, 1, 3, 3))
    case = tc.conv_w_update_case(
        "limits", "depthwise", x, gh, w, inv, full=(c, 1, 3, 3), channels=list(range(c)), stride=(1, 1),
        padding=(1, 1, 1, 1), x_zero=0, rounding=rounding_mode, tensor_id=3,
    )  # fmt: skip
    assert case.step_status == "ok"
    assert_matches_reference(case)


@st.composite
def dense_windows(draw) -> dict:
    """A dense conv whose rows hold several pixel blocks: kernels 1-7 per axis (some larger than a weight tile,
    9x9), strides 1-3 per axis, padding per side up to the kernel's half plus one, 1-3 groups of 1-7 input and
    1-12 output channels (3x3 filters: 7 output channels per weight tile), inputs up to 20 wide."""
    k = draw(st.sampled_from([(3, 3), (3, 3), (5, 5), (1, 7), (3, 1), (2, 5), (7, 3), (9, 9)]))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    top, bottom = (draw(st.integers(0, k[0] // 2 + 1)) for _ in range(2))
    left, right = (draw(st.integers(0, k[1] // 2 + 1)) for _ in range(2))
    groups = draw(st.integers(1, 3))
    c, o = groups * draw(st.integers(1, 7)), groups * draw(st.integers(1, 12))
    h = draw(st.integers(max(1, k[0] - top - bottom), 10))
    w = draw(st.integers(max(1, k[1] - left - right), 20))
    return {"c": c, "o": o, "k": k, "stride": stride, "padding": (top, left, bottom, right), "groups": groups,
            "h": h, "w": w}  # fmt: skip


@SETTINGS
@given(data=st.data())
def test_dense_bwd_x_blocks_match_reference(data: st.DataObject) -> None:
    rng = rng_of(data)
    g = data.draw(dense_windows())
    ho, wo = window_output_size((g["h"], g["w"]), g["k"], g["stride"], g["padding"])
    w = rng.integers(-127, 128, size=(g["o"], g["c"] // g["groups"], *g["k"]), dtype=np.int8)
    gh = grad(rng, 1, g["o"], ho, wo)
    acc = grad(rng, 1, g["c"], g["h"], g["w"]) if data.draw(st.booleans()) else None
    channels, w_train = [], None
    if g["groups"] == 1 and data.draw(st.booleans()):
        channels = channel_list(data, g["c"])
        w_train = rng.integers(-127, 128, size=(g["o"], len(channels), *g["k"]), dtype=np.int8)
    band = data.draw(st.sampled_from([None, "gh", "gx"]))
    bands = {}
    if band is not None:
        n = g["o"] if band == "gh" else g["c"]
        begin = data.draw(st.integers(0, n - 1))
        bands[f"{band}_band"] = (begin, data.draw(st.integers(1, n - begin)))
    case = tc.conv_bwd_x_case(
        "dense", gh, w, size=(g["h"], g["w"]), stride=g["stride"], padding=g["padding"], groups=g["groups"],
        channels=channels, w_train=w_train, acc=acc, **bands,
    )  # fmt: skip
    assert_matches_reference(case)


@SETTINGS
@given(data=st.data())
def test_dense_weight_update_blocks_match_reference(data: st.DataObject) -> None:
    """The dense update's blocks of 8 output x 3 trained channels (and the overlapping last ones) at every
    tap, frozen channels among them, both rounding modes, with and without the step-value clamp (gh up to
    1 with inv up to 1e6 takes the clamped pass), and bands of gh's channels."""
    rng = rng_of(data)
    k = data.draw(st.sampled_from([(3, 3), (3, 3), (5, 5), (1, 3), (3, 2)]))
    stride = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    top, left, bottom, right = (data.draw(st.integers(0, 2)) for _ in range(4))
    o, c = data.draw(st.integers(1, 20)), data.draw(st.integers(1, 9))
    h = data.draw(st.integers(max(1, k[0] - top - bottom), 9))
    w = data.draw(st.integers(max(1, k[1] - left - right), 9))
    ho, wo = window_output_size((h, w), k, stride, (top, left, bottom, right))
    channels = channel_list(data, c)
    scale = data.draw(st.sampled_from([1e-5, 1e-3, 1.0]))
    inv = np.exp(rng.uniform(np.log(1e2), np.log(1e6), o)).astype(np.float32)
    inv[rng.random(o) < 0.15] = data.draw(st.sampled_from([0.0, np.inf]))
    band = None
    if data.draw(st.booleans()):
        begin = data.draw(st.integers(0, o - 1))
        band = (begin, data.draw(st.integers(1, o - begin)))
    case = tc.conv_w_update_case(
        "dense_blocks", "dense", rng.integers(-128, 128, size=(1, len(channels), h, w), dtype=np.int8),
        grad(rng, 1, o, ho, wo, scale=scale), rng.integers(-127, 128, size=(o, len(channels), *k), dtype=np.int8),
        inv, full=(o, c, *k), channels=channels, stride=stride, padding=(top, left, bottom, right),
        x_zero=data.draw(st.integers(-128, 127)), rounding=data.draw(st.sampled_from(["nearest", "stochastic"])),
        tensor_id=data.draw(st.integers(0, 40)), band=band,
    )  # fmt: skip
    assert case.step_status == "ok"
    assert_matches_reference(case)


@pytest.mark.parametrize("rounding_mode", ["nearest", "stochastic"])
@pytest.mark.parametrize("spread", [1.0, 1e5])
def test_dense_weight_update_around_the_step_limits(rounding_mode: str, spread: float) -> None:
    """The dense update's two writing passes, as the pointwise one's (test_train_kernels): step values just
    inside and outside +-254 and +-512, ties included, and far beyond (3e9 only where the clamp is taken),
    at tap (0, 0) of a 2x1 kernel, on codes at both ends of int8."""
    rng = np.random.default_rng(6)
    targets, inv = step_limit_targets(rng, spread, 21)
    o, c = targets.size, 6
    gh = np.zeros((1, o, 2, 2), np.float32)
    gh[0, :, 0, 0] = targets / (np.float32(0.05) * inv)  # lr 0.05 (train_cases.new_ctx); x codes 1 at (0, 0)
    gh[0, :, 1, 1] = rng.standard_normal(o).astype(np.float32) * 1e-3
    x = rng.integers(-3, 4, size=(1, c, 3, 2), dtype=np.int8)
    x[0, :, 0, 0] = 1
    w = rng.choice(np.array([-127, -126, -1, 0, 1, 126, 127], np.int8), size=(o, c, 2, 1))
    case = tc.conv_w_update_case(
        "limits", "dense", x, gh, w, inv, full=(o, c, 2, 1), channels=list(range(c)), stride=(1, 1),
        padding=(0, 0, 0, 0), x_zero=0, rounding=rounding_mode, tensor_id=3,
    )  # fmt: skip
    assert case.step_status == "ok"
    assert_matches_reference(case)
