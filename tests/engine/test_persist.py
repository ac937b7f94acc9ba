"""Power-safe persistence (engine/src/persist, tte/tte_persist.h): the CRC-32 against zlib, and the
power-cut test program boards/programs/persist_main.c on the RAM flash model (boards/common/flash_ram.c),
built with the host C compiler and for QEMU mps2-an500; the STM32F746G-DISCO build with its flash
driver keeps the image out of the slots.

A cut point is one (operation, bytes done) pair of a save: every erase of the slot (at 0, half, all
but one and all of its sector) and every program (at every byte in the full runs). After each cut,
restore must give the previous save or the new one; the program counts the cut points and the torn
restores."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, missing

from .helpers import QEMU_BOARDS, run_qemu

ENGINE = ROOT / "engine"
BOARDS = ROOT / "boards"
SOURCES = [
    BOARDS / "programs" / "persist_main.c",
    BOARDS / "common" / "flash_ram.c",
    ENGINE / "src" / "persist" / "persist.c",
    ENGINE / "src" / "persist" / "crc32.c",
]
HEADER = 32  # TTE_PERSIST_HEADER_BYTES
DEFAULT_PAYLOAD = 36904  # persist_main.c's PERSIST_PAYLOAD_BYTES, the QEMU build's
SPARSE_STRIDE = 97  # persist_main.c's: the first and second saves' stride


def host_cc() -> str:
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return name
    missing("no host C compiler (cc, gcc or clang)")
    raise AssertionError


def build_host(out: Path, sources: list[Path] = SOURCES, **defines: int) -> Path:
    """The power-cut program for the host, with persist_main.c's settings as ``defines``."""
    exe = out / "persist"
    flags = [f"-D{key}={value}u" for key, value in defines.items()]
    command = [host_cc(), "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", *flags]
    command += ["-I", str(ENGINE / "include"), "-I", str(BOARDS / "common"), *map(str, sources), "-o", str(exe)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return exe


def parse(output: str) -> dict:
    """The program's CHECK, CUTS and DONE lines."""
    cuts = {
        m["scenario"]: {k: int(v) for k, v in m.groupdict().items() if k != "scenario"}
        for m in re.finditer(
            r"^CUTS scenario=(?P<scenario>\w+) erases=(?P<erases>\d+) programs=(?P<programs>\d+) tried=(?P<tried>\d+) "
            r"torn=(?P<torn>\d+) old=(?P<old>\d+) new=(?P<new>\d+) empty=(?P<empty>\d+)$",
            output,
            re.MULTILINE,
        )
    }
    done = re.search(r"^DONE checks=(\d+) failed=(\d+) tried=(\d+) torn=(\d+)$", output, re.MULTILINE)
    return {
        "checks": dict(re.findall(r"^CHECK (\S+) (PASS|FAIL.*)$", output, re.MULTILINE)),
        "cuts": cuts,
        "done": tuple(map(int, done.groups())) if done else None,
        "crc": {int(n): int(c, 16) for n, c in re.findall(r"^CRC (\d+) ([0-9a-f]{8})$", output, re.MULTILINE)},
    }


def run_host(exe: Path) -> tuple[int, str]:
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def expected_cuts(payload: int, unit: int, sector: int, stride: int) -> tuple[int, int, int]:
    """(erases, programs, cut points) of one save as persist_main.c cuts it: every erase at 4 points,
    the payload's programs at 0, every stride-th byte, the last and the end, the header at every byte."""
    slot = -(-(HEADER + payload) // sector) * sector
    erases = slot // sector

    def points(length: int, step: int) -> int:
        return len(set(range(0, length - 1, step)) | {length - 1, length})

    whole, tail = payload - payload % unit, payload % unit
    programs = [n for n in (whole, unit if tail else 0) if n] + [HEADER]
    tried = erases * points(sector, sector // 2) + sum(points(n, stride) for n in programs[:-1]) + HEADER + 1
    return erases, len(programs), tried


def check_run(status: int, output: str, payload: int, unit: int, sector: int, stride: int) -> dict:
    run = parse(output)
    failed = {name: r for name, r in run["checks"].items() if r != "PASS"}
    assert status == 0 and not failed and run["done"] is not None, output[-3000:]
    erases, programs, tried = expected_cuts(payload, unit, sector, stride)
    steady = run["cuts"]["steady"]
    assert (steady["erases"], steady["programs"], steady["tried"]) == (erases, programs, tried), steady
    for name, cut in run["cuts"].items():
        assert cut["torn"] == 0, (name, cut)
        assert cut["old"] + cut["new"] + cut["empty"] == cut["tried"]
        # the header's last four bytes stay 0xFF: cut after byte 28 the save is complete
        assert cut["new"] == HEADER - 28 + 1
    assert run["cuts"]["first"]["old"] == 0 and run["cuts"]["steady"]["empty"] == 0
    checks, failed_checks, total_tried, total_torn = run["done"]
    assert failed_checks == 0 and total_torn == 0
    assert total_tried == sum(c["tried"] for c in run["cuts"].values())
    print(
        f"payload {payload} B, unit {unit}, sector {sector}: {total_tried} cut points, {total_torn} torn; {checks} checks"
    )
    return run


def test_crc32_is_zlibs(tmp_path) -> None:
    """tte_crc32 over random buffers of many lengths, whole and chained, equals zlib.crc32."""
    lib = tmp_path / "libcrc.so"
    cc = host_cc()
    subprocess.run(
        [cc, "-std=c99", "-O2", "-shared", "-fPIC", "-I", str(ENGINE / "include"), str(SOURCES[3]), "-o", str(lib)],
        check=True,
        capture_output=True,
    )
    crc32 = ctypes.CDLL(str(lib)).tte_crc32
    crc32.restype = ctypes.c_uint32
    crc32.argtypes = (ctypes.c_uint32, ctypes.c_char_p, ctypes.c_uint32)
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 3, 4, 7, 8, 63, 64, 65, 1000, 4097):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc32(0, data, n) == zlib.crc32(data), n
        k = n // 3
        assert crc32(crc32(0, data[:k], k), data[k:], n - k) == zlib.crc32(data), n
    assert crc32(0, b"123456789", 9) == 0xCBF43926  # the CRC-32 check value


@pytest.mark.parametrize("unit", [1, 2, 4, 8, 32])
def test_every_cut_point_of_a_small_save(unit: int, tmp_path) -> None:
    """Every program unit the interface allows, a payload that ends inside a unit (1001 B): every cut
    point of the steady-state save (every byte of every program), no torn restore, every refusal."""
    exe = build_host(tmp_path, PERSIST_PAYLOAD_BYTES=1001, PERSIST_UNIT=unit, PERSIST_SECTOR=256, PERSIST_STRIDE=1)
    status, output = run_host(exe)
    run = check_run(status, output, 1001, unit, 256, 1)
    pattern = bytes((i * 131 + 7) & 0xFF for i in range(1000))
    assert run["crc"] == {n: zlib.crc32(pattern[:n]) for n in (0, 1, 3, 9, 1000)}
    for name in (
        "flipped_payload_bit_refused",
        "flipped_header_bit_refused",
        "length_beyond_slot_refused",
        "truncated_length_refused",
        "other_model_refused",
        "wrapped_sequence_newest",
        "read_back_mismatch_keeps_previous",
    ):
        assert run["checks"][name] == "PASS"


PAYLOAD_STEP = (
    "    s = program_payload(flash, slot, payload, length);\n    if (s != TTE_PERSIST_OK) {\n        return s;\n    }\n"
)
HEADER_STEP = (
    "    if (flash->program(flash->ctx, slot->address, w.bytes, TTE_PERSIST_HEADER_BYTES) != 0) {\n"
    "        return TTE_PERSIST_FLASH_ERROR;\n    }\n"
)
BROKEN_SAVES = {
    # the save overwrites the newest slot: a cut loses the previous save and restore finds the one before
    "newest_slot_overwritten": [
        ("const int target = newest == 0 ? 1 : 0;", "const int target = newest < 0 ? 0 : newest;")
    ],
    # header before payload and restore without the CRC: a cut inside the payload restores a mix
    "header_first_no_crc": [
        (PAYLOAD_STEP, ""),
        (HEADER_STEP, HEADER_STEP + PAYLOAD_STEP),
        ("if (s != TTE_PERSIST_OK || crc != c->crc) {", "if (s != TTE_PERSIST_OK) {"),
    ],
}


@pytest.mark.parametrize("broken", list(BROKEN_SAVES))
def test_the_cut_test_finds_a_broken_save(broken: str, tmp_path) -> None:
    """The same program against a persist.c broken on purpose reports torn restores at most of its cut
    points and fails, so a clean run means something."""
    source = (ENGINE / "src" / "persist" / "persist.c").read_text()
    for old, new in BROKEN_SAVES[broken]:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    path = tmp_path / "persist_broken.c"
    path.write_text(source)
    sources = [*SOURCES[:2], path, SOURCES[3]]
    exe = build_host(tmp_path, sources, PERSIST_PAYLOAD_BYTES=1001, PERSIST_SECTOR=256, PERSIST_STRIDE=1)
    status, output = run_host(exe)
    run = parse(output)
    assert status == 1 and run["done"] is not None, output[-2000:]
    assert run["cuts"]["steady"]["torn"] > 900, run["cuts"]["steady"]  # of 1,058 cut points
    assert "TORN scenario=steady" in output


@pytest.fixture(scope="module")
def real_param_bytes(seed_model_path, shared_dir) -> int:
    """The generated MCUNet-5fps "49kb" model's parameter blob (what <name>_export_params writes)."""
    from tte_codegen.lowering import lower
    from tte_ir import import_seed_pkl, load_scheme
    from tte_ir.compiler import compile_training

    graph = import_seed_pkl(seed_model_path("mcunet-5fps"), num_classes=10, head="fp32")
    scheme = load_scheme(f"{shared_dir / 'schemes' / 'seed-schemes.json'}:mcunet-5fps/49kb")
    return lower(compile_training(graph, scheme)).param_bytes


@pytest.mark.slow
@pytest.mark.shared
def test_every_cut_point_of_a_real_save(real_param_bytes: int, tmp_path) -> None:
    """MCUNet-5fps 49kb's parameters: every erase and every byte of every program of the steady-state
    save (37,014 cut points for 36,904 B), the first and second saves every 97th byte, no torn restore."""
    exe = build_host(tmp_path, PERSIST_PAYLOAD_BYTES=real_param_bytes, PERSIST_STRIDE=1)
    status, output = run_host(exe)
    check_run(status, output, real_param_bytes, 4, 2048, 1)


@pytest.mark.qemu
def test_cut_points_under_qemu(board_build) -> None:
    """The program on Cortex-M7 (mps2-an500), 36,904 B of parameters: every erase and the header's every
    byte, the payload every 97th byte, in the three scenarios; no torn restore."""
    build = board_build("qemu-mps2-an500", TTE_PERSIST_PROGRAM="ON")
    status, output = run_qemu(QEMU_BOARDS["qemu-mps2-an500"], build / "tte_persist.elf", timeout=120)
    run = check_run(status, output, DEFAULT_PAYLOAD, 4, 2048, SPARSE_STRIDE)
    pattern = bytes((i * 131 + 7) & 0xFF for i in range(1000))
    assert run["crc"] == {n: zlib.crc32(pattern[:n]) for n in (0, 1, 3, 9, 1000)}


@pytest.mark.qemu
def test_stm32f746g_disco_image_stays_out_of_the_slots(board_build) -> None:
    """The board's build links its flash driver into tte_persist; the vector table opens the flash, and
    no section of the image lies in the slots (sectors 1-2 and 7)."""
    from elftools.elf.elffile import ELFFile

    build = board_build("stm32f746g-disco", TTE_PERSIST_PROGRAM="ON")
    with open(build / "tte_persist.elf", "rb") as f:
        elf = ELFFile(f)
        symbols = {s.name for s in elf.get_section_by_name(".symtab").iter_symbols()}
        loaded = [
            (seg["p_paddr"], seg["p_paddr"] + seg["p_filesz"])
            for seg in elf.iter_segments()
            if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]
        ]
        vectors = elf.get_section_by_name(".isr_vector")["sh_addr"]
    assert vectors == 0x08000000
    assert "board_flash" in symbols and "stm32_program" in symbols
    slots = [(0x08008000, 0x08018000), (0x080C0000, 0x08100000)]
    flash = [(start, end) for start, end in loaded if 0x08000000 <= start < 0x08100000]
    assert flash
    for start, end in flash:
        assert all(end <= lo or start >= hi for lo, hi in slots), (hex(start), hex(end))
