"""Derived quantization constants (NUMERICS.md §1-2).

Each is computed once, in float64, from the float32 scales recorded in the graph, then rounded
once to float32. Every consumer (reference, simulator, code generator, engine binding) calls these
functions; nothing recomputes a multiplier on its own.
"""

from __future__ import annotations

import numpy as np

from tte_ir._ir import Graph, Node, Op, TteError
from tte_ir.constants import INT32_MAX, INT32_MIN

__all__ = [
    "LUT_FUNCTIONS",
    "add_multipliers",
    "avg_pool_multipliers",
    "conv_multiplier",
    "dequantize_linear",
    "lut_function",
    "lut_tables",
    "mul_multiplier",
    "node_multipliers",
    "pool_multiplier",
    "qas_divisors",
]


def conv_multiplier(s_x: float, s_w: np.ndarray, s_y: float) -> np.ndarray:
    """``M[o] = float32(s_x * s_w[o] / s_y)`` for a conv or int8 linear layer."""
    s_w64 = np.asarray(s_w, dtype=np.float32).astype(np.float64)
    return (np.float64(s_x) * s_w64 / np.float64(s_y)).astype(np.float32)


def add_multipliers(s_1: float, s_2: float, s_y: float) -> tuple[np.float32, np.float32]:
    """``(float32(s_1/s_y), float32(s_2/s_y))`` for a quantized residual add."""
    return np.float32(np.float64(s_1) / np.float64(s_y)), np.float32(np.float64(s_2) / np.float64(s_y))


def pool_multiplier(s_x: float, s_y: float, hw: int) -> np.float32:
    """``float32(s_x / (s_y * H * W))`` for a global average pool."""
    return np.float32(np.float64(s_x) / (np.float64(s_y) * np.float64(hw)))


def avg_pool_multipliers(s_x: float, s_y: float, kernel: int) -> np.ndarray:
    """``m[n] = float32(s_x / (s_y * n))`` for every tap count ``n`` in ``1..kernel*kernel`` of a
    ``kernel`` x ``kernel`` average pool, ``m[0] = 0`` (no window is empty). ``m[H*W]`` of a pool
    over a whole ``H`` x ``W`` map is :func:`pool_multiplier`."""
    counts = np.arange(kernel * kernel + 1, dtype=np.float64)
    with np.errstate(divide="ignore"):
        m = np.float64(s_x) / (np.float64(s_y) * counts)
    m[0] = 0.0
    return m.astype(np.float32)


