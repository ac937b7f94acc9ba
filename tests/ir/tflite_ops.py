"""TFLite's int8 ops of the models in ../shared/models/tflite, evaluated one at a time with tte_ir's
numpy reference under fixed requantization (NUMERICS.md §2b), on the inputs TFLite's own interpreter
recorded: what tests/ir/test_fixed_tflite_golden.py compares with the interpreter's outputs. Needs the
``tflite`` flatbuffer package. Layouts: TFLite NHWC, OHWI weights (depthwise 1HWO); tte NCHW, OIHW."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator

from tte_ir import reference
from tte_ir.quant import add_fixed_params, conv_fixed_multipliers

OPS = {v: k for k, v in BuiltinOperator.__dict__.items() if not k.startswith("_")}


def _act_range(code: int, scale: float, zero: int) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized: NONE, RELU (1) and RELU6 (3)."""
    lo, hi = -128, 127
    if code in (1, 3):
        lo = max(lo, zero)
    if code == 3:
        q = np.float32(6.0) / np.float32(scale)
        hi = min(hi, zero + int(np.sign(q) * np.floor(abs(q) + 0.5)))
    return lo, hi


def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class Model:
    """One .tflite file and its golden tensors."""

    def __init__(self, path: Path) -> None:
        self.model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
        self.graph = self.model.Subgraphs(0)
        golden = np.load(path.with_name(path.name.replace(".tflite", ".golden.npz")))
        self.golden = {k: golden[k] for k in golden.files}

    def tensor(self, index: int):
        t = self.graph.Tensors(index)
        q = t.Quantization()
        scales = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else None
        zero = int(q.ZeroPointAsNumpy()[0]) if q is not None and q.ZeroPointLength() else 0
        return t, scales, zero

    def value(self, index: int) -> np.ndarray:
        t = self.graph.Tensors(index)
        buffer = self.model.Buffers(t.Buffer())
        if buffer.DataLength():
            dtype = {9: np.int8, 2: np.int32}[t.Type()]
            return buffer.DataAsNumpy().view(dtype).reshape(t.ShapeAsNumpy())
        return self.golden[f"ref_tensor/{t.Name().decode()}"]

    def ops(self) -> Iterator[tuple[int, str, object]]:
        for i in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            yield i, OPS[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())], op

    def run(self, op, name: str) -> np.ndarray | None:
        """The op's int8 output (NHWC) from its recorded inputs, or None for an op not evaluated here."""
        ins = [int(j) for j in op.InputsAsNumpy()]
        _, out_s, out_z = self.tensor(int(op.OutputsAsNumpy()[0]))
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            opts = (tflite.Conv2DOptions if name == "CONV_2D" else tflite.DepthwiseConv2DOptions)()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            _, x_s, x_z = self.tensor(ins[0])
            _, w_s, _ = self.tensor(ins[1])
            x = self.value(ins[0]).transpose(0, 3, 1, 2)
            w = self.value(ins[1])
            w = w.transpose(0, 3, 1, 2) if name == "CONV_2D" else w.transpose(3, 0, 1, 2)
            stride_h, stride_w = opts.StrideH(), opts.StrideW()
            if stride_h != stride_w:
                return None
            kh, kw = w.shape[2:]
            if opts.Padding() == 0:  # SAME: pad with the zero point, whose taps add 0
                (t, b), (le, r) = _same_pad(x.shape[2], kh, stride_h), _same_pad(x.shape[3], kw, stride_w)
                x = np.pad(x, ((0, 0), (0, 0), (t, b), (le, r)), constant_values=x_z)
            bias = self.value(ins[2]) if len(ins) > 2 and ins[2] >= 0 else np.zeros(w.shape[0], np.int32)
            qm, sh = conv_fixed_multipliers(float(x_s[0]), w_s, float(out_s[0]))
            lo, hi = _act_range(opts.FusedActivationFunction(), float(out_s[0]), out_z)
            groups = x.shape[1] if name == "DEPTHWISE_CONV_2D" else 1
            y = reference.conv2d(
                x, w, bias, np.zeros(w.shape[0], np.float32), stride=stride_h, padding=0, groups=groups,
                x_zero=x_z, y_zero=out_z, act_min=lo, act_max=hi, qmult=qm, qshift=sh,
            )  # fmt: skip
            return y.transpose(0, 2, 3, 1)
        if name == "ADD":
            opts = tflite.AddOptions()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            (_, s1, z1), (_, s2, z2) = self.tensor(ins[0]), self.tensor(ins[1])
            lo, hi = _act_range(opts.FusedActivationFunction(), float(out_s[0]), out_z)
            fixed = add_fixed_params(float(s1[0]), float(s2[0]), float(out_s[0]))
            return reference.add(
                self.value(ins[0]), self.value(ins[1]), m1=0.0, m2=0.0, z1=z1, z2=z2, y_zero=out_z, act_min=lo,
                act_max=hi, fixed=fixed,
            )  # fmt: skip
        if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            opts = tflite.Pool2DOptions()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            k, s = opts.FilterHeight(), opts.StrideH()
            if (k, s) != (opts.FilterWidth(), opts.StrideW()) or opts.Padding() != 1:
                return None  # non-square or SAME pools: the nonsquare branch's geometry
            x = self.value(ins[0]).transpose(0, 3, 1, 2)
            if name == "MAX_POOL_2D":
                return reference.max_pool2d(x, kernel=k, stride=s, padding=0).transpose(0, 2, 3, 1)
            y = reference.avg_pool2d(
                x, None, kernel=k, stride=s, padding=0, count_include_pad=False, x_zero=out_z, y_zero=out_z, fixed=True
            )
            return y.transpose(0, 2, 3, 1)
        if name == "FULLY_CONNECTED":
            _, x_s, x_z = self.tensor(ins[0])
            _, w_s, _ = self.tensor(ins[1])
            w = self.value(ins[1])
            x = self.value(ins[0]).reshape(1, -1)
            bias = self.value(ins[2]) if len(ins) > 2 and ins[2] >= 0 else np.zeros(w.shape[0], np.int32)
            opts = tflite.FullyConnectedOptions()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            lo, hi = _act_range(opts.FusedActivationFunction(), float(out_s[0]), out_z)
            qm, sh = conv_fixed_multipliers(float(x_s[0]), w_s, float(out_s[0]), per_tensor_product=len(w_s) == 1)
            return reference.linear_s8(
                x, w, bias, np.zeros(w.shape[0], np.float32), x_zero=x_z, y_zero=out_z, act_min=lo, act_max=hi,
                qmult=qm, qshift=sh,
            )  # fmt: skip
        return None
