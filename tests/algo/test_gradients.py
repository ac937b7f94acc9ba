"""Backward (NUMERICS.md §4): finite differences on the float twin, and the conv formulas written out."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from torch.nn import functional as F  # noqa: E402

from tests.algo.helpers import gray_nonsquare_model, random_graph  # noqa: E402
from tte_algo.sim import Int8Sim  # noqa: E402
from tte_ir import DType, GraphBuilder, Op, QuantParams, node_multipliers  # noqa: E402


def twin_loss(sim: Int8Sim, x: torch.Tensor, labels: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    values = sim.run({"input": x}, params=params)
    return F.cross_entropy(sim.logits(values), labels, reduction="sum")


@pytest.mark.parametrize("head", ["int8", "fp32"])
@pytest.mark.parametrize("seed", [0, 3, 4])
def test_twin_gradients_match_finite_differences(seed: int, head: str) -> None:
    """Every weight, bias and input gradient (incl. the fan-out of the residual block input)."""
    assert_twin_matches_finite_differences(random_graph(seed, head), seed)


@pytest.mark.parametrize("head", ["int8", "fp32"])
def test_nonsquare_twin_gradients_match_finite_differences(head: str) -> None:
    """The non-square layers' gradients (10x4 stride-2 stem with asymmetric padding, 3x1 depthwise, 3x2 max
    pool at stride (2, 1), pointwise at stride (2, 1), 2x3 average pool) on a 1x28x20 input."""
    from tte_algo.data import load_digits
    from tte_algo.ptq import quantize_model

    graph = quantize_model(gray_nonsquare_model(), load_digits((1, 28, 20)).codes[:32], head=head, name="gray")
    assert_twin_matches_finite_differences(graph, 7)


def assert_twin_matches_finite_differences(graph, seed: int) -> None:
    """Central differences of the float twin's loss at a few elements of the input and of every constant."""
    sim = Int8Sim(graph, twin=True)
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.uniform(-100, 100, size=(2, *graph.tensors["input"].shape[1:])), requires_grad=True)
    labels = torch.tensor([1, 3])
    names = [n for n in graph.constants]
    params = {n: sim.constants[n].clone().requires_grad_(True) for n in names}
    loss = twin_loss(sim, x, labels, params)
    grads = torch.autograd.grad(loss, [x, *params.values()])
    checked = 0
    for (name, leaf), grad in zip([("input", x), *params.items()], grads, strict=True):
        flat = leaf.detach().reshape(-1)
        for index in rng.choice(flat.numel(), size=min(6, flat.numel()), replace=False):
            eps = 1e-4 * max(1.0, abs(float(flat[index])))
            values = []
            for sign in (1, -1):
                bumped = {k: v.detach().clone() for k, v in params.items()}
                xb = x.detach().clone()
                target = xb if name == "input" else bumped[name]
                target.view(-1)[index] += sign * eps
                with torch.no_grad():
                    values.append(float(twin_loss(sim, xb, labels, bumped)))
            numeric = (values[0] - values[1]) / (2 * eps)
            analytic = float(grad.reshape(-1)[index])
            assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-7), f"{name}[{index}]"
            checked += 1
    assert checked > 30


def test_fan_out_gradients_are_summed() -> None:
    """The block input feeds pw1 and the residual add: its gradient is the sum of both paths."""
    graph = random_graph(3, "fp32")
    sim = Int8Sim(graph, twin=True)
    x = torch.tensor(np.random.default_rng(0).uniform(-50, 50, size=(1, 3, 6, 6)))
    stem = sim.run({"input": x}, [graph.node("stem")])["stem.y"].detach().requires_grad_(True)
    rest = [n for n in graph.nodes if n.name != "stem"]
    loss = sim.logits(sim.run({"stem.y": stem}, rest)).sum()
    (total,) = torch.autograd.grad(loss, stem)
    # the same graph with the two reads of the block input given separate leaves
    leaf_conv, leaf_skip = (stem.detach().clone().requires_grad_(True) for _ in range(2))
    values = {**sim.constants}
    for node in rest:
        ins = [
            values[name] if name != "stem.y" else (leaf_skip if node.op is Op.ADD else leaf_conv)
            for name in node.inputs
        ]
        values[node.outputs[0]] = sim._node(node, ins)
    part_conv, part_skip = torch.autograd.grad(sim.logits(values).sum(), [leaf_conv, leaf_skip])
    assert torch.count_nonzero(part_conv) and torch.count_nonzero(part_skip)
    torch.testing.assert_close(total, part_conv + part_skip, rtol=1e-12, atol=1e-12)


def test_int8_conv_backward_matches_numerics_formulas() -> None:
    """gh = g*mask*M; db = sum gh; dW = sum gh*(x - z_x) with zero padding; dX = conv_transpose(gh, W),
    written out as loops over a strided, padded, grouped conv with a non-zero input zero point."""
    rng = np.random.default_rng(3)
    b = GraphBuilder("one")
    x = b.input("input", (1, 4, 5, 5), DType.INT8, QuantParams.per_tensor(0.05, 17))
    w = b.constant(
        "c.w",
        rng.integers(-127, 128, size=(6, 2, 3, 3)).astype(np.int8),
        QuantParams.per_channel(rng.uniform(0.01, 0.03, 6)),
    )
    bias = b.constant("c.b", rng.integers(-500, 500, size=6).astype(np.int32))
    y = b.tensor("c.y", (1, 6, 3, 3), DType.INT8, QuantParams.per_tensor(0.08, -20))
    b.node("c", Op.CONV2D, (x, w, bias), (y,), stride=2, padding=1, groups=2)
    b.output(y)
    graph = b.build()
    sim = Int8Sim(graph)
    xq = rng.integers(-128, 128, size=(1, 4, 5, 5)).astype(np.float32)
    g = rng.normal(size=(1, 6, 3, 3)).astype(np.float32)
    xt = torch.tensor(xq, requires_grad=True)
    wt = torch.tensor(graph.constants["c.w"], dtype=torch.float32, requires_grad=True)
    bt = torch.tensor(graph.constants["c.b"], dtype=torch.float64, requires_grad=True)
    out = sim.run({"input": xt}, params={"c.w": wt, "c.b": bt})["c.y"]
    out.backward(torch.tensor(g))
    codes = out.detach().numpy()
    m = node_multipliers(graph, graph.node("c"))["multiplier"].astype(np.float64)
    mask = (codes > -128) & (codes < 127)  # act range is [-128, 127]; interior codes are unclipped
    gh = g * mask * m[None, :, None, None]
    wq = graph.constants["c.w"].astype(np.float64)
    xc = np.pad(xq[0] - 17, ((0, 0), (1, 1), (1, 1)))  # zero padding of the *centred* input contributes 0
    dw = np.zeros_like(wq)
    dx = np.zeros_like(xc)
    for o in range(6):
        group = o // 3
        for i in range(2):
            for u in range(3):
                for v in range(3):
                    for p in range(3):
                        for q in range(3):
                            dw[o, i, u, v] += gh[0, o, p, q] * xc[group * 2 + i, 2 * p + u, 2 * q + v]
                            dx[group * 2 + i, 2 * p + u, 2 * q + v] += gh[0, o, p, q] * wq[o, i, u, v]
    np.testing.assert_allclose(bt.grad.numpy(), gh.sum(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(wt.grad.numpy(), dw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xt.grad.numpy()[0], dx[:, 1:-1, 1:-1], rtol=1e-5, atol=1e-6)
