"""Golden cases of the engine's training kernels (tte/tte_train.h), and the numpy reference they are
checked against on the host.

A :class:`firmware_data.CallCase` is one kernel call written as C (spelled by
:func:`firmware_data.kernel_call_c` from the kernel's signature): its descriptors, the call,
read-only inputs (flash) and read-write buffers with their contents before and after the call,
computed by the host engine (``tte_engine``). ``golden_main.c`` runs every case on the target and
compares the buffers byte for byte, so a passing case means Cortex-M and the host agree bit for
bit, floats included.
``reference`` holds what ``tte_ir.reference_train`` computes for the same call; the host tests check
the host engine against it (bit for bit, or within rtol 1e-5 where ``exact`` is false: the softmax,
whose ``expf`` is the engine's own, not numpy's).

The builders take IR-layout arrays (``[1, C, H, W]``, weights ``[O, C/g, KH, KW]``) and convert them
with :mod:`tte_ir.layout` and :func:`tte_ir.kernels.weight_layout`, as the code generator does.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
from firmware_data import CallCase, c_descriptor, c_float, kernel_call_c

from tte_engine import _core
from tte_ir import reference, reference_train
from tte_ir.kernels import LR_GROUPS, ROUNDING, conv_family, weight_layout, window_fields
from tte_ir.layout import to_engine_layout
from tte_ir.ops import as_padding, as_pair, window_output_size

KINDS = ("dense", "depthwise", "pointwise")


# ---- layouts and the reference --------------------------------------------------------------------------------


def weight_indices(full: Sequence[int], shape: Sequence[int], channels: Sequence[int], depthwise: bool) -> np.ndarray:
    """Flat IR indices in the full weight ``full`` of the trained slice's elements (rounding.py)."""
    o, j, u, q = np.indices(tuple(shape))
    channel = np.asarray(channels)[o if depthwise else j]
    if depthwise:
        return ((channel * full[1] + j) * full[2] + u) * full[3] + q
    return ((o * full[1] + channel) * full[2] + u) * full[3] + q


def reference_w_update(
    x_saved, gh, w_train, inv_w, *, depthwise, channels, full, stride, padding, x_zero, lr, rounding, seed, step,
    tensor_id,
) -> np.ndarray:  # fmt: skip
    """tte_ir.reference_train's conv2d_bwd_w_update on IR arrays: the updated slice."""
    grad = reference_train.conv2d_weight_grad(
        x_saved,
        gh,
        channels=list(channels),
        kernel=tuple(full[2:]),
        stride=stride,
        padding=padding,
        x_zero=x_zero,
        depthwise=depthwise,
    )
    index = weight_indices(full, w_train.shape, channels, depthwise)
    inv = np.asarray(inv_w)[list(channels)] if depthwise else np.asarray(inv_w)
    attrs = {"rounding": rounding, "seed": seed, "tensor_id": tensor_id}
    steps = reference_train.qas_round(grad, inv, lr, attrs, step, index)
    return np.clip(w_train.astype(np.int64) + steps, -127, 127).astype(np.int8)


