// Helpers of the tte_engine._core binding (_core.cpp: forward kernels,
// train.cpp: training kernels): argument checks that raise a ValueError naming
// the argument, and small conversions. Private to the binding.
#ifndef TTE_PYTHON_BINDING_H
#define TTE_PYTHON_BINDING_H

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tte/tte.h"

namespace tte_py {

namespace py = pybind11;

using Shape = std::vector<py::ssize_t>;

inline std::string shape_str(const py::ssize_t *dims, py::ssize_t ndim) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < ndim; ++i) {
        s += (i ? ", " : "") + std::to_string(dims[i]);
    }
    return s + (ndim == 1 ? ",)" : ")");
}

template <typename T> const char *dtype_name();
template <> inline const char *dtype_name<int8_t>() {
    return "int8";
}
template <> inline const char *dtype_name<int32_t>() {
    return "int32";
}
template <> inline const char *dtype_name<float>() {
    return "float32";
}
template <> inline const char *dtype_name<uint8_t>() {
    return "uint8";
}

// `obj` as a non-empty numpy array of T with `ndim` dimensions (-1: any),
// C-contiguous and aligned, with at most 2^31-1 elements (kernels index with
// int32), or a ValueError naming `name` and its expected `layout` ("[H][W][C]").
template <typename T> py::array checked(const py::object &obj, const char *name, py::ssize_t ndim, const char *layout) {
    const std::string want =
        std::string(name) + " must be a C-contiguous " + dtype_name<T>() + " numpy array " + layout;
    if (!py::isinstance<py::array>(obj)) {
        throw py::value_error(want + ", got " + std::string(py::str(py::type::of(obj).attr("__name__"))));
    }
    py::array a = py::reinterpret_borrow<py::array>(obj);
    if (a.dtype().num() != py::dtype::of<T>().num()) {
        throw py::value_error(want + ", got dtype " + std::string(py::str(a.dtype())));
    }
    if ((ndim >= 0 && a.ndim() != ndim) || a.size() < 1 || a.size() > INT32_MAX) {
        throw py::value_error(want + ", got shape " + shape_str(a.shape(), a.ndim()));
    }
    if (!(a.flags() & py::array::c_style)) {
        throw py::value_error(want + ", got a non-contiguous array (use numpy.ascontiguousarray)");
    }
    if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) != 0) {
        throw py::value_error(want + ", got a misaligned buffer");
    }
    return a;
}

inline void expect_shape(const py::array &a, const char *name, const Shape &expected, const char *layout) {
    if (Shape(a.shape(), a.shape() + a.ndim()) != expected) {
        throw py::value_error(std::string(name) + " has shape " + shape_str(a.shape(), a.ndim()) + ", expected " +
                              shape_str(expected.data(), static_cast<py::ssize_t>(expected.size())) + " " + layout);
    }
}

// A Python int as int32 in [lo, hi], or a ValueError naming it.
inline int32_t in_range(int64_t v, const char *name, int64_t lo, int64_t hi) {
    if (v < lo || v > hi) {
        throw py::value_error(std::string(name) + "=" + std::to_string(v) + " must be in [" + std::to_string(lo) +
                              ", " + std::to_string(hi) + "]");
    }
    return static_cast<int32_t>(v);
}

inline int32_t zero_point(int64_t v, const char *name) {
    return in_range(v, name, -128, 127);
}

// An output clamp [act_min, act_max] inside int8.
inline std::pair<int32_t, int32_t> act_range(int64_t act_min, int64_t act_max) {
    const int32_t lo = in_range(act_min, "act_min", -128, 127);
    const int32_t hi = in_range(act_max, "act_max", lo, 127);
    return {lo, hi};
}

inline int32_t dim(const py::array &a, py::ssize_t axis) {
    return static_cast<int32_t>(a.shape(axis));
}

template <typename T> T *data(py::array &a) {
    return static_cast<T *>(a.mutable_data());
}
template <typename T> const T *cdata(const py::array &a) {
    return static_cast<const T *>(a.data());
}

