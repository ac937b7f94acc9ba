"""Known answers from TensorFlow Lite: every CONV_2D, DEPTHWISE_CONV_2D, ADD, AVERAGE_POOL_2D,
MAX_POOL_2D and FULLY_CONNECTED of the int8 models in ../shared/models/tflite, evaluated by tte_ir's
numpy reference under fixed requantization (NUMERICS.md §2b) on the inputs TFLite's reference kernels
recorded, gives their recorded outputs (``ref_tensor/...``) code for code (the importer's tests check
whole models)."""

from __future__ import annotations

import pytest

pytest.importorskip("tflite", reason="the tflite flatbuffer package (pip install tflite==2.18.0)")

from tests.ir.tflite_ops import Model

MODELS = ["resnet8_b1", "dscnn_b1", "mobilenetv1_025_vww_b1", "lenet5_b1"]


@pytest.mark.shared
@pytest.mark.parametrize("name", MODELS)
def test_ops_equal_tflites_reference_kernels(name: str, shared_dir) -> None:
    model = Model(shared_dir / "models" / "tflite" / f"{name}.tflite")
    checked = []
    for i, op_name, op in model.ops():
        got = model.run(op, op_name)
        if got is None:
            continue
        out = model.graph.Tensors(int(op.OutputsAsNumpy()[0])).Name().decode()
        expected = model.golden[f"ref_tensor/{out}"]
        assert got.shape == expected.shape, (i, op_name)
        differing = int((got.astype(int) != expected.astype(int)).sum())
        assert differing == 0, f"{name} op {i} {op_name}: {differing} of {got.size} codes differ"
        checked.append(op_name)
    assert "CONV_2D" in checked and ("FULLY_CONNECTED" in checked)
