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


def test_row_halos_follow_the_stride_and_top_padding_along_h() -> None:
    """A 10x4 conv at stride (2, 1) padded (4, 1, 5, 2): output rows [lo, hi) read input rows
    [2*lo - 4, 2*(hi-1) - 4 + 10); the bottom padding and everything along W leave the halo alone,
    and every row band the table gives holds the rows its outputs read."""
    from tte_ir import DType, GraphBuilder, Op, QuantParams
    from tte_ir.tiling import input_rows, row_table

    b = GraphBuilder("halo")
    x = b.input("x", (1, 1, 20, 6), DType.INT8, QuantParams.per_tensor(0.05, 0))
    w = b.constant("w", np.ones((2, 1, 10, 4), np.int8), QuantParams.per_channel([0.01, 0.01]))
    bias = b.constant("b", np.zeros(2, np.int32))
    y = b.tensor("y", (1, 2, 10, 6), DType.INT8, QuantParams.per_tensor(0.1, 0))
    tile = {"group": 0, "axis": "rows", "band": 3, "tile": 3}
    b.node("c", Op.CONV2D, (x, w, bias), (y,), stride=(2, 1), padding=(4, 1, 5, 2), tile=tile)
    b.output(y)
    graph = b.build()
    node = graph.nodes[0]
    assert input_rows(graph, node, 0, 3) == (-4, 10)
    assert input_rows(graph, node, 3, 6) == (2, 16)
    bands = [band for (band,) in row_table(graph, [node])]
    assert [(band.y_row, band.y_rows) for band in bands] == [(0, 3), (3, 3), (6, 3), (9, 1)]
    assert all(band.x_row == 0 and band.x_rows == 20 for band in bands)  # x comes whole from outside the group
