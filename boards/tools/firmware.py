"""Build the board projects, run their images under QEMU, and report on them.

Used by the engine tests (tests/engine), by tte-codegen (run_firmware) and by two nox sessions::

    python boards/tools/firmware.py cross BUILD_DIR [--model MODEL.pkl --scheme FILE:KEY]  # every board, sizes
    python boards/tools/firmware.py bench BUILD_DIR --model MODEL.pkl                     # QEMU -icount table

Model firmware is what tte-codegen generates (``tte generate``): ``cross`` builds a seed model's
training image next to the golden cases; ``bench`` builds its inference with the profiling hook of
the generated model.c (programs/bench_main.c) and counts the instructions of each forward block.

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
BOARDS = ("qemu-mps2-an500", "qemu-mps2-an386", "qemu-mps2-an385", "stm32f746g-disco")
QEMU_MACHINES = {"qemu-mps2-an500": "mps2-an500", "qemu-mps2-an386": "mps2-an386", "qemu-mps2-an385": "mps2-an385"}
# The QEMU boards whose core builds the engine's ARMv7E-M kernels (src/kernels/arm); the Cortex-M3 has no DSP.
ARM_KERNEL_BOARDS = ("qemu-mps2-an500", "qemu-mps2-an386")


def build_board(board: str, build_dir: Path, **cache: object) -> Path:
    """Configure and build ``boards/<board>`` into ``build_dir`` with CMake cache entries such as
    ``TTE_GOLDEN_CASES=path``; raises CalledProcessError (output captured) when it fails."""
    defines = [f"-D{key}={value}" for key, value in cache.items()]
    configure = ["cmake", "-S", str(BOARDS_DIR / board), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"]
    subprocess.run([*configure, *defines], check=True, capture_output=True, text=True)
    subprocess.run(["cmake", "--build", str(build_dir)], check=True, capture_output=True, text=True)
    return build_dir


def run_qemu(
    machine: str,
    elf: Path,
    *,
    icount: bool = False,
    timeout: float = 300,
    cwd: Path | None = None,
    code_log: Path | None = None,
) -> tuple[int, str]:
    """Run an image under qemu-system-arm with semihosting: its exit status (the program's, through
    semihosting SYS_EXIT) and its console output. Semihosting file paths resolve against ``cwd``.
    ``code_log``: where QEMU writes the guest code it translates (``-d in_asm``), that is every block
    the program executed (:func:`executed_functions` reads it)."""
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
    if code_log is not None:
        command[1:1] = ["-d", "in_asm", "-D", str(code_log)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    return result.returncode, result.stdout + result.stderr


def executed_functions(elf: Path, code_log: Path) -> set[str]:
    """The names of the image's functions (aliases included) with an instruction in ``code_log``, QEMU's
    log of the code it translated (:func:`run_qemu`): the functions the run executed."""
    import bisect

    from elftools.elf.elffile import ELFFile

    addresses = sorted({int(a, 16) for a in re.findall(r"^0x([0-9a-f]+):", code_log.read_text(), re.MULTILINE)})
    names = set()
    with elf.open("rb") as f:
        symbols = ELFFile(f).get_section_by_name(".symtab")
        for symbol in symbols.iter_symbols():
            if symbol["st_info"]["type"] != "STT_FUNC" or symbol["st_size"] == 0:
                continue
            start = symbol["st_value"] & ~1  # bit 0 marks Thumb code
            i = bisect.bisect_left(addresses, start)
            if i < len(addresses) and addresses[i] < start + symbol["st_size"]:
                names.add(symbol.name)
    return names


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


def _golden_data(out: Path) -> Path:
    """The golden program's generated cases (firmware_data.py)."""
    import firmware_data

    from tte_ir.serialize import atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "golden_cases.c", firmware_data.golden_source().encode())
    return out / "golden_cases.c"


def generated_model(model: Path, scheme, out: Path, *, tiling: bool = True, head: str = "fp32"):
    """A seed model (10 classes) compiled under ``scheme`` and written as C by tte-codegen
    (what ``tte import-pkl``, ``tte compile`` and ``tte generate`` write): its training graph and project."""
    from tte_codegen import generate
    from tte_ir import import_seed_pkl
    from tte_ir.compiler import compile_training

    graph = import_seed_pkl(model, num_classes=10, head=head)
    training = compile_training(graph, scheme, tiling=tiling)
    name = re.sub(r"\W", "_", model.stem)
    return training, generate(training, out, name=name, root=BOARDS_DIR.parent)


def cross(build_dir: Path, model: Path | None, scheme: str | None) -> str:
    """Build every board with the golden cases (and, given a seed model and scheme, its generated
    training firmware), and the engine library for the cores without a board; the size table of the
    board images."""
    data = {"TTE_GOLDEN_CASES": _golden_data(build_dir / "data")}
    if model is not None:
        from tte_ir import load_scheme

        _, project = generated_model(model, load_scheme(scheme), build_dir / "model")
        data["TTE_TRAIN_MODEL"] = project.path / "model.cmake"
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
    note = f"tte_train: {model.stem} under {scheme}\n" if model is not None else ""
    return note + _table(header, rows) + f"\nengine library also built for: {', '.join(EXTRA_CORES)}"


