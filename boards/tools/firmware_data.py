"""Golden kernel cases for the firmware program boards/programs/golden_main.c, as C source.

Every case is one engine kernel call written as a C function: its descriptor a ``static const``
struct, its inputs ``const`` arrays, its outputs buffers that start from known contents and are
compared byte for byte with the expected ones after the call. :func:`kernel_call_c` spells any
kernel call from :data:`tte_ir.kernels.SIGNATURES` (the arguments in C order) and
:data:`tte_ir.kernels.PARAM_STRUCTS` (the descriptor's fields and C types), and :func:`call_case_c`
writes a :class:`CallCase` as its C function; the forward cases here and the training-kernel cases
of :mod:`train_cases` go through both.

Forward cases (:class:`Case`) draw their inputs from a seeded generator and take their expected
outputs and clamp masks from the numpy reference (``tte_ir.reference``); the host tests
(tests/engine) run the same cases through the engine's generic entry point (:func:`run_case`), so a
case means the same thing on the host and on the microcontroller. Model firmware is not made here:
it is what ``tte generate`` emits (boards/README.md).

Usage::

    python boards/tools/firmware_data.py golden OUT.c
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tte_engine import _core
from tte_ir import reference
from tte_ir.constants import INT32_MAX, INT32_MIN
from tte_ir.kernels import PARAM_STRUCTS, SIGNATURES, CEnum, conv_family, weight_layout, window_fields
from tte_ir.layout import to_engine_layout

STATUS_CODES = {"ok": 0, "nonfinite-loss": 1, "nonfinite-grad": 2}  # tte_step_status

# ---- C spelling -------------------------------------------------------------------------------------------------

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
    if int(v) == INT32_MIN:
        return f"(-{INT32_MAX} - 1)"  # the literal 2147483648 does not fit int32
    return str(int(v))


def c_float(v: float) -> str:
    """An exact C float literal of the float32 nearest ``v``."""
    return _c_value(np.float32(v), np.dtype(np.float32))


def c_array(name: str, array: np.ndarray, *, comment: str = "", nonfinite: bool = False) -> str:
    """A file-scope C definition of the constant ``array`` (flattened in C order), aligned for any
    element. ``nonfinite``: infinities and NaN are data (the source includes <math.h>), else a
    refused mistake."""
    flat = np.ascontiguousarray(array).reshape(-1)
    values = [_c_value(v, flat.dtype, nonfinite) for v in flat.tolist()]
    lines = ",\n".join("    " + ", ".join(values[i : i + 16]) for i in range(0, len(values), 16))
    note = f" /* {comment} */" if comment else ""
    return (
        f"static const {_C_TYPES[flat.dtype]} {name}[{max(len(values), 1)}] __attribute__((aligned(8))) = {{\n"
        f"{lines}\n}};{note}\n"
    )


def _c_field(value: Any, ctype: str) -> str:
    if isinstance(value, CEnum):
        return value.name
    if ctype == "float":
        return c_float(value)
    if ctype == "uint32_t":
        return f"{int(value)}u"
    return _c_value(int(value), np.dtype(np.int32))


def c_descriptor(ident: str, params_type: str, fields: Mapping[str, Any]) -> list[str]:
    """The declarations of a ``static const`` descriptor ``ident`` of ``params_type`` with ``fields``
    (:data:`~tte_ir.kernels.PARAM_STRUCTS`; a tuple is a channel list, declared before it)."""
    types = dict(PARAM_STRUCTS[params_type])
    unknown = sorted(set(fields) - set(types))
    if unknown:
        raise ValueError(f"{params_type} has no fields {unknown}")
    decls, body = [], []
    for name, value in fields.items():
        if isinstance(value, tuple):
            decls.append(
                f"static const int32_t {ident}_{name}[{max(len(value), 1)}] = {{{', '.join(map(str, value))}}};"
            )
            body.append(f".{name} = {ident}_{name}")
        else:
            body.append(f".{name} = {_c_field(value, types[name])}")
    decls.append(f"static const {params_type} {ident} = {{{', '.join(body)}}};")
    return decls


def kernel_call_c(kernel: str, params: Mapping[str, Any] | None, args: Mapping[str, str]) -> tuple[list[str], str]:
    """One call of ``tte_<kernel>`` as C: the declarations of its descriptor (``p``, from ``params``)
    and the call expression. ``args`` maps the kernel's C argument names (:data:`~tte_ir.kernels.SIGNATURES`)
    to C expressions; a pointer argument it lacks is NULL, any other must be given."""
    signature = SIGNATURES[kernel]
    decls, values = [], []
    if signature[0][0] == "p":
        decls = c_descriptor("p", signature[0][1].removeprefix("const ").removesuffix(" *"), params or {})
        values.append("&p")
        signature = signature[1:]
    unknown = sorted(set(args) - {name for name, _ in signature})
    if unknown:
        raise ValueError(f"tte_{kernel} has no arguments {unknown}")
    for name, ctype in signature:
        if name not in args and not ctype.endswith("*"):
            raise ValueError(f"tte_{kernel}: argument '{name}' ({ctype}) needs a value")
        values.append(args.get(name, "NULL"))
    return decls, f"tte_{kernel}({', '.join(values)})"


@dataclass(frozen=True)
class CallCase:
    """One kernel call as C, with its expected results.

    ``call`` and ``decls`` name buffers as ``$name``; ``inputs`` are read-only arrays (flash);
    ``state`` maps a read-write buffer to its contents before and after the call; ``step_status`` is
    the context's status after the call (None: the call has no context). ``reference`` holds what
    the numpy reference computes for the buffers, ``exact`` whether the host must match it bit for
    bit (the training cases' host tests, tests/engine/test_train_kernels.py).
    """

    name: str
    decls: tuple[str, ...]
    call: str
    inputs: Mapping[str, np.ndarray]
    state: Mapping[str, tuple[np.ndarray, np.ndarray]]
    step_status: str | None = None
    reference: Mapping[str, np.ndarray] = field(default_factory=dict)
    exact: bool = True


def call_case_c(index: int, case: CallCase) -> str:
    """C source of one case: its data and a function returning NULL when the target's results equal the expected ones."""
    prefix = f"t{index}"
    out = []
    names = {}
    for name, array in case.inputs.items():
        names[name] = f"{prefix}_{name}"
        out.append(c_array(names[name], array, nonfinite=True))  # non-finite inputs test the step status
    body = []
    for name, (before, after) in case.state.items():
        names[name] = f"s_{name}"
        # float32 contents as their bits: a NaN result is data to compare like any other
        bits = (lambda a: a.view(np.uint32)) if before.dtype == np.float32 else (lambda a: a)
        out.append(c_array(f"{prefix}_{name}_before", bits(before)))
        out.append(c_array(f"{prefix}_{name}_after", bits(after)))
        ctype = _C_TYPES[before.dtype]
        body.append(f"    static {ctype} s_{name}[{max(before.size, 1)}] __attribute__((aligned(8)));")
        body.append(f"    memcpy(s_{name}, {prefix}_{name}_before, sizeof s_{name});")

    def subst(text: str) -> str:
        return re.sub(r"\$(\w+)", lambda m: names[m.group(1)], text)

    body.extend(f"    {subst(d)}" for d in case.decls if d)
    body.append("    tte_status status;")
    body.append(f"    {subst(case.call)}")
    body.append("    if (status != TTE_OK) {\n        return tte_status_str(status);\n    }")
    for name in case.state:
        body.append(
            f"    if (memcmp(s_{name}, {prefix}_{name}_after, sizeof s_{name}) != 0) {{\n"
            f'        return "{name} differs";\n    }}'
        )
    if case.step_status is not None:
        code = STATUS_CODES[case.step_status]
        body.append(f'    if (ctx.status != {code}) {{\n        return "step status differs";\n    }}')
    body.append("    return NULL;")
    out.append(f"static const char *{prefix}_run(void) {{ /* {case.name} */\n" + "\n".join(body) + "\n}\n")
    return "".join(out)


# ---- forward cases ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One forward kernel call with the numpy reference's results, all in the engine's layout.

    ``params`` are the kernel's descriptor fields, ``inputs`` its read-only arguments and ``expected``
    the buffers it writes (``y``; ``mask`` bit-packed, for int8 outputs), each by its C argument name.
    """

    name: str
    kernel: str
    params: Mapping[str, Any]
    inputs: Mapping[str, np.ndarray]
    expected: Mapping[str, np.ndarray]

    def call_case(self) -> CallCase:
        """The case as C: output buffers start as zeros (the mask's unused bits stay 0)."""
        args = {name: f"${name}" for name in [*self.inputs, *self.expected]}
        decls, call = kernel_call_c(self.kernel, self.params, args)
        state = {name: (np.zeros_like(a), a) for name, a in self.expected.items()}
        return CallCase(self.name, tuple(decls), f"status = {call};", dict(self.inputs), state)


def run_case(case: Case) -> dict[str, np.ndarray]:
    """The host engine's outputs for ``case`` (by C argument name), through ``_core.call``."""
    outputs = {name: np.zeros_like(a) for name, a in case.expected.items()}
    signature = SIGNATURES[case.kernel][1:]  # every forward kernel takes a descriptor first
    args = [case.inputs.get(name, outputs.get(name)) for name, _ in signature]
    _core.call(case.kernel, dict(case.params), args)
    return outputs


def _packed(mask: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(mask, dtype=bool).reshape(-1), bitorder="little")


def _clamp(act_min: int, act_max: int) -> dict[str, int]:
    return {"act_min": int(act_min), "act_max": int(act_max)}


def conv_case(
    name, x, w, b, multiplier, *, stride, padding, groups, x_zero, y_zero, act_min=-128, act_max=127, dense=False
) -> Case:
    """A conv2d case from IR-layout arguments (``x [1,C,H,W]``, ``w [O,C/g,KH,KW]``; ``stride`` (sh, sw),
    ``padding`` (top, left, bottom, right), an int meaning every axis or side), run by the kernel of its
    family (:func:`tte_ir.kernels.conv_family`), or by the dense kernel when ``dense`` (which must handle
    every shape)."""
    y, mask = reference.conv2d(
        x, w, b, multiplier, stride=stride, padding=padding, groups=groups, x_zero=x_zero, y_zero=y_zero,
        act_min=act_min, act_max=act_max, return_mask=True,
    )  # fmt: skip
    family = "dense" if dense else conv_family(w.shape, x.shape[1], padding, groups)
    kernel = {"dense": "conv2d", "depthwise": "depthwise_conv2d", "pointwise": "pointwise_conv2d"}[family]
    params = {
        "in_h": x.shape[2], "in_w": x.shape[3], "in_c": x.shape[1], "out_c": w.shape[0], "kernel_h": w.shape[2],
        "kernel_w": w.shape[3], **window_fields(stride, padding), "groups": groups, "x_zero": x_zero,
        "y_zero": y_zero, **_clamp(act_min, act_max),
    }  # fmt: skip
    inputs = {"x": to_engine_layout(x), "w": weight_layout(family).to_engine(w), "bias": b, "multiplier": multiplier}
    return Case(
        name, f"{kernel}_fwd_s8", params, inputs, {"y": to_engine_layout(y), "mask": _packed(to_engine_layout(mask))}
    )


def add_case(name, q1, q2, *, m1, m2, z1, z2, y_zero, act_min=-128, act_max=127) -> Case:
    """An add case from IR-layout inputs (any shape, the same for both)."""
    y, mask = reference.add(
        q1, q2, m1=m1, m2=m2, z1=z1, z2=z2, y_zero=y_zero, act_min=act_min, act_max=act_max, return_mask=True
    )
    params = {
        "size": y.size, "m1": np.float32(m1), "m2": np.float32(m2), "z1": z1, "z2": z2, "y_zero": y_zero,
        **_clamp(act_min, act_max),
    }  # fmt: skip
    inputs = {"x1": np.ascontiguousarray(q1), "x2": np.ascontiguousarray(q2)}
    return Case(name, "add_fwd_s8", params, inputs, {"y": y, "mask": _packed(mask)})


def pool_case(name, x, *, multiplier, x_zero, y_zero) -> Case:
    """A global average pool case from an IR-layout input ``x [1,C,H,W]``."""
    y, mask = reference.global_avg_pool(x, multiplier=multiplier, x_zero=x_zero, y_zero=y_zero, return_mask=True)
    params = {
        "in_h": x.shape[2], "in_w": x.shape[3], "in_c": x.shape[1], "multiplier": np.float32(multiplier),
        "x_zero": x_zero, "y_zero": y_zero,
    }  # fmt: skip
    return Case(
        name, "global_avg_pool_fwd_s8", params, {"x": to_engine_layout(x)}, {"y": y.reshape(-1), "mask": _packed(mask)}
    )


def linear_s8_case(name, x, w, b, multiplier, *, x_zero, y_zero, act_min=-128, act_max=127) -> Case:
    """An int8 linear case from IR-layout arguments (``x [1,I]``, ``w [O,I]``)."""
    y, mask = reference.linear_s8(
        x, w, b, multiplier, x_zero=x_zero, y_zero=y_zero, act_min=act_min, act_max=act_max, return_mask=True
    )
    params = {
        "in_features": w.shape[1], "out_features": w.shape[0], "x_zero": x_zero, "y_zero": y_zero,
        **_clamp(act_min, act_max),
    }  # fmt: skip
    inputs = {"x": np.ascontiguousarray(x[0]), "w": w, "bias": b, "multiplier": multiplier}
    return Case(name, "linear_fwd_s8", params, inputs, {"y": y[0], "mask": _packed(mask[0])})


def linear_f32_case(name, x, w, b, *, x_scale, x_zero) -> Case:
    """A float32 head case; the reference sums in the kernel's order, so it is bit-exact too."""
    y = reference.linear_f32(x, w, b, x_scale=x_scale, x_zero=x_zero)
    params = {"in_features": w.shape[1], "out_features": w.shape[0], "x_scale": np.float32(x_scale), "x_zero": x_zero}
    return Case(name, "linear_fwd_f32", params, {"x": np.ascontiguousarray(x[0]), "w": w, "bias": b}, {"y": y[0]})


def _s8(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def _w8(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(-127, 128, size=shape, dtype=np.int8)


def _conv_random(rng, name, c, o, h, w, k, stride, padding, groups, **quant) -> Case:
    """A conv case with random codes, biases and multipliers (float32, log-uniform); ``k`` a kernel size
    or (KH, KW)."""
    kh, kw = (k, k) if isinstance(k, int) else k
    weights = _w8(rng, o, c // groups, kh, kw)
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
        "pw_ties_half_even", every_code, one, np.zeros(1, np.int32), half, stride=1, padding=0, groups=1, x_zero=0,
        y_zero=0,
    )  # fmt: skip


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
        # non-square: DS-CNN's 10x4 stride-2 stem on one channel, TFLite SAME (more padding at the
        # bottom/right), a non-square depthwise kernel, a pointwise conv strided on one axis
        _conv_random(rng, "conv10x4_s2_p4152_c1", 1, 6, 49, 10, (10, 4), 2, (4, 1, 5, 2), 1),
        _conv_random(rng, "conv3x3_s2_same_even", 3, 4, 8, 6, 3, 2, (0, 0, 1, 1), 1),
        _conv_random(rng, "conv5x3_s2x1_p2011", 2, 3, 9, 7, (5, 3), (2, 1), (2, 0, 1, 1), 1, x_zero=-128),
        _conv_random(rng, "dw3x5_s1x2_p1221", 7, 7, 8, 11, (3, 5), (1, 2), (1, 2, 2, 1), 7, y_zero=127),
        _conv_random(rng, "dw7x7_s2_same_odd", 4, 4, 11, 9, 7, 2, (3, 3, 3, 3), 4),
        _conv_random(rng, "pw_s2x1", 6, 5, 7, 6, 1, (2, 1), 0, 1),
    ]
    # Saturated biases (dead channels of the seed models) next to live ones.
    weights = _w8(rng, 4, 3, 3, 3)
    bias = np.array([INT32_MAX, INT32_MIN, 100, -100], dtype=np.int32)
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


# ---- the golden program's source ----------------------------------------------------------------------------------

_HEADER = "/* Generated by boards/tools/firmware_data.py. Do not edit. */\n"


def golden_cases() -> list[CallCase]:
    """Every case the golden program runs: :func:`golden_set` and the training cases of :mod:`train_cases`."""
    import train_cases  # it builds on this module's C spelling

    return [case.call_case() for case in golden_set()] + train_cases.golden_train_set()


def golden_source() -> str:
    """The golden program's data: :func:`golden_c` of :func:`golden_cases`."""
    return golden_c(golden_cases())


def golden_c(cases: Sequence[CallCase]) -> str:
    """C source defining golden.h's case table for the (non-empty) ``cases``."""
    out = [_HEADER, "#include <math.h>\n#include <string.h>\n\n", '#include "golden.h"\n\n']
    out.extend(call_case_c(i, case) for i, case in enumerate(cases))
    table = "".join(f'    {{"{case.name}", t{i}_run}},\n' for i, case in enumerate(cases))
    out.append("const golden_case golden_cases[] = {\n" + table + "};\n")
    out.append(f"const uint32_t golden_case_count = {len(cases)}u;\n")
    return "".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    golden = sub.add_parser("golden", help="golden kernel cases")
    golden.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    from tte_ir.serialize import atomic_write_bytes

    atomic_write_bytes(args.out, golden_source().encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