def frozen_divisors(inv: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """The divisors as tte_ir.quant.qas_divisors leaves them: 0 where the channel is frozen (the
    divisor is not finite, or the bias sits at an int32 limit). The kernels apply the same rule at
    run time, so the reference, which trusts its divisors, is given these."""
    frozen = ~np.isfinite(inv)
    if bias is not None:
        frozen |= (bias == np.iinfo(np.int32).min) | (bias == np.iinfo(np.int32).max)
    return np.where(frozen, np.float32(0.0), inv).astype(np.float32)


def pack_hwc(mask_ir: np.ndarray) -> np.ndarray:
    """A bool mask over an IR tensor, bit-packed in the engine's (HWC) element order."""
    engine = to_engine_layout(mask_ir) if mask_ir.ndim in (2, 4) else mask_ir
    return np.packbits(np.asarray(engine, dtype=bool).reshape(-1), bitorder="little")


# ---- C pieces ---------------------------------------------------------------------------------------------


def ctx_decl(ctx: _core.TrainContext) -> str:
    """The C declaration of a step context equal to ``ctx`` (status OK)."""
    return (
        f"tte_train_ctx ctx = {{{{{c_float(ctx.lr)}, {c_float(ctx.head_lr)}}}, {ctx.step}u, {ctx.seed}u, TTE_STEP_OK, "
        f"{int(ctx.batch_end)}}};"
    )


def new_ctx(lr: float = 0.05, head_lr: float = 0.01, step: int = 3, seed: int = 11) -> _core.TrainContext:
    return _core.TrainContext(lr=lr, head_lr=head_lr, step=step, seed=seed)


def _pattern(shape, dtype) -> np.ndarray:
    """The initial contents of an output buffer: a byte pattern no kernel result equals by accident."""
    return np.full(int(np.prod(shape)) * np.dtype(dtype).itemsize, 0x5A, np.uint8).view(dtype).reshape(shape)


def _band_decl(name: str, band: tuple[int, int] | None) -> tuple[str, str]:
    if band is None:
        return "", "NULL"
    return f"const tte_channel_band {name} = {{{band[0]}, {band[1]}}};", f"&{name}"


def _conv_params(kind, in_shape, out_c, kh, kw, stride, padding, groups, x_zero=0, y_zero=0, channels=()) -> dict:
    """The ``tte_conv2d_params`` fields of a conv of family ``kind`` on an ``in_shape`` ``(H, W, C)`` input
    (``stride`` (sh, sw), ``padding`` (top, left, bottom, right); an int: every axis or side)."""
    h, w, c = in_shape
    fields = {
        "in_h": h, "in_w": w, "in_c": c, "out_c": out_c, "kernel_h": kh, "kernel_w": kw,
        **window_fields(stride, padding), "groups": c if kind == "depthwise" else groups, "x_zero": x_zero,
        "y_zero": y_zero, "act_min": -128, "act_max": 127,
    }  # fmt: skip
    if len(channels):
        fields.update(train_channels=tuple(int(c) for c in channels), train_count=len(channels))
    return fields


def _update_decl(rounding: str, lr_group: str, tensor_id: int) -> list[str]:
    return c_descriptor("u", "tte_update_params", {
        "rounding": ROUNDING[rounding], "lr_group": LR_GROUPS[lr_group], "tensor_id": tensor_id,
    })  # fmt: skip


def _c(kernel: str, params: dict | None, extra: Sequence[str] = (), **args: str) -> tuple[tuple[str, ...], str]:
    """The ``decls`` and ``call`` of a :class:`CallCase` calling ``kernel`` (:func:`firmware_data.kernel_call_c`),
    after the declarations ``extra`` (the context, bands, a second descriptor)."""
    decls, call = kernel_call_c(kernel, params, args)
    return (*extra, *decls), f"status = {call};"


_PREFIX = {"dense": "conv2d", "depthwise": "depthwise_conv2d", "pointwise": "pointwise_conv2d"}


# ---- builders: one per kernel ---------------------------------------------------------------------------------


def softmax_case(name: str, logits: np.ndarray, label: int, *, scale: float | None = None, zero: int = 0) -> CallCase:
    """softmax_ce on IR logits ``[1, N]`` (float32, or int8 codes with ``scale``)."""
    ctx = new_ctx()
    n = logits.shape[1]
    if scale is None:
        loss, g = _core.softmax_ce_f32(np.ascontiguousarray(logits[0]), label, ctx=ctx)
        ref_loss, ref_g = reference_train.softmax_ce(logits, label)
        kernel, params = "softmax_ce_f32", {"classes": n}
    else:
        loss, g = _core.softmax_ce_s8(np.ascontiguousarray(logits[0]), label, scale=scale, zero=zero, ctx=ctx)
        ref_loss, ref_g = reference_train.softmax_ce(logits, label, scale=scale, zero=zero)
        kernel, params = "softmax_ce_s8", {"classes": n, "scale": np.float32(scale), "zero": zero}
    return CallCase(
        name,
        *_c(
            kernel,
            params,
            (ctx_decl(ctx), f"static const int32_t label[1] = {{{label}}};"),
            ctx="&ctx",
            logits="$logits",
            label="label",
            loss="$loss",
            g="$g",
        ),
        {"logits": np.ascontiguousarray(logits[0])},
        {
            "loss": (_pattern((1,), np.float32), np.array([loss], np.float32)),
            "g": (_pattern((n,), np.float32), g),
        },
        ctx.status,
        {"loss": np.array([ref_loss], np.float32), "g": ref_g[0]},
        exact=False,
    )


def gather_case(name: str, x: np.ndarray, channels: Sequence[int]) -> CallCase:
    xe = to_engine_layout(x)
    y = _core.gather_channels_s8(xe, list(channels))
    h, w, c = xe.shape
    return CallCase(
        name,
        *_c(
            "gather_channels_s8",
            {"pixels": h * w, "in_c": c, "channels": tuple(channels), "count": len(channels)},
            x="$x",
            y="$y",
        ),
        {"x": xe},
        {"y": (_pattern(y.shape, np.int8), y)},
        reference={"y": to_engine_layout(np.ascontiguousarray(x[:, list(channels)]))},
    )


def mask_scale_case(name: str, g: np.ndarray, mask: np.ndarray, scale: np.ndarray, band=None) -> CallCase:
    """mask_scale on IR ``g [1, C, H, W]`` and a bool ``mask`` of its shape; ``band`` runs one channel band."""
    ge, packed = to_engine_layout(g), pack_hwc(mask)
    ref = to_engine_layout(reference_train.mask_scale(g, mask, scale))
    if band is not None:
        ge = np.ascontiguousarray(ge[..., band[0] : band[0] + band[1]])
        ref = np.ascontiguousarray(ref[..., band[0] : band[0] + band[1]])
    gh = _core.mask_scale_f32(ge, packed, scale, band=band)
    h, w, c = g.shape[2], g.shape[3], g.shape[1]
    band_decl, band_ptr = _band_decl("band", band)
    return CallCase(
        name,
        # in place, as the IR plans it
        *_c(
            "mask_scale_f32",
            {"pixels": h * w, "channels": c},
            (band_decl,),
            g="$g",
            mask="$mask",
            scale="$scale",
            gh="$g",
            band=band_ptr,
        ),
        {"mask": packed, "scale": scale},
        {"g": (ge, gh)},
        reference={"g": ref},
    )


def add_bwd_case(name: str, g: np.ndarray, mask: np.ndarray, m1: float, m2: float) -> CallCase:
    ge, packed = to_engine_layout(g), pack_hwc(mask)
    ga, gb = _core.add_bwd_f32(ge, packed, m1=m1, m2=m2)
    zero = np.float32(0.0)
    ref_a = np.where(mask, g * np.float32(m1), zero).astype(np.float32)
    ref_b = np.where(mask, g * np.float32(m2), zero).astype(np.float32)
    return CallCase(
        name,
        # ga over g, as the IR plans it
        *_c(
            "add_bwd_f32",
            {"size": ge.size, "m1": np.float32(m1), "m2": np.float32(m2)},
            g="$g",
            mask="$mask",
            ga="$g",
            gb="$gb",
        ),
        {"mask": packed},
        {"g": (ge, ga), "gb": (_pattern(ge.shape, np.float32), gb)},
        reference={"g": to_engine_layout(ref_a), "gb": to_engine_layout(ref_b)},
    )


def pool_bwd_case(name: str, g: np.ndarray, mask: np.ndarray, multiplier: float, size: tuple[int, int]) -> CallCase:
    """pool_bwd on IR ``g [1, C, 1, 1]``."""
    c = g.shape[1]
    packed = np.packbits(mask.reshape(-1), bitorder="little")
    gx = _core.global_avg_pool_bwd_f32(g.reshape(-1).copy(), packed, multiplier=multiplier, in_h=size[0], in_w=size[1])
    per = np.where(mask.reshape(-1), g.reshape(-1) * np.float32(multiplier), np.float32(0.0)).astype(np.float32)
    return CallCase(
        name,
        *_c(
            "global_avg_pool_bwd_f32",
            {"in_h": size[0], "in_w": size[1], "in_c": c, "multiplier": np.float32(multiplier)},
            g="$g",
            mask="$mask",
            gx="$gx",
        ),
        {"g": g.reshape(-1).copy(), "mask": packed},
        {"gx": (_pattern(gx.shape, np.float32), gx)},
        reference={"gx": np.broadcast_to(per, gx.shape).copy()},
    )


def accumulate_case(name: str, acc: np.ndarray, g: np.ndarray) -> CallCase:
    y = _core.accumulate_f32(acc, g)
    return CallCase(
        name,
        *_c("accumulate_f32", None, size=str(acc.size), acc="$acc", g="$g", y="$acc"),
        {"g": g},
        {"acc": (acc, y)},
        reference={"acc": (acc + g).astype(np.float32)},
    )


def conv_fwd_case(
    name, x, w, b, multiplier, *, stride, padding, groups, x_zero, y_zero, channels=(), w_train=None, rows=None
) -> CallCase:
    """A forward conv on IR arrays with a trained slice (``channels``, ``w_train``) and/or a row band
    ``rows = (x_row, x_rows, y_row, y_rows)`` (x then holds only its rows)."""
    kind = conv_family(w.shape, x.shape[1], padding, groups)
    ref = to_engine_layout(
        reference.conv2d(
            x,
            reference.effective_weight(w, w_train, channels, kind == "depthwise"),
            b,
            multiplier,
            stride=stride,
            padding=padding,
            groups=groups,
            x_zero=x_zero,
            y_zero=y_zero,
        )
    )
    xe = to_engine_layout(x)
    kwargs = {"stride": stride, "x_zero": x_zero, "y_zero": y_zero}
    if kind != "pointwise":
        kwargs["padding"] = padding
    if kind == "dense":
        kwargs["groups"] = groups
    if w_train is not None:
        kwargs.update(w_train=weight_layout(kind).to_engine(w_train), train_channels=list(channels))
    band_decl, band_ptr = "", "NULL"
    if rows is not None:
        x_row, x_rows, y_row, y_rows = rows
        xe = np.ascontiguousarray(xe[x_row : x_row + x_rows])
        ref = np.ascontiguousarray(ref[y_row : y_row + y_rows])
        kwargs.update(rows=(x_row, y_row, y_rows), in_h=x.shape[2])
        band_decl, band_ptr = f"const tte_row_band rows = {{{x_row}, {x_rows}, {y_row}, {y_rows}}};", "&rows"
    wl = weight_layout(kind).to_engine(w)
    y = getattr(_core, f"{_PREFIX[kind]}_fwd_s8")(xe, wl, b, multiplier, **kwargs)
    inputs = {"x": xe, "w": wl, "b": b, "m": multiplier}
    slice_ptr = "NULL"
    if w_train is not None:
        inputs["w_train"] = kwargs["w_train"]
        slice_ptr = "$w_train"
    params = _conv_params(kind, (x.shape[2], x.shape[3], x.shape[1]), w.shape[0], w.shape[2], w.shape[3], stride,
                          padding, groups, x_zero, y_zero, channels=channels)  # fmt: skip
    return CallCase(
        name,
        *_c(
            f"{_PREFIX[kind]}_fwd_s8",
            params,
            (band_decl,),
            x="$x",
            w="$w",
            w_train=slice_ptr,
            bias="$b",
            multiplier="$m",
            y="$y",
            rows=band_ptr,
        ),
        inputs,
        {"y": (_pattern(y.shape, np.int8), y)},
        reference={"y": ref},
    )


def conv_bwd_x_case(
    name, gh, w, *, size, stride, padding, groups, channels=(), w_train=None, acc=None, gh_band=None, gx_band=None
) -> CallCase:
    """conv2d_bwd_x on IR ``gh [1, O, Ho, Wo]`` and ``w``; bands run one channel tile (``acc`` holds
    the whole gx's running sum when ``gh_band`` tiles the output channels)."""
    in_c = w.shape[1] * groups
    kind = conv_family(w.shape, in_c, padding, groups)
    w_eff = reference.effective_weight(w, w_train, channels, kind == "depthwise")
    gh_ref = gh
    if gh_band is not None:  # a tile adds only its channels' terms: the others are zeros to the reference
        gh_ref = np.zeros_like(gh)
        gh_ref[:, gh_band[0] : gh_band[0] + gh_band[1]] = gh[:, gh_band[0] : gh_band[0] + gh_band[1]]
    ref = to_engine_layout(
        reference_train.conv2d_bwd_x(gh_ref, w_eff, size=size, stride=stride, padding=padding, groups=groups, acc=acc)
    )
    ghe = to_engine_layout(gh)
    acce = None if acc is None else to_engine_layout(acc)
    if kind == "depthwise":
        gx_band = gh_band  # channel-separable: one band for both
    if gh_band is not None:
        ghe = np.ascontiguousarray(ghe[..., gh_band[0] : gh_band[0] + gh_band[1]])
    if gx_band is not None:
        ref = np.ascontiguousarray(ref[..., gx_band[0] : gx_band[0] + gx_band[1]])
        acce = None if acce is None else np.ascontiguousarray(acce[..., gx_band[0] : gx_band[0] + gx_band[1]])
    kwargs = {"in_h": size[0], "in_w": size[1], "stride": stride, "acc": acce}
    if kind != "pointwise":
        kwargs["padding"] = padding
    if kind == "dense":
        kwargs.update(groups=groups, gh_band=gh_band, gx_band=gx_band)
    elif kind == "pointwise":
        kwargs.update(gh_band=gh_band, gx_band=gx_band)
    else:
        kwargs["band"] = gh_band
    if w_train is not None:
        kwargs.update(w_train=weight_layout(kind).to_engine(w_train), train_channels=list(channels))
    wl = weight_layout(kind).to_engine(w)
    gx = getattr(_core, f"{_PREFIX[kind]}_bwd_x_f32")(ghe, wl, **kwargs)
    inputs = {"gh": ghe, "w": wl}
    slice_ptr = "NULL"
    if w_train is not None:
        inputs["w_train"] = kwargs["w_train"]
        slice_ptr = "$w_train"
    params = _conv_params(kind, (size[0], size[1], in_c), w.shape[0], w.shape[2], w.shape[3], stride, padding,
                          groups, channels=channels)  # fmt: skip
    gh_decl, gh_ptr = _band_decl("gh_band", gh_band)
    gx_decl, gx_ptr = _band_decl("gx_band", gx_band)
    before = _pattern(gx.shape, np.float32) if acce is None else acce
    return CallCase(
        name,
        *_c(
            f"{_PREFIX[kind]}_bwd_x_f32",
            params,
            (gh_decl, gx_decl),
            gh="$gh",
            w="$w",
            w_train=slice_ptr,
            gx="$gx",
            accumulate=str(int(acc is not None)),
            gh_band=gh_ptr,
            gx_band=gx_ptr,
        ),
        inputs,
        {"gx": (before, gx)},
        reference={"gx": ref},
    )


def conv_w_update_case(
    name, kind, x_saved, gh, w_train, inv_w, *, full, channels, stride, padding, x_zero, rounding, tensor_id,
    band=None,
) -> CallCase:  # fmt: skip
    """conv2d_bwd_w_update of a ``kind`` conv on IR arrays: ``x_saved [1, k, H, W]``, ``gh [1, O, Ho, Wo]``,
    the slice ``w_train`` of the full weight shape ``full``; ``band`` runs one tile of gh's channels."""
    ctx = new_ctx()
    depthwise = kind == "depthwise"
    in_c = full[0] if depthwise else full[1]
    ref = weight_layout(kind).to_engine(w_train)  # a failed step leaves the slice as it was
    if np.all(np.isfinite(gh)):
        updated = reference_w_update(
            x_saved, gh, w_train, frozen_divisors(inv_w), depthwise=depthwise, channels=channels, full=full,
            stride=stride, padding=padding, x_zero=x_zero, lr=ctx.lr, rounding=rounding, seed=ctx.seed,
            step=ctx.step, tensor_id=tensor_id,
        )  # fmt: skip
        if band is not None:  # one tile: only the band's weights move
            inside = [j for j, c in enumerate(channels) if band[0] <= c < band[0] + band[1]]
            moved = w_train.copy()
            if depthwise:
                moved[inside] = updated[inside]
            else:
                moved[band[0] : band[0] + band[1]] = updated[band[0] : band[0] + band[1]]
            updated = moved
        ref = weight_layout(kind).to_engine(updated)
    ghe = to_engine_layout(gh)
    if band is not None:
        ghe = np.ascontiguousarray(ghe[..., band[0] : band[0] + band[1]])
    xe, wl = to_engine_layout(x_saved), weight_layout(kind).to_engine(w_train)
    kwargs = {"train_channels": list(channels), "in_c": in_c, "stride": stride, "x_zero": x_zero}
    if kind != "pointwise":
        kwargs["padding"] = padding
    fn = getattr(_core, f"{_PREFIX[kind]}_bwd_w_update_s8")
    after = fn(ctx, xe, ghe, wl, inv_w, **kwargs, tensor_id=tensor_id, rounding=rounding, gh_band=band)
    params = _conv_params(kind, (x_saved.shape[2], x_saved.shape[3], in_c), full[0], full[2], full[3], stride,
                          padding, 1, x_zero, channels=channels)  # fmt: skip
    band_decl, band_ptr = _band_decl("band", band)
    return CallCase(
        name,
        *_c(
            f"{_PREFIX[kind]}_bwd_w_update_s8",
            params,
            (ctx_decl(ctx), *_update_decl(rounding, "body", tensor_id), band_decl),
            ctx="&ctx",
            u="&u",
            x_saved="$x",
            gh="$gh",
            inv_w="$inv",
            w_train="$w_train",
            gh_band=band_ptr,
        ),
        {"x": xe, "gh": ghe, "inv": inv_w},
        {"w_train": (wl, after)},
        ctx.status,
        reference={"w_train": ref},
    )


def bias_update_case(name, gh, b, inv_b, *, rounding, tensor_id, band=None) -> CallCase:
    """bias_update on IR ``gh [1, O, H, W]`` (or ``[1, O]``)."""
    ctx = new_ctx()
    settings = {"rounding": rounding, "seed": ctx.seed, "tensor_id": tensor_id}
    grad = reference_train.bias_grad(gh if gh.ndim == 4 else gh.reshape(*gh.shape, 1, 1))
    steps = reference_train.qas_round(
        grad, frozen_divisors(inv_b, b), ctx.lr, settings, ctx.step, np.arange(b.shape[0])
    )
    ref = reference.sat32(b.astype(np.int64) + steps).astype(np.int32)
    ghe = to_engine_layout(gh)
    if band is not None:
        ghe = np.ascontiguousarray(ghe[..., band[0] : band[0] + band[1]])
        ref = np.concatenate([b[: band[0]], ref[band[0] : band[0] + band[1]], b[band[0] + band[1] :]])
    after = _core.bias_update_s32(ctx, ghe, b, inv_b, tensor_id=tensor_id, rounding=rounding, band=band)
    band_decl, band_ptr = _band_decl("band", band)
    return CallCase(
        name,
        *_c(
            "bias_update_s32",
            {"pixels": ghe.size // ghe.shape[-1], "channels": b.shape[0]},
            (ctx_decl(ctx), *_update_decl(rounding, "body", tensor_id), band_decl),
            ctx="&ctx",
            u="&u",
            gh="$gh",
            inv_b="$inv",
            b="$b",
            band=band_ptr,
        ),
        {"gh": ghe, "inv": inv_b},
        {"b": (b, after)},
        ctx.status,
        reference={"b": ref},
    )


def linear_bwd_case(name, x, g, w, b, *, x_scale, x_zero) -> CallCase:
    """linear_f32_bwd_update with update and input gradient, in place over w and b."""
    ctx = new_ctx()
    w_next, b_next, gx = _core.linear_bwd_update_f32(
        ctx, x[0].copy(), g[0].copy(), w, b, x_scale=x_scale, x_zero=x_zero, update=True, input_grad=True
    )
    lr, s = np.float32(ctx.head_lr), np.float32(x_scale)
    sums = np.zeros(w.shape[1], np.float32)
    for o in range(w.shape[0]):  # ascending o, as reference_train
        sums = sums + w[o] * g[0, o]
    xf = reference.dequantize_input(x[0], x_scale, x_zero)
    o_count, i_count = w.shape
    return CallCase(
        name,
        *_c(
            "linear_bwd_update_f32",
            {"in_features": i_count, "out_features": o_count, "x_scale": np.float32(x_scale), "x_zero": x_zero},
            (ctx_decl(ctx),),
            ctx="&ctx",
            lr_group=LR_GROUPS["head"].name,
            x="$x",
            g="$g",
            w="$w",
            b="$b",
            w_next="$w",
            b_next="$b",
            gx="$gx",
        ),
        {"x": x[0].copy(), "g": g[0].copy()},
        {"w": (w, w_next), "b": (b, b_next), "gx": (_pattern((i_count,), np.float32), gx)},
        ctx.status,
        reference={
            "w": (w - lr * (g[0][:, None] * xf[None, :])).astype(np.float32),
            "b": (b - lr * g[0]).astype(np.float32),
            "gx": (s * sums).astype(np.float32),
        },
    )


def math_case(name: str, x: np.ndarray) -> CallCase:
    """tte_expf and tte_logf over ``x`` (the softmax's functions, on every target)."""
    n = x.size
    return CallCase(
        name,
        (),
        f"status = TTE_OK;\n    for (int i = 0; i < {n}; ++i) {{\n        $e[i] = tte_expf($x[i]);\n"
        f"        $l[i] = tte_logf($x[i]);\n    }}",
        {"x": x},
        {
            "e": (_pattern(x.shape, np.float32), _core.expf(x)),
            "l": (_pattern(x.shape, np.float32), _core.logf(x)),
        },
        reference={"e": np.exp(x.astype(np.float64)).astype(np.float32)},
        exact=False,
    )


def round_to_float32(exact: Fraction) -> np.float32:
    """``exact`` rounded once to float32, to nearest with ties to even (2^128 counts as even: infinity),
    from exact comparisons: the oracle of a fused multiply-add, independent of any float arithmetic."""
    if exact == 0:
        return np.float32(0.0)
    with np.errstate(over="ignore"):  # beyond FLT_MAX the guess is infinity, then its neighbour FLT_MAX
        guess = np.float32(float(exact)) if abs(exact) < 2**128 else np.float32(np.inf if exact > 0 else -np.inf)
    candidates = {guess, *np.nextafter(guess, np.float32([-np.inf, np.inf]))}

    def value(v: np.float32) -> Fraction:
        return Fraction(int(np.sign(v)) * 2**128) if np.isinf(v) else Fraction(float(v))

    def key(v: np.float32) -> tuple[Fraction, int]:
        odd = 0 if np.isinf(v) else int(np.asarray(v).view(np.uint32)) & 1
        return abs(value(v) - exact), odd

    return min(candidates, key=key)


def fmaf_double_rounding_triples(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` float32 triples ``(a, b, c)`` whose ``a * b + c`` rounded to double and then to float32 (newlib's
    fmaf on a core without VFMA) is not the value rounded once: products within 2^-29 of half an ulp of ``c``,
    around normal and subnormal ``c``, so the double sum lands on a float midpoint. Drawn until ``count`` such."""
    found: list[tuple[np.float32, np.float32, np.float32]] = []
    while len(found) < count:
        n = 4096
        c = rng.integers(0, 2**31 - 2**23, n, dtype=np.uint32).view(np.float32)  # finite and positive: signs next
        c = np.where(rng.random(n) < 0.5, -c, c).astype(np.float32)
        half_ulp = np.maximum(np.frexp(np.abs(c).astype(np.float64))[1] - 25, -150)
        # significands 2^23 + i and 2^24 - j: their product is 2^47 + small for some small i, j
        i = rng.integers(0, 4097, n)
        j = np.where(rng.random(n) < 0.5, 2 * i - 1, 2 * i + rng.integers(-2, 3, n))
        ea = rng.integers(-30, 31, n)
        a = np.ldexp((2**23 + i).astype(np.float64), ea - 23)
        b = np.ldexp((2**24 - j).astype(np.float64), half_ulp - ea - 24) * np.where(rng.random(n) < 0.5, -1, 1)
        with np.errstate(over="ignore", invalid="ignore"):
            a32, b32 = a.astype(np.float32), b.astype(np.float32)
            twice = (a32.astype(np.float64) * b32 + c).astype(np.float32)
        ok = (a32 == a) & (b32 == b) & (b32 != 0)
        once = reference_train._fmaf(a32, b32, c)
        hard = ok & np.isfinite(once) & (twice.view(np.uint32) != once.view(np.uint32))
        found += list(zip(a32[hard], b32[hard], c[hard], strict=True))
    a, b, c = (np.array(v, np.float32) for v in zip(*found[:count], strict=True))
    return a, b, c


def fmaf_case(name: str, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> CallCase:
    """tte_fmaf_soft over the triples (the kernels' fused multiply-add on Arm cores without VFMA, on every
    target); expected: the mirror of reference_train, its reference the exact sums rounded once."""
    n = a.size
    exact = [
        round_to_float32(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)))
        if np.isfinite([x, y, z]).all()
        else np.float32(float(x) * float(y) + float(z))  # an infinite operand: an infinite sum, no rounding
        for x, y, z in zip(a, b, c, strict=True)
    ]
    return CallCase(
        name,
        (),
        f"status = TTE_OK;\n    for (int i = 0; i < {n}; ++i) {{\n        $r[i] = tte_fmaf_soft($a[i], $b[i], $c[i]);\n    }}",
        {"a": a, "b": b, "c": c},
        {"r": (_pattern(a.shape, np.float32), reference_train._fmaf(a, b, c))},
        reference={"r": np.array(exact, np.float32)},
    )


# ---- the fixed set ------------------------------------------------------------------------------------------------


def _grad(rng: np.random.Generator, *shape: int, scale: float = 1e-3) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _s8(rng, *shape, low=-128) -> np.ndarray:
    return rng.integers(low, 128, size=shape, dtype=np.int8)


def _w_update(rng, name, kind, *, c, o, h, w, k, stride, padding, rounding, band=None) -> CallCase:
    """A weight-update case on random codes with gradients scaled to steps of a few codes (``k`` a kernel
    size or (KH, KW))."""
    kh, kw = as_pair(k)
    full = (c, 1, kh, kw) if kind == "depthwise" else (o, c, kh, kw)
    count = max(1, full[0 if kind == "depthwise" else 1] // 2)
    channels = sorted(rng.choice(full[0 if kind == "depthwise" else 1], size=count, replace=False).tolist())
    slice_shape = (count, 1, kh, kw) if kind == "depthwise" else (o, count, kh, kw)
    ho, wo = window_output_size((h, w), (kh, kw), as_pair(stride), as_padding(padding))
    out_c = c if kind == "depthwise" else o
    inv = (1.0 / np.exp(rng.uniform(np.log(3e-3), np.log(3e-2), out_c)) ** 2).astype(np.float32)
    inv[0] = 0.0  # a frozen channel
    return conv_w_update_case(
        name, kind, _s8(rng, 1, count, h, w), _grad(rng, 1, out_c, ho, wo, scale=1e-5), _s8(rng, *slice_shape, low=-127),
        inv, full=full, channels=channels, stride=stride, padding=padding, x_zero=int(rng.integers(-128, 128)),
        rounding=rounding, tensor_id=5, band=band,
    )  # fmt: skip


# fmaf edges (a, b, c): exact sums, an underflow to a subnormal and to zero, an overflow to infinity and an exact
# tie between FLT_MAX and 2^128 (to infinity), infinities (no NaN: its sign bit is the FPU's choice and the
# golden comparison is bitwise).
FMAF_EDGES = tuple(
    np.array(v, np.float32)
    for v in zip(
        (1.5, 2.0, -0.25),
        (2.0**-70, 2.0**-70, 2.0**-10),
        (3e38, 2.0, 0.0),
        (2.0**127, 1.99999988, 2.0**103),
        (1e-20, 1e-20, 0.0),
        (1e-30, 1e-20, 0.0),
        (np.inf, 2.0, 1.0),
        (1.0, 1.0, -np.inf),
        (-0.0, 1.0, 0.0),
        strict=True,
    )
)


def golden_train_set(seed: int = 1) -> list[CallCase]:
    """The fixed training golden cases: every kernel, its channel and row bands, and the step-status paths."""
    rng = np.random.default_rng(seed)
    cases = [
        softmax_case("softmax_ce_f32", rng.normal(0, 3, (1, 10)).astype(np.float32), 3),
        softmax_case("softmax_ce_s8", _s8(rng, 1, 10), 7, scale=0.11, zero=-5),
        # f_label - max overflows to -inf: an infinite loss (NaN would do too, but its sign bit is the
        # FPU's choice, x86 and Arm differ, and the golden comparison is bitwise).
        softmax_case("softmax_ce_nonfinite", np.array([[3e38, -3e38, 0.5]], np.float32), 1),
        math_case("expf_logf", np.concatenate([rng.uniform(-104, 89, 60), [0, 1, -87.5, 88.7]]).astype(np.float32)),
        gather_case("gather_channels", _s8(rng, 1, 9, 4, 5), [0, 3, 4, 8]),
    ]
    g, mask = _grad(rng, 1, 20, 3, 4), rng.random((1, 20, 3, 4)) < 0.7
    scale = rng.uniform(1e-3, 1e-1, 20).astype(np.float32)
    cases += [
        mask_scale_case("mask_scale", g, mask, scale),
        mask_scale_case("mask_scale_band", g, mask, scale, band=(16, 4)),
        add_bwd_case("add_bwd", g, mask, 0.7, 1.3),
        pool_bwd_case("pool_bwd", _grad(rng, 1, 12, 1, 1), rng.random((1, 12, 1, 1)) < 0.8, 1 / 25 * 0.9, (5, 5)),
        accumulate_case("accumulate", _grad(rng, 2, 3, 5), _grad(rng, 2, 3, 5)),
    ]
    # Forward with a trained slice and on row bands.
    x, wd = _s8(rng, 1, 6, 9, 7), _s8(rng, 5, 6, 3, 3, low=-127)
    b, m = rng.integers(-3000, 3000, 5, dtype=np.int32), np.full(5, 4e-3, np.float32)
    cases += [
        conv_fwd_case("fwd_dense_slice", x, wd, b, m, stride=1, padding=1, groups=1, x_zero=-3, y_zero=2,
                      channels=[1, 4], w_train=_s8(rng, 5, 2, 3, 3, low=-127)),
        conv_fwd_case("fwd_dense_rows", x, wd, b, m, stride=2, padding=1, groups=1, x_zero=-3, y_zero=2,
                      rows=(1, 5, 1, 2)),
    ]  # fmt: skip
    xd, wdw = _s8(rng, 1, 6, 8, 8), _s8(rng, 6, 1, 3, 3, low=-127)
    bd, md = rng.integers(-3000, 3000, 6, dtype=np.int32), np.full(6, 4e-3, np.float32)
    cases += [
        conv_fwd_case("fwd_dw_slice_rows", xd, wdw, bd, md, stride=1, padding=1, groups=6, x_zero=5, y_zero=-1,
                      channels=[2, 5], w_train=_s8(rng, 2, 1, 3, 3, low=-127), rows=(2, 4, 3, 2)),
        conv_fwd_case("fwd_pw_slice", xd, _s8(rng, 4, 6, 1, 1, low=-127), bd[:4], md[:4], stride=2, padding=0,
                      groups=1, x_zero=5, y_zero=-1, channels=[0, 5], w_train=_s8(rng, 4, 2, 1, 1, low=-127)),
    ]  # fmt: skip
    # Input gradients: dense (grouped, strided, accumulating, with a slice), depthwise band, pointwise bands.
    cases += [
        conv_bwd_x_case("bwd_x_dense", _grad(rng, 1, 4, 5, 4), _s8(rng, 4, 3, 3, 3, low=-127), size=(9, 8),
                        stride=2, padding=1, groups=1, channels=[0, 2], w_train=_s8(rng, 4, 2, 3, 3, low=-127),
                        acc=_grad(rng, 1, 3, 9, 8)),
        conv_bwd_x_case("bwd_x_grouped", _grad(rng, 1, 4, 6, 6), _s8(rng, 4, 2, 5, 5, low=-127), size=(6, 6),
                        stride=1, padding=2, groups=2),
        conv_bwd_x_case("bwd_x_dw_band", _grad(rng, 1, 20, 4, 4), _s8(rng, 20, 1, 3, 3, low=-127), size=(7, 7),
                        stride=2, padding=1, groups=20, channels=[3, 17, 18], w_train=_s8(rng, 3, 1, 3, 3, low=-127),
                        gh_band=(16, 4)),
        conv_bwd_x_case("bwd_x_pw_gx_band", _grad(rng, 1, 5, 3, 3), _s8(rng, 5, 20, 1, 1, low=-127), size=(5, 5),
                        stride=2, padding=0, groups=1, gx_band=(16, 4)),
        conv_bwd_x_case("bwd_x_pw_gh_band", _grad(rng, 1, 20, 4, 3), _s8(rng, 20, 6, 1, 1, low=-127), size=(4, 3),
                        stride=1, padding=0, groups=1, acc=_grad(rng, 1, 6, 4, 3), gh_band=(16, 4)),
    ]  # fmt: skip
    cases += [
        _w_update(rng, "w_update_dense", "dense", c=5, o=4, h=7, w=6, k=3, stride=2, padding=1, rounding="stochastic"),
        _w_update(rng, "w_update_dw_band", "depthwise", c=20, o=20, h=6, w=6, k=3, stride=1, padding=1,
                  rounding="nearest", band=(16, 4)),
        _w_update(rng, "w_update_pw", "pointwise", c=8, o=20, h=5, w=5, k=1, stride=1, padding=0,
                  rounding="stochastic", band=(0, 16)),
    ]  # fmt: skip
    # Non-square kernels, strides and asymmetric padding (DS-CNN's 10x4 stem, TFLite's SAME at stride 2).
    xs, ws = _s8(rng, 1, 1, 13, 8), _s8(rng, 4, 1, 10, 4, low=-127)
    bs, ms = rng.integers(-3000, 3000, 4, dtype=np.int32), np.full(4, 4e-3, np.float32)
    xn, wn = _s8(rng, 1, 5, 9, 7), _s8(rng, 5, 1, 3, 1, low=-127)
    cases += [
        conv_fwd_case("fwd_dense_10x4_s2_pad4152", xs, ws, bs, ms, stride=2, padding=(4, 1, 5, 2), groups=1,
                      x_zero=-7, y_zero=3, rows=(0, 10, 1, 2)),
        conv_fwd_case("fwd_dw_3x1_s2x1_same", xn, wn, bs[:1].repeat(5), ms[:1].repeat(5), stride=(2, 1),
                      padding=(0, 0, 1, 0), groups=5, x_zero=1, y_zero=-2),
        conv_fwd_case("fwd_pw_s1x2", xn, _s8(rng, 3, 5, 1, 1, low=-127), bs[:3], ms[:3], stride=(1, 2), padding=0,
                      groups=1, x_zero=1, y_zero=-2),
        conv_bwd_x_case("bwd_x_dense_10x4", _grad(rng, 1, 4, 7, 4), ws, size=(13, 8), stride=2, padding=(4, 1, 5, 2),
                        groups=1),
        conv_bwd_x_case("bwd_x_dw_3x1_s2x1", _grad(rng, 1, 5, 4, 7), wn, size=(9, 7), stride=(2, 1),
                        padding=(0, 0, 1, 0), groups=5),
        conv_bwd_x_case("bwd_x_pw_s2x1", _grad(rng, 1, 3, 5, 7), _s8(rng, 3, 5, 1, 1, low=-127), size=(9, 7),
                        stride=(2, 1), padding=0, groups=1),
        _w_update(rng, "w_update_dense_10x4", "dense", c=2, o=3, h=13, w=8, k=(10, 4), stride=2, padding=(4, 1, 5, 2),
                  rounding="stochastic"),
        _w_update(rng, "w_update_dw_1x3_s1x1", "depthwise", c=6, o=6, h=5, w=7, k=(1, 3), stride=1,
                  padding=(0, 1, 0, 1), rounding="nearest"),
        _w_update(rng, "w_update_dw_5x3_s2x1", "depthwise", c=6, o=6, h=9, w=6, k=(5, 3), stride=(2, 1),
                  padding=(2, 0, 2, 2), rounding="stochastic"),
        _w_update(rng, "w_update_pw_s2x1", "pointwise", c=4, o=6, h=5, w=4, k=1, stride=(2, 1), padding=0,
                  rounding="stochastic"),
    ]  # fmt: skip
    bad = _grad(rng, 1, 4, 3, 3, scale=1e-5)
    bad[0, 2, 1, 1] = np.nan
    cases.append(
        conv_w_update_case(
            "w_update_nonfinite", "pointwise", _s8(rng, 1, 2, 3, 3), bad, _s8(rng, 4, 2, 1, 1, low=-127),
            np.full(4, 1e4, np.float32), full=(4, 6, 1, 1), channels=[1, 4], stride=1, padding=0, x_zero=0,
            rounding="stochastic", tensor_id=1,
        )
    )  # fmt: skip
    bias = np.array([2**31 - 1, -(2**31), 100, -100, 5, 0], np.int32)  # dead channels next to live ones
    inv_b = np.full(6, 2e7, np.float32)
    inv_b[5] = np.inf  # a frozen channel whose divisor is not finite
    cases += [
        bias_update_case("bias_update", _grad(rng, 1, 6, 3, 3, scale=1e-6), bias, inv_b, rounding="stochastic",
                         tensor_id=0x10003),
        bias_update_case("bias_update_band", _grad(rng, 1, 6, 2, 2, scale=1e-6), bias, inv_b, rounding="nearest",
                         tensor_id=0x10003, band=(2, 3)),
        linear_bwd_case("linear_bwd_update", _s8(rng, 1, 12), _grad(rng, 1, 5, scale=0.1),
                        rng.normal(0, 0.1, (5, 12)).astype(np.float32), rng.normal(0, 0.1, 5).astype(np.float32),
                        x_scale=0.02, x_zero=-128),
    ]  # fmt: skip
    hard = fmaf_double_rounding_triples(rng, 48)
    cases.append(fmaf_case("fmaf_soft", *(np.concatenate(v) for v in zip(hard, FMAF_EDGES, strict=True))))
    # The depthwise input gradient's plane path (stride 1, 3x3, 8x8 like MCUNet's trained blocks), with a slice.
    cases.append(
        conv_bwd_x_case("bwd_x_dw_plane", _grad(rng, 1, 4, 8, 8), _s8(rng, 4, 1, 3, 3, low=-127), size=(8, 8),
                        stride=1, padding=1, groups=4, channels=[1], w_train=_s8(rng, 1, 1, 3, 3, low=-127))
    )  # fmt: skip
    # Its stride-2 classes (7x7 s2, 8x8 like MCUNet's blocks.10: four sub-kernels of 4x4 to 3x3), with a slice.
    cases.append(
        conv_bwd_x_case("bwd_x_dw_s2_plane", _grad(rng, 1, 3, 4, 4), _s8(rng, 3, 1, 7, 7, low=-127), size=(8, 8),
                        stride=2, padding=3, groups=3, channels=[2], w_train=_s8(rng, 1, 1, 7, 7, low=-127))
    )  # fmt: skip
    return cases
