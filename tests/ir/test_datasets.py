"""tte_ir.datasets: the one --data format of every command (issue 12): digits and image folders at any
[C, H, W] a model asks (1 gray or 3 channels, H != W), .npz float inputs, int8 codes where allowed,
the one input quantization formula, and shapes refused naming both."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from tte_ir import QuantParams
from tte_ir.cli_args import DataError
from tte_ir.datasets import load_dataset, load_digits, load_image_folder, load_npz, outside_range, to_codes

SEED = QuantParams.per_tensor(1 / 127.5, 0)


def test_to_codes_rounds_half_to_even_adds_the_zero_point_and_clips():
    quant = QuantParams.per_tensor(0.5, 3)
    x = np.array([0.25, 0.75, -0.25, 1.0, 100.0, -100.0, -0.75], np.float32)
    # x / 0.5 + 3 = 3.5, 4.5, 2.5, 5, 203, -197, 1.5
    assert to_codes(x, quant).tolist() == [4, 4, 2, 5, 127, -128, 2]
    assert to_codes(x, quant).dtype == np.int8
    assert outside_range(x, quant) == 2


def test_to_codes_refuses_what_it_cannot_quantize():
    with pytest.raises(DataError, match="no per-tensor quantization"):
        to_codes(np.zeros(2), QuantParams.per_channel([0.1, 0.2]))
    with pytest.raises(DataError, match="2 inputs are not finite"):
        to_codes(np.array([np.nan, np.inf, 0.0]), SEED)


@pytest.mark.parametrize("shape", [(1, 49, 10), (1, 28, 28), (3, 32, 32), (3, 7, 12)])
def test_digits_take_any_gray_or_rgb_shape(shape):
    pytest.importorskip("sklearn")
    data = load_digits(shape, [5, 9])
    assert data.x.dtype == np.float32 and data.x.shape[1:] == shape
    assert data.y.dtype == np.int64 and set(data.y.tolist()) == {0, 1} and data.classes == ("5", "9")
    codes = data.codes(SEED)
    assert int(codes.min()) == -128 and int(codes.max()) == 127  # pixels 0 and 255, codes p - 128
    assert all(np.array_equal(codes[:, 0], codes[:, c]) for c in range(shape[0]))
    assert np.array_equal(to_codes(codes.astype(np.float32) / 127.5, SEED), codes)  # the inputs are codes / 127.5


def test_digits_refuse_a_channel_count_they_cannot_give():
    with pytest.raises(DataError, match=re.escape("digits: the model takes [N, 2, 8, 8]; digits and image folders")):
        load_dataset("digits", shape=(2, 8, 8))


def test_digits_say_what_to_install_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # what an absent package looks like to import
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataError, match="--data digits needs scikit-learn: pip install scikit-learn"):
        load_dataset("digits", shape=(1, 8, 8))


def test_image_folders_crop_to_the_models_aspect_ratio_in_gray(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    for name, value in (("dark", 0), ("light", 255)):
        (tmp_path / name).mkdir()
        image_module.new("RGB", (9, 9), (value,) * 3).save(tmp_path / name / "a.png")
    # 20 wide, 10 high: black edges 4 pixels wide around white; a 2:1 model keeps it whole, a square one
    # its white middle 10 x 10
    framed = image_module.new("RGB", (20, 10), (0, 0, 0))
    framed.paste((255, 255, 255), (4, 0, 16, 10))
    framed.save(tmp_path / "dark" / "b.png")
    wide = load_image_folder(tmp_path, (1, 4, 8))
    assert wide.x.shape == (3, 1, 4, 8) and wide.classes == ("dark", "light")
    codes = wide.codes(SEED)
    assert codes[1, 0, :, 0].max() < -64 and codes[1, 0, :, 7].max() < -64 and codes[1, 0, :, 3:5].min() == 127
    square = load_image_folder(tmp_path, (3, 4, 4)).codes(SEED)
    assert square.shape == (3, 3, 4, 4) and square[1].min() == 127
    assert set(codes[0].ravel().tolist()) == {-128} and set(codes[2].ravel().tolist()) == {127}


def test_npz_float_inputs_load_as_float32_and_shapes_are_named(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (5, 1, 49, 10))
    np.savez(tmp_path / "kws.npz", x=x, y=np.array([0, 1, 2, 1, 0], np.uint8))
    data = load_dataset(str(tmp_path / "kws.npz"), shape=(1, 49, 10), classes=[1, 2])
    assert data.x.dtype == np.float32 and data.x.shape == (3, 1, 49, 10) and data.y.tolist() == [0, 1, 0]
    assert np.array_equal(data.x, x[[1, 2, 3]].astype(np.float32))
    assert load_npz(tmp_path / "kws.npz").x.shape == (5, 1, 49, 10)  # no model shape: the file's own
    message = re.escape("x is [5, 1, 49, 10]; the model takes [N, 1, 10, 49] (its input is [1, 1, 10, 49])")
    with pytest.raises(DataError, match=message):
        load_dataset(str(tmp_path / "kws.npz"), shape=(1, 10, 49))


def test_int8_codes_only_where_a_command_runs_codes(tmp_path):
    codes = np.arange(-4, 4, dtype=np.int8).reshape(2, 1, 2, 2)
    np.savez(tmp_path / "codes.npz", x=codes, y=np.array([0, 1]))
    with pytest.raises(DataError, match=r"x holds int8 codes; .* accepted by `tte run` only"):
        load_dataset(str(tmp_path / "codes.npz"), shape=(1, 2, 2))
    data = load_dataset(str(tmp_path / "codes.npz"), shape=(1, 2, 2), int8_codes=True)
    assert data.codes(QuantParams.per_tensor(0.25, 7)) is data.x  # codes stay as they are


def test_labels_and_classes_are_checked_against_the_head(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 1, 2, 2), np.float32), y=np.array([0, 4, 1]))
    with pytest.raises(DataError, match=r"label 4 \(sample 1\) is outside 0\.\.2, the model's 3 classes"):
        load_dataset(str(tmp_path / "d.npz"), shape=(1, 2, 2), head=3)
    assert len(load_dataset(str(tmp_path / "d.npz"), shape=(1, 2, 2), classes=[0, 1], head=3)) == 2
    np.savez(tmp_path / "big.npz", x=np.zeros((1, 1, 2, 2), np.float32), y=np.array([2**40]))
    with pytest.raises(DataError, match=r"label 1099511627776 \(sample 0\) is outside 0\.\.1048575"):
        load_dataset(str(tmp_path / "big.npz"))
    pytest.importorskip("sklearn")
    with pytest.raises(DataError, match=r"digits: the data has 10 classes, the graph's head 5; pass --classes"):
        load_dataset("digits", shape=(1, 8, 8), head=5)


def test_out_of_range_inputs_are_clipped_with_one_warning(tmp_path, capsys):
    np.savez(
        tmp_path / "loud.npz", x=np.array([0.5, 3.0, -2.0, 0.0], np.float32).reshape(4, 1, 1, 1), y=np.zeros(4, int)
    )
    codes = load_dataset(str(tmp_path / "loud.npz"), shape=(1, 1, 1)).codes(SEED)
    assert codes.ravel().tolist() == [64, 127, -128, 0]
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "loud.npz: 2 of 4 inputs lie more than half a step outside [-1.004, 0.9961]" in err
    ), err


def test_an_unknown_data_value_is_refused():
    with pytest.raises(DataError, match="nowhere: no such file, and not a folder .*digits, an image folder or an .npz"):
        load_dataset("nowhere", shape=(3, 8, 8))
