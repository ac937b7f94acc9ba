"""The generated parameter export and import: the header (magic, version, model digest, length,
CRC-32), every refusal of ``<name>_import_params`` with the parameters left as they were, and the
NULL checks of every generated function; and the model digest itself."""

from __future__ import annotations

import ctypes
import math
import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest

from tte_codegen.host import EXPORT_HEADER_BYTES, EXPORT_MAGIC, EXPORT_VERSION, IMPORT_STATUS, frame_params
from tte_ir.compiler import compile_training
from tte_ir.digest import graph_digest
from tte_ir.reference_train import initial_state

from .nets import images, scheme, tiled_residual_net


def test_export_header_holds_magic_version_digest_length_and_zlib_crc(host_model, training):
    blob = host_model.export_framed()
    magic, version, digest, length, crc = struct.unpack_from("<IIQII", blob)
    assert len(blob) == EXPORT_HEADER_BYTES + host_model.param_bytes
    assert (magic, version, length) == (EXPORT_MAGIC, EXPORT_VERSION, host_model.param_bytes)
    assert digest == host_model.digest == graph_digest(training)
    assert crc == zlib.crc32(blob[EXPORT_HEADER_BYTES:], zlib.crc32(blob[:20]))
    assert blob == frame_params(digest, host_model.export_blob())


def test_an_export_imports_back(host_model, training):
    x = images(training, 1)[0]
    host_model.train_step(x, 1)
    trained = host_model.export_framed()
    host_model.import_params(initial_state(training))
    assert host_model.export_framed() != trained
    assert host_model.import_status(trained) == "ok"
    assert host_model.export_framed() == trained


def _refused(host_model, blob: bytes, status: str) -> None:
    before = host_model.export_framed()
    assert host_model.import_status(blob) == status
    assert host_model.export_framed() == before, "a refused import changed the parameters"


def _head_offset(project) -> int:
    head = next(p for p in project.params if p.tensor == "head.w")
    assert head.dtype == "<f4"
    return head.offset


def test_erased_flash_of_the_right_size_is_refused(host_model):
    _refused(host_model, b"\xff" * host_model.export_bytes, "not-an-export")


@pytest.mark.parametrize("delta", [-1, 1, -EXPORT_HEADER_BYTES])
def test_a_blob_of_another_length_is_refused(host_model, delta):
    blob = host_model.export_framed()
    _refused(host_model, (blob + b"\0")[: len(blob) + delta], "bad-length")


def test_a_header_with_another_payload_length_is_refused(host_model):
    payload = host_model.export_blob()
    blob = frame_params(host_model.digest, payload[:-4])  # a consistent header, CRC included
    _refused(host_model, blob + payload[-4:], "bad-length")


def test_another_version_is_refused(host_model):
    blob = bytearray(host_model.export_framed())
    struct.pack_into("<I", blob, 4, EXPORT_VERSION + 1)
    _refused(host_model, bytes(blob), "not-an-export")


def test_another_models_parameters_are_refused(host_model):
    other = graph_digest(compile_training(tiled_residual_net(seed=1), scheme()))
    assert other != host_model.digest
    _refused(host_model, frame_params(other, host_model.export_blob()), "other-model")


@pytest.mark.parametrize("where", ["payload", "crc", "head"])
def test_a_flipped_bit_is_refused(host_model, project, where):
    blob = bytearray(host_model.export_framed())
    at = {"payload": len(blob) - 1, "crc": 20, "head": EXPORT_HEADER_BYTES + _head_offset(project)}[where]
    blob[at] ^= 0x04
    _refused(host_model, bytes(blob), "bad-crc")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_nonfinite_head_parameter_is_refused_even_with_a_good_crc(host_model, project, value):
    payload = bytearray(host_model.export_blob())
    struct.pack_into("<f", payload, _head_offset(project) + 4 * 3, value)
    _refused(host_model, frame_params(host_model.digest, bytes(payload)), "nonfinite")


def test_a_payload_of_0xff_with_a_good_header_is_refused(host_model):
    """All-ones bytes are NaN as float32: even a consistent header does not let them in."""
    _refused(host_model, frame_params(host_model.digest, b"\xff" * host_model.param_bytes), "nonfinite")


def test_the_host_import_reports_the_reason(host_model):
    from tte_ir import TteError

    with pytest.raises(TteError, match=r"model_import_params refused the parameters: .*CRC"):
        blob = bytearray(host_model.export_framed())
        blob[-1] ^= 1
        host_model.import_framed(bytes(blob))


def test_every_generated_function_refuses_null_pointers(host_model, host_library, training):
    lib = ctypes.CDLL(str(host_library))
    name = host_model.name
    i8p = ctypes.POINTER(ctypes.c_int8)

    def fn(function, argtypes, restype):
        f = getattr(lib, f"{name}_{function}")
        f.argtypes, f.restype = argtypes, restype
        return f

    infer = fn("infer", (i8p, ctypes.c_void_p), ctypes.c_int)
    train_step = fn("train_step", (i8p, ctypes.c_int32, ctypes.c_void_p), ctypes.c_float)
    export = fn("export_params", (ctypes.c_void_p, ctypes.c_size_t), ctypes.c_size_t)
    load = fn("import_params", (ctypes.c_void_p, ctypes.c_size_t), ctypes.c_int)
    param = fn("param", (ctypes.c_size_t, ctypes.c_void_p), ctypes.c_void_p)
    error = fn("error", (), ctypes.c_char_p)
    x = np.zeros(int(np.prod(host_model.project.input_shape)), dtype=np.int8)
    logits = np.zeros(host_model.classes, dtype=np.float32)
    before = host_model.export_framed()
    step = host_model.step

    assert infer(None, logits.ctypes.data) == 1  # TTE_ERR_NULL
    assert error().startswith(f"{name}_infer: input: ".encode())
    assert infer(x.ctypes.data_as(i8p), None) == 1
    assert error().startswith(f"{name}_infer: logits: ".encode())
    assert math.isnan(train_step(None, 0, None))
    assert host_model.last_status == "error" and host_model.step == step
    assert error().startswith(f"{name}_train_step: input: ".encode())
    assert export(None, host_model.export_bytes) == 0
    assert IMPORT_STATUS[load(None, host_model.export_bytes)] == "null"
    assert param(0, None) is None
    assert host_model.export_framed() == before


def test_the_digest_is_the_structure_and_frozen_constants_not_the_trained_values(training):
    digest = graph_digest(training)
    assert 0 <= digest < 2**64
    assert graph_digest(compile_training(tiled_residual_net(), scheme())) == digest  # stable
    assert graph_digest(replace(training, name="another name")) == digest
    trained = dict(training.constants)
    trained["head.w"] = trained["head.w"] + np.float32(0.5)
    assert graph_digest(replace(training, constants=trained)) == digest
    frozen = dict(training.constants)
    frozen["stem.w"] = frozen["stem.w"].copy()
    frozen["stem.w"].flat[0] ^= 1
    assert graph_digest(replace(training, constants=frozen)) != digest
    assert graph_digest(compile_training(tiled_residual_net(), scheme(weights=((4, 0.5),)))) != digest


def test_fixed_requantization_is_part_of_the_digest(training):
    fixed = replace(training, metadata={**training.metadata, "requant": "fixed"})
    assert graph_digest(fixed) != graph_digest(training)
    assert graph_digest(replace(training, metadata={**training.metadata, "requant": "float"})) == (
        graph_digest(training)
    )
