"""The generated firmware under QEMU: bit for bit the host build (NUMERICS.md §7), the reference within
§7, and the acceptance figures of MCUNet-5fps with the seed's "49kb" scheme on the STM32F746's limits."""

from __future__ import annotations

import numpy as np
import pytest

from tte_codegen import BuildError, HostModel, build, firmware_memory, generate, run_firmware
from tte_ir import import_seed_pkl, load_scheme
from tte_ir.compiler import compile_training
from tte_ir.memory import memory_report
from tte_ir.reference_train import initial_state

from .conftest import qemu_tools
from .nets import VARIANTS, images, variant
from .parity import assert_params_close, reference_run

pytestmark = pytest.mark.qemu

RAM_LIMIT = 320 * 1024
FLASH_LIMIT = 1024 * 1024
STEPS = 10


def host_run(project, training, xs, labels, build_dir):
    """Losses, exported parameters and logits of the same steps on the host build."""
    model = HostModel(project, build_dir)
    model.import_params(initial_state(training))
    model.step = 0
    losses = np.asarray([model.train_step(x, int(y)) for x, y in zip(xs, labels, strict=True)], dtype=np.float32)
    logits = np.stack([model.infer(x) for x in xs])
    return losses, model.export_blob(), logits


def assert_bit_exact(run, host) -> None:
    losses, blob, logits = host
    assert run.losses.tobytes() == losses.tobytes(), (run.losses, losses)
    assert run.params_blob == blob
    assert run.logits.tobytes() == logits.tobytes()
    assert set(run.statuses) == {"ok"}


@pytest.mark.parametrize("board", ["qemu-mps2-an500", "qemu-mps2-an386", "qemu-mps2-an385"])
def test_residual_net_host_and_cortex_m_agree_bit_for_bit(project, training, forward, board, tmp_path):
    qemu_tools()
    xs = images(forward, STEPS)
    labels = np.arange(STEPS) % project.manifest["classes"]
    run = run_firmware(project, xs, labels, board=board, build_dir=tmp_path / board)
    assert_bit_exact(run, host_run(project, training, xs, labels, tmp_path / "host"))
    losses, states = reference_run(training, xs, labels)
    np.testing.assert_allclose(run.losses, losses, rtol=1e-5)
    assert_params_close(run.params, states[-1])
    assert 0 < run.memory["stack_high_water"] <= run.memory["stack_reserved"]
    assert run.memory["firmware_ram"] == run.memory["data"] + run.memory["bss"] + run.memory["stack_high_water"]


@pytest.mark.parametrize("board", ["qemu-mps2-an500", "qemu-mps2-an385"])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_host_and_cortex_m_agree_bit_for_bit(name, board, tmp_path):
    qemu_tools()
    training = variant(name)
    project = generate(training, tmp_path / "model")
    xs = images(training, STEPS)
    labels = np.arange(STEPS) % project.manifest["classes"]
    run = run_firmware(project, xs, labels, board=board, build_dir=tmp_path / board)
    assert_bit_exact(run, host_run(project, training, xs, labels, tmp_path / "host"))
    assert run.memory["heap_used"] == 0


def test_a_model_over_the_ram_limit_fails_to_link(project, tmp_path):
    """The boards' linker script caps RAM at the STM32F746's 320 KB: a bigger arena cannot link."""
    qemu_tools()
    model_c = project.path / "model.c"
    original = model_c.read_text()
    big = tmp_path / "big"
    big.mkdir()
    for f in project.path.iterdir():
        if f.is_file():
            (big / f.name).write_bytes(f.read_bytes())
    (big / "model.c").write_text(original.replace("uint8_t bytes[MODEL_ARENA_BYTES];", "uint8_t bytes[400000];"))
    from tte_codegen.generate import load_project

    with pytest.raises(BuildError, match="overflowed"):
        build(load_project(big), "qemu-mps2-an500")


@pytest.fixture(scope="module")
def mcunet(seed_model_path, shared_dir, tmp_path_factory):
    """MCUNet-5fps (10 classes, 128x128) compiled with the seed's "49kb" scheme, and its project."""
    graph = import_seed_pkl(seed_model_path("mcunet-5fps"), 10)
    scheme = load_scheme(f"{shared_dir / 'schemes' / 'seed-schemes.json'}:mcunet-5fps/49kb")
    training = compile_training(graph, scheme)
    return training, generate(training, tmp_path_factory.mktemp("mcunet") / "model")


@pytest.mark.shared
@pytest.mark.slow
def test_mcunet_49kb_on_cortex_m7(mcunet, tmp_path):
    """Acceptance: 10 steps bit-exact between the host and QEMU Cortex-M7 builds, within §7 of the
    reference; the image links under 320 KB RAM / 1 MB flash and its firmware RAM is measured."""
    qemu_tools()
    training, project = mcunet
    xs = images(training, STEPS)
    labels = np.arange(STEPS) % 10
    run = run_firmware(project, xs, labels, board="qemu-mps2-an500", build_dir=tmp_path / "m7")
    assert_bit_exact(run, host_run(project, training, xs, labels, tmp_path / "host"))
    losses, states = reference_run(training, xs, labels)
    np.testing.assert_allclose(run.losses, losses, rtol=1e-5)
    assert_params_close(run.params, states[-1])
    memory = run.memory
    assert memory["firmware_ram"] <= RAM_LIMIT and memory["flash"] <= FLASH_LIMIT
    planned = memory_report(training, input_in_arena=True)
    assert memory["bss"] >= planned.arena_peak_bytes  # the arena (image slot included) is one buffer in .bss
    assert memory["heap_used"] <= memory["heap_reserved"]
    print(
        f"\nmcunet-5fps 49kb on Cortex-M7: firmware RAM {memory['firmware_ram']:,} B (.data {memory['data']:,} "
        f"+ .bss {memory['bss']:,} + stack {memory['stack_high_water']:,}), flash {memory['flash']:,} B; "
        f"{run.instructions_per_step:,.0f} {run.unit}/step"
    )


@pytest.mark.shared
def test_mcunet_49kb_links_for_the_stm32f746g_disco(mcunet, tmp_path):
    qemu_tools()
    _, project = mcunet
    memory = firmware_memory(build(project, "stm32f746g-disco", tmp_path / "stm32"), None, project.root)
    assert memory["data"] + memory["bss"] + memory["stack_reserved"] <= RAM_LIMIT
    assert memory["flash"] <= FLASH_LIMIT
