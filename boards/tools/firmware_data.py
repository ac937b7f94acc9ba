"""Test data for the firmware programs in boards/programs, as C source.

``golden``: kernel cases whose inputs are drawn from a seeded generator and whose expected outputs
and clamp masks come from the numpy reference (``tte_ir.reference``), plus the training-kernel cases
of :mod:`train_cases` (expected: the host engine); ``golden_main.c`` runs them on the target and
prints PASS/FAIL per case. The host tests (tests/engine) build their cases with
the same :func:`conv_case` ... :func:`linear_f32_case` functions, so a case means the same thing on
the host and on the microcontroller.

``forward``: a whole ``tte_ir`` graph lowered by :func:`tte_engine.graph.lower` (the same kernel
calls the host runs) with its constants in flash, one static arena and a fixed input;
``forward_main.c`` prints a fingerprint per layer and the logits, which the tests compare with
the host engine.

Usage::

    python boards/tools/firmware_data.py golden OUT.c
    python boards/tools/firmware_data.py forward MODEL.pkl OUT.c [--head fp32|int8] [--seed N]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import train_cases

from tte_engine import _core
from tte_engine.graph import Step, conv_kernel, lower, to_engine_layout

I32_MIN = -(2**31)


@dataclass(frozen=True)
class Case:
    """One kernel call with its expected result, all in the engine's layout."""

    name: str
    step: Step
    inputs: tuple[np.ndarray, ...]
    expected: np.ndarray
    mask: np.ndarray | None  # bool, the shape of ``expected``; None for float outputs


def run_case(case: Case) -> tuple[np.ndarray, np.ndarray | None]:
    """The host engine's output (and unpacked mask) for ``case``."""
    from tte_engine import unpack_mask

    fn = getattr(_core, case.step.kernel)
    if case.mask is None:
        return fn(*case.inputs, *case.step.arrays, **case.step.params), None
    y, mask = fn(*case.inputs, *case.step.arrays, **case.step.params, return_mask=True)
    return y, unpack_mask(mask, y.shape)


def _step(name: str, kernel: str, inputs: Sequence[np.ndarray], out_shape: Iterable[int], arrays, params) -> Step:
    return Step(
        node=name,
        kernel=kernel,
        inputs=tuple(f"x{i}" for i in range(len(inputs))),
        output="y",
        in_shapes=tuple(a.shape for a in inputs),
        out_shape=tuple(out_shape),
        arrays=tuple(np.ascontiguousarray(a) for a in arrays),
        params=params,
    )


def conv_case(
    name, x, w, b, multiplier, *, stride, padding, groups, x_zero, y_zero, act_min=-128, act_max=127, dense=False
) -> Case:
    """A conv2d case from IR-layout arguments (``x [1,C,H,W]``, ``w [O,C/g,KH,KW]``), run by the kernel
    the engine picks for it, or by the dense kernel when ``dense`` (which must handle every shape)."""
    from tte_ir import reference

    y, mask = reference.conv2d(
        x,
        w,
        b,
        multiplier,
        stride=stride,
        padding=padding,
        groups=groups,
        x_zero=x_zero,
        y_zero=y_zero,
        act_min=act_min,
        act_max=act_max,
        return_mask=True,
    )
    kernel, wl, geometry = conv_kernel(w, x.shape[1], stride=stride, padding=padding, groups=groups)
    if dense:
        kernel, wl, geometry = (
            "conv2d_fwd_s8",
            w.transpose(0, 2, 3, 1),
            {"stride": stride, "padding": padding, "groups": groups},
        )
    params = {**geometry, "x_zero": x_zero, "y_zero": y_zero, "act_min": act_min, "act_max": act_max}
    xe, ye = to_engine_layout(x), to_engine_layout(y)
    step = _step(name, kernel, [xe], ye.shape, (wl, b, multiplier), params)
    return Case(name, step, (xe,), ye, to_engine_layout(mask))


