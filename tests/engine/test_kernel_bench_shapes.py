"""boards/tools/kernel_bench.py's fixed ResNet-8 shape list (``--model resnet8``) is the convs the compiler
calls for tte_algo's ResNet-8, in order, each dense one after the stem and the shortcuts with their
backward kernels counted."""

from __future__ import annotations

import pytest

from .helpers import require_packages

require_packages("tte_ir")
torch = pytest.importorskip("torch", reason="ResNet-8 is defined in PyTorch (pip install torch -c constraints.txt)")

import kernel_bench  # noqa: E402

from tte_algo.data import load_digits  # noqa: E402
from tte_algo.ptq import quantize_model  # noqa: E402
from tte_algo.user_models import build  # noqa: E402
from tte_ir import conv_nodes  # noqa: E402
from tte_ir.kernels import kernel_call, params_kernel, params_padding, params_stride  # noqa: E402


def test_resnet8_shapes_are_the_compiled_convs() -> None:
    graph = quantize_model(build("resnet8", classes=5), load_digits((3, 32, 32)).codes[:4], head="fp32")
    compiled = []
    for node in conv_nodes(graph):
        call = kernel_call(graph, node)
        q = call.params
        kind = kernel_bench.KINDS[call.kernel]
        window = (params_kernel(q), params_stride(q), params_padding(q))
        compiled.append((kind, q["in_h"], q["in_w"], q["in_c"], q["out_c"], window))
    shapes = kernel_bench.resnet8_shapes()
    assert sorted(compiled) == sorted((s.kind, s.in_h, s.in_w, s.in_c, s.out_c, s.window) for s in shapes)
    assert [s.backward for s in shapes] == [s.name != "stem" for s in shapes]
