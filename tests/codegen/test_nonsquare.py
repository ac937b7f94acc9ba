"""Non-square kernels, strides and padding end to end (issue 12): DS-CNN (MLPerf Tiny keyword spotting, a
10x4 stride-2 stem with TF SAME padding on a 1x49x10 input) and a 1-channel non-square [1, 28, 20] CNN with
every non-square layer (asymmetric padding, a 3x1 depthwise conv, a 3x2 max pool and a pointwise conv at
stride (2, 1), a 2x3 average pool) quantize with the simulation bit-exact against the reference, compile with
a sparse scheme under a memory budget, and train 10 steps of the generated C identically on the host and
under QEMU Cortex-M7, within NUMERICS.md §7 of the reference."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from tests.algo.helpers import gray_nonsquare_model  # noqa: E402
from tests.algo.test_sim_parity import assert_all_tensors_match  # noqa: E402
from tte_algo.data import load_digits  # noqa: E402
from tte_algo.ptq import quantize_model  # noqa: E402
from tte_algo.user_models import build  # noqa: E402
from tte_codegen import generate, run_firmware  # noqa: E402
from tte_ir import Scheme, WeightUpdate, compile_training, conv_nodes, memory_report  # noqa: E402

from .conftest import qemu_tools  # noqa: E402
from .parity import assert_params_close, reference_run  # noqa: E402
from .test_qemu import STEPS, assert_bit_exact, host_run  # noqa: E402

pytestmark = pytest.mark.qemu

BUDGET = 112 * 1024  # bytes of the planned step (arena, trained parameters, label): well inside 320 KB of RAM


def _ds_cnn():
    """DS-CNN at 10 classes; the scheme trains half the last depthwise conv, all of the pointwise before
    it, a quarter of the last pointwise, the last four biases and the head: its frozen prefix (the
    stem included) runs in row tiles."""
    graph = quantize_model(build("ds-cnn", classes=10), load_digits((1, 49, 10)).codes[:32], head="fp32")
    weights = (WeightUpdate(6, 0.5), WeightUpdate(7, 1.0), WeightUpdate(8, 0.25))
    return graph, Scheme(n_bias=4, weights=weights, head="fp32", lr=0.02, head_lr=0.02)


def _gray():
    """The [1, 28, 20] CNN; the scheme trains the stem and half the depthwise channels, so that the
    gradient runs back through every non-square layer to the stem's weight update."""
    graph = quantize_model(gray_nonsquare_model(), load_digits((1, 28, 20)).codes[:32], head="fp32")
    weights = (WeightUpdate(0, 1.0), WeightUpdate(1, 0.5))
    return graph, Scheme(n_bias=3, weights=weights, head="fp32", lr=0.02, head_lr=0.02)


MODELS = {"ds-cnn": _ds_cnn, "gray-28x20": _gray}


@pytest.fixture(scope="module", params=sorted(MODELS))
def compiled(request):
    """(name, forward graph, training graph under BUDGET, digits codes at the model's input shape)."""
    graph, scheme = MODELS[request.param]()
    training = compile_training(graph, scheme, budget=BUDGET)
    digits = load_digits(graph.tensors[graph.inputs[0]].shape[1:]).codes
    return request.param, graph, training, digits


def test_quantizes_bit_exact_and_fits_the_budget(compiled) -> None:
    name, graph, training, digits = compiled
    assert assert_all_tensors_match(graph, digits[40:42].numpy()) == 2 * (len(graph.nodes) + 1)
    stem = conv_nodes(graph)[0]
    assert graph.tensors[stem.inputs[1]].shape[2:] == (10, 4)
    assert (stem.attrs["stride"], stem.attrs["padding"]) == ((2, 2), (4, 1, 5, 1)), name
    assert memory_report(training, input_in_arena=True).total_bytes <= BUDGET
    if name == "ds-cnn":  # the frozen stem runs in row bands: halo rows from its stride and top padding
        assert training.node(stem.name).attrs["tile"]["axis"] == "rows"
    else:  # the stem trains: its weight update reads the saved input with its asymmetric padding
        assert any(n.op.name == "CONV2D_BWD_W_UPDATE" and n.attrs["padding"] == (4, 1, 5, 1) for n in training.nodes)


def test_host_and_cortex_m7_train_ten_steps_alike(compiled, tmp_path) -> None:
    qemu_tools()
    name, _, training, digits = compiled
    project = generate(training, tmp_path / "model")
    xs = digits[:STEPS].numpy().astype(np.int8)
    labels = np.arange(STEPS) % project.manifest["classes"]
    run = run_firmware(project, xs, labels, board="qemu-mps2-an500", build_dir=tmp_path / "m7")
    assert_bit_exact(run, host_run(project, training, xs, labels, tmp_path / "host"))
    losses, states = reference_run(training, xs, labels)
    np.testing.assert_allclose(run.losses, losses, rtol=1e-5, err_msg=name)
    assert_params_close(run.params, states[-1])
    assert run.memory["firmware_ram"] <= 320 * 1024, name
