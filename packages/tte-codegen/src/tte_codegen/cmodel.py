"""What the templates print: the plain data of one lowered training graph."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tte_ir import TteError
from tte_ir.memory import MemoryReport

__all__ = ["CArray", "CBlock", "CModel", "CTensor", "CodegenError", "ParamLayout"]


class CodegenError(TteError):
    """A training graph that cannot become C for this engine (an op without a kernel, a layout the
    engine cannot run)."""


@dataclass(frozen=True)
class ParamLayout:
    """Where one trained parameter sits in the exported parameter blob, and how to read it back:
    ``blob[offset:offset+nbytes]`` viewed as ``dtype``, reshaped to ``engine_shape``, transposed by
    ``to_ir_axes`` and reshaped to ``ir_shape`` is the IR tensor."""

    tensor: str
    dtype: str
    ir_shape: tuple[int, ...]
    engine_shape: tuple[int, ...]
    to_ir_axes: tuple[int, ...]
    offset: int
    nbytes: int

    def to_ir(self, blob: bytes | np.ndarray) -> np.ndarray:
        """This parameter's IR array out of an exported blob."""
        raw = np.frombuffer(bytes(blob[self.offset : self.offset + self.nbytes]), dtype=self.dtype)
        return np.ascontiguousarray(raw.reshape(self.engine_shape).transpose(self.to_ir_axes).reshape(self.ir_shape))

    def to_engine(self, array: np.ndarray) -> bytes:
        """The blob bytes of an IR array of this parameter."""
        inverse = tuple(int(a) for a in np.argsort(self.to_ir_axes))
        folded = np.asarray(array, dtype=self.dtype).reshape(tuple(self.engine_shape[a] for a in self.to_ir_axes))
        return np.ascontiguousarray(folded.transpose(inverse)).tobytes()


@dataclass(frozen=True)
class CArray:
    """A constant or trained-parameter array: ``ident`` is its C name, ``values`` its flat contents
    in the engine's layout; ``sram`` arrays are writable (trained), the others ``const`` (flash)."""

    ident: str
    ctype: str
    values: np.ndarray
    sram: bool
    comment: str


@dataclass(frozen=True)
class CTensor:
    """An arena tensor: its pointer macro ``ident`` at byte ``offset`` of the arena."""

    ident: str
    ctype: str
    offset: int
    comment: str


@dataclass(frozen=True)
class CBlock:
    """The C statements of one node, or of one tiled group of nodes (a loop over its tiles)."""

    nodes: tuple[str, ...]
    code: str
    macs: int


@dataclass(frozen=True)
class CModel:
    """Everything the templates print for one training graph."""

    name: str
    graph: str
    report: MemoryReport
    arena_bytes: int
    tensors: tuple[CTensor, ...]
    arrays: tuple[CArray, ...]
    descriptors: tuple[str, ...]
    rows: tuple[str, ...]  # row-band tables of the row-tiled groups
    forward: tuple[CBlock, ...]  # the nodes before the loss: inference
    backward: tuple[CBlock, ...]  # the loss and everything after it
    params: tuple[tuple[ParamLayout, str], ...]  # (layout, array ident) in blob order
    input_shape: tuple[int, ...]  # IR shape [1, C, H, W]
    input: str  # pointer expression of the input image's arena slot
    logits: str  # pointer expression of the logits
    logits_ctype: str
    classes: int
    loss: str  # pointer expression of the loss
    lr: float
    head_lr: float
    seed: int
    digest: int  # tte_ir.digest.graph_digest: stamped into exports and flash saves
    kernels: tuple[str, ...] = field(default=())
    # the requantization modes of its calls (tte_ir.kernels.call_requant), in REQUANT order: the engine's
    # TTE_ENGINE_REQUANT, so that its kernels carry no epilogue copy this model never calls
    requant: tuple[str, ...] = field(default=())
    batch: int = 1  # samples per update (the scheme's batch): train_step applies the updates every batch-th call

    @property
    def param_bytes(self) -> int:
        """Bytes of the exported parameter blob."""
        return sum(p.nbytes for p, _ in self.params)