def add_case(name, q1, q2, *, m1, m2, z1, z2, y_zero, act_min=-128, act_max=127) -> Case:
    """An add case from IR-layout inputs (any shape, the same for both)."""
    from tte_ir import reference

    y, mask = reference.add(
        q1, q2, m1=m1, m2=m2, z1=z1, z2=z2, y_zero=y_zero, act_min=act_min, act_max=act_max, return_mask=True
    )
    params = {"m1": m1, "m2": m2, "z1": z1, "z2": z2, "y_zero": y_zero, "act_min": act_min, "act_max": act_max}
    step = _step(name, "add_fwd_s8", [q1, q2], y.shape, (), params)
    return Case(name, step, (np.ascontiguousarray(q1), np.ascontiguousarray(q2)), y, mask)


def pool_case(name, x, *, multiplier, x_zero, y_zero) -> Case:
    """A global average pool case from an IR-layout input ``x [1,C,H,W]``."""
    from tte_ir import reference

    y, mask = reference.global_avg_pool(x, multiplier=multiplier, x_zero=x_zero, y_zero=y_zero, return_mask=True)
    params = {"multiplier": multiplier, "x_zero": x_zero, "y_zero": y_zero}
    xe = to_engine_layout(x)
    step = _step(name, "global_avg_pool_fwd_s8", [xe], (x.shape[1],), (), params)
    return Case(name, step, (xe,), y.reshape(-1), mask.reshape(-1))


def linear_s8_case(name, x, w, b, multiplier, *, x_zero, y_zero, act_min=-128, act_max=127) -> Case:
    """An int8 linear case from IR-layout arguments (``x [1,I]``, ``w [O,I]``)."""
    from tte_ir import reference

    y, mask = reference.linear_s8(
        x, w, b, multiplier, x_zero=x_zero, y_zero=y_zero, act_min=act_min, act_max=act_max, return_mask=True
    )
    params = {"x_zero": x_zero, "y_zero": y_zero, "act_min": act_min, "act_max": act_max}
    step = _step(name, "linear_fwd_s8", [x[0]], (w.shape[0],), (w, b, multiplier), params)
    return Case(name, step, (np.ascontiguousarray(x[0]),), y[0], mask[0])


def linear_f32_case(name, x, w, b, *, x_scale, x_zero) -> Case:
    """A float32 head case; the reference sums in the kernel's order, so it is bit-exact too."""
    from tte_ir import reference

    y = reference.linear_f32(x, w, b, x_scale=x_scale, x_zero=x_zero)
    step = _step(name, "linear_fwd_f32", [x[0]], (w.shape[0],), (w, b), {"x_scale": x_scale, "x_zero": x_zero})
    return Case(name, step, (np.ascontiguousarray(x[0]),), y[0], None)


