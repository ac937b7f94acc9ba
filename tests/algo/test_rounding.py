"""The PyTorch mirror of the counter-based rounding hash is bit-equal to tte_ir.rounding (NUMERICS.md §5)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from tte_algo import rounding as trounding  # noqa: E402
from tte_ir import rounding  # noqa: E402


@pytest.mark.parametrize(
    ("seed", "step", "tensor_id"),
    [(0, 0, 0), (1, 2, 3), (0xFFFFFFFF, 2**31 + 5, rounding.bias_tensor_id(42)), (123456789, 99999, 7)],
)
def test_hash_and_uniform_bit_equal(seed: int, step: int, tensor_id: int) -> None:
    index = np.arange(0, 2**32, 2**32 // 50_000 + 1, dtype=np.int64)  # spans the whole uint32 range
    expected = rounding.hash32(seed, step, tensor_id, index)
    got = trounding.hash32(seed, step, tensor_id, torch.from_numpy(index))
    np.testing.assert_array_equal(got.numpy(), expected.astype(np.int64))
    u = trounding.stochastic_uniform(seed, step, tensor_id, torch.from_numpy(index))
    assert u.dtype == torch.float32
    np.testing.assert_array_equal(u.numpy(), rounding.stochastic_uniform(seed, step, tensor_id, index))


@pytest.mark.parametrize("mode", ["nearest", "stochastic"])
def test_round_step_bit_equal(mode: str) -> None:
    rng = np.random.default_rng(0)
    v = np.concatenate(
        [
            rng.normal(scale=2.0, size=10_000),
            np.arange(-4, 4.5, 0.5),  # exact halves: rne
            [3e9, -3e9, 2.0**30 + 1000, -(2.0**30) - 1000],  # clamped to +-2^30 first
        ]
    ).astype(np.float32)
    index = np.arange(v.size)
    expected = rounding.round_step(v, mode, seed=5, step=17, tensor_id=3, element_index=index)
    got = trounding.round_step(
        torch.from_numpy(v), mode, seed=5, step=17, tensor_id=3, element_index=torch.from_numpy(index)
    )
    np.testing.assert_array_equal(got.numpy(), expected)


def test_stochastic_rounding_is_unbiased() -> None:
    """The mean of many stochastically rounded 0.3 steps is 0.3 (what makes tiny QAS steps survive)."""
    v = torch.full((100_000,), 0.3)
    steps = trounding.round_step(v, "stochastic", seed=1, step=0, tensor_id=0, element_index=torch.arange(v.numel()))
    assert set(steps.unique().tolist()) == {0, 1}
    assert float(steps.double().mean()) == pytest.approx(0.3, abs=0.01)
