"""Writes ``engine/python/kernel_calls.inc``: the generic host binding of every engine kernel.

:data:`tte_ir.kernels.SIGNATURES` and :data:`tte_ir.kernels.PARAM_STRUCTS` are the kernels' C
prototypes and descriptor structs, written once; this module turns them into C++ for the
``tte_engine._core`` extension (``engine/python/calls.cpp`` includes it):

- ``fill_<struct>``: a descriptor filled from a Python dict, field by field by C type (missing
  fields stay 0; an unknown key is a ``ValueError`` naming the kernel and the key);
- ``call_<kernel>``: ``tte_<kernel>`` called with (params dict or None, list of arguments), each
  argument converted by its C type (a numpy array for a pointer, None for NULL, an int, a dict for a
  second descriptor, a ``TrainContext``);
- ``scratch_<kernel>`` for the kernels with a ``_scratch_size`` twin, and the tables from kernel
  name to caller.

The file is generated, never edited by hand, and a test fails when the committed file differs from
this output.

Usage: ``python -m tte_ir.gen_binding engine/python/kernel_calls.inc``
"""

from __future__ import annotations

import sys
from pathlib import Path

from tte_ir.kernels import PARAM_STRUCTS, SCRATCH_KERNELS, SIGNATURES
from tte_ir.serialize import atomic_write_bytes

__all__ = ["render_binding"]

# Descriptor field types -> the calls.cpp helper that reads one from a Python value.
_FIELDS = {
    "int32_t": 'field_i32(value, kernel, "{name}")',
    "uint32_t": 'field_u32(value, kernel, "{name}")',
    "float": 'field_f32(value, kernel, "{name}")',
    "tte_rounding": 'static_cast<tte_rounding>(field_i32(value, kernel, "{name}"))',
    "tte_lr_group": 'static_cast<tte_lr_group>(field_i32(value, kernel, "{name}"))',
    "const int32_t *": 'field_channels(value, holder, kernel, "{name}")',
}

_ELEMENTS = {"int8_t", "int32_t", "float", "uint8_t"}
# Pointers the host binding never fills: the tiles the code generator uses (a host call runs whole).
_NULL_ONLY = {"const tte_row_band *", "const tte_channel_band *"}
_SCALARS = {
    "int": 'arg_int(args[{i}], kernel, "{name}")',
    "int32_t": 'arg_i32(args[{i}], kernel, "{name}")',
    "tte_lr_group": 'static_cast<tte_lr_group>(arg_i32(args[{i}], kernel, "{name}"))',
}


def _struct_of(ctype: str) -> str | None:
    """The descriptor struct a ``const <struct> *`` parameter points to, if it is one."""
    name = ctype.removeprefix("const ").removesuffix(" *")
    return name if ctype.startswith("const ") and ctype.endswith(" *") and name in PARAM_STRUCTS else None


def _fill_function(struct: str) -> list[str]:
    lines = [
        f"void fill_{struct}({struct} &p, const py::dict &fields, Holder &holder,",
        "    const char *kernel) {",
        "    (void)holder; // only a channel list keeps a Python object alive",
        "    for (const auto &item : fields) {",
        "        const std::string key = py::str(item.first);",
        "        const py::handle value = item.second;",
    ]
    for i, (name, ctype) in enumerate(PARAM_STRUCTS[struct]):
        if ctype not in _FIELDS:
            raise ValueError(f"{struct}.{name}: no conversion for C type '{ctype}'")
        keyword = "if" if i == 0 else "} else if"
        lines.append(f'        {keyword} (key == "{name}") {{')
        lines.append(f"            p.{name} = {_FIELDS[ctype].format(name=name)};")
    lines += [
        "        } else {",
        f'            unknown_field(kernel, "{struct}", key);',
        "        }",
        "    }",
        "}",
        "",
    ]
    return lines