def _s8(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def _w8(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(-127, 128, size=shape, dtype=np.int8)


def _conv_random(rng, name, c, o, h, w, k, stride, padding, groups, **quant) -> Case:
    """A conv case with random codes, biases and multipliers (float32, log-uniform)."""
    weights = _w8(rng, o, c // groups, k, k)
    bias = rng.integers(-(2**14), 2**14, size=o, dtype=np.int32)
    multiplier = np.exp(rng.uniform(np.log(1e-4), np.log(1e-2), size=o)).astype(np.float32)
    q = {"x_zero": int(rng.integers(-128, 128)), "y_zero": int(rng.integers(-128, 128)), **quant}
    return conv_case(
        name, _s8(rng, 1, c, h, w), weights, bias, multiplier, stride=stride, padding=padding, groups=groups, **q
    )


def half_even_ties_case() -> Case:
    """A pointwise conv computing ``v = 0.5 * x`` for every code ``x``: odd ``x`` lands on .5, where
    round half to even must pick the even neighbour."""
    every_code = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 16, 16)
    one = np.ones((1, 1, 1, 1), np.int8)
    half = np.array([0.5], np.float32)
    return conv_case(
        "pw_ties_half_even",
        every_code,
        one,
        np.zeros(1, np.int32),
        half,
        stride=1,
        padding=0,
        groups=1,
        x_zero=0,
        y_zero=0,
    )


def golden_set(seed: int = 0) -> list[Case]:
    """The fixed golden cases: every kernel, plus the edge cases NUMERICS.md singles out."""
    rng = np.random.default_rng(seed)
    cases = [
        _conv_random(rng, "conv3x3_s2_p1", 3, 8, 13, 11, 3, 2, 1, 1),
        _conv_random(rng, "conv5x5_s1_p2_g2", 4, 6, 9, 9, 5, 1, 2, 2),
        _conv_random(rng, "conv3x3_s3_p0_relu", 5, 4, 10, 8, 3, 3, 0, 1, y_zero=-128, act_max=-28),
        _conv_random(rng, "dw7x7_s2_p3_odd", 6, 6, 15, 13, 7, 2, 3, 6),
        _conv_random(rng, "dw3x3_s1_p1", 8, 8, 7, 9, 3, 1, 1, 8),
        _conv_random(rng, "dw5x5_s2_p2", 5, 5, 11, 11, 5, 2, 2, 5, x_zero=-128, y_zero=127),
        _conv_random(rng, "pw_s1", 12, 7, 5, 6, 1, 1, 0, 1, x_zero=127, y_zero=-128),
        _conv_random(rng, "pw_s2", 9, 5, 7, 7, 1, 2, 0, 1),
    ]
    # Saturated biases (dead channels of the seed models) next to live ones.
    weights = _w8(rng, 4, 3, 3, 3)
    bias = np.array([2**31 - 1, I32_MIN, 100, -100], dtype=np.int32)
    multiplier = np.array([3.9e-9, 3.9e-9, 1e-3, 1e-3], dtype=np.float32)
    cases.append(
        conv_case(
            "conv_bias_sat32",
            _s8(rng, 1, 3, 6, 6),
            weights,
            bias,
            multiplier,
            stride=1,
            padding=1,
            groups=1,
            x_zero=-128,
            y_zero=127,
        )
    )
    cases.append(half_even_ties_case())
    q1, q2 = _s8(rng, 1, 5, 7, 3), _s8(rng, 1, 5, 7, 3)
    cases.append(add_case("add", q1, q2, m1=np.float32(0.7), m2=np.float32(0.4), z1=-3, z2=5, y_zero=-1))
    ties = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 16, 16)
    cases.append(
        add_case(
            "add_ties_relu",
            ties,
            ties,
            m1=np.float32(0.25),
            m2=np.float32(0.25),
            z1=0,
            z2=-128,
            y_zero=-128,
            act_min=-128,
            act_max=0,
        )
    )
    cases.append(pool_case("pool", _s8(rng, 1, 11, 5, 5), multiplier=np.float32(1 / 25 * 0.9), x_zero=-7, y_zero=3))
    cases.append(
        pool_case("pool_zero_extremes", _s8(rng, 1, 9, 3, 4), multiplier=np.float32(1 / 24), x_zero=127, y_zero=127)
    )
    w = _w8(rng, 10, 40)
    cases.append(
        linear_s8_case(
            "linear_s8",
            _s8(rng, 1, 40),
            w,
            rng.integers(-5000, 5000, 10, dtype=np.int32),
            np.full(10, 2e-3, np.float32),
            x_zero=-128,
            y_zero=0,
        )
    )
    wf = rng.uniform(-0.1, 0.1, size=(10, 40)).astype(np.float32)
    bf = rng.uniform(-0.5, 0.5, size=10).astype(np.float32)
    cases.append(linear_f32_case("linear_f32", _s8(rng, 1, 40), wf, bf, x_scale=np.float32(0.0235), x_zero=-128))
    return cases


# ---- C emission -------------------------------------------------------------------------------------------------

_C_TYPES = {
    np.dtype(np.int8): "int8_t",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.float32): "float",
    np.dtype(np.uint8): "uint8_t",
    np.dtype(np.uint32): "uint32_t",
}


