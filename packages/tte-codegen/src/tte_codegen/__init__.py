"""tte-codegen: a compiled training graph as plain C, built and run on the host and on Cortex-M.

- :func:`generate`: ``model.h``, ``model.c``, ``weights.c`` and a CMake project for one training graph
  (one static arena at the planner's offsets, frozen weights in flash, trained parameters in SRAM);
- :func:`build`: the host shared library or a board's firmware image;
- :class:`HostModel`: the generated code on the host, from Python (ctypes);
- :func:`run_firmware`: the firmware under QEMU with its data over semihosting, and the memory
  report of the linked image (:func:`firmware_memory`);
- ``tte generate`` and ``tte run`` (entry points of the ``tte.commands`` group).
"""

from tte_codegen.build import BOARDS, BuildError, build
from tte_codegen.firmware import FirmwareRun, firmware_memory, run_firmware
from tte_codegen.generate import GeneratedProject, find_root, generate, load_project
from tte_codegen.host import HostModel, params_from_blob
from tte_codegen.lowering import CodegenError
from tte_codegen.training import evaluate, train_host, write_trained

__version__ = "0.1.0"

__all__ = [
    "BOARDS",
    "BuildError",
    "CodegenError",
    "FirmwareRun",
    "GeneratedProject",
    "HostModel",
    "build",
    "evaluate",
    "find_root",
    "firmware_memory",
    "generate",
    "load_project",
    "params_from_blob",
    "run_firmware",
    "train_host",
    "write_trained",
]
