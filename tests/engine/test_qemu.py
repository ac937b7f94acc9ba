"""The engine on Cortex-M: golden kernel cases under QEMU (M7 and M4), the mcunet-5fps forward under
QEMU Cortex-M7 against the host engine, the STM32F746G-DISCO image, and the memory limits."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from .helpers import QEMU_BOARDS, build_board, require_packages, run_qemu

require_packages("tte_engine", "tte_ir", "elftools")

import firmware_data as fd  # noqa: E402
import train_cases  # noqa: E402
from elftools.elf.elffile import ELFFile  # noqa: E402

import tte_ir  # noqa: E402
from tte_engine.graph import lower, run_forward, to_engine_layout  # noqa: E402

pytestmark = pytest.mark.qemu

FORWARD_MODEL = "mcunet-5fps"


@pytest.fixture(scope="session")
def forward_graph(seed_model_path) -> tte_ir.Graph:
    return tte_ir.import_seed_pkl(seed_model_path(FORWARD_MODEL), num_classes=10, head="fp32")


@pytest.fixture(scope="session")
def forward_source(forward_graph, tmp_path_factory):
    path = tmp_path_factory.mktemp("forward") / f"{FORWARD_MODEL}.c"
    path.write_text(fd.forward_c(forward_graph, fd.fixed_input(forward_graph, seed=0)))
    return path


def parse_cases(output: str) -> dict[str, str]:
    return dict(re.findall(r"^CASE (\S+) (PASS|FAIL.*)$", output, re.MULTILINE))


@pytest.mark.parametrize("board", list(QEMU_BOARDS))
def test_golden_cases_pass_under_qemu(board: str, board_build, golden_source) -> None:
    build = board_build(board, TTE_GOLDEN_CASES=golden_source)
    status, output = run_qemu(QEMU_BOARDS[board], build / "tte_golden.elf", timeout=120)
    assert status == 0, output
    results = parse_cases(output)
    expected = [case.name for case in fd.golden_set()] + [case.name for case in train_cases.golden_train_set()]
    assert sorted(results) == sorted(expected), output
    assert all(result == "PASS" for result in results.values()), output
    done = re.search(r"^DONE passed=(\d+) failed=0 stack_high_water=(\d+)$", output, re.MULTILINE)
    assert done and int(done.group(1)) == len(expected), output
    assert 0 < int(done.group(2)) < 0x2000  # measured, and inside the reserved stack


def fnv1a(data: bytes) -> int:
    """The firmware's layer fingerprint (forward_main.c)."""
    h = 2166136261
    for byte in data:
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def test_mcunet_forward_under_qemu_cortex_m7_matches_host(
    board_build, golden_source, forward_source, forward_graph
) -> None:
    build = board_build("qemu-mps2-an500", TTE_GOLDEN_CASES=golden_source, TTE_FORWARD_MODEL=forward_source)
    status, output = run_qemu("mps2-an500", build / "tte_forward.elf", icount=True)
    assert status == 0, output
    assert re.search(r"^DONE layers=\d+ stack_high_water=\d+$", output, re.MULTILINE), output

    host = run_forward(forward_graph, fd.fixed_input(forward_graph, seed=0), return_all=True)
    steps = [s for s in lower(forward_graph) if s.kernel != "reshape"]
    layers = dict(re.findall(r"^LAYER (\S+) fnv1a=([0-9a-f]{8}) count=\d+$", output, re.MULTILINE))
    assert list(layers) == [s.node for s in steps], output
    for s in steps:
        expected = fnv1a(to_engine_layout(host[s.output]).tobytes())
        assert int(layers[s.node], 16) == expected, f"layer {s.node} differs between QEMU Cortex-M7 and the host"

    logits = re.findall(r"^LOGIT (\d+) ([0-9a-f]{8})$", output, re.MULTILINE)
    host_bits = host[forward_graph.outputs[0]].reshape(-1).view(np.uint32)
    assert [int(bits, 16) for _, bits in logits] == host_bits.tolist()


def _section_addresses(elf_path) -> dict[str, int]:
    """Load address of every allocated section of an ELF file."""
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s["sh_addr"] for s in elf.iter_sections() if s["sh_flags"] & 0x2}  # SHF_ALLOC


def test_stm32f746g_disco_image_is_placed_at_its_flash(board_build, golden_source) -> None:
    build = board_build("stm32f746g-disco", TTE_GOLDEN_CASES=golden_source)
    sections = _section_addresses(build / "tte_golden.elf")
    assert sections[".text"] == 0x08000000  # the vector table opens the flash image
    assert 0x20000000 <= sections[".data"] < 0x20000000 + 320 * 1024
    assert (build / "tte_golden.bin").stat().st_size > 0


def test_link_fails_when_the_model_exceeds_the_ram_region(forward_source, tmp_path) -> None:
    with pytest.raises(subprocess.CalledProcessError) as error:
        build_board("qemu-mps2-an500", tmp_path, TTE_FORWARD_MODEL=forward_source, TTE_RAM_SIZE="96K")
    assert "region `RAM' overflowed" in error.value.stdout + error.value.stderr
