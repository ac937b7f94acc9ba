"""No update kernel ever writes a value computed from a non-finite one (tte/tte_train.h): NaN,
infinite, negative and huge learning rates forced into every update kernel leave every parameter
finite; a non-finite step value skips the whole update and fails the step, as a non-finite gradient
does; and the numpy reference (tte_ir.reference_train) takes the same decision (NUMERICS.md 7)."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import require_packages

require_packages("tte_engine", "tte_ir")

import train_cases as tc  # noqa: E402

import tte_engine  # noqa: E402
from tte_ir import reference_train  # noqa: E402
from tte_ir.kernels import weight_layout  # noqa: E402
from tte_ir.layout import to_engine_layout  # noqa: E402

F32_MAX = float(np.finfo(np.float32).max)
# NaN and infinities; the largest float32 (every product with a gradient overflows); huge and
# negative rates whose step values stay finite (clamped to 2^30, or of the wrong sign)
RATES = [float("nan"), float("inf"), -float("inf"), F32_MAX, -F32_MAX, 1e30, -1e30, -0.5, 0.05]
KINDS = ["dense", "depthwise", "pointwise"]
_PREFIX = {"dense": "conv2d", "depthwise": "depthwise_conv2d", "pointwise": "pointwise_conv2d"}


def _conv_inputs(kind: str, rng: np.random.Generator) -> dict:
    c, o, k = (4, 4, 3) if kind == "depthwise" else ((5, 3, 1) if kind == "pointwise" else (3, 2, 3))
    channels = [0, 2, 3] if kind != "dense" else [0, 2]
    full = (c, 1, k, k) if kind == "depthwise" else (o, c, k, k)
    slice_shape = (len(channels), 1, k, k) if kind == "depthwise" else (o, len(channels), k, k)
    out_c = c if kind == "depthwise" else o
    padding = 0 if kind == "pointwise" else 1
    inv = np.full(out_c, 1e4, np.float32)
    inv[1] = 0.0  # a frozen channel
    return {
        "x_saved": rng.integers(-128, 128, (1, len(channels), 6, 6), dtype=np.int8),
        "gh": (rng.standard_normal((1, out_c, 6, 6)) * 1e-3).astype(np.float32),
        "w_train": rng.integers(-127, 128, slice_shape, dtype=np.int8),
        "inv_w": inv,
        "full": full,
        "channels": channels,
        "padding": padding,
    }


def _conv_update(kind: str, a: dict, lr: float) -> tuple[np.ndarray, str, np.ndarray | None]:
    """(the engine's updated slice in IR layout, the step status, the reference's slice or None)."""
    ctx = tte_engine.TrainContext(lr=lr, head_lr=0.01, step=3, seed=11)
    layout = weight_layout(kind)
    in_c = a["full"][0] if kind == "depthwise" else a["full"][1]
    kwargs = {"train_channels": a["channels"], "in_c": in_c, "stride": 1, "x_zero": 0}
    if kind != "pointwise":
        kwargs["padding"] = a["padding"]
    fn = getattr(tte_engine, f"{_PREFIX[kind]}_bwd_w_update_s8")
    after = fn(ctx, to_engine_layout(a["x_saved"]), to_engine_layout(a["gh"]), layout.to_engine(a["w_train"]),
               a["inv_w"], **kwargs, tensor_id=5, rounding="nearest")  # fmt: skip
    depthwise = kind == "depthwise"
    grad = reference_train.conv2d_weight_grad(
        a["x_saved"], a["gh"], channels=a["channels"], kernel=a["full"][2:], stride=1, padding=a["padding"],
        x_zero=0, depthwise=depthwise,
    )  # fmt: skip
    inv = a["inv_w"][a["channels"]] if depthwise else a["inv_w"]
    index = tc.weight_indices(a["full"], a["w_train"].shape, a["channels"], depthwise)
    attrs = {"rounding": "nearest", "seed": 11, "tensor_id": 5}
    with np.errstate(over="ignore", invalid="ignore"):
        steps = reference_train.qas_round(grad, inv, lr, attrs, 3, index)
    ref = None if steps is None else np.clip(a["w_train"].astype(np.int64) + steps, -127, 127).astype(np.int8)
    return layout.to_ir(after, a["w_train"].shape), ctx.status, ref


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lr", RATES, ids=repr)
def test_conv_weight_updates_never_apply_a_nonfinite_step(kind: str, lr: float) -> None:
    a = _conv_inputs(kind, np.random.default_rng(3))
    got, status, ref = _conv_update(kind, a, lr)
    assert got.dtype == np.int8 and got.min() >= -127 and got.max() <= 127
    if ref is None:  # a step value is not finite: nothing written, the step failed
        assert status == "nonfinite-grad"
        np.testing.assert_array_equal(got, a["w_train"])
    else:
        assert status == "ok"
        np.testing.assert_array_equal(got, ref)
    if not np.isfinite(lr) or abs(lr) == F32_MAX:
        assert status == "nonfinite-grad"


@pytest.mark.parametrize("kind", KINDS)
def test_one_overflowing_element_skips_the_whole_update(kind: str) -> None:
    """Step values huge but finite (check pass, then the clamp) unless one element overflows."""
    a = _conv_inputs(kind, np.random.default_rng(4))
    got, status, ref = _conv_update(kind, a, 1e30)
    assert status == "ok" and ref is not None and not np.array_equal(got, a["w_train"])
    np.testing.assert_array_equal(got, ref)
    a["gh"][0, 0, 2, 2] = 1e35  # (1e30 * 1e35) overflows float32 on this channel's taps only
    got, status, ref = _conv_update(kind, a, 1e30)
    assert status == "nonfinite-grad" and ref is None
    np.testing.assert_array_equal(got, a["w_train"])


def _bias_update(
    gh: np.ndarray, b: np.ndarray, inv: np.ndarray, lr: float
) -> tuple[np.ndarray, str, np.ndarray | None]:
    ctx = tte_engine.TrainContext(lr=lr, head_lr=0.01, step=2, seed=7)
    after = tte_engine.bias_update_s32(ctx, gh, b, inv, tensor_id=9, rounding="stochastic")
    with np.errstate(over="ignore", invalid="ignore"):
        grad = reference_train.bias_grad(gh.T.reshape(1, gh.shape[1], -1, 1))
        steps = reference_train.qas_round(
            grad, tc.frozen_divisors(inv, b), lr, {"rounding": "stochastic", "seed": 7, "tensor_id": 9}, 2,
            np.arange(b.shape[0]),
        )  # fmt: skip
    ref = None if steps is None else np.clip(b.astype(np.int64) + steps, -(2**31), 2**31 - 1).astype(np.int32)
    return after, ctx.status, ref


@pytest.mark.parametrize("lr", RATES, ids=repr)
def test_bias_update_never_applies_a_nonfinite_step(lr: float) -> None:
    rng = np.random.default_rng(5)
    b = rng.integers(-(2**20), 2**20, 6, dtype=np.int32)
    b[4] = 2**31 - 1  # dead
    inv = np.full(6, 1e8, np.float32)
    inv[5] = 0.0  # frozen
    gh = (rng.standard_normal((9, 6)) * 1e-3).astype(np.float32)
    got, status, ref = _bias_update(gh, b, inv, lr)
    if ref is None:
        assert status == "nonfinite-grad"
        np.testing.assert_array_equal(got, b)
    else:
        assert status == "ok"
        np.testing.assert_array_equal(got, ref)
    assert got[4] == b[4] and got[5] == b[5]


def test_bias_update_over_more_terms_than_the_bound_covers() -> None:
    """Past 2^20 summed terms the kernel always checks every value first; the result is unchanged."""
    rng = np.random.default_rng(6)
    gh = (rng.standard_normal((2**20 + 1, 2)) * 1e-6).astype(np.float32)
    b, inv = np.array([5, -5], np.int32), np.array([1e4, 1e4], np.float32)
    got, status, ref = _bias_update(gh, b, inv, 0.1)
    assert status == "ok" and ref is not None
    np.testing.assert_array_equal(got, ref)
    gh[7, 1] = 1e38  # the sum stays finite, its product with lr * inv does not
    got, status, ref = _bias_update(gh, b, inv, 0.1)
    assert status == "nonfinite-grad" and ref is None
    np.testing.assert_array_equal(got, b)


@pytest.mark.parametrize("lr", RATES, ids=repr)
def test_fp32_head_never_writes_a_nonfinite_value(lr: float) -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, 16, dtype=np.int8)
    g = (rng.standard_normal(4) * 0.1).astype(np.float32)
    w = (rng.standard_normal((4, 16)) * 0.1).astype(np.float32)
    b = np.zeros(4, np.float32)
    ctx = tte_engine.TrainContext(lr=0.01, head_lr=lr)
    w_next, b_next, _ = tte_engine.linear_bwd_update_f32(ctx, x, g, w, b, x_scale=0.05, x_zero=3)
    assert np.all(np.isfinite(w_next)) and np.all(np.isfinite(b_next))
    with np.errstate(over="ignore", invalid="ignore"):
        xf = np.float32(0.05) * (x.astype(np.int32) - 3).astype(np.float32)
        w_ref = w - np.float32(lr) * (g[:, None] * xf[None, :])
        b_ref = b - np.float32(lr) * g
    if np.all(np.isfinite(w_ref)) and np.all(np.isfinite(b_ref)):
        assert ctx.status == "ok"
        np.testing.assert_array_equal(w_next, w_ref)
        np.testing.assert_array_equal(b_next, b_ref)
    else:
        assert ctx.status == "nonfinite-grad"
        np.testing.assert_array_equal(w_next, w)
        np.testing.assert_array_equal(b_next, b)


def test_fp32_head_checks_the_value_not_only_the_gradient() -> None:
    """A finite lr and gradient whose step overflows on one weight: nothing is written."""
    x = np.full(3, 100, np.int8)
    g = np.array([1.0, -1.0], np.float32)
    w = np.array([[0.0, 0.0, -3e38], [0.0, 0.0, 0.0]], np.float32)
    ctx = tte_engine.TrainContext(lr=0.01, head_lr=1e36)
    w_next, b_next, _ = tte_engine.linear_bwd_update_f32(ctx, x, g, w, np.zeros(2, np.float32), x_scale=1.0, x_zero=0)
    assert ctx.status == "nonfinite-grad"
    np.testing.assert_array_equal(w_next, w)
    assert not b_next.any()
