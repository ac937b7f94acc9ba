"""Every kernel bit-exact against the numpy reference (tte_ir.reference) on random shapes and
quantization parameters, plus the edge cases NUMERICS.md singles out; bad arguments raise
ValueError naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import require_packages

require_packages("tte_engine", "tte_ir")

import firmware_data as fd  # noqa: E402

import tte_engine  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
I32_MIN, I32_MAX = -(2**31), 2**31 - 1

zero_points = st.one_of(st.sampled_from([-128, 127, 0]), st.integers(-128, 127))


# Multipliers: realistic scales, exact halves and quarters (ties), and the tiny ones of dead channels.
def f32(v: float) -> float:
    return float(np.float32(v))


multipliers = st.one_of(
    st.floats(f32(1e-5), f32(0.2), width=32),
    st.sampled_from([0.5, 0.25, 1.0, f32(3.9e-9)]),
    st.floats(f32(0.2), 64.0, width=32),
)
biases = st.one_of(st.integers(-(2**15), 2**15), st.sampled_from([I32_MIN, I32_MAX, I32_MIN + 1, I32_MAX - 1]))


@st.composite
def act_ranges(draw) -> tuple[int, int]:
    lo = draw(st.one_of(st.just(-128), st.integers(-128, 127)))
    hi = draw(st.one_of(st.just(127), st.integers(lo, 127)))
    return lo, hi


def codes(draw, shape, low=-128) -> np.ndarray:
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(low, 128, size=shape, dtype=np.int8)


def assert_case(case: fd.Case) -> None:
    outputs = fd.run_case(case)
    for name, expected in case.expected.items():
        # Compare bits, so float32 outputs must match exactly too (and NaN would not hide); masks bit-packed.
        got = outputs[name]
        assert got.dtype == expected.dtype and got.shape == expected.shape, f"{case.name} {name}"
        np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8), err_msg=f"{case.name} {name}")


@st.composite
def conv_cases(draw, kind: str) -> fd.Case:
    """Shapes with kh != kw, sh != sw and padding that differs per side (TFLite SAME: more at the
    bottom/right), square ones among them."""
    groups_per = draw(st.integers(1, 3))
    if kind == "depthwise":
        c = o = groups = draw(st.integers(2, 12))  # one channel would also be a pointwise conv
        kh = draw(st.integers(1, 7))
        kw = draw(st.one_of(st.just(kh), st.integers(1, 7)))
        stride = (draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2])))
    elif kind == "pointwise":
        c, o, groups, kh, kw = draw(st.integers(2, 24)), draw(st.integers(1, 12)), 1, 1, 1
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    else:
        groups = draw(st.integers(1, 3))
        c, o = groups * draw(st.integers(1, 4)), groups * groups_per
        kh, kw = draw(st.integers(1, 10)), draw(st.integers(1, 5))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if kind == "pointwise":
        padding = (0, 0, 0, 0)
    else:
        top, bottom = (draw(st.integers(0, kh // 2 + 1)) for _ in range(2))
        left, right = (draw(st.integers(0, kw // 2 + 1)) for _ in range(2))
        padding = (top, left, bottom, right)
    h = draw(st.integers(max(1, kh - padding[0] - padding[2]), 13))
    w = draw(st.integers(max(1, kw - padding[1] - padding[3]), 13))
    lo, hi = draw(act_ranges())
    bias = np.array(draw(st.lists(biases, min_size=o, max_size=o)), dtype=np.int32)
    multiplier = np.array(draw(st.lists(multipliers, min_size=o, max_size=o)), dtype=np.float32)
    x = codes(draw, (1, c, h, w))
    weights = codes(draw, (o, c // groups, kh, kw), low=-127)
    return fd.conv_case(
        kind,
        x,
        weights,
        bias,
        multiplier,
        stride=stride,
        padding=padding,
        groups=groups,
        x_zero=draw(zero_points),
        y_zero=draw(zero_points),
        act_min=lo,
        act_max=hi,
        dense=kind == "dense",
    )


@pytest.mark.parametrize("kind", ["dense", "depthwise", "pointwise"])
@SETTINGS
@given(data=st.data())
def test_conv_matches_reference(kind: str, data: st.DataObject) -> None:
    case = data.draw(conv_cases(kind))
    assert (
        case.kernel
        == {"dense": "conv2d", "depthwise": "depthwise_conv2d", "pointwise": "pointwise_conv2d"}[kind] + "_fwd_s8"
    )
    assert_case(case)


@SETTINGS
@given(data=st.data())
def test_add_matches_reference(data: st.DataObject) -> None:
    shape = (1, data.draw(st.integers(1, 8)), data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9)))
    lo, hi = data.draw(act_ranges())
    case = fd.add_case(
        "add",
        codes(data.draw, shape),
        codes(data.draw, shape),
        m1=np.float32(data.draw(multipliers)),
        m2=np.float32(data.draw(multipliers)),
        z1=data.draw(zero_points),
        z2=data.draw(zero_points),
        y_zero=data.draw(zero_points),
        act_min=lo,
        act_max=hi,
    )
    assert_case(case)


@SETTINGS
@given(data=st.data())
def test_global_avg_pool_matches_reference(data: st.DataObject) -> None:
    shape = (1, data.draw(st.integers(1, 16)), data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12)))
    hw = shape[2] * shape[3]
    m = np.float32(data.draw(st.floats(f32(0.1), 2.0, width=32)) / hw)
    case = fd.pool_case(
        "pool", codes(data.draw, shape), multiplier=m, x_zero=data.draw(zero_points), y_zero=data.draw(zero_points)
    )
    assert_case(case)


@SETTINGS
@given(data=st.data())
def test_linear_s8_matches_reference(data: st.DataObject) -> None:
    i, o = data.draw(st.integers(1, 200)), data.draw(st.integers(1, 16))
    lo, hi = data.draw(act_ranges())
    case = fd.linear_s8_case(
        "linear_s8",
        codes(data.draw, (1, i)),
        codes(data.draw, (o, i), low=-127),
        np.array(data.draw(st.lists(biases, min_size=o, max_size=o)), dtype=np.int32),
        np.array(data.draw(st.lists(multipliers, min_size=o, max_size=o)), dtype=np.float32),
        x_zero=data.draw(zero_points),
        y_zero=data.draw(zero_points),
        act_min=lo,
        act_max=hi,
    )
    assert_case(case)


@SETTINGS
@given(data=st.data())
def test_linear_f32_matches_reference_bit_for_bit(data: st.DataObject) -> None:
    i, o = data.draw(st.integers(1, 300)), data.draw(st.integers(1, 12))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    w = rng.normal(0, 0.1, size=(o, i)).astype(np.float32)
    b = rng.normal(0, 0.5, size=o).astype(np.float32)
    scale = np.float32(data.draw(st.floats(f32(1e-3), 1.0, width=32)))
    assert_case(
        fd.linear_f32_case("linear_f32", codes(data.draw, (1, i)), w, b, x_scale=scale, x_zero=data.draw(zero_points))
    )


@pytest.mark.parametrize("case", fd.golden_set(), ids=lambda c: c.name)
def test_golden_cases_on_host(case: fd.Case) -> None:
    """The cases the firmware runs (7x7 depthwise stride 2 on odd sizes, zero points -128/127,
    saturated biases, ties) pass on the host too."""
    assert_case(case)


def test_round_half_to_even_on_every_code() -> None:
    y = fd.run_case(fd.half_even_ties_case())["y"]
    # Computed independently of both implementations: Python's round() is round half to even.
    assert y.reshape(-1).tolist() == [round(v / 2) for v in range(-128, 128)]


def test_saturated_bias_does_not_wrap() -> None:
    x = np.full((1, 4, 1, 1), 127, np.int8)
    w = np.full((2, 4, 1, 1), 127, np.int8)
    bias = np.array([I32_MAX, I32_MIN], np.int32)
    case = fd.conv_case(
        "sat", x, w, bias, np.array([1e-6, 1e-6], np.float32), stride=1, padding=0, groups=1, x_zero=-128, y_zero=0
    )
    outputs = fd.run_case(case)
    y, mask = outputs["y"], np.unpackbits(outputs["mask"], bitorder="little")[:2]
    # acc = 4*255*127 > 0: +2^31-1 saturates (not wraps to negative), -2^31 + acc stays negative.
    assert y.reshape(-1).tolist() == [127, -128] and mask.reshape(-1).tolist() == [False, False]


def test_mask_packing_is_little_endian_in_output_order() -> None:
    q = np.array([[-128, 0, 127, 5, -128, 127, 0, 0, 127]], np.int8)
    _, packed = tte_engine.add_fwd_s8(q, q, m1=1.0, m2=1.0, z1=0, z2=0, y_zero=0, return_mask=True)
    inside = [False, True, False, True, False, False, True, True, False]  # 2q inside [-128, 127]
    assert packed.tolist() == [sum(1 << i for i, b in enumerate(inside[:8]) if b), int(inside[8])]


def test_scratch_sizes_are_zero_for_reference_kernels() -> None:
    geometry = {"in_h": 8, "in_w": 8, "in_c": 4, "out_c": 4, "kernel_h": 3, "kernel_w": 3}
    assert tte_engine.conv2d_fwd_s8_scratch_size(**geometry, padding=1) == 0
    assert tte_engine.depthwise_conv2d_fwd_s8_scratch_size(**geometry, groups=4) == 0
    assert tte_engine.pointwise_conv2d_fwd_s8_scratch_size(**{**geometry, "kernel_h": 1, "kernel_w": 1}) == 0


def test_conv_binding_takes_a_stride_per_axis_and_padding_per_side() -> None:
    """The direct binding's stride (sh, sw) and padding (top, left, bottom, right) reach the kernel:
    DS-CNN's 10x4 stride-2 stem padded (4, 1, 5, 2) on a 49x10 map, against the reference."""
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (1, 1, 49, 10), dtype=np.int8)
    w = rng.integers(-127, 128, (3, 1, 10, 4), dtype=np.int8)
    bias, multiplier = np.array([5, -9, 100], np.int32), np.full(3, 3e-3, np.float32)
    geometry = {"stride": (2, 2), "padding": (4, 1, 5, 2)}
    want = fd.reference.conv2d(x, w, bias, multiplier, groups=1, x_zero=-3, y_zero=4, **geometry)
    assert want.shape == (1, 3, 25, 5)
    got = tte_engine.conv2d_fwd_s8(
        fd.to_engine_layout(x), w.transpose(0, 2, 3, 1).copy(), bias, multiplier, x_zero=-3, y_zero=4, **geometry
    )
    np.testing.assert_array_equal(got, fd.to_engine_layout(want))


