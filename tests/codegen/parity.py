"""NUMERICS.md §7 between the numpy reference and a C build: int8 codes of the trained parameters
>= 99.9% equal and the rest off by one, float parameters and losses within rtol 1e-5."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def assert_params_close(got: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray]) -> None:
    assert set(got) == set(expected)
    for name, want in expected.items():
        have = got[name]
        assert have.shape == want.shape and have.dtype == want.dtype, name
        if want.dtype == np.float32:
            np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6, err_msg=name)
            continue
        diff = np.abs(have.astype(np.int64) - want.astype(np.int64))
        assert diff.max(initial=0) <= 1, f"{name}: codes differ by {diff.max()}"
        assert np.mean(diff == 0) >= 0.999 or diff.sum() <= 1, f"{name}: {np.count_nonzero(diff)} codes differ"


def reference_run(graph, xs: np.ndarray, labels: np.ndarray):
    """Losses and parameters after each step of the numpy reference, from the graph's initial state."""
    from tte_ir.reference_train import initial_state, train_step

    state = initial_state(graph)
    losses, states = [], []
    for t, (x, label) in enumerate(zip(xs, labels, strict=True)):
        result = train_step(graph, state, x[None], int(label), step=t)
        state = result.state
        losses.append(result.loss)
        states.append(state)
    return np.asarray(losses, dtype=np.float32), states
