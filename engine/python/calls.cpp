// tte_engine._core.call and scratch_size: every kernel through one generic entry point, driven by
// the kernel descriptions of tte_ir.kernels. The per-kernel callers and descriptor fillers are
// generated (kernel_calls.inc, `python -m tte_ir.gen_binding`); this file holds the conversions
// they use. Unlike the per-kernel bindings of _core.cpp and train.cpp, these check only what C
// cannot: each argument's kind, dtype, contiguity and writability. Sizes are the caller's
// (tte_engine.calls checks them against the tensor specs) and the kernel's own checks.
#include "binding.h"

#include <string>
#include <vector>

namespace py = pybind11;

namespace {

using namespace tte_py;

// The Python objects a call's raw pointers point into (channel lists converted to int32 arrays).
struct Holder {
    std::vector<py::object> keep;
};

[[noreturn]] void fail(const char *kernel, const char *name, const std::string &what) {
    throw py::value_error(std::string(kernel) + ": " + name + " " + what);
}

std::string type_name(const py::handle &v) {
    return py::str(py::type::of(v).attr("__name__"));
}

int64_t as_int(const py::handle &v, const char *kernel, const char *name) {
    if (!py::isinstance<py::int_>(v) && !py::hasattr(v, "__index__")) {
        fail(kernel, name, "must be an int, got " + type_name(v));
    }
    return py::reinterpret_borrow<py::object>(v).cast<int64_t>();
}

int32_t field_i32(const py::handle &v, const char *kernel, const char *name) {
    const int64_t i = as_int(v, kernel, name);
    if (i < INT32_MIN || i > INT32_MAX) {
        fail(kernel, name, "does not fit int32: " + std::to_string(i));
    }
    return static_cast<int32_t>(i);
}

uint32_t field_u32(const py::handle &v, const char *kernel, const char *name) {
    const int64_t i = as_int(v, kernel, name);
    if (i < 0 || i > static_cast<int64_t>(UINT32_MAX)) {
        fail(kernel, name, "does not fit uint32: " + std::to_string(i));
    }
    return static_cast<uint32_t>(i);
}

float field_f32(const py::handle &v, const char *kernel, const char *name) {
    if (!py::isinstance<py::float_>(v) && !py::isinstance<py::int_>(v) && !py::hasattr(v, "__float__")) {
        fail(kernel, name, "must be a float, got " + type_name(v));
    }
    return py::reinterpret_borrow<py::object>(v).cast<float>();
}

// A channel list (a sequence of ints) as an int32 array kept alive by `holder`; None is NULL.
const int32_t *field_channels(const py::handle &v, Holder &holder, const char *kernel, const char *name) {
    if (v.is_none()) {
        return nullptr;
    }
    py::array list = py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(v);
    if (!list || list.ndim() != 1) {
        fail(kernel, name, "must be a 1-D sequence of channel indices");
    }
    holder.keep.push_back(list);
    return cdata<int32_t>(list);
}

[[noreturn]] void unknown_field(const char *kernel, const char *type, const std::string &key) {
    throw py::value_error(std::string(kernel) + ": " + type + " has no field '" + key + "'");
}

py::dict params_dict(const py::object &params, const char *kernel) {
    if (params.is_none()) {
        return py::dict();
    }
    if (!py::isinstance<py::dict>(params)) {
        fail(kernel, "params", "must be a dict or None, got " + type_name(params));
    }
    return params.cast<py::dict>();
}

void no_params(const py::object &params, const char *kernel) {
    if (!params.is_none()) {
        fail(kernel, "params", "must be None: the kernel has no descriptor");
    }
}

void expect_arity(const py::list &args, size_t count, const char *kernel) {
    if (args.size() != count) {
        throw py::value_error(std::string(kernel) + ": takes " + std::to_string(count) + " arguments after its " +
                              "descriptor, got " + std::to_string(args.size()));
    }
}

// A numpy array of T (C-contiguous, aligned; writable when `writable`) as a pointer; None is NULL.
template <typename T> py::array arg_array(const py::handle &v, const char *kernel, const char *name, bool writable) {
    if (!py::isinstance<py::array>(v)) {
        fail(kernel, name,
             std::string("must be a numpy array of ") + dtype_name<T>() + " or None, got " + type_name(v));
    }
    py::array a = py::reinterpret_borrow<py::array>(v);
    if (a.dtype().num() != py::dtype::of<T>().num()) {
        fail(kernel, name,
             std::string("must be ") + dtype_name<T>() + ", got dtype " + std::string(py::str(a.dtype())));
    }
    if (!(a.flags() & py::array::c_style)) {
        fail(kernel, name, "must be C-contiguous (use numpy.ascontiguousarray)");
    }
    if (writable && !a.writeable()) {
        fail(kernel, name, "must be writable: the kernel writes it");
    }
    if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) != 0) {
        fail(kernel, name, "is misaligned");
    }
    return a;
}

