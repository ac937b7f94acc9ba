"""Schemes: tte form, the seed paper's form, validation, channel selection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tte_ir import (
    Scheme,
    SchemeError,
    WeightUpdate,
    conv_nodes,
    import_seed_pkl,
    load_scheme,
    save_scheme,
    select_channels,
)


def test_round_trip(tmp_path):
    scheme = Scheme(n_bias=3, weights=(WeightUpdate(5, 0.25), WeightUpdate(2, 1.0)), rounding="nearest", lr=0.1)
    assert [w.conv for w in scheme.weights] == [2, 5]
    assert load_scheme(save_scheme(scheme, tmp_path / "s.json")) == scheme


def test_all_seed_schemes_load_and_fit_their_models(shared_dir, seed_model_path):
    path = shared_dir / "schemes" / "seed-schemes.json"
    data = json.loads(path.read_text())
    for model, schemes in data.items():
        if model.startswith("_"):
            continue
        graph = import_seed_pkl(seed_model_path(model), 10)
        for label in schemes:
            scheme = load_scheme(f"{path}:{model}/{label}")
            scheme.validate_for(graph)
            raw = schemes[label]
            assert scheme.n_bias == raw["n_bias_update"]
            assert len(scheme.weights) == sum(1 for r in raw["weight_update_ratio"] if r)
    mcunet = load_scheme(path, ("mcunet-5fps", "49kb"))
    assert [(w.conv, w.ratio) for w in mcunet.weights] == [(24, 0.25), (27, 0.5), (30, 0.5)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"format": "tte-scheme", "version": 1, "weights": [{"conv": 1, "ratio": 0.3}]}, "ratio 0.3 is not one of"),
        ({"format": "tte-scheme", "version": 1, "n_bias": -1}, "n_bias must be a non-negative integer"),
        ({"format": "tte-scheme", "version": 9}, "scheme version 9 is newer"),
        ({"format": "tte-scheme", "version": 1, "rounding": "up"}, "rounding 'up' is unknown"),
        ({"format": "tte-scheme", "version": 1, "colour": 1}, "unknown key 'colour'"),
        ({"n_bias_update": 2, "manual_weight_idx": [1], "weight_update_ratio": [0.5, 1]}, "differ in length"),
        ({"hello": 1}, "not a tte scheme"),
    ],
)
def test_bad_schemes(data, message):
    with pytest.raises(SchemeError, match=message):
        Scheme.from_json(data, "bad.json")


def test_out_of_range_for_graph(seed_model_path):
    graph = import_seed_pkl(seed_model_path("mcunet-5fps"), 10)
    assert len(conv_nodes(graph)) == 42
    with pytest.raises(SchemeError, match=r"conv 42 is out of range: graph 'mcunet-5fps' has convs 0..41"):
        Scheme(weights=(WeightUpdate(42, 1.0),)).validate_for(graph)
    with pytest.raises(SchemeError, match="n_bias 43 exceeds the 42 convs"):
        Scheme(n_bias=43).validate_for(graph)


def test_select_channels_by_magnitude_ties_by_index():
    w = np.zeros((2, 8, 1, 1), dtype=np.int8)
    w[:, :, 0, 0] = [[1, 5, 5, 0, -7, 2, 5, 0], [0, 0, 0, 0, 0, 0, 0, 1]]
    # squared norms over O: [1, 25, 25, 0, 49, 4, 25, 1]; top 2 (1/4 of 8): 4, then 1 (tie 1/2/6 -> lowest)
    assert select_channels(w, 0.25, depthwise=False).tolist() == [1, 4]
    assert select_channels(w, 1.0, depthwise=False).tolist() == list(range(8))
    assert select_channels(w[:, :3], 0.125, depthwise=False).tolist() == [1]  # ceil(3/8) = 1
    dw = np.array([3, -3, 1, 4], dtype=np.int8).reshape(4, 1, 1, 1)
    assert select_channels(dw, 0.5, depthwise=True).tolist() == [0, 3]


def test_hash_is_the_documented_mixer():
    from tte_ir.rounding import hash32, round_step, stochastic_uniform

    def mix(x):
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    def h(seed, step, tid, idx):
        return mix(mix(mix(mix(seed) ^ step) ^ tid) ^ idx)

    idx = np.arange(0, 5000, 7)
    assert hash32(12345, 17, 65541, idx).tolist() == [h(12345, 17, 65541, int(i)) for i in idx]
    u = stochastic_uniform(1, 2, 3, idx)
    assert u.dtype == np.float32 and (u >= 0).all() and (u < 1).all()
    # stochastic rounding is unbiased on average and nearest is round-half-even
    v = np.full(idx.shape, 0.25, np.float32)
    assert abs(round_step(v, "stochastic", seed=1, step=2, tensor_id=3, element_index=idx).mean() - 0.25) < 0.05
    assert round_step(np.array([0.5, 1.5, -0.5, 3e10], np.float32), "nearest").tolist() == [0, 2, 0, 2**30]
