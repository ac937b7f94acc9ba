// tte_engine._core: the engine's kernels on numpy arrays in the engine's
// layouts (HWC activations, see tte.h). Private; the public face is the
// tte_engine package. Every argument is checked here, with a ValueError that
// names it, before a kernel sees a pointer: a wrong shape, dtype, layout or
// parameter never reaches C.
#include "binding.h"

#include <tuple>

namespace py = pybind11;

namespace {

using namespace tte_py;

using ConvKernel = tte_status (*)(const tte_conv2d_params *, const int8_t *, const int8_t *, const int8_t *,
                                  const int32_t *, const float *, int8_t *, uint8_t *, const tte_row_band *, void *);
using ConvScratch = size_t (*)(const tte_conv2d_params *);

// The row band of a row-tiled call: x holds rows [x_row, x_row + x.shape[0]) of an input of in_h rows
// (p.in_h becomes in_h), and the call computes output rows [y_row, y_row + y_rows).
struct Rows {
    tte_row_band band{};
    bool present = false;
};

Rows row_band(tte_conv2d_params &p, const py::object &rows, const py::object &in_h) {
    Rows r;
    if (rows.is_none() != in_h.is_none()) {
        throw py::value_error("rows and in_h come together: give both or neither");
    }
    if (rows.is_none()) {
        return r;
    }
    const auto t = rows.cast<std::tuple<int64_t, int64_t, int64_t>>();
    r.band.x_rows = p.in_h;
    p.in_h = in_range(in_h.cast<int64_t>(), "in_h", r.band.x_rows, INT32_MAX);
    r.band.x_row = in_range(std::get<0>(t), "rows[0] (x_row)", 0, p.in_h - r.band.x_rows);
    r.band.y_row = in_range(std::get<1>(t), "rows[1] (y_row)", 0, INT32_MAX);
    r.band.y_rows = in_range(std::get<2>(t), "rows[2] (y_rows)", 1, INT32_MAX);
    r.present = true;
    return r;
}

// Runs one of the three conv kernels once p is complete and w checked.
py::object run_conv(ConvKernel kernel, ConvScratch scratch_size, const char *name, const tte_conv2d_params &p,
                    const py::array &x, const py::array &w, const Slice &slice, const py::object &bias,
                    const py::object &multiplier, const Rows &rows, bool return_mask) {
    Shape out_shape = conv_out_shape(p);
    const py::ssize_t mask_elements = out_shape[0] * out_shape[1] * out_shape[2];
    if (rows.present) {
        if (rows.band.y_row + static_cast<int64_t>(rows.band.y_rows) > out_shape[0]) {
            throw py::value_error("rows: output rows [" + std::to_string(rows.band.y_row) + ", " +
                                  std::to_string(rows.band.y_row + rows.band.y_rows) + ") exceed the output's " +
                                  std::to_string(out_shape[0]));
        }
        out_shape[0] = rows.band.y_rows;
    }
    py::array b = checked<int32_t>(bias, "bias", 1, "[O]");
    expect_shape(b, "bias", {p.out_c}, "[O]");
    py::array m = checked<float>(multiplier, "multiplier", 1, "[O]");
    expect_shape(m, "multiplier", {p.out_c}, "[O]");
    py::array y = py::array_t<int8_t>(out_shape);
    py::array mask = new_mask(mask_elements);
    std::vector<unsigned char> scratch(scratch_size(&p)); // scratch_size(&p) bytes
    tte_status status;
    {
        py::gil_scoped_release nogil;
        status = kernel(&p, cdata<int8_t>(x), cdata<int8_t>(w), slice_data(slice), cdata<int32_t>(b), cdata<float>(m),
                        data<int8_t>(y), return_mask ? data<uint8_t>(mask) : nullptr,
                        rows.present ? &rows.band : nullptr, scratch.empty() ? nullptr : scratch.data());
    }
    if (status == TTE_ERR_ARG && rows.present) {
        throw py::value_error(std::string(name) + ": rows: x does not hold every input row the output rows read");
    }
    raise_on(status, name);
    return result(y, mask, return_mask);
}

py::object conv2d_fwd_s8(const py::object &x_obj, const py::object &w_obj, const py::object &bias,
                         const py::object &multiplier, const py::object &stride, const py::object &padding,
                         int64_t groups, int64_t x_zero, int64_t y_zero, int64_t act_min, int64_t act_max,
                         bool return_mask, const py::object &w_train, const py::object &train_channels,
                         const py::object &rows_obj, const py::object &in_h) {
    py::array x = checked<int8_t>(x_obj, "x", 3, "[H][W][C]");
    py::array w = checked<int8_t>(w_obj, "w", 4, "[O][KH][KW][C/groups]");
    tte_conv2d_params p = conv_params(x, stride, padding, x_zero, y_zero, act_min, act_max);
    const Rows rows = row_band(p, rows_obj, in_h);
    p.groups = in_range(groups, "groups", 1, INT32_MAX);
    p.out_c = dim(w, 0);
    p.kernel_h = dim(w, 1);
    p.kernel_w = dim(w, 2);
    if (p.in_c % p.groups != 0 || p.out_c % p.groups != 0) {
        throw py::value_error("groups=" + std::to_string(p.groups) + " must divide the input channels (" +
                              std::to_string(p.in_c) + ") and the output channels (" + std::to_string(p.out_c) + ")");
    }
    expect_shape(w, "w", {p.out_c, p.kernel_h, p.kernel_w, p.in_c / p.groups}, "[O][KH][KW][C/groups]");
    if (!w_train.is_none() && p.groups != 1) {
        throw py::value_error("w_train: only a conv with groups=1 trains a slice of input channels");
    }
    const Slice slice =
        conv_slice(p, w_train, train_channels, {p.out_c, p.kernel_h, p.kernel_w, 0}, "[O][KH][KW][k]", p.in_c);
    return run_conv(tte_conv2d_fwd_s8, tte_conv2d_fwd_s8_scratch_size, "conv2d_fwd_s8", p, x, w, slice, bias,
                    multiplier, rows, return_mask);
}

py::object depthwise_conv2d_fwd_s8(const py::object &x_obj, const py::object &w_obj, const py::object &bias,
                                   const py::object &multiplier, const py::object &stride, const py::object &padding,
                                   int64_t x_zero, int64_t y_zero, int64_t act_min, int64_t act_max, bool return_mask,
                                   const py::object &w_train, const py::object &train_channels,
                                   const py::object &rows_obj, const py::object &in_h) {
    py::array x = checked<int8_t>(x_obj, "x", 3, "[H][W][C]");
    py::array w = checked<int8_t>(w_obj, "w", 3, "[KH][KW][C]");
    tte_conv2d_params p = conv_params(x, stride, padding, x_zero, y_zero, act_min, act_max);
    const Rows rows = row_band(p, rows_obj, in_h);
    p.groups = p.in_c;
    p.out_c = p.in_c;
    p.kernel_h = dim(w, 0);
    p.kernel_w = dim(w, 1);
    expect_shape(w, "w", {p.kernel_h, p.kernel_w, p.in_c}, "[KH][KW][C]");
    const Slice slice = conv_slice(p, w_train, train_channels, {p.kernel_h, p.kernel_w, 0}, "[KH][KW][k]", p.in_c);
    return run_conv(tte_depthwise_conv2d_fwd_s8, tte_depthwise_conv2d_fwd_s8_scratch_size, "depthwise_conv2d_fwd_s8", p,
                    x, w, slice, bias, multiplier, rows, return_mask);
}

py::object pointwise_conv2d_fwd_s8(const py::object &x_obj, const py::object &w_obj, const py::object &bias,
                                   const py::object &multiplier, const py::object &stride, int64_t x_zero,
                                   int64_t y_zero, int64_t act_min, int64_t act_max, bool return_mask,
                                   const py::object &w_train, const py::object &train_channels,
                                   const py::object &rows_obj, const py::object &in_h) {
    py::array x = checked<int8_t>(x_obj, "x", 3, "[H][W][C]");
    py::array w = checked<int8_t>(w_obj, "w", 2, "[O][C]");
    tte_conv2d_params p = conv_params(x, stride, py::int_(0), x_zero, y_zero, act_min, act_max);
    const Rows rows = row_band(p, rows_obj, in_h);
    p.groups = 1;
    p.out_c = dim(w, 0);
    p.kernel_h = 1;
    p.kernel_w = 1;
    expect_shape(w, "w", {p.out_c, p.in_c}, "[O][C]");
    const Slice slice = conv_slice(p, w_train, train_channels, {p.out_c, 0}, "[O][k]", p.in_c);
    return run_conv(tte_pointwise_conv2d_fwd_s8, tte_pointwise_conv2d_fwd_s8_scratch_size, "pointwise_conv2d_fwd_s8", p,
                    x, w, slice, bias, multiplier, rows, return_mask);
}

py::object add_fwd_s8(const py::object &x1_obj, const py::object &x2_obj, float m1, float m2, int64_t z1, int64_t z2,
                      int64_t y_zero, int64_t act_min, int64_t act_max, bool return_mask) {
    py::array x1 = checked<int8_t>(x1_obj, "x1", -1, "(any shape)");
    py::array x2 = checked<int8_t>(x2_obj, "x2", -1, "(the shape of x1)");
    const Shape shape(x1.shape(), x1.shape() + x1.ndim());
    expect_shape(x2, "x2", shape, "(the shape of x1)");
    tte_add_params p{};
    p.size = static_cast<int32_t>(x1.size());
    p.m1 = m1;
    p.m2 = m2;
    p.z1 = zero_point(z1, "z1");
    p.z2 = zero_point(z2, "z2");
    p.y_zero = zero_point(y_zero, "y_zero");
    const auto range = act_range(act_min, act_max);
    p.act_min = range.first;
    p.act_max = range.second;
    py::array y = py::array_t<int8_t>(shape);
    py::array mask = new_mask(y.size());
    tte_status status;
    {
        py::gil_scoped_release nogil;
        status = tte_add_fwd_s8(&p, cdata<int8_t>(x1), cdata<int8_t>(x2), data<int8_t>(y),
                                return_mask ? data<uint8_t>(mask) : nullptr);
    }
    raise_on(status, "add_fwd_s8");
    return result(y, mask, return_mask);
}

py::object global_avg_pool_fwd_s8(const py::object &x_obj, float multiplier, int64_t x_zero, int64_t y_zero,
                                  bool return_mask) {
    py::array x = checked<int8_t>(x_obj, "x", 3, "[H][W][C]");
    tte_global_avg_pool_params p{};
    p.in_h = dim(x, 0);
    p.in_w = dim(x, 1);
    p.in_c = dim(x, 2);
    if (static_cast<int64_t>(p.in_h) * p.in_w > INT32_MAX / 255) {
        throw py::value_error("x has shape " + shape_str(x.shape(), 3) +
                              ": H*W above 2^31/255 could overflow the int32 sum");
    }
    p.multiplier = multiplier;
    p.x_zero = zero_point(x_zero, "x_zero");
    p.y_zero = zero_point(y_zero, "y_zero");
    py::array y = py::array_t<int8_t>(Shape{p.in_c});
    py::array mask = new_mask(y.size());
    tte_status status;
    {
        py::gil_scoped_release nogil;
        status = tte_global_avg_pool_fwd_s8(&p, cdata<int8_t>(x), data<int8_t>(y),
                                            return_mask ? data<uint8_t>(mask) : nullptr);
    }
    raise_on(status, "global_avg_pool_fwd_s8");
    return result(y, mask, return_mask);
}

// Checks x [I] and w [O][I] of a linear layer and returns (I, O).
std::pair<int32_t, int32_t> linear_dims(const py::array &x, const py::array &w) {
    const int32_t in = dim(x, 0);
    const int32_t out = dim(w, 0);
    expect_shape(w, "w", {out, in}, "[O][I]");
    if (in > TTE_MAX_REDUCTION) {
        throw py::value_error("w has shape " + shape_str(w.shape(), 2) + ": I above TTE_MAX_REDUCTION (" +
                              std::to_string(TTE_MAX_REDUCTION) + ") could overflow the int32 accumulator");
    }
    return {in, out};
}

py::object linear_fwd_s8(const py::object &x_obj, const py::object &w_obj, const py::object &bias,
                         const py::object &multiplier, int64_t x_zero, int64_t y_zero, int64_t act_min, int64_t act_max,
                         bool return_mask) {
    py::array x = checked<int8_t>(x_obj, "x", 1, "[I]");
    py::array w = checked<int8_t>(w_obj, "w", 2, "[O][I]");
    const auto dims = linear_dims(x, w);
    py::array b = checked<int32_t>(bias, "bias", 1, "[O]");
    expect_shape(b, "bias", {dims.second}, "[O]");
    py::array m = checked<float>(multiplier, "multiplier", 1, "[O]");
    expect_shape(m, "multiplier", {dims.second}, "[O]");
    tte_linear_params p{};
    p.in_features = dims.first;
    p.out_features = dims.second;
    p.x_zero = zero_point(x_zero, "x_zero");
    p.y_zero = zero_point(y_zero, "y_zero");
    const auto range = act_range(act_min, act_max);
    p.act_min = range.first;
    p.act_max = range.second;
    py::array y = py::array_t<int8_t>(Shape{p.out_features});
    py::array mask = new_mask(y.size());
    tte_status status;
    {
        py::gil_scoped_release nogil;
        status = tte_linear_fwd_s8(&p, cdata<int8_t>(x), cdata<int8_t>(w), cdata<int32_t>(b), cdata<float>(m),
                                   data<int8_t>(y), return_mask ? data<uint8_t>(mask) : nullptr);
    }
    raise_on(status, "linear_fwd_s8");
    return result(y, mask, return_mask);
}

py::array linear_fwd_f32(const py::object &x_obj, const py::object &w_obj, const py::object &bias, float x_scale,
                         int64_t x_zero) {
    py::array x = checked<int8_t>(x_obj, "x", 1, "[I]");
    py::array w = checked<float>(w_obj, "w", 2, "[O][I]");
    const auto dims = linear_dims(x, w);
    py::array b = checked<float>(bias, "bias", 1, "[O]");
    expect_shape(b, "bias", {dims.second}, "[O]");
    tte_linear_f32_params p{};
    p.in_features = dims.first;
    p.out_features = dims.second;
    p.x_scale = x_scale;
    p.x_zero = zero_point(x_zero, "x_zero");
    py::array y = py::array_t<float>(Shape{p.out_features});
    tte_status status;
    {
        py::gil_scoped_release nogil;
        status = tte_linear_fwd_f32(&p, cdata<int8_t>(x), cdata<float>(w), cdata<float>(b), data<float>(y));
    }
    raise_on(status, "linear_fwd_f32");
    return y;
}

// Binds a conv kernel's scratch-size twin with the descriptor's fields as keywords.
void def_scratch(py::module_ &m, const char *name, ConvScratch fn, const char *doc) {
    m.def(
        name,
        [fn](int64_t in_h, int64_t in_w, int64_t in_c, int64_t out_c, int64_t kernel_h, int64_t kernel_w,
             const py::object &stride, const py::object &padding, int64_t groups) {
            tte_conv2d_params p{};
            p.in_h = in_range(in_h, "in_h", 1, INT32_MAX);
            p.in_w = in_range(in_w, "in_w", 1, INT32_MAX);
            p.in_c = in_range(in_c, "in_c", 1, INT32_MAX);
            p.out_c = in_range(out_c, "out_c", 1, INT32_MAX);
            p.kernel_h = in_range(kernel_h, "kernel_h", 1, INT32_MAX);
            p.kernel_w = in_range(kernel_w, "kernel_w", 1, INT32_MAX);
            set_window(p, stride, padding);
            p.groups = in_range(groups, "groups", 1, INT32_MAX);
            return fn(&p);
        },
        doc, py::kw_only(), py::arg("in_h"), py::arg("in_w"), py::arg("in_c"), py::arg("out_c"), py::arg("kernel_h"),
        py::arg("kernel_w"), py::arg("stride") = 1, py::arg("padding") = 0, py::arg("groups") = 1);
}

} // namespace

