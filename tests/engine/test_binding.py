"""The generic binding: tte_ir.kernels' C tables equal the engine's headers, the generated callers are
current, and _core.call / tte_engine.calls.run_call check what they are given."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import ROOT

from .helpers import require_packages

require_packages("tte_engine", "tte_ir")

import tte_ir  # noqa: E402
from tte_engine import _core  # noqa: E402
from tte_engine.calls import run_call  # noqa: E402
from tte_ir.gen_binding import render_binding  # noqa: E402
from tte_ir.kernels import PARAM_STRUCTS, SCRATCH_KERNELS, SIGNATURES, kernel_call  # noqa: E402

INCLUDE = ROOT / "engine" / "python" / "kernel_calls.inc"
HEADERS = [ROOT / "engine" / "include" / "tte" / name for name in ("tte.h", "tte_train.h")]


def _header_text() -> str:
    """Both headers without comments and preprocessor lines, whitespace collapsed."""
    text = "\n".join(path.read_text() for path in HEADERS)
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    text = re.sub(r"//[^\n]*", " ", text)
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return re.sub(r"\s+", " ", text)


def _declaration(text: str) -> tuple[str, str]:
    """``const int32_t *p`` -> (``p``, ``const int32_t *``)."""
    match = re.fullmatch(r"(.*?[\s*])(\w+)(\[\w*\])?", text.strip())
    assert match, f"cannot parse the declaration '{text}'"
    ctype = re.sub(r"\s*\*", " *", match.group(1)).strip() + (match.group(3) or "")
    return match.group(2), re.sub(r"\s+", " ", ctype)


def _structs(text: str) -> dict[str, tuple[tuple[str, str], ...]]:
    structs = {}
    for name, body, alias in re.findall(r"typedef struct (\w+) \{(.*?)\} (\w+);", text):
        assert name == alias
        fields = []
        for statement in filter(str.strip, body.split(";")):
            first, *more = statement.split(",")
            field, ctype = _declaration(first)
            fields.append((field, ctype))
            fields += [(other.strip(), ctype) for other in more]
        structs[name] = tuple(fields)
    return structs


def _prototypes(text: str) -> dict[str, tuple[str, tuple[tuple[str, str], ...]]]:
    prototypes = {}
    for ret, name, params in re.findall(
        r"(?:^|(?<=[;{}]))\s*([A-Za-z_][\w *]*?) ?\*?\b(tte_\w+) ?\(([^()]*)\) ?;", text
    ):
        args = tuple(_declaration(p) for p in params.split(",")) if params.strip() != "void" else ()
        prototypes[name] = (ret.strip(), args)
    return prototypes


def test_committed_binding_is_current() -> None:
    assert INCLUDE.read_text() == render_binding(), (
        "regenerate: python -m tte_ir.gen_binding engine/python/kernel_calls.inc"
    )


def test_param_structs_equal_the_headers() -> None:
    structs = _structs(_header_text())
    assert {name: structs.get(name) for name in PARAM_STRUCTS} == dict(PARAM_STRUCTS)
    descriptors = {n for n in structs if n.endswith("_params")}
    assert descriptors == set(PARAM_STRUCTS), "a descriptor struct of the headers is missing from PARAM_STRUCTS"


def test_signatures_equal_the_headers() -> None:
    prototypes = _prototypes(_header_text())
    kernels = {name.removeprefix("tte_"): args for name, (ret, args) in prototypes.items() if ret == "tte_status"}
    assert kernels == dict(SIGNATURES)
    scratch = {name.removeprefix("tte_").removesuffix("_scratch_size") for name in prototypes if name.endswith("_size")}
    assert scratch == set(SCRATCH_KERNELS)


def test_the_header_parser_sees_a_changed_prototype_and_field() -> None:
    text = _header_text().replace("int accumulate", "int32_t accumulate", 1).replace("pixels, channels", "pixels, c")
    kernels = {n.removeprefix("tte_"): a for n, (r, a) in _prototypes(text).items() if r == "tte_status"}
    assert kernels["conv2d_bwd_x_f32"] != SIGNATURES["conv2d_bwd_x_f32"]
    assert _structs(text)["tte_hwc_params"] == (("pixels", "int32_t"), ("c", "int32_t"))


def test_call_runs_a_kernel_and_converts_descriptor_fields() -> None:
    x1, x2 = np.array([10, -20, 30], np.int8), np.array([1, 2, 3], np.int8)
    y, mask = np.zeros(3, np.int8), np.zeros(1, np.uint8)
    params = {
        "size": 3,
        "m1": np.float32(1.0),
        "m2": 1.0,
        "z1": 0,
        "z2": 0,
        "y_zero": 0,
        "act_min": -128,
        "act_max": 127,
    }
    _core.call("add_fwd_s8", params, [x1, x2, y, mask])
    np.testing.assert_array_equal(y, [11, -18, 33])
    assert mask[0] & 0b111 == 0b111


def test_call_reports_the_kernel_status() -> None:
    y = np.zeros(3, np.int8)
    with pytest.raises(ValueError, match=r"^add_fwd_s8: .*zero point"):
        _core.call("add_fwd_s8", {"size": 3, "z1": 300}, [y.copy(), y.copy(), y, None])


@pytest.mark.parametrize(
    ("kernel", "params", "args", "message"),
    [
        ("max_pool_s8", None, [], r"'max_pool_s8' is not an engine kernel"),
        ("accumulate_f32", None, [2, np.zeros(2, np.float64), np.zeros(2, np.float32), np.zeros(2, np.float32)],
         r"accumulate_f32: acc must be float32, got dtype float64"),
        ("accumulate_f32", None, [2, np.zeros(2, np.float32), np.zeros(2, np.float32), np.zeros(4, np.float32)[::2]],
         r"accumulate_f32: y must be C-contiguous"),
        ("accumulate_f32", None, [2, np.zeros(2, np.float32), np.zeros(2, np.float32)], r"takes 4 arguments"),
        ("accumulate_f32", {"size": 2}, [2, None, None, None], r"params must be None"),
        ("add_fwd_s8", {"sise": 3}, [None] * 4, r"add_fwd_s8: tte_add_params has no field 'sise'"),
        ("add_fwd_s8", {"size": "3"}, [None] * 4, r"add_fwd_s8: size must be an int"),
        ("add_fwd_s8", {"size": 2**40}, [None] * 4, r"add_fwd_s8: size does not fit int32: 1099511627776"),
        ("mask_scale_f32", {}, [None, None, None, None, (0, 1)], r"mask_scale_f32: band must be None"),
        ("bias_update_s32", {}, ["ctx", None, None, None, None, None], r"bias_update_s32: ctx must be a TrainContext"),
        ("bias_update_s32", {}, [None, {"rounding": 0, "tensor": 1}, None, None, None, None],
         r"tte_update_params has no field 'tensor'"),
    ],
)  # fmt: skip
def test_call_refuses_bad_arguments(kernel, params, args, message) -> None:
    with pytest.raises(ValueError, match=message):
        _core.call(kernel, params, args)


def test_call_refuses_a_read_only_output() -> None:
    y = np.zeros(2, np.float32)
    y.flags.writeable = False
    with pytest.raises(ValueError, match="accumulate_f32: y must be writable"):
        _core.call("accumulate_f32", None, [2, np.zeros(2, np.float32), np.zeros(2, np.float32), y])


def test_scratch_size_is_the_kernels_twin() -> None:
    geometry = {"in_h": 9, "in_w": 7, "in_c": 5, "out_c": 6, "kernel_h": 3, "kernel_w": 2}
    window = {"stride_h": 2, "stride_w": 1, "pad_top": 1, "pad_left": 0, "pad_bottom": 1, "pad_right": 1}
    for kernel in SCRATCH_KERNELS:
        twin = getattr(_core, f"{kernel}_scratch_size")(
            **geometry, stride=(2, 1), padding=(1, 0, 1, 1), **({"groups": 1} if kernel == "conv2d_fwd_s8" else {})
        )
        assert _core.scratch_size(kernel, {**geometry, **window, "groups": 1}) == twin
    with pytest.raises(ValueError, match="'add_fwd_s8' is not an engine kernel with a scratch-size twin"):
        _core.scratch_size("add_fwd_s8", {})


def _residual_add_graph() -> tte_ir.Graph:
    b = tte_ir.GraphBuilder("sum")
    q = tte_ir.QuantParams.per_tensor(0.1, 0)
    x1 = b.input("x1", (1, 2, 2, 3), tte_ir.DType.INT8, q)
    x2 = b.input("x2", (1, 2, 2, 3), tte_ir.DType.INT8, q)
    y = b.tensor("y", (1, 2, 2, 3), tte_ir.DType.INT8, q)
    b.node("add", tte_ir.Op.ADD, [x1, x2], [y], act_min=-128, act_max=127)
    b.output(y)
    return b.build()


def test_run_call_stores_the_result_in_engine_layout() -> None:
    graph = _residual_add_graph()
    rng = np.random.default_rng(0)
    values = {name: rng.integers(-50, 50, (2, 3, 2), dtype=np.int8) for name in ("x1", "x2")}  # [H][W][C]
    run_call(kernel_call(graph, graph.nodes[0]), graph, values)
    assert values["y"].shape == (2, 3, 2)
    np.testing.assert_array_equal(values["y"], values["x1"] + values["x2"])


def test_run_call_checks_buffers_against_the_tensor_specs() -> None:
    graph = _residual_add_graph()
    values = {"x1": np.zeros((2, 3, 2), np.int8), "x2": np.zeros((2, 3), np.int8)}
    with pytest.raises(ValueError, match=r"add_fwd_s8: argument 'x2' \(tensor 'x2'\) holds int8\[2, 3\]"):
        run_call(kernel_call(graph, graph.nodes[0]), graph, values)
    with pytest.raises(ValueError, match="node 'add' reads tensor 'x2', which has no value yet"):
        run_call(kernel_call(graph, graph.nodes[0]), graph, {"x1": values["x1"]})
