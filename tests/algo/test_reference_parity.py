"""Training parity with tte-ir's reference training step (NUMERICS.md §7): the simulation at batch 1
and the numpy reference interpreter of the compiled training graph, step for step on the same samples."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")
reference_train = pytest.importorskip("tte_ir.reference_train", reason="tte-ir has no reference training step")

from tests.algo.helpers import random_graph  # noqa: E402
from tests.algo.test_train import random_data  # noqa: E402
from tte_algo.train import TrainConfig, train_int8  # noqa: E402
from tte_ir import Scheme, WeightUpdate, is_depthwise  # noqa: E402
from tte_ir.autodiff import build_training_graph  # noqa: E402
from tte_ir.order import sample_order  # noqa: E402


@pytest.mark.parametrize(
    ("seed", "head", "mode"), [(3, "fp32", "stochastic"), (0, "int8", "nearest"), (4, "int8", "stochastic")]
)
def test_weights_after_steps_match_the_reference(seed: int, head: str, mode: str) -> None:
    forward = random_graph(seed, head)
    scheme = Scheme(
        n_bias=3,
        weights=(WeightUpdate(1, 0.5), WeightUpdate(2, 1.0)),
        head=head,
        rounding=mode,
        lr=0.2,
        head_lr=0.1,
        seed=seed,
    )
    data = random_data(forward, 12, seed)
    ours = train_int8(forward, scheme, data, None, TrainConfig(epochs=1, batch_size=1, schedule="constant")).graph
    graph = build_training_graph(forward, scheme)
    state = reference_train.initial_state(graph)
    order = sample_order(len(data), scheme.seed, 0).tolist()  # the order tte train visits (one seed, one order)
    for step, i in enumerate(order):
        result = reference_train.train_step(graph, state, data.codes[i : i + 1].numpy(), int(data.labels[i]), step=step)
        assert result.status == reference_train.STATUS_OK
        state = result.state
    layers = graph.metadata["training"]["layers"]
    int8_equal = int8_total = 0
    for param, value in state.items():
        layer_name, kind = param.split(".")[0], param.split(".")[1][0]  # "pw1.w_train" -> ("pw1", "w")
        mine = ours.constants[f"{layer_name}.{kind}"]
        layer = layers[layer_name]
        if kind == "w" and not layer["head"] and not is_depthwise(forward, forward.node(layer_name)):
            mine = mine[:, layer["channels"]]
        if value.dtype == np.float32:
            np.testing.assert_allclose(mine, value, rtol=1e-4, atol=1e-6, err_msg=param)
            continue
        mine = mine.astype(np.int64).reshape(value.shape)
        assert np.abs(mine - value).max() <= 1, param
        int8_equal += int((mine == value).sum())
        int8_total += value.size
    assert int8_total > 100
    assert int8_equal >= 0.999 * int8_total
    # and the codes really moved, so the comparison is not vacuous
    assert any(
        not np.array_equal(ours.constants[n], forward.constants[n])
        for n in forward.constants
        if forward.constants[n].dtype != np.float32
    )
