"""The simulation's int8 forward is bit-exact with the numpy reference on every tensor (NUMERICS.md §2)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from tests.algo.helpers import every_op_graph, random_graph  # noqa: E402
from tests.conftest import SEED_MODELS  # noqa: E402
from tte_algo.sim import Int8Sim  # noqa: E402
from tte_ir import DType, GraphBuilder, Op, QuantParams, import_seed_pkl, reference  # noqa: E402


def assert_all_tensors_match(graph, inputs: np.ndarray) -> int:
    """Run a batch through the simulation and each sample through the reference; compare every tensor.

    int8 tensors must be equal; float32 logits (summed in another order) within rtol 1e-5.
    Returns the number of tensors compared per sample.
    """
    sim = Int8Sim(graph)
    batch = sim.run_all(torch.from_numpy(inputs))
    compared = 0
    for i in range(inputs.shape[0]):
        ref = reference.run_forward(graph, inputs[i : i + 1], return_all=True)
        for name, expected in ref.items():
            if name in graph.constants:
                continue
            got = batch[name][i : i + 1].numpy()
            if graph.tensors[name].dtype is DType.FLOAT32:
                np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=name)
            else:
                assert np.array_equal(got, expected.astype(np.float32)), f"tensor '{name}' differs (sample {i})"
            compared += 1
    return compared


@pytest.mark.parametrize("requant", ["float", "fixed"])
@pytest.mark.parametrize("head", ["int8", "fp32"])
@pytest.mark.parametrize("seed", range(8))
def test_random_graphs_bit_exact(seed: int, head: str, requant: str) -> None:
    graph = random_graph(seed, head, size=int(np.random.default_rng(seed).choice([5, 6, 8])), requant=requant)
    inputs = np.random.default_rng(100 + seed).integers(-128, 128, size=(4, *graph.tensors["input"].shape[1:]))
    assert assert_all_tensors_match(graph, inputs.astype(np.int8)) == 4 * (len(graph.nodes) + 1)


@pytest.mark.parametrize("requant", ["float", "fixed"])
@pytest.mark.parametrize("seed", range(6))
def test_every_op_graph_bit_exact(seed: int, requant: str) -> None:
    """Every requantizing op (TFLite's integer kernels under requant fixed, NUMERICS.md §2b)."""
    graph = every_op_graph(seed, size=int(np.random.default_rng(seed).choice([6, 7, 9])), requant=requant)
    inputs = np.random.default_rng(200 + seed).integers(-128, 128, size=(4, *graph.tensors["input"].shape[1:]))
    assert assert_all_tensors_match(graph, inputs.astype(np.int8)) == 4 * (len(graph.nodes) + 1)


def test_rounding_half_cases_masks_and_saturation() -> None:
    """v exactly on .5 next to the clamp edges (where a clamp that is not one code wider would set a
    wrong mask bit), and +-2^31 biases that must saturate, not wrap."""
    b = GraphBuilder("edges")
    x = b.input("input", (1, 1, 1, 8), DType.INT8, QuantParams.per_tensor(0.5, 0))
    w = b.constant("c.w", np.full((3, 1, 1, 1), 3, dtype=np.int8), QuantParams.per_channel([1.0, 1.0, 1.0]))
    bias = b.constant("c.b", np.array([0, 2**31 - 1, -(2**31)], dtype=np.int32))
    y = b.tensor("c.y", (1, 3, 1, 8), DType.INT8, QuantParams.per_tensor(1.0, -3))
    b.node("c", Op.CONV2D, (x, w, bias), (y,), act_min=-100, act_max=100)
    b.output(y)
    graph = b.build()
    # M = 0.5, v = 1.5 x: 102, 103.5, 105, 106.5 around hi - z_y = 103; -96, -97.5, -99, -100.5 around lo - z_y = -97
    codes = np.array([68, 69, 70, 71, -64, -65, -66, -67], dtype=np.int8).reshape(1, 1, 1, 8)
    assert assert_all_tensors_match(graph, codes) == 2
    multiplier = np.full(3, 0.5, dtype=np.float32)
    _, mask = reference.conv2d(
        codes, graph.constants["c.w"], graph.constants["c.b"], multiplier, stride=1, padding=0, groups=1,
        x_zero=0, y_zero=-3, act_min=-100, act_max=100, return_mask=True,
    )  # fmt: skip
    assert not mask[0, 0, 0, 1] and not mask[0, 0, 0, 5]  # the two .5 cases round outward
    sim = Int8Sim(graph)
    bias_leaf = torch.tensor(graph.constants["c.b"], dtype=torch.float64, requires_grad=True)
    out = sim.run({"input": torch.from_numpy(codes).float()}, params={"c.b": bias_leaf})["c.y"]
    out.sum().backward()
    np.testing.assert_array_equal(bias_leaf.grad.numpy(), (mask * 0.5).sum(axis=(0, 2, 3)))


@pytest.mark.shared
@pytest.mark.parametrize("name", SEED_MODELS)
def test_seed_models_bit_exact(name: str, seed_model_path) -> None:
    for head in ("int8", "fp32"):
        graph = import_seed_pkl(seed_model_path(name), 10, head=head)
        inputs = np.random.default_rng(7).integers(-128, 128, size=(2, 3, 128, 128)).astype(np.int8)
        assert assert_all_tensors_match(graph, inputs) == 2 * (len(graph.nodes) + 1)
