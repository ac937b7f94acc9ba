"""examples/ as a user builds them: the host program against an installed engine (``cmake --install``),
the STM32 firmware under QEMU (it learns, saves to its flash every 50 steps, and a second run of the
image, the board after a reset, restores what it learned), and the Discovery board's image within the
STM32F746's 320 KB RAM and 1 MB flash."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tte_codegen.firmware import board_tools
from tte_codegen.generate import engine_cmake_dir, find_root
from tte_codegen.host import EXPORT_HEADER_BYTES

from .conftest import qemu_tools

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
RAM_LIMIT = 320 * 1024
FLASH_LIMIT = 1024 * 1024
LEARN, TEST, SAVE_EVERY = 400, 200, 50
PERSIST_HEADER_BYTES = 32  # tte/tte_persist.h: TTE_PERSIST_HEADER_BYTES


def _run(command: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _werror() -> str:
    return f"-DTTE_ENGINE_WERROR={'ON' if os.environ.get('TTE_WERROR') == '1' else 'OFF'}"


def _build(source: Path, build: Path, *defines: str) -> None:
    configure = ["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"]
    _run([*configure, f"-DTTE_PYTHON={sys.executable}", _werror(), *defines])
    _run(["cmake", "--build", str(build), "-j", "2"])


def _accuracy(output: str, phase: str) -> tuple[int, int]:
    found = re.search(rf"^ACCURACY phase={phase} correct=(\d+) total=(\d+)$", output, re.M)
    assert found, output
    return int(found.group(1)), int(found.group(2))


@pytest.fixture(scope="module")
def host_example(tmp_path_factory) -> Path:
    """examples/host built against the engine installed into a prefix (its static library and
    CMake package, no sources), run once from scratch: the folder of its outputs."""
    for tool in ("cmake", "cc"):
        if shutil.which(tool) is None:
            pytest.skip(f"'{tool}' is not installed")
    work = tmp_path_factory.mktemp("host-example")
    _run(["cmake", "-S", str(ROOT / "engine"), "-B", str(work / "engine"), "-DCMAKE_BUILD_TYPE=Release"])
    _run(["cmake", "--build", str(work / "engine"), "-j", "2"])
    _run(["cmake", "--install", str(work / "engine"), "--prefix", str(work / "prefix")])
    _build(EXAMPLES / "host", work / "build", f"-DCMAKE_PREFIX_PATH={work / 'prefix'}")
    return work


def test_the_host_example_learns_and_reloads_its_parameters(host_example):
    data, program = host_example / "build" / "generated" / "data", str(host_example / "build" / "host_learn")
    first = _run([program, "learn.bin", "test.bin", "params.bin"], cwd=data)
    start, learned = _accuracy(first, "start"), _accuracy(first, "learned")
    assert start[1] == learned[1] == TEST
    assert learned[0] >= 2 * start[0] and learned[0] >= TEST // 2, first
    assert f"DONE learned={LEARN} step={LEARN}" in first
    again = _run([program, "/dev/null", "test.bin", "params.bin"], cwd=data)
    assert "IMPORT status=0 (ok)" in again and _accuracy(again, "start") == learned

    (data / "erased.bin").write_bytes(b"\xff" * len((data / "params.bin").read_bytes()))
    refused = subprocess.run([program, "/dev/null", "test.bin", "erased.bin"], capture_output=True, text=True, cwd=data)
    assert refused.returncode == 1 and "IMPORT status=3 " in refused.stdout, refused.stdout + refused.stderr


@pytest.fixture(scope="module")
def qemu_example(tmp_path_factory) -> Path:
    """examples/stm32-learn for QEMU's Cortex-M7 board with the RAM flash model, on this checkout's engine."""
    qemu_tools()
    work = tmp_path_factory.mktemp("stm32-example")
    _build(
        EXAMPLES / "stm32-learn",
        work / "build",
        "-DLEARN_BOARD=qemu-mps2-an500",
        f"-Dtte_engine_DIR={engine_cmake_dir(find_root())}",
    )
    return work


def _boot(work: Path, cwd: Path) -> str:
    status, output = board_tools(find_root()).run_qemu("mps2-an500", work / "build" / "stm32_learn.elf", cwd=cwd)
    assert status == 0, output
    return output


def _newest_slot(flash: bytes) -> int:
    """The start of the slot with the higher sequence number (tte/tte_persist.h's header, offset 16)."""
    slot = len(flash) // 2
    sequences = [struct.unpack_from("<I", flash, at + 16)[0] for at in (0, slot)]
    return 0 if 0 < (sequences[0] - sequences[1]) % 2**32 < 2**31 else slot


@pytest.mark.qemu
def test_the_stm32_example_learns_under_qemu_and_restores_after_a_reset(qemu_example, tmp_path):
    data = qemu_example / "build" / "generated" / "data"
    for name in ("learn.bin", "test.bin"):
        shutil.copy(data / name, tmp_path / name)
    first = _boot(qemu_example, tmp_path)
    assert "BOOT restore=1 import=-1 step=0" in first  # blank flash: TTE_PERSIST_EMPTY
    boot, learned = _accuracy(first, "boot"), _accuracy(first, "learned")
    assert learned[0] >= 2 * boot[0] and learned[0] >= TEST // 2, first
    saves = re.findall(r"^SAVE step=(\d+) status=(\d+)$", first, re.M)
    assert saves == [(str(step), "0") for step in range(SAVE_EVERY, LEARN + 1, SAVE_EVERY)]
    learned_params = (tmp_path / "params.bin").read_bytes()
    assert struct.unpack_from("<I", learned_params)[0] == 0x4D455454  # an export, header first

    # The reset: the same image again, the flash as the first run left it, nothing more to learn.
    (tmp_path / "learn.bin").unlink()
    (tmp_path / "params.bin").unlink()
    second = _boot(qemu_example, tmp_path)
    assert f"BOOT restore=0 import=0 step={LEARN}" in second
    assert _accuracy(second, "boot") == learned
    assert (tmp_path / "params.bin").read_bytes() == learned_params

    # A corrupted newest save: the other slot's (one save older) is restored instead.
    flash = bytearray((tmp_path / "flash.bin").read_bytes())
    flash[_newest_slot(bytes(flash)) + PERSIST_HEADER_BYTES + EXPORT_HEADER_BYTES + 100] ^= 0x20
    (tmp_path / "flash.bin").write_bytes(bytes(flash))
    third = _boot(qemu_example, tmp_path)
    assert f"BOOT restore=0 import=0 step={LEARN - SAVE_EVERY}" in third


@pytest.mark.qemu
def test_host_and_cortex_m7_learn_the_same_parameters(host_example, qemu_example, tmp_path):
    """The same samples give the same bits on the PC and the Cortex-M7 (NUMERICS.md §7)."""
    data = qemu_example / "build" / "generated" / "data"
    for name in ("learn.bin", "test.bin"):
        shutil.copy(data / name, tmp_path / name)
    _boot(qemu_example, tmp_path)
    host = host_example / "build" / "generated" / "data" / "params.bin"
    if not host.exists():
        _run([str(host_example / "build" / "host_learn"), "learn.bin", "test.bin", "params.bin"], cwd=host.parent)
    assert (tmp_path / "params.bin").read_bytes() == host.read_bytes()


@pytest.mark.qemu
def test_the_stm32_example_links_for_the_discovery_board_within_its_memory(tmp_path):
    qemu_tools()
    _build(EXAMPLES / "stm32-learn", tmp_path / "build", f"-Dtte_engine_DIR={engine_cmake_dir(find_root())}")
    sizes = board_tools(find_root()).elf_sizes(tmp_path / "build" / "stm32_learn.elf")
    ram = sizes["data"] + sizes["bss"] + sizes["heap"] + sizes["stack"]
    flash = sizes["text"] + sizes["data"]
    print(f"\nstm32-learn on the STM32F746G-Disco: RAM {ram:,} B (reserved stack and heap included), flash {flash:,} B")
    assert 0 < ram < RAM_LIMIT and 0 < flash < FLASH_LIMIT
