"""Derived quantization constants (NUMERICS.md §1-2).

Each is computed once, in float64, from the float32 scales recorded in the graph, then rounded
once to float32. Every consumer (reference, simulator, code generator, engine binding) calls these
functions; nothing recomputes a multiplier on its own.

A graph with ``metadata["requant"] == "fixed"`` (NUMERICS.md §2b) also gets the integer parameters of
TensorFlow Lite's reference kernels (``*_fixed`` functions: multipliers and shifts from
:func:`tte_ir.fixedpoint.quantize_multiplier`, computed from the float32 scales exactly as TFLite's
``Prepare`` functions compute them) and LUT tables filled with TFLite's integer formulas. The float32
multipliers stay: the backward uses them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tte_ir._ir import Graph, Node, Op, TteError, as_pair
from tte_ir.constants import INT32_MAX, INT32_MIN
from tte_ir.fixedpoint import quantize_multiplier

__all__ = [
    "ADD_LEFT_SHIFT",
    "LUT_FUNCTIONS",
    "REQUANT_MODES",
    "add_fixed_params",
    "add_multipliers",
    "avg_pool_fixed_multipliers",
    "avg_pool_multipliers",
    "conv_fixed_multipliers",
    "conv_multiplier",
    "dequantize_linear",
    "lut_function",
    "lut_table_fixed",
    "lut_tables",
    "mean_fixed_multiplier",
    "mul_fixed_multiplier",
    "mul_multiplier",
    "node_multipliers",
    "pool_multiplier",
    "qas_divisors",
    "requant_mode",
]

REQUANT_MODES = ("float", "fixed")
"""The values of a graph's ``metadata["requant"]`` (absent: "float"), NUMERICS.md §2 and §2b."""

ADD_LEFT_SHIFT = 20
"""TFLite's int8 ADD left shift: both inputs are scaled by 2^20 before their multipliers (add.cc)."""


def requant_mode(graph: Graph) -> str:
    """The graph's requantization, "float" (default) or "fixed"; a :class:`TteError` names another value."""
    mode = graph.metadata.get("requant", "float")
    if mode not in REQUANT_MODES:
        raise TteError(
            f"graph '{graph.name}': metadata requant is {mode!r}, not one of {', '.join(REQUANT_MODES)} "
            "(re-export it with tte quantize --requant float|fixed)"
        )
    return str(mode)


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


def avg_pool_multipliers(s_x: float, s_y: float, kernel: int | tuple[int, int]) -> np.ndarray:
    """``m[n] = float32(s_x / (s_y * n))`` for every tap count ``n`` in ``1..kh*kw`` of a ``kernel``
    ``(kh, kw)`` average pool (an int: square), ``m[0] = 0`` (no window is empty). ``m[H*W]`` of a
    pool over a whole ``H`` x ``W`` map is :func:`pool_multiplier`."""
    kh, kw = as_pair(kernel)
    counts = np.arange(kh * kw + 1, dtype=np.float64)
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


