"""`tte plan --plot`: the arena layout behind the picture (every planned buffer once, as the planner
placed it, with its kind), and the picture's axes, peak label and legend."""

from __future__ import annotations

import pytest

from tte_ir import Scheme, WeightUpdate, compile_training
from tte_ir.memory import Buffer, GreedyPlanner, MemoryReport, NaivePlanner, arena_buffers, live_bytes, memory_report
from tte_ir.memory_plot import KINDS, arena_layout, memory_figure, plot_memory

from .nets import residual_net

SCHEME = Scheme(n_bias=3, weights=(WeightUpdate(conv=2, ratio=0.5),))


@pytest.fixture(scope="module")
def graph():
    return compile_training(residual_net(size=16), SCHEME)


def _check_layout(graph, report):
    layout = arena_layout(graph, report)
    assert sorted(r.tensor for r in layout.rects) == sorted(b.name for b in report.plan.buffers)
    for i, a in enumerate(layout.rects):
        for b in layout.rects[i + 1 :]:
            if a.start <= b.end and b.start <= a.end:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)
    assert max(r.offset + r.size for r in layout.rects) == layout.arena_bytes == report.arena_peak_bytes
    live = [sum(r.size for r in layout.rects if r.start <= i <= r.end) for i in range(len(layout.nodes))]
    assert tuple(live) == layout.live
    assert layout.live[layout.peak_index] == max(layout.live) == report.peak_live_bytes
    assert layout.peak_op == report.peak_op
    by_kind = layout.live_by_kind()
    assert [sum(col) for col in zip(*by_kind.values(), strict=True)] == live
    assert list(by_kind) == [k for k in KINDS if k in by_kind]
    return layout


@pytest.mark.parametrize("input_in_arena", [False, True])
@pytest.mark.parametrize("planner", [GreedyPlanner(), GreedyPlanner("best-fit"), NaivePlanner()], ids=lambda p: p.name)
def test_layout_is_the_plan(graph, planner, input_in_arena):
    _check_layout(graph, memory_report(graph, planner, input_in_arena=input_in_arena))


def test_kinds_follow_the_producer_and_the_readers(graph):
    layout = _check_layout(graph, memory_report(graph, input_in_arena=True))
    kind = {r.tensor: r.kind for r in layout.rects}
    loss = next(i for i, n in enumerate(graph.nodes) if n.op.name == "SOFTMAX_CE")
    assert layout.backward_start == loss
    assert kind["input"] == "input"
    assert kind["b.dw.x_saved"] == "saved"  # gather_channels output, read by the weight update
    assert kind["pool.y"] == "saved"  # shares its buffer with flat.y, the fp32 head's saved input
    assert kind["stem.y"] == kind["b.pw1.y"] == "activation"
    assert kind["b.dw.mask"] == kind["pool.mask"] == "mask"
    assert kind["loss"] == "loss"
    assert kind["logits.grad"] == kind["b.dw.y.grad"] == "gradient"
    assert {r.kind for r in layout.rects if r.start > loss} == {"gradient"}


def test_scratch_buffers_are_their_own_kind(graph):
    scratch = Buffer("b.pw2.scratch", 100, 4, 4)
    buffers = [*arena_buffers(graph), scratch]
    plan = GreedyPlanner().plan(buffers)
    live = live_bytes(buffers, len(graph.nodes))
    peak = max(range(len(live)), key=lambda i: (live[i], -i))
    names = tuple(n.name for n in graph.nodes)
    report = MemoryReport(graph.name, plan.planner, plan.arena_bytes, live[peak], names[peak], 0, 0, 0,
                          tuple(live), names, plan)  # fmt: skip
    rect = next(r for r in _check_layout(graph, report).rects if r.tensor == scratch.name)
    assert (rect.kind, rect.size, rect.start, rect.end) == ("scratch", 100, 4, 4)


def test_report_of_another_graph_is_refused(graph):
    from tte_ir import TteError

    other = compile_training(residual_net(size=16), Scheme(n_bias=1))
    with pytest.raises(TteError, match="another schedule"):
        arena_layout(graph, memory_report(other))


def test_picture_axes_from_zero_and_nothing_hidden(graph, tmp_path):
    pytest.importorskip("matplotlib")
    report = memory_report(graph, input_in_arena=True)
    fig = memory_figure(graph, report)
    arena, live = fig.axes
    assert arena.get_ylim()[0] == 0 and live.get_ylim()[0] == 0
    assert arena.get_ylim()[1] >= report.arena_peak_bytes / 1024 and live.get_ylim()[1] >= report.peak_live_bytes / 1024
    assert "KB" in arena.get_ylabel() and "KB" in live.get_ylabel() and arena.get_xlim()[0] == -0.5
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = arena.get_legend().get_window_extent(renderer)
    for ax in (arena, live):
        assert not legend.overlaps(ax.get_window_extent(renderer))
    peak_labels = [t for t in arena.texts if report.peak_op in t.get_text() and "peak" in t.get_text()]
    assert len(peak_labels) == 1
    label = peak_labels[0].get_window_extent(renderer)
    assert not label.overlaps(legend)
    assert not label.overlaps(arena.get_window_extent(renderer))  # above the data, not on it
    legend_text = [t.get_text() for t in arena.get_legend().get_texts()]
    assert any(t.startswith("gradient") for t in legend_text) and any(t.startswith("backward") for t in legend_text)
    fig.clf()

    png = plot_memory(graph, report, tmp_path / "out" / "mem.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