inline void raise_on(tte_status status, const char *kernel) {
    if (status != TTE_OK) {
        throw py::value_error(std::string(kernel) + ": " + tte_status_str(status));
    }
}

// y, or (y, mask) with the mask bit-packed as in tte.h: [ceil(y.size/8)] uint8.
inline py::object result(py::array y, py::object mask, bool return_mask) {
    return return_mask ? py::object(py::make_tuple(std::move(y), std::move(mask))) : py::object(std::move(y));
}

// A zeroed mask: kernels leave the last byte's unused bits, and a row band the other rows' bits, as
// they were.
inline py::array_t<uint8_t> new_mask(py::ssize_t elements) {
    py::array_t<uint8_t> mask(Shape{(elements + 7) / 8});
    std::fill_n(mask.mutable_data(), mask.size(), uint8_t{0});
    return mask;
}

// A window's stride (n = 2: along H, along W) or padding (n = 4: top, left, bottom, right) from a Python
// int (the same on every axis or side) or a sequence of n ints, each in [lo, hi], or a ValueError naming it.
inline std::vector<int32_t> window_ints(const py::object &v, size_t n, const char *name, int64_t lo, int64_t hi) {
    if (py::isinstance<py::int_>(v)) {
        return std::vector<int32_t>(n, in_range(v.cast<int64_t>(), name, lo, hi));
    }
    if (!py::isinstance<py::sequence>(v) || py::isinstance<py::str>(v) || py::len(v) != n) {
        throw py::value_error(std::string(name) + " must be an int or " + std::to_string(n) + " ints");
    }
    std::vector<int32_t> out;
    for (const auto item : v.cast<py::sequence>()) {
        if (!py::isinstance<py::int_>(item)) {
            throw py::value_error(std::string(name) + " must be an int or " + std::to_string(n) + " ints");
        }
        out.push_back(in_range(item.cast<int64_t>(), name, lo, hi));
    }
    return out;
}

// Sets a conv descriptor's stride_h/stride_w and pad_top/left/bottom/right (window_ints).
inline void set_window(tte_conv2d_params &p, const py::object &stride, const py::object &padding) {
    const std::vector<int32_t> s = window_ints(stride, 2, "stride", 1, INT32_MAX);
    const std::vector<int32_t> q = window_ints(padding, 4, "padding", 0, INT32_MAX / 4);
    p.stride_h = s[0];
    p.stride_w = s[1];
    p.pad_top = q[0];
    p.pad_left = q[1];
    p.pad_bottom = q[2];
    p.pad_right = q[3];
}

// Checks and fills the geometry of a conv descriptor from x [H][W][C]; the
// caller fills the kernel size and output channels from its weight layout.
inline tte_conv2d_params conv_params(const py::array &x, const py::object &stride, const py::object &padding,
                                     int64_t x_zero, int64_t y_zero, int64_t act_min, int64_t act_max) {
    tte_conv2d_params p{};
    p.in_h = dim(x, 0);
    p.in_w = dim(x, 1);
    p.in_c = dim(x, 2);
    set_window(p, stride, padding);
    p.x_zero = zero_point(x_zero, "x_zero");
    p.y_zero = zero_point(y_zero, "y_zero");
    const auto range = act_range(act_min, act_max);
    p.act_min = range.first;
    p.act_max = range.second;
    return p;
}

// The output shape of a conv, after the checks a kernel would otherwise fail.
inline Shape conv_out_shape(const tte_conv2d_params &p) {
    const int32_t oh = tte_conv2d_out_dim(p.in_h, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom);
    const int32_t ow = tte_conv2d_out_dim(p.in_w, p.kernel_w, p.stride_w, p.pad_left, p.pad_right);
    if (oh < 1 || ow < 1) {
        throw py::value_error("w: kernel " + std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w) +
                              " with padding (" + std::to_string(p.pad_top) + ", " + std::to_string(p.pad_left) + ", " +
                              std::to_string(p.pad_bottom) + ", " + std::to_string(p.pad_right) +
                              ") does not fit x of " + std::to_string(p.in_h) + "x" + std::to_string(p.in_w));
    }
    const int64_t reduction = static_cast<int64_t>(p.in_c / p.groups) * p.kernel_h * p.kernel_w;
    if (reduction > TTE_MAX_REDUCTION) {
        throw py::value_error("w: " + std::to_string(reduction) + " products per output exceed TTE_MAX_REDUCTION (" +
                              std::to_string(TTE_MAX_REDUCTION) + "), the int32 accumulator could overflow");
    }
    return {oh, ow, p.out_c};
}

