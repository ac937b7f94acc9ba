"""The users' model zoo on a microcontroller (issue 12 acceptance): every model of the zoo quantizes, compiles
with a sparse scheme (biases of the last four convs, half the input channels of the third-last conv's
weights, the whole last conv) under a memory budget, and its generated C trains 10 steps identically on the
host and under QEMU Cortex-M7: the same losses, parameters and logits, bit for bit. MobileNetV3 (hard-swish,
squeeze-and-excite) also with TFLite's fixed-point requantization (NUMERICS.md 2b)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the zoo is defined in PyTorch (pip install torch==2.13.0 -c constraints.txt)"
)

from tests.algo.test_user_models import SUPPORTED  # noqa: E402
from tte_algo.data import load_digits  # noqa: E402
from tte_algo.ptq import quantize_model  # noqa: E402
from tte_algo.user_models import USER_MODELS, build  # noqa: E402
from tte_algo.zoo_bench import FIT  # noqa: E402
from tte_codegen import generate, run_firmware  # noqa: E402
from tte_ir import Scheme, WeightUpdate, compile_training, conv_nodes, memory_report  # noqa: E402

from .conftest import qemu_tools  # noqa: E402
from .test_qemu import STEPS, assert_bit_exact, host_run  # noqa: E402

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

# the budget leaves a quarter above the smallest-peak plan: the compiler spends it on taller row tiles
BUDGET_HEADROOM = 1.25


def sparse_scheme(n: int) -> Scheme:
    """The paper's kind of sparse update on a zoo model of ``n`` convs (module docstring)."""
    return Scheme(n_bias=min(4, n), weights=(WeightUpdate(n - 3, 0.5), WeightUpdate(n - 1, 1.0)))


CASES = [(name, "float") for name in SUPPORTED] + [("mobilenetv3-small", "fixed")]


@pytest.mark.parametrize(("name", "requant"), CASES)
def test_zoo_model_trains_identically_on_the_host_and_cortex_m7(name, requant, tmp_path):
    qemu_tools()
    digits = load_digits(USER_MODELS[name][1])
    model = build(name, **FIT.get(name, {}))
    graph = quantize_model(model, digits.codes[:16], head="fp32", name=name, requant=requant)
    assert graph.metadata["requant"] == requant
    scheme = sparse_scheme(len(conv_nodes(graph)))
    smallest = memory_report(compile_training(graph, scheme), input_in_arena=True).total_bytes
    budget = int(smallest * BUDGET_HEADROOM)
    training = compile_training(graph, scheme, budget=budget)
    assert training.metadata["requant"] == requant  # the compiled step keeps the forward's arithmetic
    assert memory_report(training, input_in_arena=True).total_bytes <= budget
    project = generate(training, tmp_path / "model")
    xs, labels = digits.codes[:STEPS].numpy(), digits.labels[:STEPS].numpy()
    run = run_firmware(project, xs, labels, board="qemu-mps2-an500", build_dir=tmp_path / "m7")
    assert_bit_exact(run, host_run(project, training, xs, labels, tmp_path / "host"))
    assert np.all(np.isfinite(run.losses)) and len(run.losses) == STEPS