def profile_forward(
    training, project, build_dir: Path, image, *, board: str = "qemu-mps2-an500", code_log: Path | None = None
) -> dict:
    """Build ``project`` (generated from ``training``) as the bench program (programs/bench_main.c,
    TTE_PROFILE_MODEL) for a QEMU ``board`` and run one inference on ``image`` (int8 IR
    ``[1, C, H, W]``) under -icount: ``blocks`` as (node, kernel or None for a view, MACs, count),
    ``total`` (the whole inference), ``macs``, ``unit``, ``logits`` (their bits) and ``stack``;
    ``code_log`` as for :func:`run_qemu`."""
    import tempfile

    from tte_ir import node_macs
    from tte_ir.kernels import kernel_call
    from tte_ir.layout import to_engine_layout
    from tte_ir.serialize import atomic_write_bytes

    build = build_board(board, build_dir, TTE_TRAIN_MODEL=project.path / "model.cmake", TTE_PROFILE_MODEL="ON")
    with tempfile.TemporaryDirectory(prefix="tte-bench-") as tmp:
        atomic_write_bytes(Path(tmp) / "tte_inputs.bin", to_engine_layout(image).tobytes())
        status, output = run_qemu(
            QEMU_MACHINES[board], build / "tte_bench.elf", icount=True, cwd=Path(tmp), code_log=code_log
        )
    blocks = re.findall(r"^BLOCK (\S+) count=(\d+)$", output, re.MULTILINE)
    infer = re.search(r"^INFER count=(\d+) unit=(\S+) macs=(\d+)$", output, re.MULTILINE)
    done = re.search(r"^DONE blocks=\d+ stack_high_water=(\d+)$", output, re.MULTILINE)
    if status != 0 or not blocks or infer is None or done is None:
        raise RuntimeError(f"the inference did not finish under QEMU:\n{output}")
    nodes = {n.name: n for n in training.nodes}
    rows = []
    for name, count in blocks:
        node = nodes[name]
        rows.append((name, kernel_call(training, node).kernel, node_macs(training, node), int(count)))
    return {
        "blocks": rows,
        "total": int(infer.group(1)),
        "unit": infer.group(2),
        "macs": int(infer.group(3)),
        "logits": [int(bits, 16) for bits in re.findall(r"^LOGIT \d+ ([0-9a-f]{8})$", output, re.MULTILINE)],
        "stack": int(done.group(1)),
        "elf": build / "tte_bench.elf",
    }


def bench(build_dir: Path, model: Path) -> str:
    """The model's inference as generated firmware (only the fp32 head trains, no row tiling: the
    plain forward) under QEMU Cortex-M7 with -icount: instructions and instructions per MAC per
    kernel and in total, and the image's flash and firmware RAM."""
    import numpy as np

    from tte_ir import Scheme

    training, project = generated_model(model, Scheme(train_head=True), build_dir / "model", tiling=False)
    shape = training.tensors[training.inputs[0]].shape
    image = np.random.default_rng(0).integers(-128, 128, size=shape, dtype=np.int8)
    run = profile_forward(training, project, build_dir / "qemu-mps2-an500", image)
    per_kernel: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for _, kernel, macs, count in run["blocks"]:
        row = per_kernel[kernel or "view (no call)"]
        row[0] += 1
        row[1] += count
        row[2] += macs
    unit, total, macs = run["unit"], run["total"], run["macs"]
    rows = [(k, n, c, m, f"{c / m:.2f}" if m else "-") for k, (n, c, m) in sorted(per_kernel.items())]
    blocks = sum(count for *_, count in run["blocks"])
    rows.append(("rest of <name>_infer", "", total - blocks, "", ""))
    rows.append(("total", len(run["blocks"]), total, macs, f"{total / macs:.2f}"))
    header = ("kernel", "blocks", unit, "MACs", f"{unit}/MAC")
    s = elf_sizes(run["elf"])
    return (
        f"{model.stem} inference (generated firmware, fp32 head, no row tiling), QEMU mps2-an500 (Cortex-M7), "
        f"-icount shift=0\n{_table(header, rows)}\n"
        f"flash (text + data): {s['text'] + s['data']:,} B; firmware RAM (data + bss + measured stack): "
        f"{s['data'] + s['bss'] + run['stack']:,} B (stack high-water {run['stack']:,} B; newlib heap reserve "
        f"{s['heap']:,} B not included)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("cross", "bench"))
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--model", type=Path, help="seed model .pkl (../shared/models)")
    parser.add_argument("--scheme", help="cross: the training image's scheme, FILE[:KEY] (seed-schemes.json:...)")
    args = parser.parse_args(argv)
    for tool in ("cmake", "arm-none-eabi-gcc") + (("qemu-system-arm",) if args.what == "bench" else ()):
        if shutil.which(tool) is None:
            parser.error(
                f"'{tool}' is not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                "qemu-system-arm cmake)"
            )
    if args.what == "bench" and args.model is None:
        parser.error("bench needs --model (e.g. ../shared/models/mcunet-5fps.pkl)")
    if args.what == "cross" and (args.model is None) != (args.scheme is None):
        parser.error("cross takes --model and --scheme together (the generated training image), or neither")
    if args.model is not None and not args.model.is_file():
        parser.error(f"{args.model}: no such model file (the seed models live in ../shared/models)")
    from tte_ir import TteError

    try:
        if args.what == "cross":
            print(cross(args.build_dir, args.model, args.scheme))
        else:
            print(bench(args.build_dir, args.model))
    except subprocess.CalledProcessError as error:
        print(f"{' '.join(error.cmd)} failed:\n{error.stdout}\n{error.stderr}", file=sys.stderr)
        return 1
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    except TteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