def _argument(i: int, name: str, ctype: str) -> tuple[list[str], str]:
    """The statements that convert argument ``i`` and the expression passed to the kernel."""
    var = f"a{i}"
    struct = _struct_of(ctype)
    if struct is not None:
        return [
            f"    {struct} {var}_value{{}};",
            f'    const {struct} *{var} = arg_params(args[{i}], kernel, "{name}") ? &{var}_value : nullptr;',
            f"    if ({var} != nullptr) {{",
            f"        fill_{struct}({var}_value, args[{i}].cast<py::dict>(), holder, kernel);",
            "    }",
        ], var
    if ctype in _SCALARS:
        return [f"    const auto {var} = {_SCALARS[ctype].format(i=i, name=name)};"], var
    if ctype == "tte_train_ctx *":
        return [f'    tte_train_ctx *{var} = arg_ctx(args[{i}], kernel, "{name}");'], var
    if ctype in _NULL_ONLY:
        return [f'    arg_null(args[{i}], kernel, "{name}");'], "nullptr"
    if ctype == "void *":
        return [f'    void *{var} = arg_bytes(args[{i}], holder, kernel, "{name}");'], var
    const = ctype.startswith("const ")
    element = ctype.removeprefix("const ").removesuffix(" *")
    if not ctype.endswith(" *") or element not in _ELEMENTS:
        raise ValueError(f"argument '{name}': no conversion for C type '{ctype}'")
    helper = "arg_in" if const else "arg_out"
    return [
        f'    {"const " if const else ""}{element} *{var} = {helper}<{element}>(args[{i}], holder, kernel, "{name}");'
    ], var


def _caller(kernel: str) -> list[str]:
    signature = SIGNATURES[kernel]
    struct = _struct_of(signature[0][1]) if signature[0][0] == "p" else None
    rest = signature[1:] if struct is not None else signature
    lines = [
        f"void call_{kernel}(const py::object &params, const py::list &args) {{",
        f'    const char *kernel = "{kernel}";',
        f"    expect_arity(args, {len(rest)}, kernel);",
        "    Holder holder;",
    ]
    passed = []
    if struct is not None:
        lines += [f"    {struct} p{{}};", f"    fill_{struct}(p, params_dict(params, kernel), holder, kernel);"]
        passed.append("&p")
    else:
        lines.append("    no_params(params, kernel);")
    for i, (name, ctype) in enumerate(rest):
        statements, expression = _argument(i, name, ctype)
        lines += statements
        passed.append(expression)
    lines += [
        "    tte_status status;",
        "    {",
        "        py::gil_scoped_release nogil;",
        f"        status = tte_{kernel}({', '.join(passed)});",
        "    }",
        "    raise_on(status, kernel);",
        "}",
        "",
    ]
    return lines


def _scratch(kernel: str) -> list[str]:
    struct = _struct_of(SIGNATURES[kernel][0][1])
    return [
        f"size_t scratch_{kernel}(const py::object &params) {{",
        "    Holder holder;",
        f"    {struct} p{{}};",
        f'    fill_{struct}(p, params_dict(params, "{kernel}"), holder, "{kernel}");',
        f"    return tte_{kernel}_scratch_size(&p);",
        "}",
        "",
    ]


def render_binding() -> str:
    """The include file's full text."""
    lines = [
        "// Generated by `python -m tte_ir.gen_binding` from tte_ir.kernels.SIGNATURES and PARAM_STRUCTS.",
        "// Do not edit. Included by calls.cpp inside its anonymous namespace, after the helpers it uses.",
        "",
    ]
    for struct in PARAM_STRUCTS:
        lines += _fill_function(struct)
    for kernel in SIGNATURES:
        lines += _caller(kernel)
    scratch = [k for k in SIGNATURES if k in SCRATCH_KERNELS]
    for kernel in scratch:
        lines += _scratch(kernel)
    lines.append("const KernelEntry kernel_calls[] = {")
    lines += [f'    {{"{k}", call_{k}}},' for k in SIGNATURES]
    lines += ["};", "", "const ScratchEntry scratch_sizes[] = {"]
    lines += [f'    {{"{k}", scratch_{k}}},' for k in scratch]
    lines += ["};", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write the include file to the one path given."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tte_ir.gen_binding OUTPUT.inc", file=sys.stderr)
        return 2
    atomic_write_bytes(Path(args[0]), render_binding().encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
