"""The three seed models, layer by layer: every int8 tensor identical between the C kernels (host)
and the numpy reference, and the fp32 head's logits identical bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import require_packages

require_packages("tte_engine", "tte_ir")

from conftest import SEED_MODELS  # noqa: E402

import tte_ir  # noqa: E402
from tte_engine.graph import lower, run_forward  # noqa: E402


@pytest.mark.shared
@pytest.mark.parametrize("head", ["int8", "fp32"])
@pytest.mark.parametrize("model", SEED_MODELS)
def test_seed_model_forward_is_bit_exact_per_layer(model: str, head: str, seed_model_path) -> None:
    graph = tte_ir.import_seed_pkl(seed_model_path(model), num_classes=10, head=head)
    x = np.random.default_rng(1).integers(-128, 128, size=graph.tensors[graph.inputs[0]].shape, dtype=np.int8)
    expected = tte_ir.reference.run_forward(graph, x, return_all=True)
    got = run_forward(graph, x, return_all=True)
    activations = [n.outputs[0] for n in graph.nodes]
    assert set(activations) <= set(got)
    for name in activations:
        assert got[name].dtype == expected[name].dtype, name
        np.testing.assert_array_equal(got[name].view(np.uint8), expected[name].view(np.uint8), err_msg=name)
    # Not a trivial forward: the last conv's output is not constant.
    assert len(np.unique(got[graph.nodes[-4].outputs[0]])) > 1


def test_lower_refuses_a_reshape_that_reorders_hwc() -> None:
    b = tte_ir.GraphBuilder("flat")
    x = b.input("x", (1, 2, 2, 2), tte_ir.DType.INT8, tte_ir.QuantParams.per_tensor(0.1, 0))
    y = b.tensor("y", (1, 8), tte_ir.DType.INT8, tte_ir.QuantParams.per_tensor(0.1, 0))
    b.node("flatten", tte_ir.Op.RESHAPE, [x], [y], shape=[1, 8])
    b.output(y)
    with pytest.raises(tte_ir.TteError, match="node 'flatten'.*HWC"):
        lower(b.build())


def test_run_forward_checks_the_input(seed_model_path) -> None:
    graph = tte_ir.import_seed_pkl(seed_model_path("mcunet-5fps"), num_classes=10)
    with pytest.raises(ValueError, match="input 'input' must be int8"):
        run_forward(graph, np.zeros((1, 3, 64, 64), np.int8))
