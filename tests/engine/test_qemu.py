"""The engine on Cortex-M: golden kernel cases under QEMU (M7 and M4), the STM32F746G-DISCO image, and
the bench program (the profiling hook of generated firmware) on MCUNet-5fps under QEMU Cortex-M7.

Model firmware is what tte-codegen generates; its tests (bit for bit against the host build, the RAM
limit failing the link) are tests/codegen/test_qemu.py."""

from __future__ import annotations

import re

import numpy as np
import pytest

from .helpers import QEMU_BOARDS, require_packages, require_tool, run_qemu

require_packages("tte_engine", "tte_ir", "tte_codegen", "elftools")

import firmware  # noqa: E402
import firmware_data as fd  # noqa: E402
from elftools.elf.elffile import ELFFile  # noqa: E402

from tte_codegen import HostModel  # noqa: E402
from tte_ir import Scheme  # noqa: E402
from tte_ir.kernels import kernel_call  # noqa: E402
from tte_ir.ops import node_macs  # noqa: E402

pytestmark = pytest.mark.qemu


def parse_cases(output: str) -> dict[str, str]:
    return dict(re.findall(r"^CASE (\S+) (PASS|FAIL.*)$", output, re.MULTILINE))


@pytest.mark.parametrize("board", list(QEMU_BOARDS))
def test_golden_cases_pass_under_qemu(board: str, board_build, golden_source) -> None:
    build = board_build(board, TTE_GOLDEN_CASES=golden_source)
    status, output = run_qemu(QEMU_BOARDS[board], build / "tte_golden.elf", timeout=120)
    assert status == 0, output
    results = parse_cases(output)
    expected = [case.name for case in fd.golden_cases()]
    assert sorted(results) == sorted(expected), output
    assert all(result == "PASS" for result in results.values()), output
    done = re.search(r"^DONE passed=(\d+) failed=0 stack_high_water=(\d+)$", output, re.MULTILINE)
    assert done and int(done.group(1)) == len(expected), output
    assert 0 < int(done.group(2)) < 0x2000  # measured, and inside the reserved stack


def test_golden_program_reports_a_wrong_result(board_build, tmp_path) -> None:
    """A case whose expected output is wrong fails, naming the buffer (the comparison can fail)."""
    case = fd.golden_set()[0]
    expected = dict(case.expected)
    expected["y"] = expected["y"].copy()
    expected["y"].flat[0] ^= 1
    wrong = fd.Case("wrong_y", case.kernel, case.params, case.inputs, expected)
    source = tmp_path / "wrong.c"
    source.write_text(fd.golden_c([case.call_case(), wrong.call_case()]))
    build = board_build("qemu-mps2-an500", TTE_GOLDEN_CASES=source)
    status, output = run_qemu("mps2-an500", build / "tte_golden.elf", timeout=60)
    assert status == 1, output
    assert parse_cases(output) == {case.name: "PASS", "wrong_y": "FAIL y differs"}, output


def _section_addresses(elf_path) -> dict[str, int]:
    """Load address of every allocated section of an ELF file."""
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s["sh_addr"] for s in elf.iter_sections() if s["sh_flags"] & 0x2}  # SHF_ALLOC


def test_stm32f746g_disco_image_is_placed_at_its_flash(board_build, golden_source) -> None:
    build = board_build("stm32f746g-disco", TTE_GOLDEN_CASES=golden_source)
    sections = _section_addresses(build / "tte_golden.elf")
    assert sections[".isr_vector"] == 0x08000000  # the vector table opens the flash image
    assert sections[".text"] == 0x08018000  # after the persistence slot in sectors 1-2 (flash_stm32f7.c)
    assert 0x20000000 <= sections[".data"] < 0x20000000 + 320 * 1024
    assert (build / "tte_golden.bin").stat().st_size > 0


@pytest.mark.shared
def test_bench_program_profiles_the_generated_mcunet_forward(seed_model_path, tmp_path) -> None:
    """What `nox -s bench_forward` measures: MCUNet-5fps as generated firmware (only the fp32 head
    trains, no row tiling), one inference under QEMU Cortex-M7 with a counter reading after every
    forward block. The blocks are the forward's nodes in order, their counts add up to the inference,
    and the logits equal the host build's bit for bit."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    model = seed_model_path("mcunet-5fps")
    training, project = firmware.generated_model(model, Scheme(train_head=True), tmp_path / "model", tiling=False)
    assert not any("tile" in n.attrs for n in training.nodes)
    image = np.random.default_rng(3).integers(-128, 128, size=training.tensors[training.inputs[0]].shape, dtype=np.int8)
    run = firmware.profile_forward(training, project, tmp_path / "m7", image)

    loss_at = next(i for i, n in enumerate(training.nodes) if n.op.name == "SOFTMAX_CE")
    forward = training.nodes[:loss_at]
    assert [name for name, *_ in run["blocks"]] == [n.name for n in forward]
    assert [kernel for _, kernel, *_ in run["blocks"]] == [kernel_call(training, n).kernel for n in forward]
    assert run["macs"] == sum(node_macs(training, n) for n in forward) == project.manifest["macs_per_infer"]
    counted = sum(count for *_, count in run["blocks"])
    assert run["unit"] == "instructions"
    assert 0 <= run["total"] - counted <= 1000  # only the copy of the logits is outside the blocks
    assert run["total"] / run["macs"] > 1  # a count of the kernels (2.7 per MAC with the arm ones), not of the hook

    host = HostModel(project, tmp_path / "host").infer(image)
    assert run["logits"] == host.view(np.uint32).tolist()