def _c_value(v: float | int, dtype: np.dtype, nonfinite: bool = False) -> str:
    if dtype == np.float32:
        f = float(v)
        if not np.isfinite(f):
            if not nonfinite:
                raise ValueError(f"cannot write the non-finite float {f} into test data")
            return "NAN" if np.isnan(f) else ("INFINITY" if f > 0 else "-INFINITY")  # <math.h>
        return f.hex() + "f"  # exact: a float32 value is a double with a short mantissa
    if int(v) == I32_MIN:
        return "(-2147483647 - 1)"  # the literal 2147483648 does not fit int32
    return str(int(v))


def c_array(name: str, array: np.ndarray, *, local: bool = True, comment: str = "", nonfinite: bool = False) -> str:
    """A C definition of the constant ``array`` (flattened in C order), aligned for any element;
    ``local``: static (file scope), else visible to the program. ``nonfinite``: infinities and NaN
    are data (the source must include <math.h>), else a refused mistake."""
    flat = np.ascontiguousarray(array).reshape(-1)
    values = [_c_value(v, flat.dtype, nonfinite) for v in flat.tolist()]
    lines = ",\n".join("    " + ", ".join(values[i : i + 16]) for i in range(0, len(values), 16))
    qualifier = "static const" if local else "const"
    note = f" /* {comment} */" if comment else ""
    return (
        f"{qualifier} {_C_TYPES[flat.dtype]} {name}[{max(len(values), 1)}] __attribute__((aligned(8))) = {{\n"
        f"{lines}\n}};{note}\n"
    )


_STEP_KINDS = {
    "conv2d_fwd_s8": "STEP_CONV2D",
    "depthwise_conv2d_fwd_s8": "STEP_DEPTHWISE_CONV2D",
    "pointwise_conv2d_fwd_s8": "STEP_POINTWISE_CONV2D",
    "add_fwd_s8": "STEP_ADD",
    "global_avg_pool_fwd_s8": "STEP_GLOBAL_AVG_POOL",
    "linear_fwd_s8": "STEP_LINEAR_S8",
    "linear_fwd_f32": "STEP_LINEAR_F32",
}


def _fields(**values: object) -> str:
    return "{" + ", ".join(f".{k} = {v}" for k, v in values.items()) + "}"


def c_step(step: Step, symbols: Sequence[str]) -> str:
    """The C initializer of a ``step`` (steps.h) whose arrays are named ``symbols``."""
    p = step.params
    f32 = np.dtype(np.float32)
    kind = _STEP_KINDS[step.kernel]
    if step.kernel in ("conv2d_fwd_s8", "depthwise_conv2d_fwd_s8", "pointwise_conv2d_fwd_s8"):
        h, w, c = step.in_shapes[0]
        wshape = step.arrays[0].shape
        kh, kw = {"conv2d_fwd_s8": wshape[1:3], "depthwise_conv2d_fwd_s8": wshape[0:2]}.get(step.kernel, (1, 1))
        groups = {"conv2d_fwd_s8": p.get("groups", 1), "depthwise_conv2d_fwd_s8": c}.get(step.kernel, 1)
        union = (
            "conv",
            _fields(
                in_h=h,
                in_w=w,
                in_c=c,
                out_c=step.out_shape[-1],
                kernel_h=kh,
                kernel_w=kw,
                stride=p["stride"],
                padding=p.get("padding", 0),
                groups=groups,
                x_zero=p["x_zero"],
                y_zero=p["y_zero"],
                act_min=p["act_min"],
                act_max=p["act_max"],
            ),
        )
    elif step.kernel == "add_fwd_s8":
        union = (
            "add",
            _fields(
                size=int(np.prod(step.in_shapes[0])),
                m1=_c_value(p["m1"], f32),
                m2=_c_value(p["m2"], f32),
                z1=p["z1"],
                z2=p["z2"],
                y_zero=p["y_zero"],
                act_min=p["act_min"],
                act_max=p["act_max"],
            ),
        )
    elif step.kernel == "global_avg_pool_fwd_s8":
        h, w, c = step.in_shapes[0]
        union = (
            "pool",
            _fields(
                in_h=h,
                in_w=w,
                in_c=c,
                multiplier=_c_value(p["multiplier"], f32),
                x_zero=p["x_zero"],
                y_zero=p["y_zero"],
            ),
        )
    elif step.kernel == "linear_fwd_s8":
        union = (
            "linear",
            _fields(
                in_features=step.in_shapes[0][0],
                out_features=step.out_shape[0],
                x_zero=p["x_zero"],
                y_zero=p["y_zero"],
                act_min=p["act_min"],
                act_max=p["act_max"],
            ),
        )
    else:
        union = (
            "linear_f32",
            _fields(
                in_features=step.in_shapes[0][0],
                out_features=step.out_shape[0],
                x_scale=_c_value(p["x_scale"], f32),
                x_zero=p["x_zero"],
            ),
        )
    pointers = dict(zip(("w", "bias", "multiplier"), symbols, strict=False))  # add and pool have none
    return _fields(kind=kind, **{f"p.{union[0]}": union[1]}, **{k: v for k, v in pointers.items()})