void bind_train(py::module_ &m); // train.cpp
void bind_calls(py::module_ &m); // calls.cpp

PYBIND11_MODULE(_core, m) {
    m.doc() = "tte engine kernels (private; use the tte_engine package)";
    m.attr("MAX_REDUCTION") = TTE_MAX_REDUCTION;

    m.def("conv2d_fwd_s8", &conv2d_fwd_s8, "Dense int8 convolution on x [H][W][C] with w [O][KH][KW][C/groups].",
          py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("multiplier"), py::kw_only(), py::arg("stride") = 1,
          py::arg("padding") = 0, py::arg("groups") = 1, py::arg("x_zero"), py::arg("y_zero"),
          py::arg("act_min") = -128, py::arg("act_max") = 127, py::arg("return_mask") = false,
          py::arg("w_train") = py::none(), py::arg("train_channels") = py::none(), py::arg("rows") = py::none(),
          py::arg("in_h") = py::none());
    m.def("depthwise_conv2d_fwd_s8", &depthwise_conv2d_fwd_s8,
          "Depthwise int8 convolution on x [H][W][C] with w [KH][KW][C].", py::arg("x"), py::arg("w"), py::arg("bias"),
          py::arg("multiplier"), py::kw_only(), py::arg("stride") = 1, py::arg("padding") = 0, py::arg("x_zero"),
          py::arg("y_zero"), py::arg("act_min") = -128, py::arg("act_max") = 127, py::arg("return_mask") = false,
          py::arg("w_train") = py::none(), py::arg("train_channels") = py::none(), py::arg("rows") = py::none(),
          py::arg("in_h") = py::none());
    m.def("pointwise_conv2d_fwd_s8", &pointwise_conv2d_fwd_s8,
          "Pointwise (1x1) int8 convolution on x [H][W][C] with w [O][C].", py::arg("x"), py::arg("w"), py::arg("bias"),
          py::arg("multiplier"), py::kw_only(), py::arg("stride") = 1, py::arg("x_zero"), py::arg("y_zero"),
          py::arg("act_min") = -128, py::arg("act_max") = 127, py::arg("return_mask") = false,
          py::arg("w_train") = py::none(), py::arg("train_channels") = py::none(), py::arg("rows") = py::none(),
          py::arg("in_h") = py::none());
    m.def("add_fwd_s8", &add_fwd_s8, "Quantized residual add of two int8 arrays of the same shape.", py::arg("x1"),
          py::arg("x2"), py::kw_only(), py::arg("m1"), py::arg("m2"), py::arg("z1"), py::arg("z2"), py::arg("y_zero"),
          py::arg("act_min") = -128, py::arg("act_max") = 127, py::arg("return_mask") = false);
    m.def("global_avg_pool_fwd_s8", &global_avg_pool_fwd_s8, "Global average pool x [H][W][C] -> [C].", py::arg("x"),
          py::kw_only(), py::arg("multiplier"), py::arg("x_zero"), py::arg("y_zero"), py::arg("return_mask") = false);
    m.def("linear_fwd_s8", &linear_fwd_s8, "Int8 fully connected layer, x [I], w [O][I].", py::arg("x"), py::arg("w"),
          py::arg("bias"), py::arg("multiplier"), py::kw_only(), py::arg("x_zero"), py::arg("y_zero"),
          py::arg("act_min") = -128, py::arg("act_max") = 127, py::arg("return_mask") = false);
    m.def("linear_fwd_f32", &linear_fwd_f32, "Float32 head on an int8 input, x [I], w [O][I] float32.", py::arg("x"),
          py::arg("w"), py::arg("bias"), py::kw_only(), py::arg("x_scale"), py::arg("x_zero"));

    def_scratch(m, "conv2d_fwd_s8_scratch_size", tte_conv2d_fwd_s8_scratch_size,
                "Scratch bytes tte_conv2d_fwd_s8 needs for this geometry.");
    def_scratch(m, "depthwise_conv2d_fwd_s8_scratch_size", tte_depthwise_conv2d_fwd_s8_scratch_size,
                "Scratch bytes tte_depthwise_conv2d_fwd_s8 needs for this geometry.");
    def_scratch(m, "pointwise_conv2d_fwd_s8_scratch_size", tte_pointwise_conv2d_fwd_s8_scratch_size,
                "Scratch bytes tte_pointwise_conv2d_fwd_s8 needs for this geometry.");

    bind_train(m);
    bind_calls(m);
}
