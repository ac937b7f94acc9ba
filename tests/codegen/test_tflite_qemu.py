"""TensorFlow Lite models on a microcontroller (issue 13 acceptance): every int8 model of
../shared/models/tflite, imported as it is (requant fixed), compiles with a sparse scheme (biases of the last
four convs, half the input channels of the third-last conv's weights, the whole last conv, the fp32 head)
under a memory budget, and its generated C trains 10 steps identically on the host and under QEMU
Cortex-M7: the same losses, parameters and logits, bit for bit. On the Cortex-M3 (qemu-mps2-an385, no FPU)
LeNet-5 with its int8 head runs its forward without a single software-float call and trains (software float
for the backward) as the host does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tflite", reason="the tflite package (tte-ir[tflite]) is not installed")

from tests.ir.test_tflite_import import MODELS
from tte_codegen import HostModel, generate, run_firmware
from tte_codegen.firmware import board_tools
from tte_ir import QuantParams, Scheme, WeightUpdate, compile_training, conv_nodes, memory_report
from tte_ir.datasets import load_digits
from tte_ir.tflite_import import import_tflite

from .conftest import qemu_tools
from .test_forward_no_float import SOFT_FLOAT
from .test_qemu import STEPS, assert_bit_exact, host_run

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

BUDGET_HEADROOM = 1.25  # a quarter above the smallest-peak plan, spent by the compiler on taller row tiles
PIXEL_CODES = QuantParams.per_tensor(1 / 127.5, 0)  # digits as the codes p - 128 (the models' [0, 1] inputs)


def sparse_scheme(n: int, head: str = "fp32") -> Scheme:
    """The sparse update of the module docstring on a model of ``n`` convs."""
    return Scheme(n_bias=min(4, n), weights=(WeightUpdate(max(n - 3, 0), 0.5), WeightUpdate(n - 1, 1.0)), head=head)


@pytest.mark.parametrize("name", MODELS)
def test_tflite_model_trains_identically_on_the_host_and_cortex_m7(name, shared_dir: Path, tmp_path):
    qemu_tools()
    path = shared_dir / "models" / "tflite" / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not found")
    graph = import_tflite(path)
    scheme = sparse_scheme(len(conv_nodes(graph)))
    smallest = memory_report(compile_training(graph, scheme), input_in_arena=True).total_bytes
    budget = int(smallest * BUDGET_HEADROOM)
    training = compile_training(graph, scheme, budget=budget)
    assert training.metadata["requant"] == "fixed"
    assert memory_report(training, input_in_arena=True).total_bytes <= budget
    project = generate(training, tmp_path / "model")
    digits = load_digits(graph.tensors[graph.inputs[0]].shape[1:])
    classes = graph.tensors[graph.outputs[0]].shape[1]
    xs, labels = digits.codes(PIXEL_CODES)[:STEPS], digits.y[:STEPS] % classes
    run = run_firmware(project, xs, labels, board="qemu-mps2-an500", build_dir=tmp_path / "m7")
    assert_bit_exact(run, host_run(project, training, xs, labels, tmp_path / "host"))
    assert np.all(np.isfinite(run.losses)) and len(run.losses) == STEPS


def test_lenet5_on_cortex_m3_forward_without_float_and_training_as_the_host(shared_dir: Path, tmp_path):
    qemu_tools()
    path = shared_dir / "models" / "tflite" / "lenet5_b1.tflite"
    if not path.exists():
        pytest.skip(f"{path} not found")
    graph = import_tflite(path)
    training = compile_training(graph, sparse_scheme(len(conv_nodes(graph)), head="int8"))
    project = generate(training, tmp_path / "model")
    digits = load_digits(graph.tensors[graph.inputs[0]].shape[1:])
    xs, labels = digits.codes(PIXEL_CODES)[:STEPS], digits.y[:STEPS]
    tools = board_tools(project.root)
    log = tmp_path / "code.log"
    forward = tools.profile_forward(training, project, tmp_path / "fwd", xs[:1], board="qemu-mps2-an385", code_log=log)
    executed = tools.executed_functions(forward["elf"], log)
    assert f"{project.manifest['name']}_infer" in executed
    assert sorted(name for name in executed if SOFT_FLOAT.match(name)) == []
    assert forward["logits"] == HostModel(project, tmp_path / "host_fwd").infer(xs[0]).view(np.uint8).tolist()
    run = run_firmware(project, xs, labels, board="qemu-mps2-an385", build_dir=tmp_path / "m3")
    assert_bit_exact(run, host_run(project, training, xs, labels, tmp_path / "host"))