_HEADER = "/* Generated by boards/tools/firmware_data.py from the numpy reference. Do not edit. */\n"


def golden_source() -> str:
    """The golden program's data: :func:`golden_set` and the training cases of :mod:`train_cases`."""
    return golden_c(golden_set(), train_cases.golden_train_set())


def golden_c(cases: Sequence[Case], call_cases: Sequence[train_cases.CallCase]) -> str:
    """C source defining the golden.h tables for ``cases`` and the (non-empty) training-kernel ``call_cases``."""
    out = [_HEADER, "#include <math.h>\n#include <string.h>\n\n", '#include "golden.h"\n\n']
    entries = []
    for i, case in enumerate(cases):
        syms = []
        for j, array in enumerate(case.step.arrays):
            syms.append(f"c{i}_a{j}")
            out.append(c_array(syms[-1], array))
        for j, x in enumerate(case.inputs):
            out.append(c_array(f"c{i}_x{j}", x))
        out.append(c_array(f"c{i}_y", case.expected, comment=f"{case.expected.dtype}{list(case.expected.shape)}"))
        mask_ref = "NULL", 0
        if case.mask is not None:
            packed = np.packbits(case.mask.reshape(-1), bitorder="little")
            out.append(c_array(f"c{i}_mask", packed))
            mask_ref = f"c{i}_mask", packed.size
        x2 = f"c{i}_x1" if len(case.inputs) > 1 else "NULL"
        entries.append(
            f'    {{"{case.name}", {c_step(case.step, syms)}, c{i}_x0, {x2}, c{i}_y, {case.expected.nbytes}u, '
            f"{mask_ref[0]}, {mask_ref[1]}u}},\n"
        )
    out_cap = max(c.expected.nbytes for c in cases)
    mask_cap = max((c.expected.size + 7) // 8 for c in cases)
    out.append("const golden_case golden_cases[] = {\n" + "".join(entries) + "};\n")
    out.append(f"const uint32_t golden_case_count = {len(cases)}u;\n")
    out.append(f"uint8_t golden_out[{out_cap}] __attribute__((aligned(8))); /* largest expected output */\n")
    out.append(f"uint8_t golden_mask[{mask_cap}];\n")
    out.append(f"const uint32_t golden_out_capacity = {out_cap}u, golden_mask_capacity = {mask_cap}u;\n")
    out.extend(train_cases.call_case_c(i, case, c_array) for i, case in enumerate(call_cases))
    table = "".join(f'    {{"{case.name}", t{i}_run}},\n' for i, case in enumerate(call_cases))
    out.append("const golden_call_case golden_call_cases[] = {\n" + table + "};\n")
    out.append(f"const uint32_t golden_call_case_count = {len(call_cases)}u;\n")
    return "".join(out)


def plan_arena(steps: Sequence[Step], input_name: str, input_bytes: int) -> tuple[dict[str, int], int]:
    """Byte offsets of every activation in one arena, and the arena size.

    First fit over lifetimes (a tensor lives from its producer to its last reader); a reshape
    aliases its input. Offsets are 8-byte aligned. A plain planner for a test program, not the
    tte-ir memory planner.
    """
    alias = {}
    sizes = {input_name: input_bytes}
    born = {input_name: 0}
    last = {input_name: 0}
    for t, s in enumerate(steps):
        for name in s.inputs:
            last[alias.get(name, name)] = t
        if s.kernel == "reshape":
            alias[s.output] = alias.get(s.inputs[0], s.inputs[0])
            continue
        itemsize = 4 if s.kernel == "linear_fwd_f32" else 1
        sizes[s.output] = int(np.prod(s.out_shape)) * itemsize
        born[s.output] = last[s.output] = t
    offsets: dict[str, int] = {}
    for name in sorted(sizes, key=lambda n: -sizes[n]):
        clashes = sorted(
            (offsets[o], offsets[o] + sizes[o]) for o in offsets if born[o] <= last[name] and born[name] <= last[o]
        )
        at = 0
        for lo, hi in clashes:
            if at + sizes[name] <= lo:
                break
            at = max(at, (hi + 7) // 8 * 8)
        offsets[name] = at
    offsets.update({a: offsets[src] for a, src in alias.items()})
    return offsets, max(offsets[n] + sizes[n] for n in sizes)


def forward_c(graph, x: np.ndarray) -> str:
    """C source defining the forward.h tables: ``graph`` on the IR-layout input ``x``."""
    steps = lower(graph)
    input_name = graph.inputs[0]
    xe = to_engine_layout(x)
    offsets, arena = plan_arena(steps, input_name, xe.nbytes)
    out = [_HEADER, '#include "forward.h"\n\n']
    out.append(c_array("forward_input", xe, local=False, comment=f"int8{list(xe.shape)} HWC"))
    entries = []
    for i, s in enumerate(steps):
        if s.kernel == "reshape":
            continue
        syms = [f"l{i}_a{j}" for j in range(len(s.arrays))]
        out.extend(
            c_array(sym, a, comment=f"{s.node} {a.dtype}{list(a.shape)}") for sym, a in zip(syms, s.arrays, strict=True)
        )
        in2 = offsets[s.inputs[1]] if len(s.inputs) > 1 else 0
        nbytes = int(np.prod(s.out_shape)) * (4 if s.kernel == "linear_fwd_f32" else 1)
        entries.append(
            f'    {{"{s.node}", {c_step(s, syms)}, {offsets[s.inputs[0]]}u, {in2}u, {offsets[s.output]}u, '
            f"{nbytes}u, {s.macs}u}},\n"
        )
    out.append("const forward_layer forward_layers[] = {\n" + "".join(entries) + "};\n")
    out.append(f"const uint32_t forward_layer_count = {len(entries)}u;\n")
    out.append(f"uint8_t forward_arena[{arena}] __attribute__((aligned(8)));\n")
    out.append(f"const uint32_t forward_arena_bytes = {arena}u;\n")
    out.append(f"const uint32_t forward_input_bytes = {xe.nbytes}u, forward_input_offset = {offsets[input_name]}u;\n")
    return "".join(out)


def fixed_input(graph, seed: int) -> np.ndarray:
    """The forward test's input: int8 codes from a seeded generator, in the graph's input shape."""
    spec = graph.tensors[graph.inputs[0]]
    return np.random.default_rng(seed).integers(-128, 128, size=spec.shape, dtype=np.int8)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    golden = sub.add_parser("golden", help="golden kernel cases")
    golden.add_argument("out", type=Path)
    forward = sub.add_parser("forward", help="a seed model's forward on a fixed input")
    forward.add_argument("model", type=Path, help="seed model .pkl (../shared/models)")
    forward.add_argument("out", type=Path)
    forward.add_argument("--head", choices=("fp32", "int8"), default="fp32")
    forward.add_argument("--classes", type=int, default=10)
    forward.add_argument("--seed", type=int, default=0, help="seed of the fixed input")
    args = parser.parse_args(argv)
    if args.what == "golden":
        args.out.write_text(golden_source())
    else:
        from tte_ir import import_seed_pkl

        graph = import_seed_pkl(args.model, num_classes=args.classes, head=args.head)
        args.out.write_text(forward_c(graph, fixed_input(graph, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
