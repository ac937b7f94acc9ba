"""Fuzzing ``tte run``'s data loader (issue 15): mutated and damaged ``.npz`` files (truncated, bytes
flipped or inserted, arrays of other dtypes and shapes, extra members, NaN inputs, labels out of
range) are refused with one :class:`~tte_ir.cli_args.DataError` line naming the file, or load into a
dataset the generated C takes: a host inference and a training step on its first sample succeed.

``TTE_FUZZ_EXAMPLES`` sets the number of examples of each property (default 150, a few seconds);
``nox -s fuzz`` runs it with 100,000 or more.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tte_codegen.training import load_npz
from tte_ir.autodiff import training_info
from tte_ir.cli_args import DataError

EXAMPLES = int(os.environ.get("TTE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
_DIR = Path(tempfile.mkdtemp(prefix="tte-data-fuzz-"))


@pytest.fixture(scope="module")
def model(project, host_library, training):
    """One host build of the session's project for the whole module."""
    from tte_codegen import HostModel

    return HostModel(project)


def _npz(members: dict[str, np.ndarray], compress: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **members)
    return buffer.getvalue()


@st.composite
def data_files(draw: st.DrawFn, shape: tuple[int, ...], classes: int) -> bytes:
    """A valid ``.npz`` for a model with input ``shape`` and ``classes`` classes, mutated and damaged."""
    _, channels, height, width = shape
    count = draw(st.integers(0, 4))
    x: np.ndarray = draw(hnp.arrays(np.int8, (count, channels, height, width), elements=st.integers(-128, 127)))
    y: np.ndarray = np.arange(count) % classes
    members = {"x": x, "y": y}
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["x-array", "y-array", "x-float", "y-range", "drop", "extra", "none"]))
        if kind == "x-array":
            dims = draw(st.sampled_from([(count, channels, height, width), (count, channels, height), (count,), ()]))
            dtype = draw(st.sampled_from([np.int8, np.uint8, np.int16, np.float32, np.float64, np.bool_]))
            members["x"] = draw(hnp.arrays(dtype, dims))
        elif kind == "y-array":
            dtype = draw(st.sampled_from([np.int64, np.int8, np.uint64, np.float64, np.bool_, np.int32]))
            members["y"] = draw(hnp.arrays(dtype, draw(st.sampled_from([(count,), (count + 1,), (), (count, 1)]))))
        elif kind == "x-float":
            members["x"] = draw(hnp.arrays(np.float32, (count, channels, height, width)))
        elif kind == "y-range":
            members["y"] = np.full(count, draw(st.sampled_from([-1, classes, 2**40, -(2**40)])), np.int64)
        elif kind == "drop":
            members.pop(draw(st.sampled_from(sorted(members))), None)
        elif kind == "extra":
            members[draw(st.sampled_from(["z", "x2"]))] = np.zeros(3)
    data = bytearray(_npz(members, draw(st.booleans())))
    damage = draw(st.sampled_from(["none", "none", "truncate", "flip", "insert"]))
    if damage == "truncate":
        del data[draw(st.integers(0, len(data))) :]
    elif damage == "flip":
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif damage == "insert":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def test_mutated_data_files_load_cleanly_or_are_refused(model, forward, training):
    @FUZZ
    @given(
        data_files(
            forward.tensors[forward.inputs[0]].shape, training.tensors[training_info(training)["logits"]].shape[1]
        )
    )
    def check(data: bytes) -> None:
        path = _DIR / "data.npz"
        path.write_bytes(data)
        try:
            loaded = load_npz(path, training)
        except DataError as exc:
            message = str(exc)
            assert message.startswith(str(path)) and "\n" not in message, message
            return
        assert len(loaded) >= 1 and loaded.x.dtype == np.int8 and loaded.y.dtype == np.int64
        logits = model.infer(loaded.x[0])
        assert logits.shape == (model.classes,)
        assert isinstance(model.train_step(loaded.x[0], int(loaded.y[0])), float)

    check()


def test_a_zip_of_other_members_is_refused(training):
    path = _DIR / "other.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", b"\x93NUMPY\x01\x00" + b"{'descr': '<i1'}")
        archive.writestr("y.npy", b"")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(path, training)
