"""The seed-model importer: structure, safety and schema errors."""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import Counter

import numpy as np
import pytest

from tte_ir import DType, Op, SeedModelError, import_seed_pkl, summarize

# (convs including the head, adds, MACs in millions at 128x128, int8 weight bytes with a 10-class head)
EXPECTED = {
    "mcunet-5fps": (43, 7, 464_816),
    "mbv2-w0.35": (52, 10, None),
    "proxyless-w0.3": (61, 13, None),
}


@pytest.mark.parametrize("model", list(EXPECTED))
def test_structure(seed_model_path, model):
    graph = import_seed_pkl(seed_model_path(model), 10)
    convs, adds, weight_bytes = EXPECTED[model]
    counts = Counter(node.op for node in graph.nodes)
    assert counts[Op.CONV2D] + counts[Op.LINEAR] == convs
    assert counts[Op.ADD] == adds
    assert graph.tensors["logits"].shape == (1, 10)
    assert graph.tensors["input"].shape == (1, 3, 128, 128)
    if weight_bytes is not None:
        assert (
            sum(graph.constants[n.inputs[1]].nbytes for n in graph.nodes if n.op in (Op.CONV2D, Op.LINEAR))
            == weight_bytes
        )
    macs = sum(r.macs for r in summarize(graph))
    assert 15e6 < macs < 25e6


def test_mcunet_macs_match_the_seed_figure(seed_model_path):
    # The paper gives 23M MACs (with the 1000-class head, 160*1000 = 0.16M of them).
    graph = import_seed_pkl(seed_model_path("mcunet-5fps"), 1000)
    assert round(sum(r.macs for r in summarize(graph)) / 1e6) == 23


def test_fp32_head_and_seeded_init(seed_model_path):
    path = seed_model_path("mbv2-w0.35")
    a = import_seed_pkl(path, 5, head="fp32", seed=1)
    b = import_seed_pkl(path, 5, head="fp32", seed=1)
    c = import_seed_pkl(path, 5, head="fp32", seed=2)
    assert a.tensors["head.w"].dtype is DType.FLOAT32 and a.tensors["logits"].dtype is DType.FLOAT32
    np.testing.assert_array_equal(a.constants["head.w"], b.constants["head.w"])
    assert not np.array_equal(a.constants["head.w"], c.constants["head.w"])
    assert np.abs(a.constants["head.w"]).max() <= 1 / np.sqrt(112)


def _zip_with_pickle(tmp_path, payload: bytes):
    path = tmp_path / "evil.pkl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")
    return path


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = _zip_with_pickle(tmp_path, pickle.dumps({"first_conv": _RunsCode(marker)}, protocol=2))
    with pytest.raises(SeedModelError, match=r"evil.pkl: refusing to load global '(builtins|io).open'"):
        import_seed_pkl(path)
    assert not marker.exists()


def test_os_system_is_refused(tmp_path):
    payload = b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR."
    with pytest.raises(SeedModelError, match="refusing to load global 'os.system'"):
        import_seed_pkl(_zip_with_pickle(tmp_path, payload))
    assert not (tmp_path / "pwned").exists()


def test_not_a_zip(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(SeedModelError, match="plain.pkl: not a torch.save zip archive"):
        import_seed_pkl(path)


def test_schema_errors_name_the_layer(tmp_path, seed_model_path):
    from tte_ir import load_seed_pkl

    model = load_seed_pkl(seed_model_path("mcunet-5fps"))
    del model["blocks"][2]["depthwise"]["params"]["w_scales"]
    buf = io.BytesIO()
    pickle.dump(model, buf, protocol=2)
    with pytest.raises(SeedModelError, match=r"blocks.2.dw: missing 'w_scales'"):
        import_seed_pkl(_zip_with_pickle(tmp_path, buf.getvalue()))


def test_bad_class_count(seed_model_path):
    with pytest.raises(SeedModelError, match="--classes must be at least 1"):
        import_seed_pkl(seed_model_path("mcunet-5fps"), 0)
