"""The generated C's training step with NaN, infinite, negative and huge learning rates forced in
(HostModel.train_step passes them to the C unchecked): every parameter read back is finite, and a
non-finite update value skips the update (nonfinite-grad). A learning rate at the CLI's bound
saturates the trained codes, which train_host (`tte run`) records and warns about."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tte_codegen.training import Dataset, train_host
from tte_ir.cli_args import MAX_LR
from tte_ir.saturation import SATURATION_WARN

from .nets import images

F32_MAX = float(np.finfo(np.float32).max)


def all_finite(params: dict[str, np.ndarray]) -> bool:
    return all(np.all(np.isfinite(p.astype(np.float64))) for p in params.values())


@pytest.mark.parametrize("lr", [math.nan, math.inf, -math.inf, F32_MAX, -F32_MAX], ids=repr)
def test_a_nonfinite_update_is_skipped_and_nothing_nonfinite_is_written(host_model, forward, lr: float) -> None:
    before = host_model.export_params()  # (the largest float32: the head's small steps stay finite)
    for t, x in enumerate(images(forward, 3)):
        loss = host_model.train_step(x, t % host_model.classes, lr, lr)
        assert math.isfinite(loss) and host_model.last_status == "nonfinite-grad"
        after = host_model.export_params()
        assert all_finite(after)
        if not math.isfinite(lr):  # every update's values are NaN or infinite: every update skipped
            for name, value in before.items():
                np.testing.assert_array_equal(after[name], value, err_msg=name)


@pytest.mark.parametrize("lr", [-0.5, 1e30, MAX_LR], ids=repr)
def test_negative_and_huge_finite_rates_write_only_finite_values(host_model, forward, lr: float) -> None:
    for t, x in enumerate(images(forward, 3)):
        host_model.train_step(x, t % host_model.classes, lr, min(abs(lr), MAX_LR))
        assert host_model.last_status in ("ok", "nonfinite-grad")
        assert all_finite(host_model.export_params())


def test_train_host_records_and_warns_about_saturation(host_model, forward, capsys) -> None:
    xs = images(forward, 8)
    data = Dataset(xs, np.arange(8) % host_model.classes)
    log = train_host(host_model, data, epochs=2, lr=MAX_LR, head_lr=0.01)
    stats = log.saturation
    assert stats["weights"]["share"] > SATURATION_WARN and stats["weights"]["trained"] > 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "lower the learning rate" in err[0], err
    calm = train_host(host_model, data, epochs=1, lr=0.0, head_lr=0.0)
    assert calm.saturation["weights"]["share"] == stats["weights"]["share"]  # lr 0: nothing moves
