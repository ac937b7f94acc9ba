"""The table activation and channel-wise multiply kernels (lut_s8, lut_bwd_f32, mul_fwd_s8,
mul_bwd_f32) against the numpy reference, bit for bit (their float sums run in the reference's
order), on the host through the generic binding and under QEMU Cortex-M7; and their argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import QEMU_BOARDS, require_packages, run_qemu

require_packages("tte_engine", "tte_ir")

import firmware_data as fd  # noqa: E402

from tte_engine import _core  # noqa: E402
from tte_ir import reference  # noqa: E402
from tte_ir.layout import to_engine_layout  # noqa: E402
from tte_ir.quant import LUT_FUNCTIONS, lut_tables, mul_multiplier  # noqa: E402
from tte_ir.reference_train import lut_bwd, mul_bwd  # noqa: E402

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
zero_points = st.one_of(st.sampled_from([-128, 127, 0]), st.integers(-128, 127))
scales = st.floats(1e-3, 0.2)


def _packed(mask: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(mask, dtype=bool).reshape(-1), bitorder="little")


def assert_case(case: fd.Case) -> None:
    outputs = fd.run_case(case)
    for name, expected in case.expected.items():
        got = outputs[name]
        assert got.dtype == expected.dtype and got.shape == expected.shape, f"{case.name} {name}"
        np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8), err_msg=f"{case.name} {name}")


def lut_case(name: str, x: np.ndarray, function: str, s_x: float, z_x: int, s_y: float, z_y: int) -> fd.Case:
    table, _ = lut_tables(function, s_x, z_x, s_y, z_y)
    y = reference.lut(x, table)
    return fd.Case(name, "lut_s8", {"size": x.size}, {"x": x.ravel(), "table": table}, {"y": y.ravel()})


def lut_bwd_case(name: str, g: np.ndarray, x: np.ndarray, slope: np.ndarray) -> fd.Case:
    gx = lut_bwd(g, x, slope)
    return fd.Case(
        name, "lut_bwd_f32", {"size": x.size}, {"g": g.ravel(), "x": x.ravel(), "slope": slope}, {"gx": gx.ravel()}
    )


def _mul_params(a: np.ndarray, m: np.float32, a_zero: int, b_zero: int, y_zero: int = 0, lo: int = -128, hi: int = 127):
    _, channels, height, width = a.shape
    return {
        "pixels": height * width, "channels": channels, "m": m, "a_zero": a_zero, "b_zero": b_zero,
        "y_zero": y_zero, "act_min": lo, "act_max": hi,
    }  # fmt: skip


def mul_case(name, a, b, *, m, a_zero, b_zero, y_zero, lo=-128, hi=127) -> fd.Case:
    y, mask = reference.mul(
        a, b, m=m, a_zero=a_zero, b_zero=b_zero, y_zero=y_zero, act_min=lo, act_max=hi, return_mask=True
    )
    params = _mul_params(a, m, a_zero, b_zero, y_zero, lo, hi)
    inputs = {"a": to_engine_layout(a), "b": b.ravel()}
    return fd.Case(
        name, "mul_fwd_s8", params, inputs, {"y": to_engine_layout(y), "mask": _packed(to_engine_layout(mask))}
    )


def mul_bwd_case(name, g, mask, a, b, *, m, a_zero, b_zero, outputs=("ga", "gb")) -> fd.Case:
    ga, gb = mul_bwd(g, mask, a, b, m=m, a_zero=a_zero, b_zero=b_zero)
    inputs = {
        "g": to_engine_layout(g), "mask": _packed(to_engine_layout(mask)), "a": to_engine_layout(a), "b": b.ravel(),
    }  # fmt: skip
    expected = {"ga": to_engine_layout(ga), "gb": gb.ravel()}
    return fd.Case(name, "mul_bwd_f32", _mul_params(a, m, a_zero, b_zero), inputs, {k: expected[k] for k in outputs})


def _rng(data: st.DataObject) -> np.random.Generator:
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))


def _codes(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


@SETTINGS
@given(data=st.data())
def test_lut_matches_reference(data: st.DataObject) -> None:
    rng = _rng(data)
    x = _codes(rng, data.draw(st.sampled_from([(1, 256), (1, 3, 5, 7), (1, 1, 1, 1)])))
    x.flat[: min(256, x.size)] = np.arange(-128, 128)[: min(256, x.size)]  # every code, where it fits
    function = data.draw(st.sampled_from(LUT_FUNCTIONS))
    args = (data.draw(scales), data.draw(zero_points), data.draw(st.floats(1e-3, 0.05)), data.draw(zero_points))
    assert_case(lut_case("lut", x, function, *args))


@SETTINGS
@given(data=st.data())
def test_lut_bwd_matches_reference_bit_for_bit(data: st.DataObject) -> None:
    rng = _rng(data)
    shape = (1, data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6)))
    x = _codes(rng, shape)
    g = rng.standard_normal(shape).astype(np.float32)
    function = data.draw(st.sampled_from(LUT_FUNCTIONS))
    _, slope = lut_tables(
        function, data.draw(scales), data.draw(zero_points), data.draw(scales), data.draw(zero_points)
    )
    assert_case(lut_bwd_case("lut_bwd", g, x, slope))


@SETTINGS
@given(data=st.data())
def test_mul_matches_reference(data: st.DataObject) -> None:
    rng = _rng(data)
    c = data.draw(st.integers(1, 9))
    a = _codes(rng, (1, c, data.draw(st.integers(1, 7)), data.draw(st.integers(1, 7))))
    b = _codes(rng, (1, c, 1, 1))
    lo = data.draw(st.one_of(st.just(-128), st.integers(-128, 127)))
    hi = data.draw(st.one_of(st.just(127), st.integers(lo, 127)))
    m = mul_multiplier(data.draw(scales), data.draw(st.floats(1 / 255, 0.05)), data.draw(st.floats(1e-3, 0.1)))
    if data.draw(st.booleans()):
        m = np.float32(data.draw(st.sampled_from([0.5, 0.25, 1 / 1024])))  # exact ties of rne
    case = mul_case(
        "mul", a, b, m=m, a_zero=data.draw(zero_points), b_zero=data.draw(zero_points), y_zero=data.draw(zero_points),
        lo=lo, hi=hi,
    )  # fmt: skip
    assert_case(case)


@SETTINGS
@given(data=st.data())
def test_mul_bwd_matches_reference_bit_for_bit(data: st.DataObject) -> None:
    rng = _rng(data)
    c = data.draw(st.integers(1, 9))
    shape = (1, c, data.draw(st.integers(1, 7)), data.draw(st.integers(1, 7)))
    a, b = _codes(rng, shape), _codes(rng, (1, c, 1, 1))
    g = (rng.standard_normal(shape) * 1e-2).astype(np.float32)
    mask = rng.random(shape) < 0.8
    outputs = data.draw(st.sampled_from([("ga", "gb"), ("ga",), ("gb",)]))
    m = np.float32(data.draw(st.floats(1e-4, 0.5)))
    case = mul_bwd_case(
        "mul_bwd", g, mask, a, b, m=m, a_zero=data.draw(zero_points), b_zero=data.draw(zero_points), outputs=outputs
    )
    assert_case(case)


def test_mul_bwd_gradient_of_the_gate_sums_pixels_in_ascending_order() -> None:
    """gb sums 1e8 then -1e8 then 1: float32 gives 1 in this order and 0 in the reverse one."""
    a = np.array([1, -1, 1], np.int8).reshape(1, 1, 3, 1)
    b = np.ones((1, 1, 1, 1), np.int8)
    g = np.array([1e8, 1e8, 1.0], np.float32).reshape(1, 1, 3, 1)
    case = mul_bwd_case("order", g, np.ones(g.shape, bool), a, b, m=np.float32(1.0), a_zero=0, b_zero=0)
    assert case.expected["gb"].tolist() == [1.0]
    assert_case(case)


@pytest.mark.parametrize(
    ("kernel", "params", "args", "message"),
    [
        ("lut_s8", {"size": 0}, [np.zeros(1, np.int8), np.zeros(256, np.int8), np.zeros(1, np.int8)], "SHAPE|size"),
        ("lut_s8", {"size": 4}, [np.zeros(4, np.int8), None, np.zeros(4, np.int8)], "NULL|table"),
        ("mul_fwd_s8", {"pixels": 2, "channels": 2, "a_zero": 200}, [np.zeros(4, np.int8)] * 3 + [None], "QUANT|zero"),
        (
            "mul_bwd_f32",
            {"pixels": 1, "channels": 2},
            [np.zeros(2, np.float32), np.zeros(1, np.uint8), np.zeros(2, np.int8), np.zeros(2, np.int8), None, None],
            "NULL",
        ),
    ],
)
def test_bad_arguments_are_refused(kernel, params, args, message) -> None:
    with pytest.raises(ValueError, match=message):
        _core.call(kernel, params, args)


def _golden_cases() -> list[fd.Case]:
    rng = np.random.default_rng(12)
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 4, 8, 8)
    a, b = _codes(rng, (1, 5, 3, 7)), _codes(rng, (1, 5, 1, 1))
    g = rng.standard_normal((1, 5, 3, 7)).astype(np.float32)
    cases = [lut_case(f"lut_{f}", x, f, 0.047, -9, 0.031, -100) for f in LUT_FUNCTIONS]
    _, slope = lut_tables("hard_swish", 0.047, -9, 0.031, -100)
    cases.append(lut_bwd_case("lut_bwd", rng.standard_normal(x.shape).astype(np.float32), x, slope))
    cases.append(mul_case("mul", a, b, m=mul_multiplier(0.05, 1 / 255, 0.02), a_zero=-7, b_zero=-128, y_zero=3))
    cases.append(
        mul_bwd_case("mul_bwd", g, rng.random(g.shape) < 0.8, a, b, m=np.float32(0.0123), a_zero=-7, b_zero=-128)
    )
    return cases


@pytest.mark.parametrize("case", _golden_cases(), ids=lambda c: c.name)
def test_golden_cases_pass_on_the_host(case: fd.Case) -> None:
    """The cases the QEMU test runs agree with the reference on the host."""
    assert_case(case)


@pytest.mark.qemu
@pytest.mark.slow
def test_kernels_are_bit_exact_under_qemu_cortex_m7(board_build, tmp_path) -> None:
    """The same cases on Cortex-M7 (QEMU mps2-an500): every output buffer equals the host's byte for byte."""
    source = tmp_path / "lut_mul_cases.c"
    cases = [case.call_case() for case in _golden_cases()]
    source.write_text(fd.golden_c(cases))
    board = next(b for b, machine in QEMU_BOARDS.items() if machine == "mps2-an500")
    build = board_build(board, TTE_GOLDEN_CASES=source)
    status, output = run_qemu("mps2-an500", build / "tte_golden.elf", timeout=120)
    assert status == 0, output
    for case in cases:
        assert f"CASE {case.name} PASS" in output, output
