"""Memory planners: naive vs greedy vs brute-force liveness, on small graphs and random buffer sets."""

from __future__ import annotations

import itertools
import random

import pytest

from tte_ir import Scheme, WeightUpdate, compile_training
from tte_ir.autodiff import build_training_graph
from tte_ir.memory import ALIGN, Buffer, GreedyPlanner, NaivePlanner, arena_buffers, live_bytes, memory_report
from tte_ir.ops import OP_TABLE, node_roles

from .nets import residual_net

PLANNERS = [NaivePlanner(), GreedyPlanner("first-fit"), GreedyPlanner("best-fit")]


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _check_valid(plan) -> None:
    """No two buffers live at a common node share a byte."""
    for a, b in itertools.combinations(plan.buffers, 2):
        if a.overlaps(b):
            a0, b0 = plan.offsets[a.name], plan.offsets[b.name]
            assert a0 + _aligned(a.size) <= b0 or b0 + _aligned(b.size) <= a0, (a, b)
    assert all(plan.offsets[b.name] + b.size <= plan.arena_bytes for b in plan.buffers)


def _brute_force_live(graph) -> list[int]:
    """Independent liveness: at node i, a tensor outside constants and inputs is live when one member of
    its in-place family is written at or before i and read (or is an output) at or after i."""
    family: dict[str, str] = {}

    def find(t):
        while family.get(t, t) != t:
            t = family[t]
        return t

    for node in graph.nodes:
        ins, outs = node_roles(node)
        for o, i in OP_TABLE[node.op].inplace.items():
            if o in outs and i in ins:
                family[find(outs[o])] = find(ins[i])
    outside = set(graph.constants) | set(graph.inputs)
    members: dict[str, list[str]] = {}
    for t in graph.tensors:
        members.setdefault(find(t), []).append(t)
    live = []
    last = len(graph.nodes) - 1
    for i in range(len(graph.nodes)):
        total = 0
        for ts in members.values():
            if any(t in outside for t in ts):
                continue
            written = [k for k, n in enumerate(graph.nodes) if set(n.outputs) & set(ts)]
            used = [k for k, n in enumerate(graph.nodes) if set(n.inputs) & set(ts)]
            used += [last] if set(ts) & set(graph.outputs) else []
            if written and min(written) <= i <= max(used + written):
                total += _aligned(max(graph.tensors[t].nbytes for t in ts))
        live.append(total)
    return live


SCHEMES = [
    Scheme(n_bias=2, head="fp32"),
    Scheme(n_bias=5, weights=(WeightUpdate(1, 0.5), WeightUpdate(3, 1.0)), head="int8"),
    Scheme(n_bias=0, weights=(WeightUpdate(0, 1.0),), train_head=False),
]


@pytest.mark.parametrize("scheme", SCHEMES, ids=["bias2", "sparse-int8", "stem-only"])
def test_planners_against_brute_force_liveness(scheme):
    graph = build_training_graph(residual_net(head="int8"), scheme)
    buffers = arena_buffers(graph, use_engine=False)
    live = live_bytes(buffers, len(graph.nodes))
    assert live == _brute_force_live(graph)
    naive = NaivePlanner().plan(buffers)
    assert naive.arena_bytes == sum(_aligned(b.size) for b in buffers)
    for planner in PLANNERS:
        plan = planner.plan(buffers)
        _check_valid(plan)
        assert max(live) <= plan.arena_bytes <= naive.arena_bytes
    report = memory_report(graph, use_engine=False)
    assert report.peak_live_bytes == max(live)
    assert report.live[[n.name for n in graph.nodes].index(report.peak_op)] == max(live)
    assert report.total_bytes == report.arena_peak_bytes + report.trainable_bytes + report.io_bytes


def _optimal(buffers) -> int:
    """Smallest arena over every placement order with lowest-offset placement (exhaustive, tiny sets)."""
    best = None
    for order in itertools.permutations(buffers):
        placed = []
        for b in order:
            offset = 0
            for off, size, other in sorted(placed, key=lambda p: p[0]):
                if other.overlaps(b) and offset + _aligned(b.size) > off and offset < off + size:
                    offset = off + size
            placed.append((offset, _aligned(b.size), b))
            placed.sort(key=lambda p: p[0])
        top = max(off + size for off, size, _ in placed)
        best = top if best is None else min(best, top)
    return best


def test_greedy_on_random_buffer_sets():
    rng = random.Random(7)
    for _ in range(40):
        n = rng.randint(2, 6)
        buffers = []
        for k in range(n):
            start = rng.randint(0, 8)
            buffers.append(Buffer(f"t{k}", rng.choice([4, 8, 12, 20, 36, 64]), start, start + rng.randint(0, 5)))
        live = live_bytes(buffers, 15)
        optimum = _optimal(buffers)
        for planner in PLANNERS[1:]:
            plan = planner.plan(buffers)
            _check_valid(plan)
            assert max(live) <= optimum <= plan.arena_bytes <= NaivePlanner().plan(buffers).arena_bytes
            assert plan.arena_bytes <= 2 * optimum


def test_in_place_ops_share_a_buffer():
    graph = build_training_graph(residual_net(head="fp32"), Scheme(n_bias=5, head="fp32"))
    owners = {t: b for b in arena_buffers(graph, use_engine=False) for t in b.tensors}
    mask_scale = graph.node("b.pw1.mask_scale")
    assert owners[mask_scale.inputs[0]] is owners[mask_scale.outputs[0]]
    assert "b.pw1.b" not in owners  # a trained parameter is state, not arena


def test_scratch_mirror_matches_engine():
    pytest.importorskip("tte_engine")
    from tte_ir.scratch import scratch_bytes

    graph = compile_training(residual_net(), Scheme(n_bias=5, head="fp32"))
    for node in graph.nodes:
        assert scratch_bytes(graph, node, use_engine=True) == scratch_bytes(graph, node, use_engine=False)
