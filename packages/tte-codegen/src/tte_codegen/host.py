"""Run the generated C on the host from Python: the project's shared library through ctypes.

:class:`HostModel` is the generated API (``model.h``) on numpy arrays in the IR's layouts: images
``int8 [1, C, H, W]`` (permuted to the engine's HWC on the way in) and parameters by tensor name
(read back from the exported blob with the layouts in ``manifest.json``). The arithmetic is the
device's: the same C sources as the firmware, compiled for the host.

An export (``<name>_export_params``) is a 24-byte header (magic, format version, model digest,
payload length, CRC-32; ``model.h`` and docs/c-api.md give the layout) followed by the payload, the
trained parameters in the manifest's layouts. :func:`frame_params` writes that header in Python, so
parameters from the IR go through the same checks in ``<name>_import_params`` as a blob from flash.
"""

from __future__ import annotations

import ctypes
import os
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from tte_codegen.build import build
from tte_codegen.generate import GeneratedProject
from tte_ir import TteError
from tte_ir.layout import to_engine_layout

__all__ = [
    "EXPORT_HEADER_BYTES",
    "EXPORT_MAGIC",
    "EXPORT_VERSION",
    "IMPORT_STATUS",
    "STEP_STATUS",
    "HostModel",
    "frame_params",
    "params_from_blob",
]

STEP_STATUS = ("ok", "nonfinite-loss", "nonfinite-grad", "error")  # <name>_step_status, as tte_ir names them
# <name>_import_status, in its order
IMPORT_STATUS = ("ok", "null", "bad-length", "not-an-export", "other-model", "bad-crc", "nonfinite")
EXPORT_MAGIC = 0x4D455454  # "TTEM" in memory order
EXPORT_VERSION = 1
EXPORT_HEADER_BYTES = 24


class _Lr(ctypes.Structure):
    _fields_ = (("body", ctypes.c_float), ("head", ctypes.c_float))


