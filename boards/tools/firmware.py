"""Build the board projects, run their images under QEMU, and report on them.

Used by the engine tests (tests/engine) and by two nox sessions::

    python boards/tools/firmware.py cross BUILD_DIR [--model MODEL.pkl]   # every board, size table
    python boards/tools/firmware.py bench BUILD_DIR --model MODEL.pkl     # QEMU -icount table

Sizes come from the ELF section headers (pyelftools); instruction counts from the firmware's
counter under ``qemu-system-arm -icount shift=0`` (1 ns per instruction, see counter-mps2.c).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

BOARDS_DIR = Path(__file__).resolve().parents[1]
BOARDS = ("qemu-mps2-an500", "qemu-mps2-an386", "stm32f746g-disco")
QEMU_MACHINES = {"qemu-mps2-an500": "mps2-an500", "qemu-mps2-an386": "mps2-an386"}


def build_board(board: str, build_dir: Path, **cache: object) -> Path:
    """Configure and build ``boards/<board>`` into ``build_dir`` with CMake cache entries such as
    ``TTE_GOLDEN_CASES=path``; raises CalledProcessError (output captured) when it fails."""
    defines = [f"-D{key}={value}" for key, value in cache.items()]
    configure = ["cmake", "-S", str(BOARDS_DIR / board), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"]
    subprocess.run([*configure, *defines], check=True, capture_output=True, text=True)
    subprocess.run(["cmake", "--build", str(build_dir)], check=True, capture_output=True, text=True)
    return build_dir


def run_qemu(
    machine: str, elf: Path, *, icount: bool = False, timeout: float = 300, cwd: Path | None = None
) -> tuple[int, str]:
    """Run an image under qemu-system-arm with semihosting: its exit status (the program's, through
    semihosting SYS_EXIT) and its console output. Semihosting file paths resolve against ``cwd``."""
    command = [
        "qemu-system-arm",
        "-M",
        machine,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        "-kernel",
        str(elf),
    ]
    if icount:
        command[1:1] = ["-icount", "shift=0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    return result.returncode, result.stdout + result.stderr


def elf_sizes(elf: Path) -> dict[str, int]:
    """Bytes of an image by kind: text (code and read-only data), data, bss, and the heap and stack
    reservations (NOBITS like .bss; kept apart so that the measured stack can replace them)."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    sizes = dict.fromkeys(("text", "data", "bss", "heap", "stack"), 0)
    with elf.open("rb") as f:
        for section in ELFFile(f).iter_sections():
            flags = section["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC:
                continue
            if section.name in (".heap", ".stack"):
                kind = section.name[1:]
            elif not flags & SH_FLAGS.SHF_WRITE:
                kind = "text"
            else:
                kind = "bss" if section["sh_type"] == "SHT_NOBITS" else "data"
            sizes[kind] += section["sh_size"]
    return sizes


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, header))] + [[f"{v:,}" if isinstance(v, int) else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


EXTRA_CORES = ("cortex-m33", "cortex-m55")  # toolchain files without a board: the engine library must build


def _load_model(model: Path):
    from tte_ir import import_seed_pkl

    return import_seed_pkl(model, num_classes=10, head="fp32")


def _data_files(out: Path, graph=None) -> dict[str, Path]:
    """Generate the programs' data: golden cases always, a model forward when given a graph."""
    import firmware_data

    out.mkdir(parents=True, exist_ok=True)
    files = {"TTE_GOLDEN_CASES": out / "golden_cases.c"}
    files["TTE_GOLDEN_CASES"].write_text(firmware_data.golden_source())
    if graph is not None:
        files["TTE_FORWARD_MODEL"] = out / f"{graph.name}.c"
        files["TTE_FORWARD_MODEL"].write_text(firmware_data.forward_c(graph, firmware_data.fixed_input(graph, 0)))
    return files


def cross(build_dir: Path, model: Path | None) -> str:
    """Build every board with the golden cases (and the model forward), and the engine library for
    the cores without a board; the size table of the board images."""
    data = _data_files(build_dir / "data", _load_model(model) if model else None)
    rows = []
    for board in BOARDS:
        build = build_board(board, build_dir / board, **data)
        for elf in sorted(build.glob("*.elf")):
            s = elf_sizes(elf)
            flash, ram = s["text"] + s["data"], s["data"] + s["bss"] + s["heap"] + s["stack"]
            rows.append((board, elf.stem, s["text"], s["data"], s["bss"], s["heap"], s["stack"], flash, ram))
    for core in EXTRA_CORES:
        toolchain = BOARDS_DIR / "cmake" / f"{core}.cmake"
        engine = build_dir / f"engine-{core}"
        subprocess.run(
            ["cmake", "-S", str(BOARDS_DIR.parent / "engine"), "-B", str(engine), "-DCMAKE_BUILD_TYPE=Release",
             f"-DCMAKE_TOOLCHAIN_FILE={toolchain}", "-DTTE_ENGINE_WERROR=ON"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        subprocess.run(["cmake", "--build", str(engine)], check=True, capture_output=True, text=True)
    header = ("board", "program", "text", "data", "bss", "heap", "stack", "flash", "ram")
    return _table(header, rows) + f"\nengine library also built for: {', '.join(EXTRA_CORES)}"


def bench(build_dir: Path, model: Path) -> str:
    """The model forward under QEMU Cortex-M7 with -icount: instructions and instructions per MAC
    per kernel and in total, and the image's flash and firmware RAM."""
    from tte_engine.graph import lower

    graph = _load_model(model)
    data = _data_files(build_dir / "data", graph)
    build = build_board("qemu-mps2-an500", build_dir / "qemu-mps2-an500", TTE_FORWARD_MODEL=data["TTE_FORWARD_MODEL"])
    elf = build / "tte_forward.elf"
    status, output = run_qemu(QEMU_MACHINES["qemu-mps2-an500"], elf, icount=True)
    layers = re.findall(r"^LAYER (\S+) fnv1a=[0-9a-f]{8} count=(\d+)$", output, re.MULTILINE)
    total = re.search(r"^COUNT (\d+) (\S+) macs=(\d+)$", output, re.MULTILINE)
    done = re.search(r"^DONE layers=\d+ stack_high_water=(\d+)$", output, re.MULTILINE)
    if status != 0 or not layers or total is None or done is None:
        raise RuntimeError(f"the forward did not finish under QEMU:\n{output}")
    steps = {s.node: s for s in lower(graph)}
    per_kernel: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for node, count in layers:
        row = per_kernel[steps[node].kernel]
        row[0] += 1
        row[1] += int(count)
        row[2] += steps[node].macs
    instructions, unit, macs = int(total.group(1)), total.group(2), int(total.group(3))
    rows = [(k, n, c, m, f"{c / m:.2f}" if m else "-") for k, (n, c, m) in sorted(per_kernel.items())]
    rows.append(("total", len(layers), instructions, macs, f"{instructions / macs:.2f}"))
    header = ("kernel", "layers", unit, "MACs", f"{unit}/MAC")
    s = elf_sizes(elf)
    stack = int(done.group(1))
    return (
        f"{model.stem} forward, QEMU mps2-an500 (Cortex-M7), -icount shift=0\n{_table(header, rows)}\n"
        f"flash (text + data): {s['text'] + s['data']:,} B; firmware RAM (data + bss + measured stack): "
        f"{s['data'] + s['bss'] + stack:,} B (stack high-water {stack:,} B; newlib heap reserve "
        f"{s['heap']:,} B not included)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("cross", "bench"))
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--model", type=Path, help="seed model .pkl for the forward program")
    args = parser.parse_args(argv)
    for tool in ("cmake", "arm-none-eabi-gcc") + (("qemu-system-arm",) if args.what == "bench" else ()):
        if shutil.which(tool) is None:
            parser.error(
                f"'{tool}' is not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                "qemu-system-arm cmake)"
            )
    if args.what == "bench" and args.model is None:
        parser.error("bench needs --model (e.g. ../shared/models/mcunet-5fps.pkl)")
    try:
        print(cross(args.build_dir, args.model) if args.what == "cross" else bench(args.build_dir, args.model))
    except subprocess.CalledProcessError as error:
        print(f"{' '.join(error.cmd)} failed:\n{error.stdout}\n{error.stderr}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
