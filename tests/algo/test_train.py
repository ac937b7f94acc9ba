"""QAS-SGD training of int8 graphs: the update rule, sparse schemes, guards, write-back, and that it learns."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from tests.algo.helpers import random_graph  # noqa: E402
from tte_algo.data import Dataset, load_digits  # noqa: E402
from tte_algo.ptq import quantize_model  # noqa: E402
from tte_algo.sim import Int8Sim  # noqa: E402
from tte_algo.train import TrainConfig, scheme_last_convs, train_int8  # noqa: E402
from tte_ir import (  # noqa: E402
    Scheme,
    WeightUpdate,
    conv_nodes,
    import_seed_pkl,
    load_scheme,
    reference,
    rounding,
    select_channels,
)
from tte_ir.order import sample_order  # noqa: E402
from tte_ir.quant import qas_divisors  # noqa: E402

INT32_LIMITS = (-(2**31), 2**31 - 1)


def random_data(graph, n: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    codes = torch.tensor(rng.integers(-128, 128, size=(n, *graph.tensors["input"].shape[1:])), dtype=torch.int8)
    return Dataset(codes, torch.tensor(rng.integers(0, 5, size=n)), tuple("abcde"))


@pytest.mark.parametrize("mode", ["stochastic", "nearest"])
def test_one_step_follows_the_qas_rule(mode: str) -> None:
    """One full-batch step equals codes + round_mode(-(lr*g)*inv) computed here with tte_ir.rounding."""
    graph = random_graph(0, "int8")
    data = random_data(graph, 6, 1)
    scheme = Scheme(n_bias=2, weights=(WeightUpdate(2, 1.0),), head="int8", rounding=mode, lr=0.3, head_lr=0.3, seed=9)
    result = train_int8(graph, scheme, data, None, TrainConfig(epochs=1, batch_size=6, schedule="constant"))
    sim = Int8Sim(graph)
    convs = conv_nodes(graph)
    trained = {  # tensor -> (node, conv index of the hash id, is bias)
        convs[2].inputs[1]: (convs[2], 2, False),
        convs[2].inputs[2]: (convs[2], 2, True),
        convs[3].inputs[2]: (convs[3], 3, True),
        "head.w": (graph.node("head"), 4, False),
        "head.b": (graph.node("head"), 4, True),
    }
    leaves = {name: sim.constants[name].clone().requires_grad_(True) for name in trained}
    order = torch.from_numpy(sample_order(6, scheme.seed, 0))
    loss = F.cross_entropy(sim(data.codes[order], leaves), data.labels[order])
    grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))
    changed = 0
    for name, (node, index, is_bias) in trained.items():
        s_x = graph.tensors[node.inputs[0]].quant.tensor_scale
        inv_w, inv_b = qas_divisors(
            s_x, graph.tensors[node.inputs[1]].quant.scale_array(), graph.constants[node.inputs[2]]
        )
        before = graph.constants[name].astype(np.int64)
        inv = (inv_b if is_bias else inv_w).reshape((-1,) + (1,) * (before.ndim - 1))
        v = -(np.float32(0.3) * grads[name].numpy().astype(np.float32)) * inv
        tensor_id = rounding.bias_tensor_id(index) if is_bias else rounding.weight_tensor_id(index)
        step = rounding.round_step(
            v, mode, seed=9, step=0, tensor_id=tensor_id, element_index=np.arange(v.size).reshape(v.shape)
        )
        limits = INT32_LIMITS if is_bias else (-127, 127)
        expected = np.clip(before + step, *limits)
        np.testing.assert_array_equal(result.graph.constants[name].astype(np.int64), expected, err_msg=name)
        changed += int((expected != before).sum())
    assert changed > 10
    untouched = set(graph.constants) - set(trained)
    assert all(np.array_equal(graph.constants[n], result.graph.constants[n]) for n in untouched)


def test_guards_sparse_channels_and_skips() -> None:
    graph = random_graph(3, "fp32")
    data = random_data(graph, 16, 2)
    convs = conv_nodes(graph)
    scheme = Scheme(n_bias=4, weights=(WeightUpdate(1, 0.25), WeightUpdate(2, 1.0)), rounding="nearest", lr=5.0, seed=1)
    result = train_int8(graph, scheme, data, None, TrainConfig(epochs=2, batch_size=4))
    after = result.graph.constants
    # dead channels (bias at the int32 limits) never move, weights or bias
    for node in convs:
        bias = graph.constants[node.inputs[2]]
        dead = np.isin(bias, INT32_LIMITS)
        assert dead.any()
        np.testing.assert_array_equal(after[node.inputs[2]][dead], bias[dead])
        np.testing.assert_array_equal(after[node.inputs[1]][dead], graph.constants[node.inputs[1]][dead])
    # pw1 (conv 1) trains a quarter of its input channels, chosen by magnitude
    w_before, w_after = graph.constants["pw1.w"], after["pw1.w"]
    moved = np.flatnonzero((w_before != w_after).any(axis=(0, 2, 3)))
    selected = select_channels(w_before, 0.25, depthwise=False)
    assert len(selected) == math.ceil(w_before.shape[1] / 4) < w_before.shape[1]
    assert moved.tolist() == selected.tolist()
    # a non-finite loss skips the whole update (finite head weights whose logits overflow to infinity:
    # a NaN weight is refused where it enters, by verify)
    huge = np.where(np.arange(graph.constants["head.w"].size) % 2, 3.0e38, -3.0e38).reshape(
        graph.constants["head.w"].shape
    )
    inf_head = graph.replace(constants={**graph.constants, "head.w": huge.astype(np.float32)})
    skipped = train_int8(inf_head, scheme, data, None, TrainConfig(epochs=1, batch_size=4))
    assert skipped.metrics["skipped_steps"] == 4
    assert all(np.array_equal(inf_head.constants[n], skipped.graph.constants[n]) for n in graph.constants)


def test_training_is_deterministic_and_seeded() -> None:
    graph = random_graph(4, "int8")
    data = random_data(graph, 12, 3)
    scheme = scheme_last_convs(graph, 3, lr=0.5, rounding="stochastic", seed=3)
    config = TrainConfig(epochs=2, batch_size=1, schedule="cosine")
    first = train_int8(graph, scheme, data, None, config).graph
    second = train_int8(graph, scheme, data, None, config).graph
    other = train_int8(graph, replace(scheme, seed=4), data, None, config).graph
    assert all(np.array_equal(first.constants[n], second.constants[n]) for n in graph.constants)
    assert any(not np.array_equal(first.constants[n], other.constants[n]) for n in graph.constants)


def test_samples_are_visited_in_sample_order() -> None:
    """Epoch e visits the samples in tte_ir.order.sample_order(n, seed, e), the order of `tte run`: one
    seeded run ends on the codes of training on one sample at a time in that order (and not reversed)."""
    graph = random_graph(5, "int8")
    data = random_data(graph, 6, 4)
    scheme = scheme_last_convs(graph, 2, head="int8", rounding="nearest", lr=2.0, head_lr=2.0, seed=7)
    config = TrainConfig(epochs=2, batch_size=1, schedule="constant")
    seeded = train_int8(graph, scheme, data, None, config).graph

    def one_at_a_time(order: np.ndarray):
        trained = graph
        for i in order:
            trained = train_int8(trained, scheme, data.subset([i]), None, replace(config, epochs=1)).graph
        return trained

    order = np.concatenate([sample_order(len(data), 7, epoch) for epoch in range(2)])
    same, reversed_ = one_at_a_time(order), one_at_a_time(order[::-1])
    assert all(np.array_equal(seeded.constants[n], same.constants[n]) for n in graph.constants)
    assert any(not np.array_equal(seeded.constants[n], reversed_.constants[n]) for n in graph.constants)


@pytest.fixture(scope="module")
def transfer(pretrained_plain):
    """The plain CNN pretrained on digits 0-4 with a fresh head, quantized for digits 5-9."""
    model, _ = pretrained_plain
    target = load_digits(16, [5, 6, 7, 8, 9])
    train, test = target.split(0.5, seed=0)
    torch.manual_seed(0)
    model = type(model)(5)
    model.load_state_dict(pretrained_plain[0].state_dict())
    model.classifier = nn.Linear(model.classifier.in_features, 5)
    return quantize_model(model.eval(), train.codes), train, test


def test_qas_training_learns_the_target_task(transfer) -> None:
    graph, train, test = transfer
    config = TrainConfig(epochs=4, batch_size=16)
    qas = train_int8(
        graph, scheme_last_convs(graph, 2, rounding="stochastic", lr=0.1, head_lr=0.1), train, test, config
    )
    no_qas = train_int8(
        graph,
        scheme_last_convs(graph, 2, rounding="float-master", lr=0.1, head_lr=0.1),
        train,
        test,
        replace(config, qas=False),
    )
    before, after = qas.metrics["test_accuracy_before"], qas.metrics["test_accuracy"]
    assert after > before + 0.3, (before, after)
    assert after > no_qas.metrics["test_accuracy"], (after, no_qas.metrics["test_accuracy"])
    # the written-back graph, run by the numpy reference, has the accuracy the trainer reported
    predictions = [
        int(np.argmax(reference.run_forward(qas.graph, test.codes[i : i + 1].numpy()))) for i in range(len(test))
    ]
    assert np.mean(np.array(predictions) == test.labels.numpy()) == pytest.approx(after)


@pytest.mark.parametrize(
    ("rounding_mode", "momentum", "qas"),
    [("float-master", 0.0, True), ("nearest", 0.9, True), ("stochastic", 0.0, False)],
)
def test_other_settings_run_at_batch_one(transfer, rounding_mode: str, momentum: float, qas: bool) -> None:
    graph, train, test = transfer
    scheme = scheme_last_convs(graph, 2, rounding=rounding_mode, lr=0.02, head_lr=0.02, momentum=momentum)
    result = train_int8(
        graph, scheme, train.subset(torch.arange(40)), test, TrainConfig(epochs=1, batch_size=1, qas=qas)
    )
    assert result.metrics["skipped_steps"] == 0 and len(result.metrics["epochs_log"]) == 1
    assert np.isfinite(result.metrics["epochs_log"][0]["train_loss"])


@pytest.mark.shared
def test_seed_model_trains_with_a_seed_scheme(seed_model_path, shared_dir) -> None:
    """The MCUNet seed model with the paper's 49 KB scheme: dead channels stay frozen, nothing is skipped."""
    graph = import_seed_pkl(seed_model_path("mcunet-5fps"), 10, head="fp32")
    scheme = replace(load_scheme(shared_dir / "schemes" / "seed-schemes.json", ("mcunet-5fps", "49kb")), lr=0.05)
    data = load_digits(128).subset(torch.arange(0, 60, 10))
    result = train_int8(graph, scheme, data, None, TrainConfig(epochs=1, batch_size=1))
    assert result.metrics["skipped_steps"] == 0
    changed = [n for n in graph.constants if not np.array_equal(graph.constants[n], result.graph.constants[n])]
    assert changed
    for node in conv_nodes(graph):
        bias = graph.constants[node.inputs[2]]
        dead = np.isin(bias, INT32_LIMITS)
        np.testing.assert_array_equal(
            result.graph.constants[node.inputs[1]][dead], graph.constants[node.inputs[1]][dead]
        )
