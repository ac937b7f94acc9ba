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
        ({"format": "tte-scheme", "version": 1, "n_bias": -1}, r'"n_bias" must be an integer in \[0, '),
        ({"format": "tte-scheme", "version": 9}, "scheme version 9 is newer"),
        ({"format": "tte-scheme", "version": 1, "rounding": "up"}, "\"rounding\" 'up' is unknown"),
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


def _tte(**fields):
    return {"format": "tte-scheme", "version": 1, **fields}


def _seed(**fields):
    return {"n_bias_update": 2, "manual_weight_idx": [1], "weight_update_ratio": [0.5], **fields}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # the cases of issue 15: each was a traceback, a silent reinterpretation or C that did not compile
        (_tte(version=None), r'"version" must be an integer >= 1, got None'),
        (_tte(version="1"), r'"version" must be an integer >= 1'),
        (_seed(weight_update_ratio=[float("nan")]), r'"weight_update_ratio"\[0\]: conv 1: ratio nan is not one of'),
        (_tte(weights=[{"conv": 1, "ratio": float("inf")}]), r'"weights"\[0\]: conv 1: ratio inf is not one of'),
        (_tte(train_head="no"), r'"train_head" must be true or false, got \'no\''),
        (_tte(train_head=1), r'"train_head" must be true or false, got 1'),
        (_tte(lr=True), r'"lr" must be a finite number in \[0, 100\], got True'),
        (_tte(head_lr=float("nan")), r'"head_lr" must be a finite number in \[0, 100\], got nan'),
        (_tte(lr=-0.1), r'"lr" must be a finite number in \[0, 100\], got -0.1'),
        (_tte(lr=3.4e38), r'"lr" must be a finite number in \[0, 100\], got 3.4e\+38'),
        (_tte(n_bias=True), r'"n_bias" must be an integer in \[0, 2147483647\], got True'),
        (_seed(n_bias_update=True), r'"n_bias_update" must be an integer in \[0, 2147483647\], got True'),
        (_tte(n_bias=2.0), r'"n_bias" must be an integer'),
        (_tte(weights=[{"conv": 2.7, "ratio": 1}]), r'"weights"\[0\]: "conv" must be an integer in \[0, '),
        (_seed(manual_weight_idx=[2.7]), r'"manual_weight_idx"\[0\] / "weight_update_ratio"\[0\]: "conv" must be'),
        (_seed(manual_weight_idx=[-1], weight_update_ratio=[0]), r'"conv" must be an integer in \[0, '),
        (_tte(seed=1e300), r'"seed" must be an integer in \[0, 4294967295\], got 1e\+300'),
        (_tte(seed=2**32), r'"seed" must be an integer in \[0, 4294967295\]'),
        (_tte(seed=-1), r'"seed" must be an integer in \[0, 4294967295\]'),
        (_tte(momentum=1.0), r'"momentum" must be a finite number in \[0, 1\)'),
        (_tte(head=["fp32"]), r'"head" \[\'fp32\'\] is unknown \(allowed: fp32, int8\)'),
        (_tte(weights={"conv": 1}), r'"weights" must be a list'),
        (_tte(weights=[{"conv": 1, "ratio": 1, "extra": 0}]), r'"weights"\[0\] must be an object with exactly'),
        (_tte(weights=[[1, 1]]), r'"weights"\[0\] must be an object with exactly'),
        (_tte(metadata=[1]), r'"metadata" must be a JSON object'),
        (_tte(metadata={"a": float("nan")}), r'"metadata" holds nan'),
        (_seed(extra=1), r"unknown key 'extra' in a seed-paper scheme"),
        (_seed(weight_select_criteria=None), r'"weight_select_criteria" None is unsupported'),
        (_seed(manual_weight_idx=3), r'"manual_weight_idx" and "weight_update_ratio" must be lists'),
    ],
)
def test_every_field_is_checked_by_type_and_range(data, message):
    with pytest.raises(SchemeError, match=message) as caught:
        Scheme.from_json(data, "bad.json")
    assert str(caught.value).startswith("bad.json: ") and "\n" not in str(caught.value)


def test_deep_metadata_is_refused():
    deep: dict = {}
    for _ in range(40):
        deep = {"a": deep}
    with pytest.raises(SchemeError, match='bad.json: "metadata" is nested deeper than 16 levels'):
        Scheme.from_json(_tte(metadata=deep), "bad.json")


def test_valid_values_are_normalised():
    scheme = Scheme.from_json(_tte(lr=1, head_lr=0, weights=[{"conv": 3, "ratio": 0.25}], seed=2**32 - 1), "s")
    assert scheme.lr == 1.0 and isinstance(scheme.lr, float) and scheme.head_lr == 0.0
    assert scheme.seed == 2**32 - 1 and scheme.weights == (WeightUpdate(3, 0.25),)
    seed = Scheme.from_json(_seed(manual_weight_idx=[4, 5], weight_update_ratio=[0, 1]), "s")
    assert seed.weights == (WeightUpdate(5, 1.0),) and seed.n_bias == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": "tte-scheme", "version": 1, "lr": NaN}', r'"lr" must be a finite number in \[0, 100\], got nan'),
        ('{"format": "tte-scheme", "version": 1, "lr": Infinity}', r'"lr" must be a finite number'),
        ('{"format": "tte-scheme", "version": 1, "lr": 1e999}', r'"lr" must be a finite number'),
        ('{"format": "tte-scheme", "version": 1, "seed": ' + "9" * 5000 + "}", "invalid JSON"),
        ("[" * 100_000 + "]" * 100_000, "invalid JSON"),
        ("\xff\xfe", "invalid JSON"),
        ("", "invalid JSON"),
    ],
)
def test_scheme_files_are_refused_in_one_line(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_bytes(text.encode("latin-1") if text.startswith("\xff") else text.encode())
    with pytest.raises(SchemeError, match=message) as caught:
        load_scheme(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_a_folder_or_a_huge_file_is_not_a_scheme(tmp_path):
    with pytest.raises(SchemeError, match="cannot read"):
        load_scheme(tmp_path)
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:
        f.truncate(17 * 1024**2)
    with pytest.raises(SchemeError, match="is too large for a scheme"):
        load_scheme(huge)


def test_out_of_range_seed_index_names_the_seed_field(seed_model_path):
    graph = import_seed_pkl(seed_model_path("mcunet-5fps"), 10)
    scheme = Scheme.from_json(_seed(manual_weight_idx=[42], weight_update_ratio=[1]), "s.json")
    with pytest.raises(SchemeError, match=r'"manual_weight_idx": weight update of conv 42 is out of range'):
        scheme.validate_for(graph)


def test_numpy_numbers_are_normalised_and_numpy_bools_refused():
    scheme = Scheme(n_bias=np.int64(2), weights=(WeightUpdate(np.int64(3), np.float32(0.25)),), seed=np.uint32(5))
    assert type(scheme.n_bias) is int and type(scheme.weights[0].conv) is int and type(scheme.seed) is int
    assert scheme.weights[0].ratio == 0.25
    with pytest.raises(SchemeError, match='"n_bias" must be an integer'):
        Scheme(n_bias=np.bool_(True))
    with pytest.raises(SchemeError, match='"lr" must be a finite number'):
        Scheme(lr=10**400)
