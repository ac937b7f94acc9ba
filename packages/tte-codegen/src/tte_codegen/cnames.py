"""C spelling of names and values: identifiers from tensor names, exact literals, array initializers."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from tte_ir import DType
from tte_ir.constants import INT32_MAX, INT32_MIN

__all__ = ["CTYPES", "c_ident", "c_literal", "c_values"]

_C_INT32_MIN = f"(-{INT32_MAX} - 1)"  # C has no INT32_MIN literal: its magnitude does not fit int32
CTYPES = {DType.INT8: "int8_t", DType.INT32: "int32_t", DType.FLOAT32: "float", DType.UINT8: "uint8_t"}


def c_ident(name: str) -> str:
    """A C identifier for a tensor or node name (``blocks.8.pw1.w`` -> ``blocks_8_pw1_w``)."""
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return f"_{ident}" if ident[:1].isdigit() else ident


def c_literal(value: Any, ctype: str) -> str:
    """An exact C literal: floats in hexadecimal (bit exact), INT32_MIN spelled out."""
    if ctype == "float":
        v = float(np.float32(value))
        if np.isnan(v):
            return "NAN"
        if np.isinf(v):
            return "INFINITY" if v > 0 else "-INFINITY"
        return f"{v.hex()}f" if v != 0 else ("-0.0f" if np.signbit(v) else "0.0f")
    v = int(value)
    if ctype == "int32_t" and v == INT32_MIN:
        return _C_INT32_MIN
    return str(v)


def c_values(values: np.ndarray, ctype: str, per_line: int) -> list[str]:
    """Initializer lines of an array."""
    flat = np.asarray(values).ravel()
    if ctype == "float":
        items = [c_literal(v, ctype) for v in flat.tolist()]
    else:
        items = [str(v) for v in flat.astype(np.int64).tolist()]
        if ctype == "int32_t":
            items = [_C_INT32_MIN if s == str(INT32_MIN) else s for s in items]
    return [", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line)]
