"""The generated C on the host against the numpy reference (NUMERICS.md §7), and its Python API."""

from __future__ import annotations

import numpy as np
import pytest

from tte_codegen import HostModel, generate
from tte_codegen.training import Dataset, evaluate, train_host, write_trained
from tte_ir import TteError, load, reference
from tte_ir.reference_train import initial_state

from .nets import VARIANTS, images, variant
from .parity import assert_params_close, reference_run

STEPS = 10


def test_inference_matches_the_reference_forward(host_model, forward):
    for x in images(forward, 3):
        expected = reference.run_forward(forward, x[None])[0]
        np.testing.assert_allclose(host_model.infer(x), expected, rtol=1e-5, atol=1e-6)


def test_training_steps_match_the_reference(host_model, training, forward):
    xs = images(forward, STEPS)
    labels = np.arange(STEPS) % host_model.classes
    losses, states = reference_run(training, xs, labels)
    for t in range(STEPS):
        loss = host_model.train_step(xs[t], int(labels[t]))
        assert host_model.last_status == "ok"
        np.testing.assert_allclose(loss, losses[t], rtol=1e-5)
        assert_params_close(host_model.export_params(), states[t])


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_match_the_reference(name, tmp_path):
    training = variant(name)
    model = HostModel(generate(training, tmp_path / "model"))
    model.import_params(initial_state(training))
    xs = images(training, STEPS)
    labels = np.arange(STEPS) % model.classes
    losses, states = reference_run(training, xs, labels)
    got = [model.train_step(x, int(y)) for x, y in zip(xs, labels, strict=True)]
    np.testing.assert_allclose(got, losses, rtol=1e-5)
    assert_params_close(model.export_params(), states[-1])


def test_each_step_from_the_same_state_matches(host_model, training, forward):
    """Lock step: every step starts from the reference's parameters, so no difference carries over."""
    from tte_ir.reference_train import train_step

    xs = images(forward, STEPS, seed=7)
    state = initial_state(training)
    for t, x in enumerate(xs):
        host_model.import_params(state)
        host_model.step = t
        expected = train_step(training, state, x[None], t % host_model.classes, step=t)
        np.testing.assert_allclose(host_model.train_step(x, t % host_model.classes), expected.loss, rtol=1e-5)
        assert_params_close(host_model.export_params(), expected.state)
        state = expected.state


def test_params_round_trip_and_write_back(host_model, training, tmp_path):
    state = {k: v.copy() for k, v in initial_state(training).items()}
    state["head.b"] = state["head.b"] + np.float32(0.25)
    host_model.import_params(state)
    for name, value in host_model.export_params().items():
        np.testing.assert_array_equal(value, state[name])
    path = write_trained(training, host_model.export_params(), tmp_path / "trained.tte")
    np.testing.assert_array_equal(load(path).constants["head.b"], state["head.b"])
    with pytest.raises(TteError, match="missing"):
        host_model.import_params({})


def test_training_on_a_dataset_lowers_the_loss(host_model, forward):
    xs = images(forward, 8, seed=3)
    labels = np.arange(8) % host_model.classes
    data = Dataset(xs, labels)
    log = train_host(host_model, data, epochs=6, lr=0.05, head_lr=0.05)
    assert log.skipped == 0
    assert log.losses[-8:].mean() < log.losses[:8].mean()
    assert evaluate(host_model, data) in {k / 8 for k in range(9)}


def test_bad_inputs_are_refused(host_model):
    with pytest.raises(TteError, match="int8"):
        host_model.infer(np.zeros((1, 3, 4, 4), dtype=np.int8))
    with pytest.raises(TteError, match="label"):
        host_model.train_step(np.zeros(host_model.project.input_shape, dtype=np.int8), 99)
