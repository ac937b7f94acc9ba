"""The generated model as firmware: build it for a board, run it under QEMU, measure the image.

The firmware (``boards/programs/train_main.c``) reads images and labels over semihosting, runs one
training step per image, then inference on the same images, and writes the losses, step statuses,
logits and trained parameters back (file names in that program's header). QEMU runs with
``-icount shift=0``, so the per-step counts are instructions and repeat exactly.

:func:`firmware_memory` is the memory accounting of ARCHITECTURE.md from the linked image:
``.data``, ``.bss`` and the stack high-water measured in the run (stack painted at reset), their sum
(firmware RAM), and flash (``.text`` + ``.rodata`` + ``.data``), next to the planner's figures.
The board helpers (QEMU invocation, ELF section sizes) are the checkout's ``boards/tools/firmware.py``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from tte_codegen.build import build
from tte_codegen.generate import GeneratedProject
from tte_codegen.host import STEP_STATUS, params_from_blob
from tte_ir import TteError
from tte_ir.layout import to_engine_layout
from tte_ir.serialize import atomic_write_bytes

__all__ = ["QEMU_MACHINES", "FirmwareRun", "board_tools", "firmware_memory", "run_firmware"]

QEMU_MACHINES = {"qemu-mps2-an500": "mps2-an500", "qemu-mps2-an386": "mps2-an386", "qemu-mps2-an385": "mps2-an385"}


def board_tools(root: Path) -> ModuleType:
    """The checkout's ``boards/tools/firmware.py`` as a module."""
    path = root / "boards" / "tools" / "firmware.py"
    spec = importlib.util.spec_from_file_location("tte_boards_firmware", path)
    if spec is None or spec.loader is None:
        raise TteError(f"{path}: cannot load the board tools")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def firmware_memory(
    elf: Path, stack_high_water: int | None, root: Path, model_stack: int | None = None
) -> dict[str, int | None]:
    """Bytes of a linked image by the ARCHITECTURE.md accounting; ``firmware_ram`` is ``None``
    when the stack was not measured (an image that was only built). ``model_stack`` is the deepest
    stack of the model calls alone (without the semihosting harness), when measured."""
    sizes = board_tools(root).elf_sizes(elf)
    ram = None if stack_high_water is None else sizes["data"] + sizes["bss"] + stack_high_water
    return {
        "text": sizes["text"],
        "data": sizes["data"],
        "bss": sizes["bss"],
        "stack_high_water": stack_high_water,
        "model_stack": model_stack,
        "stack_reserved": sizes["stack"],
        "heap_reserved": sizes["heap"],
        "firmware_ram": ram,
        "flash": sizes["text"] + sizes["data"],
    }


@dataclass(frozen=True)
class FirmwareRun:
    """What one firmware run gave back."""

    board: str
    elf: Path
    losses: np.ndarray  # float32 [N]
    statuses: tuple[str, ...]
    params: dict[str, np.ndarray]  # IR layouts
    params_blob: bytes
    logits: np.ndarray  # [N, classes]
    step_counts: tuple[int, ...]  # counter ticks per training step (instructions under QEMU -icount)
    infer_counts: tuple[int, ...]
    unit: str
    memory: dict[str, Any] = field(default_factory=dict)

    @property
    def instructions_per_step(self) -> float:
        """Mean counter ticks of one training step."""
        return float(np.mean(self.step_counts)) if self.step_counts else float("nan")


def _images(project: GeneratedProject, images: np.ndarray) -> bytes:
    shape = project.input_shape
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[1:] == shape[1:]:
        x = x[:, None]
    if x.ndim != 5 or x.shape[1:] != shape or x.dtype != np.int8:
        raise TteError(f"images must be int8 [N, {', '.join(map(str, shape[1:]))}], got {x.dtype}{list(x.shape)}")
    return b"".join(to_engine_layout(image).tobytes() for image in x)


def run_firmware(
    project: GeneratedProject,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    board: str = "qemu-mps2-an500",
    lr: tuple[float, float] | None = None,
    build_dir: str | os.PathLike[str] | None = None,
    timeout: float = 600,
) -> FirmwareRun:
    """Build the firmware for a QEMU board and train on ``images`` (int8 ``[N, C, H, W]``) and
    ``labels`` there, one step per image, then infer on the same images."""
    if board not in QEMU_MACHINES:
        raise TteError(f"board '{board}' does not run under QEMU (one of {', '.join(QEMU_MACHINES)})")
    if shutil.which("qemu-system-arm") is None:
        raise TteError("'qemu-system-arm' is not installed (apt-get install qemu-system-arm)")
    labels = np.asarray(labels, dtype="<i4").ravel()
    data = _images(project, images)
    if len(labels) * int(np.prod(project.input_shape)) != len(data):
        raise TteError(f"{len(labels)} labels for {len(data) // int(np.prod(project.input_shape))} images")
    elf = build(project, board, build_dir)
    tools = board_tools(project.root)
    with tempfile.TemporaryDirectory(prefix="tte-firmware-") as tmp:
        work = Path(tmp)
        atomic_write_bytes(work / "tte_inputs.bin", data)
        atomic_write_bytes(work / "tte_labels.bin", labels.tobytes())
        if lr is not None:
            atomic_write_bytes(work / "tte_lr.bin", np.asarray(lr, dtype="<f4").tobytes())
        status, output = tools.run_qemu(QEMU_MACHINES[board], elf, icount=True, timeout=timeout, cwd=work)
        done = re.search(
            r"^DONE steps=(\d+) macs_per_step=\d+ unit=(\S+) stack_high_water=(\d+) model_stack=(\d+) "
            r"heap_used=(\d+)$",
            output,
            re.M,
        )
        if status != 0 or done is None:
            raise TteError(f"the firmware run on {board} failed (exit {status}):\n{output[-3000:]}")
        steps = re.findall(r"^STEP \d+ loss=[0-9a-f]{8} status=(-?\d+) count=(\d+)$", output, re.M)
        infers = re.findall(r"^INFER \d+ count=(\d+)$", output, re.M)
        losses = np.frombuffer((work / "tte_losses.bin").read_bytes(), dtype="<f4").copy()
        blob = (work / "tte_params.bin").read_bytes()
        logits_dtype = np.dtype(project.manifest["logits_dtype"])
        logits = np.frombuffer((work / "tte_logits.bin").read_bytes(), dtype=logits_dtype).reshape(len(labels), -1)
    stack = int(done.group(3))
    memory = firmware_memory(elf, stack, project.root, int(done.group(4)))
    memory["heap_used"] = int(done.group(5))
    if memory["heap_used"] > memory["heap_reserved"]:
        raise TteError(
            f"the firmware's heap ({memory['heap_used']:,} B) outgrew its reserve ({memory['heap_reserved']:,} B) "
            "into the stack: the stack measurement is void"
        )
    return FirmwareRun(
        board=board,
        elf=elf,
        losses=losses,
        statuses=tuple(STEP_STATUS[int(s)] for s, _ in steps),
        params=params_from_blob(project, blob),
        params_blob=blob,
        logits=logits.copy(),
        step_counts=tuple(int(c) for _, c in steps),
        infer_counts=tuple(int(c) for c in infers),
        unit=done.group(2),
        memory=memory,
    )