def _conv_args(**changes):
    args = {
        "x": np.zeros((5, 5, 4), np.int8),
        "w": np.zeros((2, 3, 3, 4), np.int8),
        "bias": np.zeros(2, np.int32),
        "multiplier": np.ones(2, np.float32),
        "x_zero": 0,
        "y_zero": 0,
    }
    args.update(changes)
    return args


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"x": np.zeros((5, 5, 4), np.int16)}, "x must be"),
        ({"x": np.zeros((5, 10, 4), np.int8)[:, ::2]}, "non-contiguous"),
        ({"x": np.zeros((5, 5), np.int8)}, "x must be"),
        ({"x": [[[0]]]}, "got list"),
        ({"x": np.zeros((0, 5, 4), np.int8)}, "x must be"),
        ({"w": np.zeros((2, 3, 3, 3), np.int8)}, "w has shape"),
        ({"w": np.zeros((2, 9, 9, 4), np.int8)}, "does not fit"),
        ({"bias": np.zeros(3, np.int32)}, "bias has shape"),
        ({"bias": np.zeros(2, np.int64)}, "bias must be"),
        ({"multiplier": np.ones(2, np.float64)}, "multiplier must be"),
        ({"x_zero": 128}, "x_zero=128"),
        ({"y_zero": -129}, "y_zero=-129"),
        ({"act_min": 10, "act_max": 5}, "act_max=5"),
        ({"stride": 0}, "stride=0"),
        ({"padding": -1}, "padding=-1"),
        ({"stride": (1, 0)}, "stride=0"),
        ({"padding": (0, 0, -1, 0)}, "padding=-1"),
        ({"padding": (1, 1, 1)}, "padding must be an int or 4 ints"),
        ({"stride": "2"}, "stride must be an int or 2 ints"),
        ({"groups": 3}, "groups=3"),
        ({"w": np.zeros((2, 3, 3, 40000), np.int8), "x": np.zeros((3, 3, 40000), np.int8)}, "TTE_MAX_REDUCTION"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(changes: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        tte_engine.conv2d_fwd_s8(**_conv_args(**changes))


def test_misaligned_buffer_is_refused() -> None:
    raw = np.zeros(4 * 2 + 1, np.uint8)[1:].view(np.float32)  # float32 view at an odd address
    with pytest.raises(ValueError, match="misaligned"):
        tte_engine.conv2d_fwd_s8(**_conv_args(multiplier=raw))


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda q: tte_engine.add_fwd_s8(q, q[:1], m1=1, m2=1, z1=0, z2=0, y_zero=0), "x2 has shape"),
        (lambda q: tte_engine.global_avg_pool_fwd_s8(q[0], multiplier=1, x_zero=0, y_zero=0), "x must be"),
        (
            lambda q: tte_engine.depthwise_conv2d_fwd_s8(
                q, np.zeros((3, 3, 2), np.int8), np.zeros(4, np.int32), np.ones(4, np.float32), x_zero=0, y_zero=0
            ),
            "w has shape",
        ),
        (
            lambda q: tte_engine.pointwise_conv2d_fwd_s8(
                q, np.zeros((2, 5), np.int8), np.zeros(2, np.int32), np.ones(2, np.float32), x_zero=0, y_zero=0
            ),
            "w has shape",
        ),
        (
            lambda q: tte_engine.linear_fwd_s8(
                q[0, 0], np.zeros((2, 5), np.int8), np.zeros(2, np.int32), np.ones(2, np.float32), x_zero=0, y_zero=0
            ),
            "w has shape",
        ),
        (
            lambda q: tte_engine.linear_fwd_f32(
                q[0, 0], np.zeros((2, 4), np.float32), np.zeros(3, np.float32), x_scale=1.0, x_zero=0
            ),
            "bias has shape",
        ),
    ],
)
def test_other_kernels_check_arguments(call, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        call(np.zeros((3, 3, 4), np.int8))


def test_unpack_mask_checks_its_size() -> None:
    with pytest.raises(ValueError, match="mask must be"):
        tte_engine.unpack_mask(np.zeros(3, np.uint8), (5, 5))


def test_kernel_call_c_spells_the_signature_in_c_order() -> None:
    decls, call = fd.kernel_call_c(
        "add_fwd_s8", {"size": 4, "m1": np.float32(0.5), "z1": I32_MIN}, {"y": "out", "x1": "a", "x2": "b"}
    )
    assert call == "tte_add_fwd_s8(&p, a, b, out, NULL)"  # mask: a pointer not given is NULL
    assert decls == [
        "static const tte_add_params p = {.size = 4, .m1 = 0x1.0000000000000p-1f, .z1 = (-2147483647 - 1)};"
    ]
    decls, _ = fd.kernel_call_c("gather_channels_s8", {"channels": (0, 3), "count": 2}, {})
    assert decls[0] == "static const int32_t p_channels[2] = {0, 3};" and ".channels = p_channels" in decls[1]


@pytest.mark.parametrize(
    ("kernel", "params", "args", "named"),
    [
        ("add_fwd_s8", {"sizes": 4}, {}, "no fields"),
        ("add_fwd_s8", {}, {"z": "q"}, "no arguments"),
        ("accumulate_f32", None, {"acc": "a"}, "'size'"),
    ],
)
def test_kernel_call_c_refuses_what_the_signature_lacks(kernel, params, args, named) -> None:
    with pytest.raises(ValueError, match=named):
        fd.kernel_call_c(kernel, params, args)
