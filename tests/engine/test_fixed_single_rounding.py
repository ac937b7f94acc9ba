"""The single rounding of a linear layer under ``requant: fixed`` (TFLite's FULLY_CONNECTED, NUMERICS.md §2b):
a fixed int8 linear and a 1x1 conv with ``requant_rounding: "single"`` give the same codes in the numpy
reference, the PyTorch simulation and the C engine, and the training graph's conv keeps the rounding."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import require_packages

require_packages("tte_engine", "tte_ir")
torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from tte_algo.sim import Int8Sim  # noqa: E402
from tte_engine.graph import run_forward  # noqa: E402
from tte_ir import DType, GraphBuilder, Op, QuantParams, Scheme, compile_training, reference  # noqa: E402
from tte_ir.kernels import REQUANT, kernel_call  # noqa: E402

CHANNELS, FEATURES = 24, 16


def _graph(rounding: str):
    """input [1, 24, 2, 2] -> 1x1 conv (``rounding``) -> flatten -> fixed int8 linear, random per-channel scales."""
    rng = np.random.default_rng(11)
    b = GraphBuilder(f"single_{rounding}", {"requant": "fixed"})
    x = b.input("input", (1, CHANNELS, 2, 2), DType.INT8, QuantParams.per_tensor(0.02, -3))
    w = b.constant(
        "pw.w",
        rng.integers(-127, 128, size=(CHANNELS, CHANNELS, 1, 1)).astype(np.int8),
        QuantParams.per_channel(rng.uniform(0.004, 0.02, CHANNELS)),
    )
    bias = b.constant("pw.b", rng.integers(-900, 900, CHANNELS).astype(np.int32))
    y = b.tensor("pw.y", (1, CHANNELS, 2, 2), DType.INT8, QuantParams.per_tensor(0.05, 4))
    b.node("pw", Op.CONV2D, (x, w, bias), (y,), requant_rounding=rounding)
    flat = b.tensor("flat.y", (1, 4 * CHANNELS), DType.INT8, b.spec(y).quant)
    b.node("flat", Op.RESHAPE, (y,), (flat,), shape=[1, 4 * CHANNELS], order="hwc")
    hw = b.constant(
        "head.w",
        rng.integers(-127, 128, size=(FEATURES, 4 * CHANNELS)).astype(np.int8),
        QuantParams.per_channel(rng.uniform(0.002, 0.01, FEATURES)),
    )
    hb = b.constant("head.b", rng.integers(-500, 500, FEATURES).astype(np.int32))
    logits = b.tensor("logits", (1, FEATURES), DType.INT8, QuantParams.per_tensor(0.04, -6))
    b.node("head", Op.LINEAR, (flat, hw, hb), (logits,), act_min=-100)
    b.output(logits)
    return b.build()


def _inputs(n: int) -> np.ndarray:
    return np.random.default_rng(12).integers(-128, 128, size=(n, CHANNELS, 2, 2)).astype(np.int8)


def test_descriptors_carry_the_rounding() -> None:
    single, double = _graph("single"), _graph("double")
    assert kernel_call(single, single.node("pw")).params["requant"] == REQUANT["fixed_single"]
    assert kernel_call(double, double.node("pw")).params["requant"] == REQUANT["fixed"]
    assert kernel_call(double, double.node("head")).params["requant"] == REQUANT["fixed_single"]


@pytest.mark.parametrize("rounding", ["single", "double"])
def test_reference_sim_and_engine_agree(rounding: str) -> None:
    graph = _graph(rounding)
    inputs = _inputs(48)
    sim = Int8Sim(graph).run_all(torch.from_numpy(inputs))
    for i in range(inputs.shape[0]):
        expected = reference.run_forward(graph, inputs[i : i + 1], return_all=True)
        got = run_forward(graph, inputs[i : i + 1], return_all=True)
        for name in ("pw.y", "logits"):
            np.testing.assert_array_equal(got[name], expected[name], err_msg=f"{name}, sample {i}: engine")
            np.testing.assert_array_equal(
                sim[name][i : i + 1].numpy(), expected[name].astype(np.float32), err_msg=f"{name}, sample {i}: sim"
            )


def test_the_single_rounding_changes_some_conv_codes() -> None:
    """The two roundings are different arithmetic: the same conv gives some codes 1 apart."""
    inputs = _inputs(48)
    single, double = _graph("single"), _graph("double")
    diff = np.concatenate(
        [
            run_forward(single, x[None], return_all=True)["pw.y"].astype(int)
            - run_forward(double, x[None], return_all=True)["pw.y"].astype(int)
            for x in inputs
        ]
    )
    assert np.abs(diff).max() == 1 and np.count_nonzero(diff) > 0


def test_the_training_graph_conv_of_a_linear_rounds_once() -> None:
    """autodiff turns the int8 head into a 1x1 conv: it must keep the linear layer's single rounding."""
    training = compile_training(_graph("double"), Scheme(n_bias=1, head="int8"))
    conv = training.node("head")
    assert conv.op is Op.CONV2D and conv.attrs["requant_rounding"] == "single"
    assert kernel_call(training, conv).params["requant"] == REQUANT["fixed_single"]
    assert kernel_call(training, training.node("pw")).params["requant"] == REQUANT["fixed"]
