// tte_engine._core, training half: the loss, backward and update kernels of
// tte/tte_train.h on numpy arrays in the engine's layouts, and the step
// context as a Python object. Update kernels return the updated parameter as a
// new array (the C kernels update in place); the context's status changes in
// place, as in C.
#include "binding.h"

#include <algorithm>
#include <string>
#include <type_traits>

#include "tte/tte_rounding.h"

namespace py = pybind11;

namespace {

using namespace tte_py;

// Status names as tte_ir.reference_train spells them.
const char *step_status_name(tte_step_status s) {
    switch (s) {
    case TTE_STEP_OK:
        return "ok";
    case TTE_STEP_NONFINITE_LOSS:
        return "nonfinite-loss";
    case TTE_STEP_NONFINITE_GRAD:
        return "nonfinite-grad";
    }
    return "unknown";
}

tte_step_status step_status_of(const std::string &name) {
    for (tte_step_status s : {TTE_STEP_OK, TTE_STEP_NONFINITE_LOSS, TTE_STEP_NONFINITE_GRAD}) {
        if (name == step_status_name(s)) {
            return s;
        }
    }
    throw py::value_error("status='" + name + "' must be 'ok', 'nonfinite-loss' or 'nonfinite-grad'");
}

tte_rounding rounding_of(const std::string &name) {
    if (name == "nearest") {
        return TTE_ROUND_NEAREST;
    }
    if (name == "stochastic") {
        return TTE_ROUND_STOCHASTIC;
    }
    throw py::value_error("rounding='" + name + "' must be 'nearest' or 'stochastic'");
}

tte_lr_group lr_group_of(const std::string &name) {
    if (name == "body") {
        return TTE_LR_BODY;
    }
    if (name == "head") {
        return TTE_LR_HEAD;
    }
    throw py::value_error("lr_group='" + name + "' must be 'body' or 'head'");
}

tte_update_params update_params(const std::string &rounding, const std::string &lr_group, int64_t tensor_id) {
    tte_update_params u{};
    u.rounding = rounding_of(rounding);
    u.lr_group = lr_group_of(lr_group);
    u.tensor_id = static_cast<uint32_t>(in_range(tensor_id, "tensor_id", 0, INT32_MAX));
    return u;
}

// A writable copy of a checked array: the binding's update kernels return new arrays.
template <typename T> py::array copy_of(const py::array &a) {
    py::array c = py::array_t<T>(Shape(a.shape(), a.shape() + a.ndim()));
    std::copy_n(cdata<T>(a), a.size(), data<T>(c));
    return c;
}

// Pixels and channels of a [..., C] array: the last axis is the channels.
tte_hwc_params hwc(const py::array &a) {
    tte_hwc_params p{};
    p.channels = dim(a, a.ndim() - 1);
    p.pixels = static_cast<int32_t>(a.size() / p.channels);
    return p;
}

py::array gather_channels_s8(const py::object &x_obj, const py::object &channels) {
    py::array x = checked<int8_t>(x_obj, "x", -1, "[..., C]");
    py::array list = py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(channels);
    if (!list || list.ndim() != 1 || list.size() < 1) {
        throw py::value_error("channels must be a non-empty 1-D sequence of channel indices");
    }
    const tte_hwc_params shape = hwc(x);
    tte_gather_params p{shape.pixels, shape.channels, cdata<int32_t>(list), static_cast<int32_t>(list.size())};
    Shape out(x.shape(), x.shape() + x.ndim());
    out.back() = list.size();
    py::array y = py::array_t<int8_t>(out);
    const tte_status status = tte_gather_channels_s8(&p, cdata<int8_t>(x), data<int8_t>(y));
    if (status == TTE_ERR_ARG) {
        throw py::value_error("channels must be ascending, unique and inside [0, " + std::to_string(p.in_c) + ")");
    }
    raise_on(status, "gather_channels_s8");
    return y;
}

// Both softmax_ce kernels: (loss, g), with the context's status updated when one is given.
template <typename T>
py::tuple softmax_ce(const py::object &logits_obj, int64_t label, const py::object &ctx_obj,
                     const tte_softmax_ce_params &extra, const char *name) {
    py::array logits = checked<T>(logits_obj, "logits", 1, "[N]");
    tte_softmax_ce_params p = extra;
    p.classes = dim(logits, 0);
    const int32_t l = in_range(label, "label", 0, p.classes - 1);
    tte_train_ctx *ctx = ctx_obj.is_none() ? nullptr : ctx_obj.cast<tte_train_ctx *>();
    py::array g = py::array_t<float>(Shape{p.classes});
    float loss = 0.0f;
    tte_status status;
    if constexpr (std::is_same_v<T, float>) {
        status = tte_softmax_ce_f32(&p, ctx, cdata<float>(logits), &l, &loss, data<float>(g));
    } else {
        status = tte_softmax_ce_s8(&p, ctx, cdata<int8_t>(logits), &l, &loss, data<float>(g));
    }
    raise_on(status, name);
    return py::make_tuple(loss, g);
}

py::array mask_scale_f32(const py::object &g_obj, const py::object &mask_obj, const py::object &scale_obj,
                         const py::object &band_obj) {
    py::array g = checked<float>(g_obj, "g", -1, "[..., C] (or a channel band [..., count])");
    py::array scale = checked<float>(scale_obj, "scale", 1, "[C]");
    tte_hwc_params p = hwc(g);
    const Band band = channel_band(band_obj, "band", dim(scale, 0), p.channels);
    p.channels = dim(scale, 0);
    py::array mask = checked_mask(mask_obj, static_cast<int64_t>(p.pixels) * p.channels);
    py::array gh = py::array_t<float>(Shape(g.shape(), g.shape() + g.ndim()));
    raise_on(
        tte_mask_scale_f32(&p, cdata<float>(g), cdata<uint8_t>(mask), cdata<float>(scale), data<float>(gh), band.get()),
        "mask_scale_f32");
    return gh;
}

py::tuple add_bwd_f32(const py::object &g_obj, const py::object &mask_obj, float m1, float m2) {
    py::array g = checked<float>(g_obj, "g", -1, "(any shape)");
    py::array mask = checked_mask(mask_obj, g.size());
    tte_add_bwd_params p{static_cast<int32_t>(g.size()), m1, m2};
    const Shape shape(g.shape(), g.shape() + g.ndim());
    py::array ga = py::array_t<float>(shape);
    py::array gb = py::array_t<float>(shape);
    raise_on(tte_add_bwd_f32(&p, cdata<float>(g), cdata<uint8_t>(mask), data<float>(ga), data<float>(gb)),
             "add_bwd_f32");
    return py::make_tuple(ga, gb);
}

py::array global_avg_pool_bwd_f32(const py::object &g_obj, const py::object &mask_obj, float multiplier, int64_t in_h,
                                  int64_t in_w) {
    py::array g = checked<float>(g_obj, "g", 1, "[C]");
    tte_global_avg_pool_bwd_params p{};
    p.in_h = in_range(in_h, "in_h", 1, INT32_MAX);
    p.in_w = in_range(in_w, "in_w", 1, INT32_MAX);
    p.in_c = dim(g, 0);
    p.multiplier = multiplier;
    py::array mask = checked_mask(mask_obj, p.in_c);
    py::array gx = py::array_t<float>(Shape{p.in_h, p.in_w, p.in_c});
    raise_on(tte_global_avg_pool_bwd_f32(&p, cdata<float>(g), cdata<uint8_t>(mask), data<float>(gx)),
             "global_avg_pool_bwd_f32");
    return gx;
}

py::array accumulate_f32(const py::object &acc_obj, const py::object &g_obj) {
    py::array acc = checked<float>(acc_obj, "acc", -1, "(any shape)");
    py::array g = checked<float>(g_obj, "g", -1, "(the shape of acc)");
    const Shape shape(acc.shape(), acc.shape() + acc.ndim());
    expect_shape(g, "g", shape, "(the shape of acc)");
    py::array y = py::array_t<float>(shape);
    raise_on(tte_accumulate_f32(static_cast<int32_t>(acc.size()), cdata<float>(acc), cdata<float>(g), data<float>(y)),
             "accumulate_f32");
    return y;
}

// The three kinds of conv: how a binding reads the weight layout into a descriptor.
enum class Kind { dense, depthwise, pointwise };

struct ConvWeights {
    tte_conv2d_params p{};
    Shape slice_shape; // w_train's shape with its last axis (k) left 0
    const char *slice_layout;
};

// The descriptor of a conv from its weight w (engine layout), the input size and the geometry.
ConvWeights conv_from_weights(Kind kind, const py::array &w, int64_t in_h, int64_t in_w, int64_t in_c,
                              const py::object &stride, const py::object &padding, int64_t groups) {
    ConvWeights cw;
    tte_conv2d_params &p = cw.p;
    p.in_h = in_range(in_h, "in_h", 1, INT32_MAX);
    p.in_w = in_range(in_w, "in_w", 1, INT32_MAX);
    set_window(p, stride, padding);
    p.groups = in_range(groups, "groups", 1, INT32_MAX);
    if (kind == Kind::dense) {
        if (w.ndim() != 4) {
            throw py::value_error("w must be [O][KH][KW][C/groups], got shape " + shape_str(w.shape(), w.ndim()));
        }
        p.out_c = dim(w, 0);
        p.kernel_h = dim(w, 1);
        p.kernel_w = dim(w, 2);
        p.in_c = dim(w, 3) * p.groups;
        cw.slice_shape = {p.out_c, p.kernel_h, p.kernel_w, 0};
        cw.slice_layout = "[O][KH][KW][k]";
        if (p.out_c % p.groups != 0) {
            throw py::value_error("groups=" + std::to_string(p.groups) + " must divide the output channels (" +
                                  std::to_string(p.out_c) + ")");
        }
    } else if (kind == Kind::depthwise) {
        if (w.ndim() != 3) {
            throw py::value_error("w must be [KH][KW][C], got shape " + shape_str(w.shape(), w.ndim()));
        }
        p.kernel_h = dim(w, 0);
        p.kernel_w = dim(w, 1);
        p.in_c = p.out_c = p.groups = dim(w, 2);
        cw.slice_shape = {p.kernel_h, p.kernel_w, 0};
        cw.slice_layout = "[KH][KW][k]";
    } else {
        if (w.ndim() != 2) {
            throw py::value_error("w must be [O][C], got shape " + shape_str(w.shape(), w.ndim()));
        }
        p.out_c = dim(w, 0);
        p.in_c = dim(w, 1);
        p.kernel_h = p.kernel_w = 1;
        p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = 0;
        p.groups = 1;
        cw.slice_shape = {p.out_c, 0};
        cw.slice_layout = "[O][k]";
    }
    if (in_c >= 0 && in_c != p.in_c) {
        throw py::value_error("in_c=" + std::to_string(in_c) + " does not match the weight's " +
                              std::to_string(p.in_c) + " input channels");
    }
    conv_out_shape(p); // the kernel fits the input and the reduction fits int32
    return cw;
}

using BwdXKernel = tte_status (*)(const tte_conv2d_params *, const float *, const int8_t *, const int8_t *, float *,
                                  int, const tte_channel_band *, const tte_channel_band *);

py::array conv_bwd_x(Kind kind, BwdXKernel kernel, const char *name, const py::object &gh_obj, const py::object &w_obj,
                     int64_t in_h, int64_t in_w, const py::object &stride, const py::object &padding, int64_t groups,
                     const py::object &w_train, const py::object &train_channels, const py::object &acc_obj,
                     const py::object &gh_band_obj, const py::object &gx_band_obj) {
    py::array w = checked<int8_t>(w_obj, "w", -1, "(the forward kernel's layout)");
    ConvWeights cw = conv_from_weights(kind, w, in_h, in_w, -1, stride, padding, groups);
    tte_conv2d_params &p = cw.p;
    const int32_t limit = kind == Kind::depthwise ? p.in_c : p.in_c / p.groups; // the channels a slice lists
    const Slice slice = conv_slice(p, w_train, train_channels, cw.slice_shape, cw.slice_layout, limit);
    const Shape out = conv_out_shape(p);
    py::array gh = checked<float>(gh_obj, "gh", 3, "[out_h][out_w][O] (or a band of O)");
    const Band gh_band = channel_band(gh_band_obj, "gh_band", p.out_c, gh.shape(2));
    expect_shape(gh, "gh", {out[0], out[1], gh.shape(2)}, "[out_h][out_w][O]");
    const py::ssize_t held = gx_band_obj.is_none() ? p.in_c : gx_band_obj.cast<std::pair<int64_t, int64_t>>().second;
    const Band gx_band = channel_band(gx_band_obj, "gx_band", p.in_c, held);
    const Shape gx_shape{p.in_h, p.in_w, held};
    py::array gx = py::array_t<float>(gx_shape);
    if (!acc_obj.is_none()) {
        py::array acc = checked<float>(acc_obj, "acc", 3, "[in_h][in_w][C] (or a band of C)");
        expect_shape(acc, "acc", gx_shape, "[in_h][in_w][C]");
        std::copy_n(cdata<float>(acc), acc.size(), data<float>(gx));
    }
    const tte_status status = kernel(&p, cdata<float>(gh), cdata<int8_t>(w), slice_data(slice), data<float>(gx),
                                     !acc_obj.is_none(), gh_band.get(), gx_band.get());
    if (status == TTE_ERR_ARG && kind == Kind::depthwise) {
        throw py::value_error(std::string(name) + ": gh_band and gx_band must be the same channels");
    }
    raise_on(status, name);
    return gx;
}

using WUpdateKernel = tte_status (*)(const tte_conv2d_params *, tte_train_ctx *, const tte_update_params *,
                                     const int8_t *, const float *, const float *, int8_t *, const tte_channel_band *);

py::array conv_bwd_w_update(Kind kind, WUpdateKernel kernel, const char *name, tte_train_ctx &ctx,
                            const py::object &x_obj, const py::object &gh_obj, const py::object &w_train_obj,
                            const py::object &inv_obj, const py::object &channels, int64_t in_c,
                            const py::object &stride, const py::object &padding, int64_t x_zero, int64_t tensor_id,
                            const std::string &rounding, const std::string &lr_group, const py::object &gh_band_obj) {
    const tte_update_params u = update_params(rounding, lr_group, tensor_id);
    py::array x = checked<int8_t>(x_obj, "x_saved", 3, "[H][W][k]");
    py::array w_train = checked<int8_t>(w_train_obj, "w_train", -1, "(the slice layout)");
    // The slice's leading axes give the geometry; its channel count must match the list.
    ConvWeights cw = conv_from_weights(kind, w_train, dim(x, 0), dim(x, 1), -1, stride, padding, 1);
    tte_conv2d_params &p = cw.p;
    p.in_c = in_range(in_c, "in_c", 1, INT32_MAX);
    if (kind == Kind::depthwise) {
        p.out_c = p.groups = p.in_c;
    }
    p.x_zero = zero_point(x_zero, "x_zero");
    const Slice slice = conv_slice(p, w_train_obj, channels, cw.slice_shape, cw.slice_layout, p.in_c);
    expect_shape(x, "x_saved", {p.in_h, p.in_w, p.train_count}, "[H][W][k] (the trained channels)");
    const Shape out = conv_out_shape(p);
    py::array gh = checked<float>(gh_obj, "gh", 3, "[out_h][out_w][O] (or a band of O)");
    const Band band = channel_band(gh_band_obj, "gh_band", p.out_c, gh.shape(2));
    expect_shape(gh, "gh", {out[0], out[1], gh.shape(2)}, "[out_h][out_w][O]");
    py::array inv = checked<float>(inv_obj, "inv_w", 1, "[O]");
    expect_shape(inv, "inv_w", {p.out_c}, "[O]");
    py::array next = copy_of<int8_t>(slice.w_train);
    raise_on(
        kernel(&p, &ctx, &u, cdata<int8_t>(x), cdata<float>(gh), cdata<float>(inv), data<int8_t>(next), band.get()),
        name);
    return next;
}

py::array bias_update_s32(tte_train_ctx &ctx, const py::object &gh_obj, const py::object &b_obj,
                          const py::object &inv_obj, int64_t tensor_id, const std::string &rounding,
                          const std::string &lr_group, const py::object &band_obj) {
    const tte_update_params u = update_params(rounding, lr_group, tensor_id);
    py::array gh = checked<float>(gh_obj, "gh", -1, "[..., O] (or a band of O)");
    py::array b = checked<int32_t>(b_obj, "b", 1, "[O]");
    py::array inv = checked<float>(inv_obj, "inv_b", 1, "[O]");
    expect_shape(inv, "inv_b", {b.shape(0)}, "[O]");
    tte_hwc_params p = hwc(gh);
    const Band band = channel_band(band_obj, "band", dim(b, 0), p.channels);
    p.channels = dim(b, 0);
    py::array next = copy_of<int32_t>(b);
    raise_on(tte_bias_update_s32(&p, &ctx, &u, cdata<float>(gh), cdata<float>(inv), data<int32_t>(next), band.get()),
             "bias_update_s32");
    return next;
}

py::tuple linear_bwd_update_f32(tte_train_ctx &ctx, const py::object &x_obj, const py::object &g_obj,
                                const py::object &w_obj, const py::object &b_obj, float x_scale, int64_t x_zero,
                                const std::string &lr_group, bool update, bool input_grad) {
    py::array x = checked<int8_t>(x_obj, "x", 1, "[I]");
    py::array g = checked<float>(g_obj, "g", 1, "[O]");
    py::array w = checked<float>(w_obj, "w", 2, "[O][I]");
    expect_shape(w, "w", {g.shape(0), x.shape(0)}, "[O][I]");
    py::array b = checked<float>(b_obj, "b", 1, "[O]");
    expect_shape(b, "b", {g.shape(0)}, "[O]");
    tte_linear_f32_params p{};
    p.in_features = dim(x, 0);
    p.out_features = dim(g, 0);
    p.x_scale = x_scale;
    p.x_zero = zero_point(x_zero, "x_zero");
    py::object w_next = py::none(), b_next = py::none(), gx = py::none();
    float *wn = nullptr, *bn = nullptr, *gxp = nullptr;
    if (update) {
        py::array wa = copy_of<float>(w), ba = copy_of<float>(b);
        wn = data<float>(wa);
        bn = data<float>(ba);
        w_next = wa;
        b_next = ba;
    }
    if (input_grad) {
        py::array ga = py::array_t<float>(Shape{p.in_features});
        gxp = data<float>(ga);
        gx = ga;
    }
    // In place, as generated code runs it: w_next and b_next start as copies of w and b.
    raise_on(tte_linear_bwd_update_f32(&p, &ctx, lr_group_of(lr_group), cdata<int8_t>(x), cdata<float>(g),
                                       wn ? wn : cdata<float>(w), bn ? bn : cdata<float>(b), wn, bn, gxp),
             "linear_bwd_update_f32");
    return py::make_tuple(w_next, b_next, gx);
}

// The hash of tte/tte_rounding.h on an array of element indices, for comparison with tte_ir.rounding.
py::array round_uniform(uint32_t seed, uint32_t step, uint32_t tensor_id, const py::object &index_obj) {
    py::array index = py::array_t<uint32_t, py::array::c_style | py::array::forcecast>::ensure(index_obj);
    if (!index) {
        throw py::value_error("element_index must be an array of non-negative integers");
    }
    py::array u = py::array_t<float>(Shape(index.shape(), index.shape() + index.ndim()));
    const uint32_t *in = static_cast<const uint32_t *>(index.data());
    for (py::ssize_t i = 0; i < index.size(); ++i) {
        data<float>(u)[i] = tte_round_uniform(seed, step, tensor_id, in[i]);
    }
    return u;
}

// Applies one of the engine's float functions elementwise.
py::array map_f32(float (*fn)(float), const py::object &x_obj) {
    py::array x = checked<float>(x_obj, "x", -1, "(any shape)");
    py::array y = py::array_t<float>(Shape(x.shape(), x.shape() + x.ndim()));
    for (py::ssize_t i = 0; i < x.size(); ++i) {
        data<float>(y)[i] = fn(cdata<float>(x)[i]);
    }
    return y;
}

} // namespace