def qas_divisors(s_x: float, s_w: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """QAS inverse divisors (NUMERICS.md §5): ``inv_w[o] = float32(1/s_w[o]^2)``, ``inv_b[o] = float32(1/(s_x*s_w[o])^2)``.

    Computed in float64 and rounded once. A frozen channel gets 0 in both, so its step is exactly 0
    and kernels never branch: frozen means a divisor that is not finite (in float64 or after the
    rounding to float32) or a dead channel, whose bias in the compiled graph sits at an int32 limit.
    """
    s_w64 = np.asarray(s_w, dtype=np.float32).astype(np.float64)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        inv_w = (1.0 / (s_w64 * s_w64)).astype(np.float32)
        sxw = np.float64(s_x) * s_w64
        inv_b = (1.0 / (sxw * sxw)).astype(np.float32)
    b = np.asarray(bias, dtype=np.int64)
    frozen = ~np.isfinite(inv_w) | ~np.isfinite(inv_b) | (b <= INT32_MIN) | (b >= INT32_MAX)
    inv_w[frozen] = 0.0
    inv_b[frozen] = 0.0
    return inv_w, inv_b


def dequantize_linear(w: np.ndarray, s_w: np.ndarray, bias: np.ndarray, s_x: float) -> tuple[np.ndarray, np.ndarray]:
    """The float32 weight and bias of an int8 linear layer: ``W_f[o,i] = float32(s_w[o]*w[o,i])``,
    ``b_f[o] = float32(s_x*s_w[o]*b[o])`` (float64, one rounding).

    ``b_f + W_f @ x_f`` is the real value of the int8 layer's accumulator, the logits the int8 head
    computes before its output rounding and clamp.
    """
    s_w64 = np.asarray(s_w, dtype=np.float32).astype(np.float64)
    w_f = (s_w64[:, None] * np.asarray(w, dtype=np.float64)).astype(np.float32)
    b_f = (np.float64(s_x) * s_w64 * np.asarray(bias, dtype=np.float64)).astype(np.float32)
    return w_f, b_f


LUT_FUNCTIONS = ("hard_swish", "hard_sigmoid", "sigmoid")
"""The activations a ``lut`` node may compute (its ``function`` attribute)."""


def lut_function(function: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``f(x)`` and ``f'(x)`` of a LUT activation on real inputs ``x``, in float64.

    hard_swish ``f = (x * clamp(x + 3, 0, 6)) / 6``, ``f' = 0 (x < -3), x/3 + 1/2 (-3 <= x <= 3), 1 (x > 3)``;
    hard_sigmoid ``f = clamp(x + 3, 0, 6) / 6``, ``f' = 1/6 (-3 < x < 3), else 0``; sigmoid
    ``f = 1 / (1 + exp(-x))``, ``f' = f * (1 - f)``. At the kinks the derivatives are PyTorch's.
    """
    x = np.asarray(x, dtype=np.float64)
    if function == "hard_swish":
        f = (x * np.clip(x + 3.0, 0.0, 6.0)) / 6.0
        d = np.where(x < -3.0, 0.0, np.where(x <= 3.0, x / 3.0 + 0.5, 1.0))
    elif function == "hard_sigmoid":
        f = np.clip(x + 3.0, 0.0, 6.0) / 6.0
        d = np.where((x > -3.0) & (x < 3.0), 1.0 / 6.0, 0.0)
    elif function == "sigmoid":
        with np.errstate(over="ignore"):
            f = 1.0 / (1.0 + np.exp(-x))
        d = f * (1.0 - f)
    else:
        raise TteError(f"LUT function '{function}' is not one of {', '.join(LUT_FUNCTIONS)}")
    return f, d


def lut_tables(function: str, s_x: float, z_x: int, s_y: float, z_y: int) -> tuple[np.ndarray, np.ndarray]:
    """The forward table (int8 [256]) and the slope table (float32 [256]) of a LUT activation; entry
    ``q + 128`` belongs to input code ``q``. In float64, one rounding each (NUMERICS.md, LUT)::

        x        = s_x * (q - z_x)
        v        = clamp(f(x) / s_y, -129 - z_y, 128 - z_y)
        r        = rne(v) + z_y
        table[q] = clamp(r, -128, 127)
        slope[q] = float32((f'(x) * s_x) / s_y) if -128 <= r <= 127 else 0
    """
    q = np.arange(-128, 128, dtype=np.float64)
    f, d = lut_function(function, np.float64(s_x) * (q - np.float64(z_x)))
    v = np.clip(f / np.float64(s_y), -129.0 - z_y, 128.0 - z_y)
    r = np.rint(v) + z_y
    live = (r >= -128) & (r <= 127)
    table = np.clip(r, -128, 127).astype(np.int8)
    slope = np.where(live, (d * np.float64(s_x)) / np.float64(s_y), 0.0).astype(np.float32)
    return table, slope


def mul_multiplier(s_a: float, s_b: float, s_y: float) -> np.float32:
    """``float32(s_a * s_b / s_y)`` for the channel-wise multiply."""
    return np.float32(np.float64(s_a) * np.float64(s_b) / np.float64(s_y))


def node_multipliers(graph: Graph, node: Node) -> dict[str, np.ndarray | np.float32]:
    """The float32 constants a kernel needs for ``node``, from the graph's quantization.

    conv2d / int8 linear: ``{"multiplier": M[O]}``; add: ``{"m1", "m2"}``; pool: ``{"multiplier"}``;
    lut: ``{"table": int8 [256], "slope": float32 [256]}`` (:func:`lut_tables`); mul: ``{"m"}``;
    avg_pool: ``{"multiplier": m[K*K+1]}`` (:func:`avg_pool_multipliers`).
    Ops without multipliers (reshape, fp32 linear) give an empty dict.
    """
    spec = graph.tensors
    if node.op in (Op.CONV2D, Op.LINEAR):
        x, w, _b = (spec[name] for name in node.inputs[:3])
        if w.dtype.name == "FLOAT32":
            return {}
        y = spec[node.outputs[0]]
        _require_quant(node, x.name, x.quant, y.quant, w.quant)
        return {"multiplier": conv_multiplier(x.quant.tensor_scale, w.quant.scale_array(), y.quant.tensor_scale)}
    if node.op is Op.ADD:
        a, b = (spec[name] for name in node.inputs)
        y = spec[node.outputs[0]]
        _require_quant(node, a.name, a.quant, b.quant, y.quant)
        m1, m2 = add_multipliers(a.quant.tensor_scale, b.quant.tensor_scale, y.quant.tensor_scale)
        return {"m1": m1, "m2": m2}
    if node.op is Op.GLOBAL_AVG_POOL:
        x = spec[node.inputs[0]]
        y = spec[node.outputs[0]]
        _require_quant(node, x.name, x.quant, y.quant)
        hw = x.shape[2] * x.shape[3]
        return {"multiplier": pool_multiplier(x.quant.tensor_scale, y.quant.tensor_scale, hw)}
    if node.op is Op.LUT:
        x, y = spec[node.inputs[0]], spec[node.outputs[0]]
        _require_quant(node, x.name, x.quant, y.quant)
        table, slope = lut_tables(
            node.attrs["function"], x.quant.tensor_scale, x.quant.zero_point, y.quant.tensor_scale, y.quant.zero_point
        )
        return {"table": table, "slope": slope}
    if node.op is Op.MUL:
        a, b = (spec[name] for name in node.inputs)
        y = spec[node.outputs[0]]
        _require_quant(node, a.name, a.quant, b.quant, y.quant)
        return {"m": mul_multiplier(a.quant.tensor_scale, b.quant.tensor_scale, y.quant.tensor_scale)}
    if node.op is Op.AVG_POOL:
        x = spec[node.inputs[0]]
        y = spec[node.outputs[0]]
        _require_quant(node, x.name, x.quant, y.quant)
        kernel = int(node.attrs["kernel"])
        return {"multiplier": avg_pool_multipliers(x.quant.tensor_scale, y.quant.tensor_scale, kernel)}
    return {}


def _require_quant(node: Node, tensor: str, *quants: object) -> None:
    if any(q is None for q in quants):
        raise TteError(f"{node.describe()}: an int8 tensor around '{tensor}' has no quantization parameters")
