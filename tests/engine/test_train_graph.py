"""Whole training steps of compiled graphs through the C kernels (tte_engine.training) against the
numpy reference (tte_ir.reference_train), over several steps: NUMERICS.md §7's numpy-vs-C-host
targets (loss within rtol 1e-5; weights after N steps >= 99.9% codes equal, the rest off by 1)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import ROOT

from .helpers import require_packages

require_packages("tte_engine", "tte_ir")

from tte_engine.training import train_step  # noqa: E402
from tte_ir import Scheme, WeightUpdate, compile_training, reference_train  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "compiler"))  # the compiler tests' small networks
from nets import random_input, residual_net  # noqa: E402

SCHEMES = {
    "bias-only": (residual_net(), Scheme(n_bias=5, head="fp32", lr=0.05)),
    "weights-stochastic": (
        residual_net(),
        Scheme(n_bias=5, weights=(WeightUpdate(1, 0.5), WeightUpdate(2, 1.0), WeightUpdate(3, 0.5)), lr=0.5),
    ),
    "weights-nearest-dense": (
        residual_net(seed=3),
        Scheme(n_bias=2, weights=(WeightUpdate(0, 1.0), WeightUpdate(4, 0.5)), rounding="nearest", lr=1.0),
    ),
    "int8-head": (residual_net(head="int8"), Scheme(n_bias=5, weights=(WeightUpdate(4, 0.5),), head="int8")),
}


def codes_agree(got: np.ndarray, expected: np.ndarray, name: str) -> None:
    if got.dtype == np.float32:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7, err_msg=name)
        return
    diff = np.abs(got.astype(np.int64) - expected.astype(np.int64))
    assert diff.max() <= 1 and (diff == 0).mean() >= 0.999, f"{name}: {int((diff != 0).sum())} codes differ"


@pytest.mark.parametrize("name", list(SCHEMES))
def test_training_steps_match_the_reference(name: str) -> None:
    forward, scheme = SCHEMES[name]
    graph = compile_training(forward, scheme)
    ref_state = reference_train.initial_state(graph)
    eng_state = dict(ref_state)
    for step in range(5):
        x, label = random_input(forward, seed=step), step % 3
        ref = reference_train.train_step(graph, ref_state, x, label, step=step)
        got = train_step(graph, eng_state, x, label, step=step)
        assert got.status == ref.status == reference_train.STATUS_OK
        np.testing.assert_allclose(got.loss, ref.loss, rtol=1e-5)
        assert got.state.keys() == ref.state.keys()
        for key in ref.state:
            assert got.state[key].dtype == ref.state[key].dtype and got.state[key].shape == ref.state[key].shape
            codes_agree(got.state[key], ref.state[key], f"step {step}: {key}")
        ref_state, eng_state = ref.state, got.state
    moved = [k for k in ref_state if not np.array_equal(eng_state[k], graph.constants[k])]
    assert moved, "nothing trained"


def test_a_non_finite_loss_skips_every_update() -> None:
    forward, scheme = SCHEMES["bias-only"]
    graph = compile_training(forward, scheme)
    state = reference_train.initial_state(graph)
    state["head.b"] = np.array([np.inf, 0, 0], dtype=np.float32)
    got = train_step(graph, state, random_input(forward), 1)
    assert got.status == reference_train.STATUS_NONFINITE_LOSS
    for key, value in got.state.items():
        np.testing.assert_array_equal(value, state[key])
