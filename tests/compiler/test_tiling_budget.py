"""The memory budget is the knob between memory and time: within a budget, row tiles grow and the
frozen prefix recomputes fewer halo rows; the result fits the budget and computes the same step."""

from __future__ import annotations

import json

import numpy as np

from tests.codegen.nets import scheme, tiled_residual_net
from tte_ir import compile_training, memory_report, save
from tte_ir.reference_train import initial_state, train_step
from tte_ir.tiling import recomputed_macs


def _total(graph) -> int:
    return memory_report(graph, input_in_arena=True).total_bytes


def test_a_larger_budget_recomputes_less_and_fits() -> None:
    forward = tiled_residual_net(size=32)
    smallest = compile_training(forward, scheme())
    assert recomputed_macs(smallest) > 0  # the smallest-peak schedule pays for its halos
    previous = recomputed_macs(smallest)
    for budget in (_total(smallest) + 2048, _total(smallest) + 16384, 10**7):
        graph = compile_training(forward, scheme(), budget=budget)
        assert _total(graph) <= budget
        assert recomputed_macs(graph) <= previous
        previous = recomputed_macs(graph)
    assert previous == 0  # a budget that holds every tensor whole recomputes nothing


def test_a_budget_below_the_smallest_peak_keeps_the_smallest_peak_schedule() -> None:
    """Nothing fits: the compiler returns the smallest-peak schedule and the caller (tte compile) refuses it."""
    forward = tiled_residual_net(size=32)
    smallest = compile_training(forward, scheme())
    tight = compile_training(forward, scheme(), budget=_total(smallest) - 1)
    assert [n.attrs.get("tile") for n in tight.nodes] == [n.attrs.get("tile") for n in smallest.nodes]


def test_grown_tiles_compute_the_same_step() -> None:
    forward = tiled_residual_net(size=32)
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=(1, 3, 32, 32)).astype(np.int8)
    results = []
    for budget in (None, 10**7):
        graph = compile_training(forward, scheme(), budget=budget)
        results.append(train_step(graph, initial_state(graph), x, 1, step=0))
    assert results[0].loss == results[1].loss
    for name, value in results[0].state.items():
        np.testing.assert_array_equal(value, results[1].state[name], err_msg=name)


def test_plan_reports_the_recomputed_macs(tmp_path, capsys) -> None:
    from tte_ir.cli import main

    graph = compile_training(tiled_residual_net(size=32), scheme())
    path = save(graph, tmp_path / "train.tte")
    assert main(["plan", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["recomputed_macs"] == recomputed_macs(graph)
    assert main(["plan", str(path)]) == 0
    assert f"{recomputed_macs(graph):,} MACs in row-tile halos" in capsys.readouterr().out
