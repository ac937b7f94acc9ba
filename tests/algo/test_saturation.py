"""tte train's simulation: a step whose update values are not finite is skipped (no NaN or infinity
is ever written, whatever lr is forced in), and the share of trained codes left at their limits is
recorded in the metrics and warned about above the threshold (tte_ir.saturation)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from tests.algo.helpers import random_graph
from tests.algo.test_train import random_data
from tte_algo.train import TrainConfig, train_int8
from tte_ir import Scheme, WeightUpdate, conv_nodes
from tte_ir.cli_args import MAX_LR
from tte_ir.saturation import SATURATION_WARN

CONFIG = TrainConfig(epochs=2, batch_size=3, schedule="constant")


def scheme_of(head: str, lr: float) -> Scheme:
    return Scheme(n_bias=2, weights=(WeightUpdate(2, 1.0), WeightUpdate(3, 1.0)), head=head, lr=lr, head_lr=lr)


def forced(scheme: Scheme, lr: float) -> Scheme:
    """``scheme`` with a learning rate the scheme's own checks refuse, forced in as a bug could."""
    object.__setattr__(scheme, "lr", lr)
    object.__setattr__(scheme, "head_lr", lr)
    return scheme


@pytest.mark.parametrize("lr", [math.nan, math.inf, -math.inf, 3.4e38], ids=repr)
@pytest.mark.parametrize("head", ["int8", "fp32"])
def test_no_nonfinite_value_is_ever_written(head: str, lr: float) -> None:
    graph = random_graph(0, head)
    data = random_data(graph, 6, 1)
    result = train_int8(graph, forced(scheme_of(head, 0.1), lr), data, None, CONFIG)
    trained = result.metrics["trained_tensors"]
    for name in trained:
        assert np.all(np.isfinite(result.graph.constants[name].astype(np.float64))), name
    if not math.isfinite(lr):  # every live step value is NaN or infinite: every step skipped
        assert result.metrics["skipped_steps"] == 4
        for name in trained:
            np.testing.assert_array_equal(result.graph.constants[name], graph.constants[name])
    else:
        assert result.metrics["skipped_steps"] >= 1


def test_a_learning_rate_at_the_bound_saturates_and_warns(capsys: pytest.CaptureFixture[str]) -> None:
    graph = random_graph(0, "int8")
    result = train_int8(graph, scheme_of("int8", MAX_LR), random_data(graph, 6, 1), None, CONFIG)
    stats = result.metrics["saturation"]
    assert stats["weights"]["share"] > SATURATION_WARN and stats["threshold"] == SATURATION_WARN
    convs = conv_nodes(graph)
    trained = [result.graph.constants[convs[i].inputs[1]] for i in (2, 3)] + [result.graph.constants["head.w"]]
    at_limit = sum(int((np.abs(w.astype(np.int16)) == 127).sum()) for w in trained)
    # the dead channels (frozen, their bias at an int32 limit) are not counted as trained
    assert stats["weights"]["at_limit"] <= at_limit and stats["weights"]["trained"] < sum(w.size for w in trained)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "lower the learning rate" in err[0], err


def test_a_sane_learning_rate_does_not_warn(capsys: pytest.CaptureFixture[str]) -> None:
    graph = random_graph(0, "int8")
    result = train_int8(graph, scheme_of("int8", 1e-4), random_data(graph, 6, 1), None, CONFIG)
    stats = result.metrics["saturation"]
    assert stats["weights"]["share"] < SATURATION_WARN and stats["biases"]["share"] == 0.0
    assert stats["biases"]["trained"] > 0  # the dead (+-2^31) biases are not counted as trained
    assert "warning" not in capsys.readouterr().err
