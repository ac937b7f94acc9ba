"""A mini-batch scheme (``batch: 8``) as generated C: the host build follows the numpy reference within
NUMERICS.md §7 and equals the Cortex-M7 build under QEMU bit for bit over two batches (16 samples);
``tte plan`` reports the accumulators' memory next to the batch-1 figure."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tte_codegen import HostModel, build, generate, run_firmware
from tte_ir.autodiff import training_info
from tte_ir.cli import main
from tte_ir.compiler import compile_training
from tte_ir.reference_train import initial_state
from tte_ir.serialize import save

from .conftest import _host_tools, qemu_tools
from .nets import images, scheme, tiled_residual_net
from .parity import assert_params_close, reference_run

BATCH = 8
SAMPLES = 2 * BATCH


@pytest.fixture(scope="module")
def batch_training():
    return compile_training(tiled_residual_net(), dataclasses.replace(scheme(), batch=BATCH))


@pytest.fixture(scope="module")
def batch_project(batch_training, tmp_path_factory):
    return generate(batch_training, tmp_path_factory.mktemp("batch") / "model")


@pytest.fixture(scope="module")
def batch_host(batch_project):
    """The project's host build, made once (with -Wall -Wextra -Werror)."""
    _host_tools()
    return build(batch_project, "host")


def _data(graph):
    return images(graph, SAMPLES), np.arange(SAMPLES) % 4


def _host_run(project, graph):
    model = HostModel(project)
    model.import_params(initial_state(graph))
    model.step = 0
    xs, labels = _data(graph)
    losses, blobs, statuses = [], [], []
    for x, y in zip(xs, labels, strict=True):
        losses.append(model.train_step(x, int(y)))
        blobs.append(model.export_blob())
        statuses.append(model.last_status)
    return model, np.asarray(losses, np.float32), blobs, statuses


def test_host_batch_build_follows_the_reference(batch_project, batch_host, batch_training) -> None:
    model, losses, blobs, statuses = _host_run(batch_project, batch_training)
    assert set(statuses) == {"ok"}
    ref_losses, states = reference_run(batch_training, *_data(batch_training))
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    params = training_info(batch_training)["state"]
    # the parameters move only at a batch's last sample (7 and 15), on the host as in the reference
    changed = [i for i in range(1, SAMPLES) if blobs[i] != blobs[i - 1]]
    assert changed == [BATCH - 1, SAMPLES - 1]
    assert_params_close(model.export_params(), {k: states[-1][k] for k in params})
    assert model.step == SAMPLES


def test_a_deferred_accumulate_follows_the_reference(tmp_path) -> None:
    """With b1.pw2's weights trained too, their accumulate reads no band and moves after the channel-tiled
    group (tte_ir.tiling._chunk_group): the host still follows the reference over two batches."""
    _host_tools()
    graph = compile_training(
        tiled_residual_net(), dataclasses.replace(scheme(weights=((4, 0.5), (5, 0.5), (6, 0.5))), batch=BATCH)
    )
    names = [n.name for n in graph.nodes]
    group = [n.name for n in graph.nodes if n.attrs.get("tile", {}).get("axis") == "channels"]
    assert "b1.pw1.w_acc" in group and "b1.pw2.w_acc" not in group
    assert names.index("b1.pw2.w_acc") > names.index(group[-1])
    project = generate(graph, tmp_path / "model")
    build(project, "host")
    model, losses, _, statuses = _host_run(project, graph)
    assert set(statuses) == {"ok"}
    ref_losses, states = reference_run(graph, *_data(graph))
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    assert_params_close(model.export_params(), {k: states[-1][k] for k in training_info(graph)["state"]})


@pytest.mark.qemu
@pytest.mark.slow
def test_batch_host_and_cortex_m7_agree_bit_for_bit(batch_project, batch_host, batch_training, tmp_path) -> None:
    qemu_tools()
    xs, labels = _data(batch_training)
    run = run_firmware(batch_project, xs, labels, board="qemu-mps2-an500", build_dir=tmp_path / "m7")
    _, losses, blobs, _ = _host_run(batch_project, batch_training)
    assert run.losses.tobytes() == losses.tobytes()
    assert run.params_blob == blobs[-1]
    assert set(run.statuses) == {"ok"}
    assert run.memory["heap_used"] == 0


def test_tte_plan_reports_the_accumulators_next_to_batch_1(batch_training, tmp_path, capsys) -> None:
    path = tmp_path / "batch.tte"
    save(batch_training, path)
    assert main(["plan", str(path)]) == 0
    text = capsys.readouterr().out
    assert main(["plan", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    trained = sum(batch_training.tensors[p].numel for p in training_info(batch_training)["state"])
    assert report["batch"] == BATCH and report["accumulator_bytes"] == 4 * trained
    batch1 = report["trainable_bytes"] - report["accumulator_bytes"]
    # the accumulating updates run band by band in the channel-tiled group: the arena is batch 1's
    one = tmp_path / "one.tte"
    save(compile_training(tiled_residual_net(), scheme()), one)
    assert main(["plan", str(one), "--json"]) == 0
    assert report["arena_peak_bytes"] == json.loads(capsys.readouterr().out)["arena_peak_bytes"]
    assert f"of which batch-8 gradient accumulators {4 * trained:,} B (batch 1: trainable state {batch1:,} B" in text, (
        text
    )
