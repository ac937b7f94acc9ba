"""Run the generated C on the host from Python: the project's shared library through ctypes.

:class:`HostModel` is the generated API (``model.h``) on numpy arrays in the IR's layouts: images
``int8 [1, C, H, W]`` (permuted to the engine's HWC on the way in) and parameters by tensor name
(read back from the exported blob with the layouts in ``manifest.json``). The arithmetic is the
device's: the same C sources as the firmware, compiled for the host.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from tte_codegen.build import build
from tte_codegen.generate import GeneratedProject
from tte_ir import TteError
from tte_ir.layout import to_engine_layout

__all__ = ["STEP_STATUS", "HostModel", "params_from_blob"]

STEP_STATUS = ("ok", "nonfinite-loss", "nonfinite-grad", "error")  # <name>_step_status, as tte_ir names them


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

    def export_blob(self) -> bytes:
        """The trained parameters exactly as ``<name>_export_params`` writes them."""
        blob = ctypes.create_string_buffer(self.param_bytes)
        written = self._api["export_params"](blob, self.param_bytes)
        if written != self.param_bytes:
            raise TteError(f"{self.name}_export_params wrote {written} of {self.param_bytes} bytes")
        return blob.raw

    def export_params(self) -> dict[str, np.ndarray]:
        """The trained parameters by tensor name, in the IR's layouts."""
        return params_from_blob(self.project, self.export_blob())

    def import_params(self, params: Mapping[str, np.ndarray]) -> None:
        """Load parameters (by tensor name, IR layouts); every trained parameter must be given."""
        blob = bytearray(self.param_bytes)
        for layout in self.project.params:
            if layout.tensor not in params:
                raise TteError(f"import_params: parameter '{layout.tensor}' is missing")
            blob[layout.offset : layout.offset + layout.nbytes] = layout.to_engine(params[layout.tensor])
        buffer = ctypes.create_string_buffer(bytes(blob), self.param_bytes)
        if self._api["import_params"](buffer, self.param_bytes) != 0:
            raise TteError(f"{self.name}_import_params refused the parameters")


def params_from_blob(project: GeneratedProject, blob: bytes) -> dict[str, np.ndarray]:
    """Exported parameters (``<name>_export_params``, ``tte_params.bin``) by tensor name, IR layouts."""
    if len(blob) != int(project.manifest["param_bytes"]):
        raise TteError(
            f"a parameter blob of {len(blob)} bytes; {project.path} exports {project.manifest['param_bytes']}"
        )
    return {layout.tensor: layout.to_ir(blob) for layout in project.params}