template <typename T> const T *arg_in(const py::handle &v, Holder &holder, const char *kernel, const char *name) {
    if (v.is_none()) {
        return nullptr;
    }
    py::array a = arg_array<T>(v, kernel, name, false);
    holder.keep.push_back(a);
    return cdata<T>(a);
}

template <typename T> T *arg_out(const py::handle &v, Holder &holder, const char *kernel, const char *name) {
    if (v.is_none()) {
        return nullptr;
    }
    py::array a = arg_array<T>(v, kernel, name, true);
    holder.keep.push_back(a);
    return data<T>(a);
}

// Scratch: any writable C-contiguous numpy array (its bytes), or None.
void *arg_bytes(const py::handle &v, Holder &holder, const char *kernel, const char *name) {
    if (v.is_none()) {
        return nullptr;
    }
    if (!py::isinstance<py::array>(v)) {
        fail(kernel, name, "must be a numpy array or None, got " + type_name(v));
    }
    py::array a = py::reinterpret_borrow<py::array>(v);
    if (!(a.flags() & py::array::c_style) || !a.writeable()) {
        fail(kernel, name, "must be a writable C-contiguous array");
    }
    holder.keep.push_back(a);
    return a.mutable_data();
}

int arg_int(const py::handle &v, const char *kernel, const char *name) {
    return static_cast<int>(field_i32(v, kernel, name));
}

int32_t arg_i32(const py::handle &v, const char *kernel, const char *name) {
    return field_i32(v, kernel, name);
}

tte_train_ctx *arg_ctx(const py::handle &v, const char *kernel, const char *name) {
    if (v.is_none()) {
        return nullptr;
    }
    if (!py::isinstance<tte_train_ctx>(v)) {
        fail(kernel, name, "must be a TrainContext or None, got " + type_name(v));
    }
    return v.cast<tte_train_ctx *>();
}

// A second descriptor: a dict (true) or None (false, NULL).
bool arg_params(const py::handle &v, const char *kernel, const char *name) {
    if (v.is_none()) {
        return false;
    }
    if (!py::isinstance<py::dict>(v)) {
        fail(kernel, name, "must be a dict or None, got " + type_name(v));
    }
    return true;
}

// Row and channel bands: the host runs every call whole (NULL); tiles are the generated code's.
void arg_null(const py::handle &v, const char *kernel, const char *name) {
    if (!v.is_none()) {
        fail(kernel, name, "must be None: tte_engine.call runs the kernel on whole tensors");
    }
}

using Caller = void (*)(const py::object &, const py::list &);
using ScratchSize = size_t (*)(const py::object &);

struct KernelEntry {
    const char *name;
    Caller call;
};

struct ScratchEntry {
    const char *name;
    ScratchSize size;
};

#include "kernel_calls.inc"

template <typename Entry, size_t N>
const Entry &lookup(const Entry (&table)[N], const std::string &kernel, const char *what) {
    for (const Entry &e : table) {
        if (kernel == e.name) {
            return e;
        }
    }
    throw py::value_error("'" + kernel + "' is not an engine kernel" + what);
}

} // namespace

void bind_calls(py::module_ &m) {
    m.def(
        "call",
        [](const std::string &kernel, const py::object &params, const py::list &args) {
            lookup(kernel_calls, kernel, "").call(params, args);
        },
        "Call tte_<kernel>(&params, *args): params a dict of the descriptor's fields (or None), args the "
        "remaining C arguments in order (numpy arrays, None for NULL, ints, a dict for a second "
        "descriptor, a TrainContext). Raises ValueError '<kernel>: <status>' when the kernel fails.",
        py::arg("kernel"), py::arg("params"), py::arg("args"));
    m.def(
        "kernels",
        [] {
            py::list names;
            for (const auto &e : kernel_calls) {
                names.append(e.name);
            }
            return names;
        },
        "The kernels _core.call can run, in the order of the generated table.");
    m.def(
        "scratch_size",
        [](const std::string &kernel, const py::object &params) {
            return lookup(scratch_sizes, kernel, " with a scratch-size twin").size(params);
        },
        "Scratch bytes tte_<kernel> needs for the descriptor `params` (a dict of its fields).", py::arg("kernel"),
        py::arg("params"));
}
