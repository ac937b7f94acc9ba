"""The training kernels (tte/tte_train.h) against the numpy reference (tte_ir.reference_train) on
random shapes, channel lists, bands and quantization: bit for bit wherever the reference sums in the
kernel's order (everything but the softmax, whose expf is the engine's own), and tiled execution
bit for bit equal to untiled. Also the step-status rules, the QAS rounding edges, the engine's
expf/logf accuracy and the argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import require_packages

require_packages("tte_engine", "tte_ir")

import train_cases as tc  # noqa: E402

import tte_engine  # noqa: E402
from tte_ir import rounding  # noqa: E402
from tte_ir.kernels import weight_layout  # noqa: E402
from tte_ir.layout import from_engine_layout  # noqa: E402
from tte_ir.ops import window_output_size  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
zero_points = st.one_of(st.sampled_from([-128, 127, 0]), st.integers(-128, 127))


def assert_matches_reference(case: tc.CallCase) -> None:
    """The host engine's buffers after the call equal the reference (bitwise, or rtol 1e-5)."""
    assert case.reference, case.name
    for name, expected in case.reference.items():
        got = case.state[name][1]
        assert got.shape == expected.shape and got.dtype == expected.dtype, name
        if case.exact:
            np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8), err_msg=f"{case.name}: {name}")
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=f"{case.name}: {name}")


@pytest.mark.parametrize("case", tc.golden_train_set(), ids=lambda c: c.name)
def test_golden_training_cases_match_the_reference(case: tc.CallCase) -> None:
    """The cases the firmware runs (tests/engine/test_qemu.py) agree with the reference on the host."""
    assert_matches_reference(case)


def rng_of(data: st.DataObject) -> np.random.Generator:
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))


def s8(rng: np.random.Generator, *shape: int, low: int = -128) -> np.ndarray:
    return rng.integers(low, 128, size=shape, dtype=np.int8)


def grad(rng: np.random.Generator, *shape: int, scale: float = 1e-3) -> np.ndarray:
    g = (rng.standard_normal(shape) * scale).astype(np.float32)
    g[rng.random(shape) < 0.2] = 0.0  # masked positions
    return g


def channel_list(data: st.DataObject, count: int) -> list[int]:
    k = data.draw(st.integers(1, count))
    return sorted(data.draw(st.lists(st.integers(0, count - 1), min_size=k, max_size=k, unique=True)))