void bind_train(py::module_ &m) {
    py::class_<tte_train_ctx>(m, "TrainContext",
                              "The step context (tte_train_ctx): learning rates per lr group, the step counter and "
                              "seed of the rounding hash, the step status, which update kernels change, and "
                              "batch_end, set on a mini-batch's last sample (the accumulating updates apply).")
        .def(py::init([](float lr, float head_lr, uint32_t step, uint32_t seed, bool batch_end) {
                 tte_train_ctx c{};
                 c.lr[TTE_LR_BODY] = lr;
                 c.lr[TTE_LR_HEAD] = head_lr;
                 c.step = step;
                 c.seed = seed;
                 c.status = TTE_STEP_OK;
                 c.batch_end = batch_end ? 1 : 0;
                 return c;
             }),
             py::kw_only(), py::arg("lr"), py::arg("head_lr"), py::arg("step") = 0, py::arg("seed") = 0,
             py::arg("batch_end") = true)
        .def_property(
            "lr", [](const tte_train_ctx &c) { return c.lr[TTE_LR_BODY]; },
            [](tte_train_ctx &c, float v) { c.lr[TTE_LR_BODY] = v; })
        .def_property(
            "head_lr", [](const tte_train_ctx &c) { return c.lr[TTE_LR_HEAD]; },
            [](tte_train_ctx &c, float v) { c.lr[TTE_LR_HEAD] = v; })
        .def_readwrite("step", &tte_train_ctx::step)
        .def_readwrite("seed", &tte_train_ctx::seed)
        .def_property(
            "batch_end", [](const tte_train_ctx &c) { return c.batch_end != 0; },
            [](tte_train_ctx &c, bool v) { c.batch_end = v ? 1 : 0; })
        .def_property(
            "status", [](const tte_train_ctx &c) { return step_status_name(c.status); },
            [](tte_train_ctx &c, const std::string &s) { c.status = step_status_of(s); });

    m.def("gather_channels_s8", &gather_channels_s8, "The listed channels of x [..., C]: y [..., k].", py::arg("x"),
          py::arg("channels"));
    m.def(
        "softmax_ce_f32",
        [](const py::object &logits, int64_t label, const py::object &ctx) {
            return softmax_ce<float>(logits, label, ctx, tte_softmax_ce_params{}, "softmax_ce_f32");
        },
        "Softmax cross-entropy of float32 logits [N]: (loss, dL/dlogits).", py::arg("logits"), py::arg("label"),
        py::kw_only(), py::arg("ctx") = py::none());
    m.def(
        "softmax_ce_s8",
        [](const py::object &logits, int64_t label, float scale, int64_t zero, const py::object &ctx) {
            tte_softmax_ce_params p{};
            p.scale = scale;
            p.zero = zero_point(zero, "zero");
            return softmax_ce<int8_t>(logits, label, ctx, p, "softmax_ce_s8");
        },
        "Softmax cross-entropy of int8 logits [N] (dequantized): (loss, dL/dcodes).", py::arg("logits"),
        py::arg("label"), py::kw_only(), py::arg("scale"), py::arg("zero"), py::arg("ctx") = py::none());
    m.def("mask_scale_f32", &mask_scale_f32, "gh = mask ? g * scale[c] : 0 over g [..., C] (or a channel band).",
          py::arg("g"), py::arg("mask"), py::arg("scale"), py::kw_only(), py::arg("band") = py::none());
    m.def("add_bwd_f32", &add_bwd_f32, "The add's input gradients (ga, gb) = mask ? (g*m1, g*m2) : 0.", py::arg("g"),
          py::arg("mask"), py::kw_only(), py::arg("m1"), py::arg("m2"));
    m.def("global_avg_pool_bwd_f32", &global_avg_pool_bwd_f32, "The pool's input gradient [in_h][in_w][C].",
          py::arg("g"), py::arg("mask"), py::kw_only(), py::arg("multiplier"), py::arg("in_h"), py::arg("in_w"));
    m.def("accumulate_f32", &accumulate_f32, "y = acc + g.", py::arg("acc"), py::arg("g"));

    m.def(
        "conv2d_bwd_x_f32",
        [](const py::object &gh, const py::object &w, int64_t in_h, int64_t in_w, const py::object &stride,
           const py::object &padding, int64_t groups, const py::object &w_train, const py::object &train_channels,
           const py::object &acc, const py::object &gh_band, const py::object &gx_band) {
            return conv_bwd_x(Kind::dense, tte_conv2d_bwd_x_f32, "conv2d_bwd_x_f32", gh, w, in_h, in_w, stride, padding,
                              groups, w_train, train_channels, acc, gh_band, gx_band);
        },
        "Input gradient of a dense conv: gh [out_h][out_w][O], w [O][KH][KW][C/groups] -> gx [in_h][in_w][C].",
        py::arg("gh"), py::arg("w"), py::kw_only(), py::arg("in_h"), py::arg("in_w"), py::arg("stride") = 1,
        py::arg("padding") = 0, py::arg("groups") = 1, py::arg("w_train") = py::none(),
        py::arg("train_channels") = py::none(), py::arg("acc") = py::none(), py::arg("gh_band") = py::none(),
        py::arg("gx_band") = py::none());
    m.def(
        "depthwise_conv2d_bwd_x_f32",
        [](const py::object &gh, const py::object &w, int64_t in_h, int64_t in_w, const py::object &stride,
           const py::object &padding, const py::object &w_train, const py::object &train_channels,
           const py::object &acc, const py::object &band) {
            return conv_bwd_x(Kind::depthwise, tte_depthwise_conv2d_bwd_x_f32, "depthwise_conv2d_bwd_x_f32", gh, w,
                              in_h, in_w, stride, padding, 1, w_train, train_channels, acc, band, band);
        },
        "Input gradient of a depthwise conv: gh [out_h][out_w][C], w [KH][KW][C] -> gx [in_h][in_w][C].", py::arg("gh"),
        py::arg("w"), py::kw_only(), py::arg("in_h"), py::arg("in_w"), py::arg("stride") = 1, py::arg("padding") = 0,
        py::arg("w_train") = py::none(), py::arg("train_channels") = py::none(), py::arg("acc") = py::none(),
        py::arg("band") = py::none());
    m.def(
        "pointwise_conv2d_bwd_x_f32",
        [](const py::object &gh, const py::object &w, int64_t in_h, int64_t in_w, const py::object &stride,
           const py::object &w_train, const py::object &train_channels, const py::object &acc,
           const py::object &gh_band, const py::object &gx_band) {
            return conv_bwd_x(Kind::pointwise, tte_pointwise_conv2d_bwd_x_f32, "pointwise_conv2d_bwd_x_f32", gh, w,
                              in_h, in_w, stride, py::int_(0), 1, w_train, train_channels, acc, gh_band, gx_band);
        },
        "Input gradient of a pointwise conv: gh [out_h][out_w][O], w [O][C] -> gx [in_h][in_w][C].", py::arg("gh"),
        py::arg("w"), py::kw_only(), py::arg("in_h"), py::arg("in_w"), py::arg("stride") = 1,
        py::arg("w_train") = py::none(), py::arg("train_channels") = py::none(), py::arg("acc") = py::none(),
        py::arg("gh_band") = py::none(), py::arg("gx_band") = py::none());

    const char *update_doc = "Fused weight gradient and QAS update of a conv's trained slice; returns the new slice.";
    m.def(
        "conv2d_bwd_w_update_s8",
        [](tte_train_ctx &ctx, const py::object &x, const py::object &gh, const py::object &w_train,
           const py::object &inv, const py::object &channels, int64_t in_c, const py::object &stride,
           const py::object &padding, int64_t x_zero, int64_t tensor_id, const std::string &rounding,
           const std::string &lr_group, const py::object &band) {
            return conv_bwd_w_update(Kind::dense, tte_conv2d_bwd_w_update_s8, "conv2d_bwd_w_update_s8", ctx, x, gh,
                                     w_train, inv, channels, in_c, stride, padding, x_zero, tensor_id, rounding,
                                     lr_group, band);
        },
        update_doc, py::arg("ctx"), py::arg("x_saved"), py::arg("gh"), py::arg("w_train"), py::arg("inv_w"),
        py::kw_only(), py::arg("train_channels"), py::arg("in_c"), py::arg("stride") = 1, py::arg("padding") = 0,
        py::arg("x_zero"), py::arg("tensor_id"), py::arg("rounding") = "stochastic", py::arg("lr_group") = "body",
        py::arg("gh_band") = py::none());
    m.def(
        "depthwise_conv2d_bwd_w_update_s8",
        [](tte_train_ctx &ctx, const py::object &x, const py::object &gh, const py::object &w_train,
           const py::object &inv, const py::object &channels, int64_t in_c, const py::object &stride,
           const py::object &padding, int64_t x_zero, int64_t tensor_id, const std::string &rounding,
           const std::string &lr_group, const py::object &band) {
            return conv_bwd_w_update(Kind::depthwise, tte_depthwise_conv2d_bwd_w_update_s8,
                                     "depthwise_conv2d_bwd_w_update_s8", ctx, x, gh, w_train, inv, channels, in_c,
                                     stride, padding, x_zero, tensor_id, rounding, lr_group, band);
        },
        update_doc, py::arg("ctx"), py::arg("x_saved"), py::arg("gh"), py::arg("w_train"), py::arg("inv_w"),
        py::kw_only(), py::arg("train_channels"), py::arg("in_c"), py::arg("stride") = 1, py::arg("padding") = 0,
        py::arg("x_zero"), py::arg("tensor_id"), py::arg("rounding") = "stochastic", py::arg("lr_group") = "body",
        py::arg("gh_band") = py::none());
    m.def(
        "pointwise_conv2d_bwd_w_update_s8",
        [](tte_train_ctx &ctx, const py::object &x, const py::object &gh, const py::object &w_train,
           const py::object &inv, const py::object &channels, int64_t in_c, const py::object &stride, int64_t x_zero,
           int64_t tensor_id, const std::string &rounding, const std::string &lr_group, const py::object &band) {
            return conv_bwd_w_update(Kind::pointwise, tte_pointwise_conv2d_bwd_w_update_s8,
                                     "pointwise_conv2d_bwd_w_update_s8", ctx, x, gh, w_train, inv, channels, in_c,
                                     stride, py::int_(0), x_zero, tensor_id, rounding, lr_group, band);
        },
        update_doc, py::arg("ctx"), py::arg("x_saved"), py::arg("gh"), py::arg("w_train"), py::arg("inv_w"),
        py::kw_only(), py::arg("train_channels"), py::arg("in_c"), py::arg("stride") = 1, py::arg("x_zero"),
        py::arg("tensor_id"), py::arg("rounding") = "stochastic", py::arg("lr_group") = "body",
        py::arg("gh_band") = py::none());
    m.def("bias_update_s32", &bias_update_s32,
          "Bias gradient (sum of gh [..., O] over positions) and QAS update; returns the new bias.", py::arg("ctx"),
          py::arg("gh"), py::arg("b"), py::arg("inv_b"), py::kw_only(), py::arg("tensor_id"),
          py::arg("rounding") = "stochastic", py::arg("lr_group") = "body", py::arg("band") = py::none());
    m.def("linear_bwd_update_f32", &linear_bwd_update_f32,
          "The fp32 head's backward and SGD step: (w_next, b_next, gx), None where not asked for.", py::arg("ctx"),
          py::arg("x"), py::arg("g"), py::arg("w"), py::arg("b"), py::kw_only(), py::arg("x_scale"), py::arg("x_zero"),
          py::arg("lr_group") = "head", py::arg("update") = true, py::arg("input_grad") = false);

    m.def("round_uniform", &round_uniform, "u of the stochastic-rounding hash (tte/tte_rounding.h) per element index.",
          py::arg("seed"), py::arg("step"), py::arg("tensor_id"), py::arg("element_index"));
    m.def(
        "expf", [](const py::object &x) { return map_f32(tte_expf, x); }, "The engine's own expf, elementwise.",
        py::arg("x"));
    m.def(
        "logf", [](const py::object &x) { return map_f32(tte_logf, x); }, "The engine's own logf, elementwise.",
        py::arg("x"));
}
