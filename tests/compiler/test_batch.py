"""Mini-batches (scheme ``batch``): the gradients of B samples summed in float32 accumulators, one
update from their mean per B samples, the stochastic-rounding counter counting updates; the
accumulators are trainable state in the memory plan."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.codegen.nets import images, scheme, tiled_residual_net
from tte_ir import Op
from tte_ir.autodiff import training_info
from tte_ir.compiler import compile_training
from tte_ir.memory import memory_report
from tte_ir.ops import node_roles
from tte_ir.reference import dequantize_input
from tte_ir.reference_train import bias_grad, initial_state, train_step
from tte_ir.rounding import round_step
from tte_ir.scheme import MAX_BATCH, Scheme, SchemeError

BATCH = 8
FUSED = {Op.CONV2D_BWD_W_UPDATE, Op.BIAS_UPDATE}


@pytest.fixture(scope="module")
def forward():
    return tiled_residual_net()


@pytest.fixture(scope="module")
def graphs(forward):
    one = scheme()
    return compile_training(forward, one), compile_training(forward, dataclasses.replace(one, batch=BATCH))


@pytest.mark.parametrize("bad", [0, -1, MAX_BATCH + 1, True, 2.0, "8", None])
def test_batch_must_be_a_bounded_integer(bad) -> None:
    data = {**Scheme().to_json(), "batch": bad}
    with pytest.raises(SchemeError, match='scheme.json: "batch" must be an integer in \\[1, 4096\\]'):
        Scheme.from_json(data, "scheme.json")


def test_batch_round_trips_and_defaults_to_one() -> None:
    assert Scheme().batch == 1
    assert Scheme.from_json({"format": "tte-scheme"}).batch == 1
    assert Scheme.from_json(Scheme(batch=BATCH).to_json()).batch == BATCH


def test_batch_graph_accumulates_every_update(graphs) -> None:
    one, eight = graphs
    ops = [n.op for n in eight.nodes]
    assert not FUSED & set(ops)
    assert not any(n.op is Op.LINEAR_F32_BWD_UPDATE and n.attrs.get("update", True) for n in eight.nodes)
    assert ops.count(Op.CONV2D_BWD_W_ACCUMULATE) == [n.op for n in one.nodes].count(Op.CONV2D_BWD_W_UPDATE)
    assert ops.count(Op.BIAS_ACCUMULATE) == [n.op for n in one.nodes].count(Op.BIAS_UPDATE)
    assert ops.count(Op.LINEAR_F32_ACCUMULATE) == 1
    info = training_info(eight)
    assert info["state"].keys() == training_info(one)["state"].keys()
    assert len(info["accumulators"]) == len(info["state"])  # one per trained tensor
    for acc, nxt in info["accumulators"].items():
        param = acc.removesuffix(".acc")
        assert eight.tensors[acc].shape == eight.tensors[param].shape
        assert eight.constants[acc].dtype == np.float32 and not eight.constants[acc].any()
        assert nxt in eight.outputs
    assert "accumulators" not in training_info(one) or not training_info(one)["accumulators"]


def test_plan_counts_the_accumulators_as_trainable_state(graphs) -> None:
    one, eight = graphs
    r1, r8 = memory_report(one, input_in_arena=True), memory_report(eight, input_in_arena=True)
    trained = sum(one.tensors[p].numel for p in training_info(one)["state"])
    assert r8.accumulator_bytes == 4 * trained  # float32 of the trained slices, biases and head
    assert r8.trainable_bytes == r1.trainable_bytes + r8.accumulator_bytes
    assert r8.flash_bytes == r1.flash_bytes  # the zero accumulators are SRAM state, not flash constants
    assert (r8.batch, r1.batch, r1.accumulator_bytes) == (BATCH, 1, 0)
    line = f"of which batch-8 gradient accumulators {r8.accumulator_bytes:,} B (batch 1: trainable state "
    assert any(line + f"{r1.trainable_bytes:,} B" in text for text in r8.lines())
    assert not any("accumulators" in text for text in r1.lines())
    assert r8.to_json()["accumulator_bytes"] == r8.accumulator_bytes


def test_accumulators_are_channel_tiled_like_the_batch_1_updates(graphs) -> None:
    """The accumulating updates join the inverted-residual block's channel-tiled backward group, band by
    band, where the fused updates of batch 1 run, so the batch costs no arena: only its accumulators."""
    one, eight = graphs
    acc_name = {".bias_update": ".bias_acc", ".w_update": ".w_acc"}
    tiles_one = {}
    for node in one.nodes:
        name = node.name
        for fused, acc in acc_name.items():
            name = name.removesuffix(fused) + acc if name.endswith(fused) else name
        tiles_one[name] = node.attrs.get("tile")
    tiles_eight = {n.name: n.attrs.get("tile") for n in eight.nodes if n.name in tiles_one}
    assert tiles_eight == tiles_one
    tiled = [n for n in eight.nodes if n.op in (Op.BIAS_ACCUMULATE, Op.CONV2D_BWD_W_ACCUMULATE) and n.attrs.get("tile")]
    assert {n.name for n in tiled} == {"b1.dw.bias_acc", "b1.dw.w_acc", "b1.pw1.bias_acc", "b1.pw1.w_acc"}
    arena = [memory_report(g, input_in_arena=True).arena_peak_bytes for g in graphs]
    assert arena[1] == arena[0], arena


def _node(graph, op, name_part=""):
    return next(n for n in graph.nodes if n.op is op and name_part in n.name)


def test_reference_batch_sums_eight_gradients_and_updates_once_per_batch(graphs, forward) -> None:
    """By hand: after each of samples 0..6 the parameters are unchanged and each accumulator holds the
    float32 running sum of that sample's gradients (the head's g x x_f, a bias's pixel sum of gh); at
    sample 7 one update from the mean, with the stochastic counter t = 0, and the accumulators return
    to 0; samples 8..15 are the second batch, t = 1."""
    _, graph = graphs
    info = training_info(graph)
    sch = info["scheme"]
    head = _node(graph, Op.LINEAR_F32_ACCUMULATE)
    hin, _ = node_roles(head)
    bias = _node(graph, Op.BIAS_ACCUMULATE)
    bin_, _ = node_roles(bias)
    b_param, b_acc = bin_["b"], bin_["acc"]
    xs = images(forward, 2 * BATCH)
    labels = np.arange(2 * BATCH) % 4
    state = initial_state(graph)
    start = {k: v.copy() for k, v in state.items()}
    hand_w = np.zeros_like(state[hin["acc_w"]])
    hand_b = np.zeros_like(state[bin_["acc"]])
    for i in range(2 * BATCH):
        result = train_step(graph, state, xs[i : i + 1], int(labels[i]), step=i, return_all=True)
        assert result.status == "ok"
        values = result.values
        g = values[hin["g"]][0]
        xf = dequantize_input(values[hin["x"]][0], head_scale(graph, hin["x"]), head_zero(graph, hin["x"]))
        hand_w = (hand_w + g[:, None] * xf[None, :]).astype(np.float32)
        hand_b = (hand_b + bias_grad(values[bin_["gh"]])).astype(np.float32)
        end = i % BATCH == BATCH - 1
        if not end:
            np.testing.assert_array_equal(result.state[hin["acc_w"]], hand_w)
            np.testing.assert_array_equal(result.state[b_acc], hand_b)
            for param in info["state"]:
                np.testing.assert_array_equal(result.state[param], state[param], err_msg=f"{param} moved mid-batch")
        else:
            lr = np.float32(sch["head_lr"])
            want_w = (state[hin["w"]] - lr * (hand_w / np.float32(BATCH))).astype(np.float32)
            np.testing.assert_array_equal(result.state[hin["w"]], want_w)
            inv = graph.constants[bin_["inv_b"]]
            v = ((-(np.float32(sch["lr"]) * (hand_b / np.float32(BATCH)))) * inv).astype(np.float32)
            attrs = bias.attrs
            t = i // BATCH
            steps = round_step(
                v, "stochastic", seed=sch["seed"], step=t, tensor_id=attrs["tensor_id"], element_index=np.arange(v.size)
            )
            np.testing.assert_array_equal(result.state[b_param], state[b_param] + steps)
            if t == 1:  # the counter is per update: t = 1 differs from the sample index 15 and from t = 0
                for other in (0, i):
                    wrong = round_step(
                        v, "stochastic", seed=sch["seed"], step=other, tensor_id=attrs["tensor_id"],
                        element_index=np.arange(v.size),
                    )  # fmt: skip
                    assert not np.array_equal(state[b_param] + wrong, result.state[b_param])
            for acc in info["accumulators"]:
                assert not result.state[acc].any(), f"{acc} not zeroed at the batch's end"
            hand_w, hand_b = np.zeros_like(hand_w), np.zeros_like(hand_b)
        state = result.state
    for param in info["state"]:
        assert not np.array_equal(state[param], start[param]), f"{param} never trained"


def head_scale(graph, x):
    return graph.tensors[x].quant.tensor_scale


def head_zero(graph, x):
    return graph.tensors[x].quant.zero_point


def test_a_failed_last_sample_drops_the_batch(graphs, forward) -> None:
    """A non-finite loss on a batch's last sample applies nothing and still zeroes the accumulators, so
    the next batch starts clean."""
    _, graph = graphs
    info = training_info(graph)
    xs = images(forward, BATCH)
    state = initial_state(graph)
    for i in range(BATCH - 1):
        state = train_step(graph, state, xs[i : i + 1], i % 4, step=i).state
    result = train_step(graph, state, xs[-1:], 0, step=BATCH - 1, lr=float("nan"), head_lr=float("nan"))
    assert result.status == "nonfinite-grad"
    for param in info["state"]:
        np.testing.assert_array_equal(result.state[param], state[param])
    for acc in info["accumulators"]:
        assert not result.state[acc].any()


def test_engine_kernels_match_the_reference(graphs, forward) -> None:
    """The C kernels through the binding (tte_engine.training) follow the reference over two batches
    within NUMERICS.md §7."""
    from tests.codegen.parity import assert_params_close
    from tte_engine.training import train_step as engine_step

    _, graph = graphs
    info = training_info(graph)
    xs = images(forward, 2 * BATCH)
    ref = eng = initial_state(graph)
    for i in range(2 * BATCH):
        r = train_step(graph, ref, xs[i : i + 1], i % 4, step=i)
        e = engine_step(graph, eng, xs[i : i + 1], i % 4, step=i)
        assert (r.status, e.status) == ("ok", "ok")
        np.testing.assert_allclose(e.loss, r.loss, rtol=1e-5)
        ref, eng = r.state, e.state
    assert_params_close({k: eng[k] for k in info["state"]}, {k: ref[k] for k in info["state"]})


def test_simulation_batch_is_the_device_update() -> None:
    """``tte train``'s simulation at the scheme's batch (mean loss over 8 samples, one update, its
    counter per update) and the reference's accumulated batch agree per NUMERICS.md §7 over two batches."""
    pytest.importorskip("torch", reason="tte-algo needs torch")
    from tests.algo.helpers import random_graph
    from tests.algo.test_train import random_data
    from tte_algo.train import TrainConfig, train_int8
    from tte_ir import WeightUpdate
    from tte_ir.autodiff import build_training_graph
    from tte_ir.order import sample_order

    forward = random_graph(3, "fp32")
    sch = Scheme(n_bias=3, weights=(WeightUpdate(1, 0.5), WeightUpdate(2, 1.0)), lr=0.5, head_lr=0.2, seed=3, batch=8)
    data = random_data(forward, 2 * BATCH, 3)
    config = TrainConfig(epochs=1, batch_size=BATCH, schedule="constant")
    ours = train_int8(forward, sch, data, None, config).graph
    graph = build_training_graph(forward, sch)
    state = initial_state(graph)
    for step, i in enumerate(sample_order(len(data), sch.seed, 0).tolist()):
        result = train_step(graph, state, data.codes[i : i + 1].numpy(), int(data.labels[i]), step=step)
        assert result.status == "ok"
        state = result.state
    layers = training_info(graph)["layers"]
    equal = total = moved = 0
    for param in training_info(graph)["state"]:
        value = state[param]
        name, kind = param.split(".")[0], param.split(".")[1][0]
        mine = ours.constants[f"{name}.{kind}"]
        if kind == "w" and not layers[name]["head"] and mine.shape[1] != value.shape[1]:
            mine = mine[:, layers[name]["channels"]]
        if value.dtype == np.float32:
            np.testing.assert_allclose(mine, value, rtol=1e-4, atol=1e-6, err_msg=param)
            continue
        mine = mine.astype(np.int64).reshape(value.shape)
        assert np.abs(mine - value).max() <= 1, param
        equal += int((mine == value).sum())
        total += value.size
        moved += int((value != graph.constants[param]).sum())
    assert total > 100 and moved > 0
    assert equal >= 0.999 * total