@st.composite
def conv_geometries(draw, kind: str) -> dict:
    """Channels, output channels, kernel (KH, KW), stride (sh, sw), padding (top, left, bottom, right),
    groups and input size of a ``kind`` conv: kh != kw, sh != sw and asymmetric padding among them."""
    if kind == "depthwise":
        c = o = groups = draw(st.integers(2, 10))
        k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    elif kind == "pointwise":
        c, o, groups, k = draw(st.integers(1, 12)), draw(st.integers(1, 10)), 1, (1, 1)
    else:
        groups = draw(st.integers(1, 2))
        c, o = groups * draw(st.integers(1, 4)), groups * draw(st.integers(1, 3))
        k = (draw(st.integers(1, 6)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if kind == "pointwise":
        padding = (0, 0, 0, 0)
    else:
        top, bottom = (draw(st.integers(0, k[0] // 2 + 1)) for _ in range(2))
        left, right = (draw(st.integers(0, k[1] // 2 + 1)) for _ in range(2))
        padding = (top, left, bottom, right)
    h = draw(st.integers(max(1, k[0] - padding[0] - padding[2]), 9))
    w = draw(st.integers(max(1, k[1] - padding[1] - padding[3]), 9))
    return {"c": c, "o": o, "k": k, "stride": stride, "padding": padding, "groups": groups, "h": h, "w": w}


def out_size(g: dict) -> tuple[int, int]:
    return window_output_size((g["h"], g["w"]), g["k"], g["stride"], g["padding"])


def weights(rng, g: dict) -> np.ndarray:
    return s8(rng, g["o"], g["c"] // g["groups"], *g["k"], low=-127)


def trained_slice(data, rng, g: dict, kind: str, w: np.ndarray) -> tuple[list[int], np.ndarray | None]:
    """Maybe a trained slice: its channels and values (IR layout), for a conv that may train one."""
    if (kind == "dense" and g["groups"] != 1) or not data.draw(st.booleans()):
        return [], None
    channels = channel_list(data, g["c"])
    shape = (len(channels), 1, *g["k"]) if kind == "depthwise" else (g["o"], len(channels), *g["k"])
    return channels, s8(rng, *shape, low=-127)


KINDS = pytest.mark.parametrize("kind", tc.KINDS)


def conv_setup(
    data: st.DataObject, kind: str
) -> tuple[np.random.Generator, dict, np.ndarray, list[int], np.ndarray | None]:
    """A random ``kind`` conv: generator, geometry, weights (IR layout) and maybe a trained slice."""
    rng = rng_of(data)
    g = data.draw(conv_geometries(kind))
    w = weights(rng, g)
    return (rng, g, w, *trained_slice(data, rng, g, kind, w))


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    step=st.integers(0, 2**32 - 1),
    tensor_id=st.integers(0, 2**31 - 1),
    first=st.integers(0, 2**32 - 64),
)
def test_rounding_hash_matches_tte_ir(seed: int, step: int, tensor_id: int, first: int) -> None:
    index = np.arange(first, first + 64, dtype=np.int64)
    expected = rounding.stochastic_uniform(seed, step, tensor_id, index)
    np.testing.assert_array_equal(tte_engine.round_uniform(seed, step, tensor_id, index), expected)


def ulps(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|got - exact| in units of the float32 spacing at the exact value (subnormal spacing at least)."""
    spacing = np.maximum(np.spacing(np.abs(exact.astype(np.float32))).astype(np.float64), 2.0**-149)
    return np.abs(got.astype(np.float64) - exact) / spacing


def test_expf_and_logf_are_faithfully_rounded() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-103.9, 88.7, 200_000), rng.uniform(-1, 1, 50_000)]).astype(np.float32)
    assert ulps(tte_engine.expf(x), np.exp(x.astype(np.float64))).max() < 1.0
    y = np.exp(rng.uniform(-103, 88, 200_000)).astype(np.float32)
    y = y[(y > 0) & np.isfinite(y)]
    assert ulps(tte_engine.logf(y), np.log(y.astype(np.float64))).max() < 1.0
    special = np.array([0.0, -np.inf, np.inf, np.nan, 89.0, -104.5], np.float32)
    np.testing.assert_array_equal(tte_engine.expf(special), [1.0, 0.0, np.inf, np.nan, np.inf, 0.0])
    subnormals = np.array([2.0**-149, 3 * 2.0**-140, 2.0**-127], np.float32)
    special = np.concatenate([np.array([1.0, 0.0, -1.0, np.inf, np.nan], np.float32), subnormals])
    got = tte_engine.logf(special)
    np.testing.assert_array_equal(got[:5], [0.0, -np.inf, np.nan, np.inf, np.nan])
    assert ulps(got[5:], np.log(subnormals.astype(np.float64))).max() < 1.0


@SETTINGS
@given(data=st.data())
def test_softmax_ce_matches_reference(data: st.DataObject) -> None:
    rng = rng_of(data)
    n = data.draw(st.integers(1, 40))
    label = data.draw(st.integers(0, n - 1))
    if data.draw(st.booleans()):
        logits = (rng.standard_normal((1, n)) * data.draw(st.sampled_from([0.1, 3.0, 30.0]))).astype(np.float32)
        case = tc.softmax_case("softmax", logits, label)
    else:
        scale = data.draw(st.floats(float(np.float32(1e-3)), 1.0, width=32))
        case = tc.softmax_case("softmax", s8(rng, 1, n), label, scale=scale, zero=data.draw(zero_points))
    assert case.step_status == "ok"
    assert_matches_reference(case)


def test_softmax_ce_flags_a_nonfinite_loss_and_checks_the_label() -> None:
    ctx = tte_engine.TrainContext(lr=0.1, head_lr=0.1)
    loss, _ = tte_engine.softmax_ce_f32(np.array([0.0, np.nan], np.float32), 0, ctx=ctx)
    assert np.isnan(loss) and ctx.status == "nonfinite-loss"
    loss, _ = tte_engine.softmax_ce_f32(np.array([0.0, 1.0], np.float32), 1)  # no context: evaluation
    assert np.isfinite(loss)
    with pytest.raises(ValueError, match="label=2"):
        tte_engine.softmax_ce_f32(np.zeros(2, np.float32), 2)


@SETTINGS
@given(data=st.data())
def test_elementwise_backward_kernels_match_reference(data: st.DataObject) -> None:
    rng = rng_of(data)
    c, h, w = data.draw(st.integers(1, 24)), data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    g, mask = grad(rng, 1, c, h, w), rng.random((1, c, h, w)) < 0.7
    scale = rng.uniform(1e-3, 1.0, c).astype(np.float32)
    assert_matches_reference(tc.mask_scale_case("mask_scale", g, mask, scale))
    begin = data.draw(st.integers(0, c - 1))
    band = (begin, data.draw(st.integers(1, c - begin)))
    assert_matches_reference(tc.mask_scale_case("mask_scale_band", g, mask, scale, band=band))
    assert_matches_reference(tc.add_bwd_case("add_bwd", g, mask, *rng.uniform(0.1, 2.0, 2).astype(np.float32)))
    pool_mask = rng.random((1, c, 1, 1)) < 0.8
    assert_matches_reference(tc.pool_bwd_case("pool_bwd", grad(rng, 1, c, 1, 1), pool_mask, 1 / (h * w), (h, w)))
    assert_matches_reference(tc.accumulate_case("accumulate", grad(rng, c, h, w), grad(rng, c, h, w)))
    assert_matches_reference(tc.gather_case("gather", s8(rng, 1, c, h, w), channel_list(data, c)))


@KINDS
@SETTINGS
@given(data=st.data())
def test_forward_conv_with_a_trained_slice_and_row_bands(kind: str, data: st.DataObject) -> None:
    rng, g, w, channels, w_train = conv_setup(data, kind)
    x = s8(rng, 1, g["c"], g["h"], g["w"])
    b = rng.integers(-5000, 5000, g["o"], dtype=np.int32)
    m = np.exp(rng.uniform(np.log(1e-4), np.log(1e-2), g["o"])).astype(np.float32)
    q = {"x_zero": data.draw(zero_points), "y_zero": data.draw(zero_points)}
    geometry = {"stride": g["stride"], "padding": g["padding"], "groups": g["groups"]}
    assert_matches_reference(tc.conv_fwd_case(kind, x, w, b, m, **geometry, **q, channels=channels, w_train=w_train))
    # A band of output rows, x holding exactly the input rows they read (plus maybe spare ones).
    out_h = out_size(g)[0]
    y_row = data.draw(st.integers(0, out_h - 1))
    y_rows = data.draw(st.integers(1, out_h - y_row))
    (sh, _), top = g["stride"], g["padding"][0]
    first = max(0, y_row * sh - top)
    last = min(g["h"], (y_row + y_rows - 1) * sh - top + g["k"][0])
    first = max(0, min(first, last - 1) - data.draw(st.integers(0, 1)))
    last = max(last, first + 1)
    case = tc.conv_fwd_case(kind, x, w, b, m, **geometry, **q, rows=(first, last - first, y_row, y_rows))
    assert_matches_reference(case)


def test_a_row_band_must_hold_the_rows_it_reads() -> None:
    x = np.zeros((3, 4, 2), np.int8)
    w = np.zeros((1, 3, 3, 2), np.int8)
    args = (np.zeros(1, np.int32), np.ones(1, np.float32))
    with pytest.raises(ValueError, match="x does not hold every input row"):
        tte_engine.conv2d_fwd_s8(x, w, *args, padding=1, x_zero=0, y_zero=0, rows=(1, 0, 1), in_h=8)
    y = tte_engine.conv2d_fwd_s8(x, w, *args, padding=1, x_zero=0, y_zero=0, rows=(0, 0, 2), in_h=8)
    assert y.shape == (2, 4, 1)


@KINDS
@SETTINGS
@given(data=st.data())
def test_conv_bwd_x_matches_reference(kind: str, data: st.DataObject) -> None:
    rng, g, w, channels, w_train = conv_setup(data, kind)
    ho, wo = out_size(g)
    acc = grad(rng, 1, g["c"], g["h"], g["w"]) if data.draw(st.booleans()) else None
    case = tc.conv_bwd_x_case(
        kind, grad(rng, 1, g["o"], ho, wo), w, size=(g["h"], g["w"]), stride=g["stride"], padding=g["padding"],
        groups=g["groups"], channels=channels, w_train=w_train, acc=acc,
    )  # fmt: skip
    assert_matches_reference(case)


def bands(count: int, tile: int) -> list[tuple[int, int]]:
    return [(b, min(tile, count - b)) for b in range(0, count, tile)]


@KINDS
@SETTINGS
@given(data=st.data())
def test_conv_bwd_x_channel_tiles_equal_untiled(kind: str, data: st.DataObject) -> None:
    """Tiles over gx's channels concatenate, tiles over gh's channels accumulate, to the untiled gx."""
    rng = rng_of(data)
    g = data.draw(conv_geometries(kind).filter(lambda g: g["groups"] == 1 or kind == "depthwise"))
    w, tile = weights(rng, g), data.draw(st.integers(1, 4))
    ho, wo = out_size(g)
    gh, size = grad(rng, 1, g["o"], ho, wo), (g["h"], g["w"])
    geometry = {"size": size, "stride": g["stride"], "padding": g["padding"], "groups": g["groups"]}
    whole = tc.conv_bwd_x_case(kind, gh, w, **geometry).state["gx"][1]
    if kind == "depthwise":
        parts = [tc.conv_bwd_x_case(kind, gh, w, **geometry, gh_band=b).state["gx"][1] for b in bands(g["c"], tile)]
        np.testing.assert_array_equal(np.concatenate(parts, axis=-1), whole)
        return
    parts = [tc.conv_bwd_x_case(kind, gh, w, **geometry, gx_band=b).state["gx"][1] for b in bands(g["c"], tile)]
    np.testing.assert_array_equal(np.concatenate(parts, axis=-1), whole)
    running = None
    for b in bands(g["o"], tile):
        acc = None if running is None else from_engine_layout(running, (1, g["c"], *size))
        running = tc.conv_bwd_x_case(kind, gh, w, **geometry, gh_band=b, acc=acc).state["gx"][1]
    np.testing.assert_array_equal(running, whole)


def w_update_inputs(data: st.DataObject, kind: str) -> dict:
    rng = rng_of(data)
    g = data.draw(conv_geometries(kind).filter(lambda g: g["groups"] == 1 or kind == "depthwise"))
    full = (g["c"], 1, *g["k"]) if kind == "depthwise" else (g["o"], g["c"], *g["k"])
    channels = channel_list(data, g["c"])
    slice_shape = (len(channels), 1, *g["k"]) if kind == "depthwise" else (g["o"], len(channels), *g["k"])
    out_c = g["c"] if kind == "depthwise" else g["o"]
    # 1/s_w^2 for weight scales around 1e-2, and frozen channels (0 from qas_divisors; inf caught by the kernel)
    inv = (1.0 / np.exp(rng.uniform(np.log(3e-3), np.log(3e-2), out_c)) ** 2).astype(np.float32)
    inv[rng.random(out_c) < 0.15] = data.draw(st.sampled_from([0.0, np.inf]))
    ho, wo = out_size(g)
    return {
        "kind": kind,
        "x_saved": s8(rng, 1, len(channels), g["h"], g["w"]),
        "gh": grad(rng, 1, out_c, ho, wo, scale=data.draw(st.sampled_from([1e-7, 1e-5, 1e-3]))),
        "w_train": s8(rng, *slice_shape, low=-127),
        "inv_w": inv,
        "full": full,
        "channels": channels,
        "stride": g["stride"],
        "padding": g["padding"],
        "x_zero": data.draw(zero_points),
        "rounding": data.draw(st.sampled_from(["nearest", "stochastic"])),
        "tensor_id": data.draw(st.integers(0, 40)),
    }


@KINDS
@SETTINGS
@given(data=st.data())
def test_conv_weight_update_matches_reference(kind: str, data: st.DataObject) -> None:
    args = w_update_inputs(data, kind)
    case = tc.conv_w_update_case("w_update", args.pop("kind"), *[args.pop(k) for k in ("x_saved", "gh", "w_train",
                                 "inv_w")], **args)  # fmt: skip
    assert case.step_status == "ok"
    assert_matches_reference(case)


@KINDS
@SETTINGS
@given(data=st.data())
def test_conv_weight_update_channel_tiles_equal_untiled(kind: str, data: st.DataObject) -> None:
    args = w_update_inputs(data, kind)
    kind = args.pop("kind")
    x, gh, w_train, inv = (args.pop(k) for k in ("x_saved", "gh", "w_train", "inv_w"))
    whole = tc.conv_w_update_case("whole", kind, x, gh, w_train, inv, **args).state["w_train"][1]
    tile = data.draw(st.integers(1, 4))
    current = w_train
    for band in bands(gh.shape[1], tile):
        after = tc.conv_w_update_case("tile", kind, x, gh, current, inv, **args, band=band).state["w_train"][1]
        current = weight_layout(kind).to_ir(after, current.shape)
    np.testing.assert_array_equal(weight_layout(kind).to_engine(current), whole)


@SETTINGS
@given(data=st.data())
def test_bias_update_matches_reference(data: st.DataObject) -> None:
    rng = rng_of(data)
    o, h, w = data.draw(st.integers(1, 20)), data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    b = rng.integers(-(2**20), 2**20, o, dtype=np.int32)
    b[rng.random(o) < 0.1] = data.draw(st.sampled_from([2**31 - 1, -(2**31)]))  # dead channels
    inv = (1.0 / np.exp(rng.uniform(np.log(1e-5), np.log(1e-3), o)) ** 2).astype(np.float32)
    inv[rng.random(o) < 0.1] = data.draw(st.sampled_from([0.0, np.inf, np.nan]))
    gh = grad(rng, 1, o, h, w, scale=data.draw(st.sampled_from([1e-9, 1e-7, 1e-5])))
    band = None
    if data.draw(st.booleans()):
        begin = data.draw(st.integers(0, o - 1))
        band = (begin, data.draw(st.integers(1, o - begin)))
    kwargs = {"rounding": data.draw(st.sampled_from(["nearest", "stochastic"])), "tensor_id": 0x10000 + o, "band": band}
    assert_matches_reference(tc.bias_update_case("bias", gh, b, inv, **kwargs))


@SETTINGS
@given(data=st.data())
def test_linear_bwd_update_matches_reference(data: st.DataObject) -> None:
    rng = rng_of(data)
    i, o = data.draw(st.integers(1, 64)), data.draw(st.integers(1, 12))
    case = tc.linear_bwd_case(
        "linear", s8(rng, 1, i), grad(rng, 1, o, scale=0.1), rng.normal(0, 0.1, (o, i)).astype(np.float32),
        rng.normal(0, 0.1, o).astype(np.float32), x_scale=data.draw(st.floats(float(np.float32(1e-3)), 1.0, width=32)),
        x_zero=data.draw(zero_points),
    )  # fmt: skip
    assert_matches_reference(case)


def single_step(v: float, rounding_mode: str, *, step: int = 0, tensor_id: int = 0) -> int:
    """The integer step bias_update applies for the real step ``v`` (lr 1, one position, divisor 1)."""
    ctx = tte_engine.TrainContext(lr=1.0, head_lr=1.0, step=step)
    b = tte_engine.bias_update_s32(
        ctx, np.array([[-v]], np.float32), np.zeros(1, np.int32), np.ones(1, np.float32), tensor_id=tensor_id,
        rounding=rounding_mode,
    )  # fmt: skip
    return int(b[0])


def test_qas_rounding_at_ties_and_at_the_limits() -> None:
    # nearest is round half to even, also where float32 spacing is 1/2 (2^22 .. 2^23)
    for v in [0.5, 1.5, 2.5, -0.5, -2.5, 2**22 + 0.5, 2**22 + 1.5, -(2**22) - 0.5, 2**23 - 0.5]:
        assert single_step(v, "nearest") == round(v), v
    assert single_step(3e9, "nearest") == 2**30  # clamped to 2^30 first
    assert single_step(-np.inf, "nearest") == 0  # a NaN-free infinite gradient is caught, not applied
    # stochastic is floor(v + u) with u from the hash of (seed 0, step, tensor, element 0)
    for step in range(20):
        u = rounding.stochastic_uniform(0, step, 7, np.array([0]))[0]
        v = np.float32(2.3)
        assert single_step(float(v), "stochastic", step=step, tensor_id=7) == int(np.floor(v + u))
    assert single_step(-(2.0**30) * 4, "stochastic") == -(2**30)


def test_update_kernels_follow_the_step_status() -> None:
    ctx = tte_engine.TrainContext(lr=0.1, head_lr=0.1)
    b, inv = np.arange(4, dtype=np.int32), np.full(4, 1e6, np.float32)
    gh = np.ones((2, 4), np.float32)
    moved = tte_engine.bias_update_s32(ctx, gh, b, inv, tensor_id=0)
    assert not np.array_equal(moved, b) and ctx.status == "ok"
    gh[1, 2] = np.inf
    assert np.array_equal(tte_engine.bias_update_s32(ctx, gh, b, inv, tensor_id=0), b)
    assert ctx.status == "nonfinite-grad"
    # After a failure every later update writes nothing, even on a finite gradient.
    w = np.ones((3, 4), np.float32)
    w_next, b_next, gx = tte_engine.linear_bwd_update_f32(
        ctx, np.zeros(4, np.int8), np.ones(3, np.float32), w, np.zeros(3, np.float32), x_scale=0.1, x_zero=0,
        input_grad=True,
    )  # fmt: skip
    assert np.array_equal(w_next, w) and not b_next.any() and np.allclose(gx, 0.3)
    ctx.status = "ok"
    assert not np.array_equal(tte_engine.bias_update_s32(ctx, np.ones((2, 4), np.float32), b, inv, tensor_id=0), b)


def test_bad_arguments_name_themselves() -> None:
    ctx = tte_engine.TrainContext(lr=0.1, head_lr=0.1)
    gh, b, inv = np.zeros((2, 4), np.float32), np.zeros(4, np.int32), np.ones(4, np.float32)
    with pytest.raises(ValueError, match="rounding='up'"):
        tte_engine.bias_update_s32(ctx, gh, b, inv, tensor_id=0, rounding="up")
    with pytest.raises(ValueError, match="band=.*does not match"):
        tte_engine.bias_update_s32(ctx, gh, b, inv, tensor_id=0, band=(1, 2))
    with pytest.raises(ValueError, match="train_channels must be ascending"):
        tte_engine.pointwise_conv2d_bwd_x_f32(
            np.zeros((2, 2, 3), np.float32), np.zeros((3, 4), np.int8), in_h=2, in_w=2,
            w_train=np.zeros((3, 2), np.int8), train_channels=[2, 1],
        )  # fmt: skip
    with pytest.raises(ValueError, match="mask has shape"):
        tte_engine.mask_scale_f32(np.zeros((2, 3), np.float32), np.zeros(5, np.uint8), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="status='broken'"):
        ctx.status = "broken"


def step_limit_targets(rng: np.random.Generator, spread: float, random: int) -> tuple[np.ndarray, np.ndarray]:
    """Step values of a weight-update test around the limits the update kernels' writing passes take: just
    inside and outside +-254 and +-512, ties included, far beyond (3e9 only with spread 1e5, where the clamp is
    kept), then ``random`` more; and each weight's inverse scale, geometric from 1 to ``spread`` (spread 1: the
    update's bound stays below 2^21 and the clamp is left out)."""
    far = [1500.0] if spread == 1.0 else [1e4, 3e9]
    targets = np.array([0.5, 1.5, 2.5, 253.5, 254.0, 254.5, 511.5, 512.0, 512.5, 513.0, *far], np.float32)
    targets = np.concatenate([targets, -targets, rng.uniform(-1500.0, 1500.0, random).astype(np.float32)])
    return targets, np.geomspace(1.0, spread, targets.size).astype(np.float32)


@pytest.mark.parametrize("rounding_mode", ["nearest", "stochastic"])
@pytest.mark.parametrize("spread", [1.0, 1e5])
def test_pointwise_weight_update_around_the_step_limits(rounding_mode: str, spread: float) -> None:
    """The pointwise update clamps step values to +-512, and leaves the clamp out where the update's bound
    (tte_update_bound) is below 2^21: spread 1 (inv 1 everywhere, steps to +-1500) takes that path, spread 1e5
    (inv up to 1e5, steps to 3e9) the clamped one. The codes stay those of the reference for step values just
    inside and outside +-254 and +-512, ties included, on codes at both ends of int8."""
    rng = np.random.default_rng(5)
    targets, inv = step_limit_targets(rng, spread, 21)
    o, c = targets.size, 6
    gh = np.zeros((1, o, 2, 2), np.float32)
    gh[0, :, 0, 0] = targets / (np.float32(0.05) * inv)  # lr 0.05 (train_cases.new_ctx); x codes 1 at (0, 0)
    gh[0, :, 1, 1] = rng.standard_normal(o).astype(np.float32) * 1e-3
    x = rng.integers(-3, 4, size=(1, c, 2, 2), dtype=np.int8)
    x[0, :, 0, 0] = 1
    w = rng.choice(np.array([-127, -126, -1, 0, 1, 126, 127], np.int8), size=(o, c, 1, 1))
    case = tc.conv_w_update_case(
        "limits", "pointwise", x, gh, w, inv, full=(o, c, 1, 1), channels=list(range(c)), stride=(1, 1),
        padding=(0, 0, 0, 0), x_zero=0, rounding=rounding_mode, tensor_id=3,
    )  # fmt: skip
    assert case.step_status == "ok"
    assert_matches_reference(case)
