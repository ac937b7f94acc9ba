"""Training graphs: pruning, schedule, updates, guards, tiling, serialization, the seed models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tte_ir import Node, Op, Scheme, SchemeError, VerifyError, WeightUpdate, load, save, select_channels, verify
from tte_ir.autodiff import build_training_graph
from tte_ir.compiler import compile_training
from tte_ir.memory import memory_report
from tte_ir.quant import qas_divisors
from tte_ir.reference_train import STATUS_NONFINITE_LOSS, STATUS_OK, initial_state, train_step

from .nets import random_input, residual_net


def _ops(graph, op):
    return [n for n in graph.nodes if n.op is op]


def test_bias_only_prunes_weights_and_saves_nothing_in_the_frozen_prefix():
    graph = build_training_graph(residual_net(), Scheme(n_bias=1, head="fp32"))
    assert not _ops(graph, Op.CONV2D_BWD_W_UPDATE) and not _ops(graph, Op.GATHER_CHANNELS)
    masked = [n.name for n in graph.nodes if n.attrs.get("save_mask")]
    assert masked == ["dw2", "pool"]  # only the trained conv and what lies between it and the loss
    assert not _ops(graph, Op.CONV2D_BWD_X)  # nothing below dw2 trains: no input gradient
    assert set(graph.metadata["training"]["state"]) == {"dw2.b", "head.w", "head.b"}


def test_trained_channels_are_the_magnitude_selection_and_only_they_are_saved():
    forward = residual_net()
    graph = build_training_graph(forward, Scheme(n_bias=0, weights=(WeightUpdate(3, 0.25),), head="fp32"))
    chans = select_channels(forward.constants["b.pw2.w"], 0.25, depthwise=False).tolist()
    (gather,) = _ops(graph, Op.GATHER_CHANNELS)
    assert gather.attrs["channels"] == chans == graph.node("b.pw2").attrs["channels"]
    assert graph.tensors[gather.outputs[0]].shape == (1, len(chans), 8, 8)
    assert graph.tensors["b.pw2.w_train"].shape == (4, len(chans), 1, 1)
    (update,) = _ops(graph, Op.CONV2D_BWD_W_UPDATE)
    assert update.inputs[0] == gather.outputs[0]


def test_each_update_follows_its_gradient_and_input_gradients_use_old_weights():
    graph = build_training_graph(
        residual_net(head="int8"), Scheme(n_bias=5, weights=(WeightUpdate(1, 1.0),), head="int8")
    )
    names = [n.name for n in graph.nodes]
    for node in graph.nodes:
        if node.op in (Op.BIAS_UPDATE, Op.CONV2D_BWD_W_UPDATE):
            gh = node.inputs[0] if node.op is Op.BIAS_UPDATE else node.inputs[1]
            producer = names.index(graph.producer(gh).name)
            # nothing but the same conv's other gradient ops between the gradient and its update
            between = graph.nodes[producer + 1 : names.index(node.name)]
            assert all(n.name.split(".")[0] == node.name.split(".")[0] for n in between)
    assert names.index("b.pw1.bwd_x") < names.index("b.pw1.w_update")


def test_loss_falls_and_updates_are_integer_codes():
    forward = residual_net(head="fp32")
    graph = build_training_graph(
        forward, Scheme(n_bias=5, weights=(WeightUpdate(3, 0.5),), head="fp32", rounding="nearest", lr=0.5, head_lr=0.5)
    )
    state = initial_state(graph)
    x = random_input(forward, seed=4)
    losses = []
    for step in range(6):
        result = train_step(graph, state, x, 2, step=step)
        assert result.status == STATUS_OK
        losses.append(result.loss)
        state = result.state
    assert losses[-1] < losses[0]
    assert state["b.pw2.w_train"].dtype == np.int8 and state["dw2.b"].dtype == np.int32
    assert not np.array_equal(state["dw2.b"], graph.constants["dw2.b"])


def test_stochastic_rounding_is_deterministic_per_step():
    forward = residual_net()
    graph = build_training_graph(forward, Scheme(n_bias=5, head="fp32", lr=0.05))
    x = random_input(forward)
    a = train_step(graph, initial_state(graph), x, 1, step=3).state
    b = train_step(graph, initial_state(graph), x, 1, step=3).state
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_dead_channels_never_move():
    forward = residual_net()
    bias = np.array(forward.constants["b.pw1.b"])
    bias[2] = -(2**31)
    graph = build_training_graph(
        forward.replace(constants={**forward.constants, "b.pw1.b": bias}),
        Scheme(n_bias=5, weights=(WeightUpdate(1, 1.0),), head="fp32", lr=10.0),
    )
    inv_w, inv_b = qas_divisors(0.03, np.array([0.01, 0.01, 0.01]), np.array([0, 2**31 - 1, -(2**31)]))
    assert inv_w.tolist()[1:] == [0.0, 0.0] and inv_b[1:].tolist() == [0.0, 0.0] and inv_w[0] > 0
    state = initial_state(graph)
    for step in range(3):
        state = train_step(graph, state, random_input(forward, seed=step), step % 3, step=step).state
    assert state["b.pw1.b"][2] == -(2**31)
    np.testing.assert_array_equal(state["b.pw1.w_train"][2], graph.constants["b.pw1.w_train"][2])


def test_non_finite_loss_skips_every_update():
    forward = residual_net()
    graph = build_training_graph(forward, Scheme(n_bias=5, head="fp32"))
    state = initial_state(graph)
    state["head.b"] = np.array([np.inf, 0, 0], dtype=np.float32)
    result = train_step(graph, state, random_input(forward), 1)
    assert result.status == STATUS_NONFINITE_LOSS
    for name, value in result.state.items():
        np.testing.assert_array_equal(value, state[name])


def test_int8_head_is_converted_to_fp32_at_compile_time():
    forward = residual_net(head="int8")
    graph = build_training_graph(forward, Scheme(n_bias=1, head="fp32"))
    assert graph.tensors["head.w"].dtype.name == "FLOAT32" and graph.tensors["logits"].quant is None
    with pytest.raises(SchemeError, match="fp32 head"):
        build_training_graph(residual_net(head="fp32"), Scheme(n_bias=1, head="int8"))


def test_scheme_errors_are_clear():
    forward = residual_net()
    with pytest.raises(SchemeError, match="trains nothing"):
        build_training_graph(forward, Scheme(n_bias=0, train_head=False))
    with pytest.raises(SchemeError, match="out of range"):
        build_training_graph(forward, Scheme(weights=(WeightUpdate(9, 1.0),)))
    with pytest.raises(SchemeError, match="simulation only"):
        build_training_graph(forward, Scheme(n_bias=1, rounding="float-master"))


def test_in_place_reader_after_writer_is_refused():
    graph = build_training_graph(residual_net(), Scheme(n_bias=5, head="fp32"))
    nodes = list(graph.nodes)
    j = next(k for k, n in enumerate(nodes) if n.name == "dw2.bias_update")
    late = Node("late", Op.RESHAPE, ("dw2.b",), ("late.y",), {"shape": [4]})
    tensors = {
        **graph.tensors,
        "late.y": graph.tensors["dw2.b"].__class__("late.y", (4,), graph.tensors["dw2.b"].dtype),
    }
    bad = graph.replace(
        nodes=[*nodes[: j + 1], late, *nodes[j + 1 :]], tensors=tensors, outputs=(*graph.outputs, "late.y")
    )
    with pytest.raises(VerifyError, match="overwrites 'dw2.b' in place, but late reads"):
        verify(bad)


def test_training_graph_round_trips_through_a_file(tmp_path):
    graph = compile_training(residual_net(), Scheme(n_bias=3, weights=(WeightUpdate(2, 0.5),), head="fp32"))
    path = save(graph, tmp_path / "train.tte")
    again = load(path)
    assert [n.name for n in again.nodes] == [n.name for n in graph.nodes]
    assert json.dumps(again.metadata["training"], sort_keys=True) == json.dumps(
        graph.metadata["training"], sort_keys=True
    )
    x = random_input(graph)
    a = train_step(graph, initial_state(graph), x, 0)
    b = train_step(again, initial_state(again), x, 0)
    assert a.loss == b.loss


def test_tiling_shrinks_the_arena_and_keeps_the_math():
    forward = residual_net(size=16)
    scheme = Scheme(n_bias=1, head="fp32")
    plain = compile_training(forward, scheme, tiling=False)
    tiled = compile_training(forward, scheme)
    assert any(n.attrs.get("tile") for n in tiled.nodes)
    assert memory_report(tiled).arena_peak_bytes < memory_report(plain).arena_peak_bytes
    x = random_input(forward)
    a = train_step(plain, initial_state(plain), x, 1)
    b = train_step(tiled, initial_state(tiled), x, 1)
    assert a.loss == b.loss


SEED_SCHEMES = ["mbv2-w0.35", "mcunet-5fps", "proxyless-w0.3"]


@pytest.mark.shared
@pytest.mark.parametrize("model", SEED_SCHEMES)
def test_every_seed_scheme_compiles(model, shared_dir, seed_model_path):
    from tte_ir import import_seed_pkl, load_scheme

    forward = import_seed_pkl(seed_model_path(model), 10)
    schemes = json.loads((shared_dir / "schemes" / "seed-schemes.json").read_text())[model]
    totals = {}
    for label in schemes:
        graph = compile_training(forward, load_scheme(shared_dir / "schemes" / "seed-schemes.json", (model, label)))
        report = memory_report(graph)
        totals[label] = report.total_bytes
        assert report.arena_peak_bytes >= report.peak_live_bytes > 0
    assert len(totals) == len(schemes)