def conv_fixed_multipliers(
    s_x: float, s_w: np.ndarray, s_y: float, *, per_tensor_product: bool = False
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """TFLite's per-channel ``(qmult[o], qshift[o]) = QuantizeMultiplier(M[o])`` of a conv or int8 linear layer.

    ``M[o] = float64(s_x) * float64(s_w[o]) / float64(s_y)`` (PopulateConvolutionQuantizationParams:
    the float64 effective scale, not the float32-rounded ``M``). ``per_tensor_product``: a
    FULLY_CONNECTED with one weight scale, whose multiplier TFLite forms from the float32 product
    ``float64(float32(s_x * s_w)) / float64(s_y)`` (GetQuantizedConvolutionMultipler)."""
    s_w32 = np.asarray(s_w, dtype=np.float32).ravel()
    if per_tensor_product:
        reals = [float(np.float32(np.float32(s_x) * w)) / float(np.float32(s_y)) for w in s_w32]
    else:
        reals = [float(np.float32(s_x)) * float(w) / float(np.float32(s_y)) for w in s_w32]
    pairs = [quantize_multiplier(m) for m in reals]
    return tuple(q for q, _ in pairs), tuple(s for _, s in pairs)


def _smaller_than_one(m: float, what: str) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplierSmallerThanOneExp``: QuantizeMultiplier of ``0 < m < 1``."""
    if not 0.0 < m < 1.0:
        raise TteError(f"{what} multiplier {m!r} is outside (0, 1): TFLite's int8 ADD cannot requantize these scales")
    return quantize_multiplier(m)


def add_fixed_params(s_1: float, s_2: float, s_y: float) -> dict[str, int]:
    """The integer parameters of TFLite's int8 ADD (add.cc, 8-bit general path), from float32 scales::

        twice_max = float64(2 * max(s_1, s_2))               # float32 product, exact
        (qm1, sh1) = QuantizeMultiplierSmallerThanOneExp(s_1 / twice_max)
        (qm2, sh2) = QuantizeMultiplierSmallerThanOneExp(s_2 / twice_max)
        (qmy, shy) = QuantizeMultiplierSmallerThanOneExp(twice_max / float64(float32(2^20 * s_y)))

    with ``left_shift`` = :data:`ADD_LEFT_SHIFT`."""
    s1, s2, sy = np.float32(s_1), np.float32(s_2), np.float32(s_y)
    twice_max = float(np.float32(2) * max(s1, s2))
    qm1, sh1 = _smaller_than_one(float(s1) / twice_max, "add input 1")
    qm2, sh2 = _smaller_than_one(float(s2) / twice_max, "add input 2")
    qmy, shy = _smaller_than_one(twice_max / float(np.float32(np.float32(1 << ADD_LEFT_SHIFT) * sy)), "add output")
    return {
        "left_shift": ADD_LEFT_SHIFT, "qm1": qm1, "sh1": sh1, "qm2": qm2, "sh2": sh2, "qmy": qmy, "shy": shy,
    }  # fmt: skip


def mean_fixed_multiplier(s_x: float, s_y: float, count: int) -> tuple[int, int]:
    """TFLite's int8 MEAN over ``count`` elements (reduce.cc / QuantizedMeanOrSum): QuantizeMultiplier of
    ``float64(s_x) / float64(s_y)``, then ``1/count`` folded into it in integers::

        shift = min(floor(log2(count)), 32, 31 + sh);  qm = (qm << shift) // count;  sh = sh - shift
    """
    qm, sh = quantize_multiplier(float(np.float32(s_x)) / float(np.float32(s_y)))
    shift = min(int(count).bit_length() - 1, 32, 31 + sh)
    return int((qm << shift) // int(count)), sh - shift


def avg_pool_fixed_multipliers(
    s_x: float, s_y: float, kernel: int | tuple[int, int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(qmult[n], qshift[n]) = QuantizeMultiplier(float64(s_x) / (float64(s_y) * n))`` for every tap count
    ``n`` in ``1..kh*kw`` of a ``kernel`` ``(kh, kw)`` (an int: square) average pool whose input and output
    quantizations differ (TFLite's AVERAGE_POOL_2D requires them equal and divides instead, see
    :func:`node_multipliers`); entry 0 is ``(0, 0)``."""
    kh, kw = as_pair(kernel)
    pairs = [(0, 0)] + [
        quantize_multiplier(float(np.float32(s_x)) / (float(np.float32(s_y)) * n)) for n in range(1, kh * kw + 1)
    ]
    return tuple(q for q, _ in pairs), tuple(s for _, s in pairs)


def mul_fixed_multiplier(s_a: float, s_b: float, s_y: float) -> tuple[int, int]:
    """TFLite's int8 MUL (mul.cc): QuantizeMultiplier of ``float64(float32(float32(s_a * s_b) / s_y))``
    (TFLite forms this multiplier in float32)."""
    real = np.float32(np.float32(s_a) * np.float32(s_b)) / np.float32(s_y)
    return quantize_multiplier(float(np.float32(real)))


def _wrap(x: int, bits: int) -> int:
    """``x`` wrapped to a signed ``bits``-bit integer (a C cast to int16_t / int32_t)."""
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def _srdhm_int(a: int, b: int, bits: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul of ``bits``-bit integers."""
    low = -(1 << (bits - 1))
    if a == b == low:
        return -low - 1
    t = a * b + ((1 << (bits - 2)) if a * b >= 0 else 1 - (1 << (bits - 2)))
    high = abs(t) >> (bits - 1)  # C++ integer division by 2^(bits-1): truncation toward zero
    return _wrap(high if t >= 0 else -high, bits)


def _rdbpot_int(x: int, exponent: int, bits: int) -> int:
    """gemmlowp's RoundingDivideByPOT on a ``bits``-bit integer type (its mask is cast to that type)."""
    mask = _wrap((1 << exponent) - 1, bits)
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def _downscale_int16(m: int) -> int:
    """TFLite's DownScaleInt32ToInt16Multiplier."""
    if m >= INT32_MAX - (1 << 15):
        return (1 << 15) - 1
    return (m + (1 << 15)) >> 16


def _hard_swish_table_fixed(s_x: float, z_x: int, s_y: float, z_y: int) -> np.ndarray:
    """The int8 HARD_SWISH of TFLite's reference kernel (reference/hard_swish.h; parameters from
    activations.cc HardSwishPrepare, in float32) over the 256 input codes."""
    hires = np.float32(np.float32(1.0 / 128.0) * np.float32(s_x))
    out_m32, out_exp = quantize_multiplier(float(np.float32(hires / np.float32(s_y))))
    if out_exp > 0:
        raise TteError(f"hard-swish output multiplier {float(hires / np.float32(s_y))!r} >= 1: TFLite refuses it")
    rel_m32, rel_exp = quantize_multiplier(float(np.float32(hires / (np.float32(3.0) / np.float32(32768.0)))))
    out_m, rel_m = _downscale_int16(out_m32), _downscale_int16(rel_m32)

    def sat_left_shift(v: int, amount: int) -> int:
        return max(-32768, min(32767, v * (1 << amount)))

    table = np.empty(256, dtype=np.int8)
    for q in range(-128, 128):
        hires_v = _wrap((q - z_x) * 128, 16)
        preshift_out = _srdhm_int(hires_v, out_m, 16)
        reluish = hires_v
        if rel_exp > 0:
            reluish = sat_left_shift(reluish, rel_exp - 1)
        reluish = _srdhm_int(reluish, rel_m, 16)
        if rel_exp > 0:
            reluish = sat_left_shift(reluish, 1)
        if rel_exp < 0:
            reluish = _rdbpot_int(reluish, -rel_exp, 16)
        reluish = (reluish + (1 << 15)) >> 1
        product = reluish * preshift_out  # SaturatingDoublingHighMul: truncation toward zero
        high = abs(product) >> 15
        preshift = 32767 if reluish == preshift_out == -32768 else _wrap(high if product >= 0 else -high, 16)
        out = _wrap(_rdbpot_int(preshift, -out_exp, 16) + z_y, 16)
        table[q + 128] = min(127, max(-128, out))
    return table


def _sigmoid_table_fixed(s_x: float, z_x: int, s_y: float, z_y: int) -> np.ndarray:
    """TFLite's int8 LOGISTIC table (LUTPopulate with ``1 / (1 + exp(-x))``), every step in float32 as
    TFLite computes it; ``expf`` is the float64 exponential rounded once to float32."""
    q = np.arange(-128, 128, dtype=np.int32)
    x = np.float32(s_x) * (q - np.int32(z_x)).astype(np.float32)
    with np.errstate(over="ignore"):
        e = np.exp(-x.astype(np.float64)).astype(np.float32)
        f = np.float32(1.0) / (np.float32(1.0) + e)
    rescaled = f * (np.float32(1.0) / np.float32(s_y))
    rounded = np.sign(rescaled) * np.floor(np.abs(rescaled) + np.float32(0.5))  # std::round: halves away
    quantized = (rounded + np.float32(z_y)).astype(np.int64)
    return np.clip(quantized, -128, 127).astype(np.int8)


def lut_table_fixed(function: str, s_x: float, z_x: int, s_y: float, z_y: int) -> np.ndarray:
    """The forward table (int8 [256], entry ``q + 128`` for code ``q``) of a LUT activation under
    ``requant: fixed``: TFLite's integer HARD_SWISH and its LOGISTIC table; hard_sigmoid, which TFLite
    has no int8 kernel for, keeps :func:`lut_tables`' float64 table."""
    if function == "hard_swish":
        return _hard_swish_table_fixed(s_x, z_x, s_y, z_y)
    if function == "sigmoid":
        return _sigmoid_table_fixed(s_x, z_x, s_y, z_y)
    return lut_tables(function, s_x, z_x, s_y, z_y)[0]


def node_multipliers(graph: Graph, node: Node) -> dict[str, Any]:
    """The float32 constants a kernel needs for ``node``, from the graph's quantization.

    conv2d / int8 linear: ``{"multiplier": M[O]}``; add: ``{"m1", "m2"}``; pool: ``{"multiplier"}``;
    lut: ``{"table": int8 [256], "slope": float32 [256]}`` (:func:`lut_tables`); mul: ``{"m"}``;
    avg_pool: ``{"multiplier": m[KH*KW+1]}`` (:func:`avg_pool_multipliers`).
    Ops without multipliers (reshape, fp32 linear) give an empty dict.

    Under ``requant: fixed`` (:func:`requant_mode`) the dict also holds TFLite's integer parameters:
    conv / int8 linear ``qmult``, ``qshift`` (tuples [O], :func:`conv_fixed_multipliers`); add the
    :func:`add_fixed_params`; global average pool (TFLite's MEAN) ``qm``, ``sh``
    (:func:`mean_fixed_multiplier`); mul ``qm``, ``sh`` (:func:`mul_fixed_multiplier`); lut the
    :func:`lut_table_fixed` as ``table``; avg_pool ``qmult``, ``qshift`` per tap count
    (:func:`avg_pool_fixed_multipliers`), or None for both where input and output share scale and zero
    point: then the pool is TFLite's AVERAGE_POOL_2D, a rounded division of the codes' sum by the count.
    """
    fixed = requant_mode(graph) == "fixed"
    spec = graph.tensors
    if node.op in (Op.CONV2D, Op.LINEAR):
        x, w, _b = (spec[name] for name in node.inputs[:3])
        if w.dtype.name == "FLOAT32":
            return {}
        y = spec[node.outputs[0]]
        _require_quant(node, x.name, x.quant, y.quant, w.quant)
        s_x, s_w, s_y = x.quant.tensor_scale, w.quant.scale_array(), y.quant.tensor_scale
        out: dict[str, Any] = {"multiplier": conv_multiplier(s_x, s_w, s_y)}
        if fixed:
            per_tensor = node.op is Op.LINEAR and w.quant.axis is None
            out["qmult"], out["qshift"] = conv_fixed_multipliers(s_x, s_w, s_y, per_tensor_product=per_tensor)
        return out
    if node.op is Op.ADD:
        a, b = (spec[name] for name in node.inputs)
        y = spec[node.outputs[0]]
        _require_quant(node, a.name, a.quant, b.quant, y.quant)
        m1, m2 = add_multipliers(a.quant.tensor_scale, b.quant.tensor_scale, y.quant.tensor_scale)
        out = {"m1": m1, "m2": m2}
        if fixed:
            out.update(add_fixed_params(a.quant.tensor_scale, b.quant.tensor_scale, y.quant.tensor_scale))
        return out
    if node.op is Op.GLOBAL_AVG_POOL:
        x = spec[node.inputs[0]]
        y = spec[node.outputs[0]]
        _require_quant(node, x.name, x.quant, y.quant)
        hw = x.shape[2] * x.shape[3]
        out = {"multiplier": pool_multiplier(x.quant.tensor_scale, y.quant.tensor_scale, hw)}
        if fixed:
            out["qm"], out["sh"] = mean_fixed_multiplier(x.quant.tensor_scale, y.quant.tensor_scale, hw)
        return out
    if node.op is Op.LUT:
        x, y = spec[node.inputs[0]], spec[node.outputs[0]]
        _require_quant(node, x.name, x.quant, y.quant)
        quants = (x.quant.tensor_scale, x.quant.zero_point, y.quant.tensor_scale, y.quant.zero_point)
        table, slope = lut_tables(node.attrs["function"], *quants)
        if fixed:
            table = lut_table_fixed(node.attrs["function"], *quants)
        return {"table": table, "slope": slope}
    if node.op is Op.MUL:
        a, b = (spec[name] for name in node.inputs)
        y = spec[node.outputs[0]]
        _require_quant(node, a.name, a.quant, b.quant, y.quant)
        scales = (a.quant.tensor_scale, b.quant.tensor_scale, y.quant.tensor_scale)
        out = {"m": mul_multiplier(*scales)}
        if fixed:
            out["qm"], out["sh"] = mul_fixed_multiplier(*scales)
        return out
    if node.op is Op.AVG_POOL:
        x = spec[node.inputs[0]]
        y = spec[node.outputs[0]]
        _require_quant(node, x.name, x.quant, y.quant)
        kernel = as_pair(node.attrs["kernel"])
        out = {"multiplier": avg_pool_multipliers(x.quant.tensor_scale, y.quant.tensor_scale, kernel)}
        if fixed:
            same = x.quant == y.quant
            fixed_m = avg_pool_fixed_multipliers(x.quant.tensor_scale, y.quant.tensor_scale, kernel)
            out["qmult"], out["qshift"] = (None, None) if same else fixed_m
        return out
    return {}


def _require_quant(node: Node, tensor: str, *quants: object) -> None:
    if any(q is None for q in quants):
        raise TteError(f"{node.describe()}: an int8 tensor around '{tensor}' has no quantization parameters")