// The optional trained slice of a conv (tte_train.h): w_train with the shape `expected`, whose last
// axis is the number of listed channels, and the channel list (ascending, inside [0, limit)); both
// or neither. Fills p.train_channels and p.train_count; the arrays keep the buffers alive.
struct Slice {
    py::array w_train, channels;
    bool present = false; // a default py::array is an empty array, not a null one
};

inline Slice conv_slice(tte_conv2d_params &p, const py::object &w_train, const py::object &channels, Shape expected,
                        const char *layout, int32_t limit) {
    if (w_train.is_none() != channels.is_none()) {
        throw py::value_error("w_train and train_channels come together: give both or neither");
    }
    if (w_train.is_none()) {
        return {};
    }
    py::array list = py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(channels);
    if (!list || list.ndim() != 1 || list.size() < 1) {
        throw py::value_error("train_channels must be a non-empty 1-D sequence of channel indices");
    }
    const int32_t *c = cdata<int32_t>(list);
    for (py::ssize_t j = 0; j < list.size(); ++j) {
        if (c[j] < 0 || c[j] >= limit || (j > 0 && c[j] <= c[j - 1])) {
            throw py::value_error("train_channels must be ascending, unique and inside [0, " + std::to_string(limit) +
                                  ")");
        }
    }
    expected.back() = list.size();
    py::array w = checked<int8_t>(w_train, "w_train", static_cast<py::ssize_t>(expected.size()), layout);
    expect_shape(w, "w_train", expected, layout);
    p.train_channels = c;
    p.train_count = static_cast<int32_t>(list.size());
    return {w, list, true};
}

inline const int8_t *slice_data(const Slice &s) {
    return s.present ? cdata<int8_t>(s.w_train) : nullptr;
}

// An optional channel band (begin, count) over `channels` channels whose buffer holds `held` channels.
struct Band {
    tte_channel_band band{};
    bool present = false;
    const tte_channel_band *get() const {
        return present ? &band : nullptr;
    }
};

inline Band channel_band(const py::object &obj, const char *name, int32_t channels, py::ssize_t held) {
    Band b;
    if (obj.is_none()) {
        if (held != channels) {
            throw py::value_error(std::string(name) + " is None, so the buffer must hold all " +
                                  std::to_string(channels) + " channels, not " + std::to_string(held));
        }
        return b;
    }
    const auto pair = obj.cast<std::pair<int64_t, int64_t>>();
    b.band.begin = in_range(pair.first, name, 0, channels - 1);
    b.band.count = in_range(pair.second, name, 1, channels - b.band.begin);
    if (b.band.count != held) {
        throw py::value_error(std::string(name) + "=(" + std::to_string(pair.first) + ", " +
                              std::to_string(pair.second) + ") does not match the buffer's " + std::to_string(held) +
                              " channels");
    }
    b.present = true;
    return b;
}

// A bit-packed mask over `elements` elements: [ceil(elements/8)] uint8.
inline py::array checked_mask(const py::object &obj, int64_t elements) {
    py::array m = checked<uint8_t>(obj, "mask", 1, "[ceil(n/8)] (bit-packed)");
    expect_shape(m, "mask", {static_cast<py::ssize_t>((elements + 7) / 8)}, "[ceil(n/8)] (bit-packed)");
    return m;
}

} // namespace tte_py

#endif // TTE_PYTHON_BINDING_H