class HostModel:
    """The generated model, built for the host and loaded in this process.

    One library holds one model's state (its SRAM parameters and step counter): two HostModel
    objects of the same project share it, so build into separate folders to compare runs.
    """

    def __init__(self, project: GeneratedProject, build_dir: str | os.PathLike[str] | None = None) -> None:
        self.project = project
        self.library_path = build(project, "host", build_dir)
        self._lib = ctypes.CDLL(str(self.library_path))
        self.name = str(project.manifest["name"])
        int8_p = ctypes.POINTER(ctypes.c_int8)
        # The generated API (model.h), each function under its symbol `<name>_<function>`.
        signatures = {
            "infer": ((int8_p, ctypes.c_void_p), ctypes.c_int),
            "train_step": ((int8_p, ctypes.c_int32, ctypes.POINTER(_Lr)), ctypes.c_float),
            "last_status": ((), ctypes.c_int),
            "step": ((), ctypes.c_uint32),
            "set_step": ((ctypes.c_uint32,), None),
            "error": ((), ctypes.c_char_p),
            "export_params": ((ctypes.c_void_p, ctypes.c_size_t), ctypes.c_size_t),
            "import_params": ((ctypes.c_void_p, ctypes.c_size_t), ctypes.c_int),
            "import_status_str": ((ctypes.c_int,), ctypes.c_char_p),
        }
        self._api: dict[str, Any] = {}
        for function, (argtypes, restype) in signatures.items():
            symbol = f"{self.name}_{function}"
            if not hasattr(self._lib, symbol):
                raise TteError(f"{self.library_path} has no {symbol}: regenerate {project.path} with `tte generate`")
            self._api[function] = getattr(self._lib, symbol)
            self._api[function].argtypes, self._api[function].restype = argtypes, restype
        manifest = project.manifest
        self.classes = int(manifest["classes"])
        self._logits_dtype = np.dtype(manifest["logits_dtype"])
        self.default_lr = (float(manifest["lr"]), float(manifest["head_lr"]))
        self.param_bytes = int(manifest["param_bytes"])
        self.export_bytes = EXPORT_HEADER_BYTES + self.param_bytes
        self.digest = int(ctypes.c_uint64.in_dll(self._lib, f"{self.name}_digest").value)

    def _image(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        shape = self.project.input_shape
        if x.shape == shape[1:]:
            x = x[None]
        if x.shape != shape or x.dtype != np.int8:
            raise TteError(f"an input image must be int8{list(shape)}, got {x.dtype}{list(x.shape)}")
        return to_engine_layout(x)

    def _error(self, what: str) -> TteError:
        return TteError(f"{what} failed in the generated code: {self._api['error']().decode()}")

    def infer(self, x: np.ndarray) -> np.ndarray:
        """The logits ``[classes]`` of one image ``int8 [1, C, H, W]`` (or ``[C, H, W]``)."""
        image = self._image(x)
        logits = np.empty(self.classes, dtype=self._logits_dtype)
        status = self._api["infer"](image.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)), logits.ctypes.data)
        if status != 0:
            raise self._error("inference")
        return logits

    def train_step(self, x: np.ndarray, label: int, lr: float | None = None, head_lr: float | None = None) -> float:
        """One training step on one image and label; returns the loss (see :attr:`last_status`)."""
        image = self._image(x)
        if not 0 <= int(label) < self.classes:
            raise TteError(f"label {label} is outside [0, {self.classes})")
        rates = _Lr(self.default_lr[0] if lr is None else lr, self.default_lr[1] if head_lr is None else head_lr)
        loss = self._api["train_step"](
            image.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)), int(label), ctypes.byref(rates)
        )
        if self.last_status == "error":
            raise self._error("a training step")
        return float(loss)

    @property
    def last_status(self) -> str:
        """The last step's status: ``ok``, ``nonfinite-loss``, ``nonfinite-grad`` or ``error``."""
        return STEP_STATUS[self._api["last_status"]()]

    @property
    def step(self) -> int:
        """The step counter of the stochastic rounding (steps run since the last reset)."""
        return int(self._api["step"]())

    @step.setter
    def step(self, value: int) -> None:
        self._api["set_step"](int(value))

    def export_framed(self) -> bytes:
        """Exactly what ``<name>_export_params`` writes: the header and the parameters."""
        blob = ctypes.create_string_buffer(self.export_bytes)
        written = self._api["export_params"](blob, self.export_bytes)
        if written != self.export_bytes:
            raise TteError(f"{self.name}_export_params wrote {written} of {self.export_bytes} bytes")
        return blob.raw

    def export_blob(self) -> bytes:
        """The trained parameters without the header: an export's payload, what the firmware's
        ``tte_params.bin`` holds and :func:`params_from_blob` reads."""
        return self.export_framed()[EXPORT_HEADER_BYTES:]

    def export_params(self) -> dict[str, np.ndarray]:
        """The trained parameters by tensor name, in the IR's layouts."""
        return params_from_blob(self.project, self.export_blob())

    def _import(self, blob: bytes) -> int:
        buffer = ctypes.create_string_buffer(bytes(blob), len(blob))
        return int(self._api["import_params"](buffer, len(blob)))

    def import_status(self, blob: bytes) -> str:
        """Hand ``blob`` to ``<name>_import_params``; its verdict, one of :data:`IMPORT_STATUS`
        (anything but ``ok`` left the parameters untouched)."""
        return IMPORT_STATUS[self._import(blob)]

    def import_framed(self, blob: bytes) -> None:
        """Load an export (header and parameters) through ``<name>_import_params``; raise when it refuses."""
        status = self._import(blob)
        if status != 0:
            reason = self._api["import_status_str"](status).decode()
            raise TteError(f"{self.name}_import_params refused the parameters: {reason}")

    def import_params(self, params: Mapping[str, np.ndarray]) -> None:
        """Load parameters (by tensor name, IR layouts); every trained parameter must be given."""
        blob = bytearray(self.param_bytes)
        for layout in self.project.params:
            if layout.tensor not in params:
                raise TteError(f"import_params: parameter '{layout.tensor}' is missing")
            blob[layout.offset : layout.offset + layout.nbytes] = layout.to_engine(params[layout.tensor])
        self.import_framed(frame_params(self.digest, bytes(blob)))


def frame_params(digest: int, payload: bytes) -> bytes:
    """An export of ``payload`` (the trained parameters) for the model of ``digest``: the header
    ``<name>_import_params`` checks, then the payload (the CRC is zlib's, as ``tte_crc32``)."""
    head = struct.pack("<IIQI", EXPORT_MAGIC, EXPORT_VERSION, digest, len(payload))
    return head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload


def params_from_blob(project: GeneratedProject, blob: bytes) -> dict[str, np.ndarray]:
    """Exported parameters (``<name>_export_params``, ``tte_params.bin``) by tensor name, IR layouts."""
    if len(blob) != int(project.manifest["param_bytes"]):
        raise TteError(
            f"a parameter blob of {len(blob)} bytes; {project.path} exports {project.manifest['param_bytes']}"
        )
    return {layout.tensor: layout.to_ir(blob) for layout in project.params}
