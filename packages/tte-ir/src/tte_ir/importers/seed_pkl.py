"""Importer for the seed paper's pretrained int8 MCU models (``../shared/models/*.pkl``).

The files are ``torch.save`` zip archives whose pickle holds plain dicts and numpy arrays. They are
read with ``zipfile`` and a restricted unpickler that resolves exactly four globals (the numpy array
reconstruction helpers and ``_codecs.encode``); any other global is refused before anything runs.
torch is not needed.

The 1000-class ImageNet classifier is replaced by an ``num_classes`` head, initialised from a
seeded generator: float weights ``W ~ U(-1/sqrt(C), 1/sqrt(C))`` (PyTorch's default bound for a
linear layer with ``C`` inputs), zero bias. An ``fp32`` head keeps ``W`` as float32. An ``int8``
head quantizes ``W`` symmetrically per output channel (``s_w[o] = max|W[o]| / 127``), keeps the
seed classifier's output scale and uses output zero point 0.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tte_ir._ir import DType, Graph, GraphBuilder, Op, QuantParams, TteError
from tte_ir.importers.head import HEAD_INIT, new_head

__all__ = ["SeedModelError", "import_seed_pkl", "load_seed_pkl"]


class SeedModelError(TteError):
    """A seed model file is unreadable, unsafe or does not follow the documented schema."""


# Size limits, checked before anything is inflated or allocated. The seed models are about 1 MB
# (pickles of 6,000 to 8,500 opcodes): the limits leave a wide margin and keep a hostile file (a
# zip bomb, a pickle multiplying one buffer into many arrays) to well under a second and about
# 100 MB before it is refused.
MAX_FILE_BYTES = 64 * 2**20
"""The largest seed model file read (the zip archive on disk)."""
MAX_PICKLE_BYTES = 64 * 2**20
"""The largest ``data.pkl`` inflated (as the archive declares it, and as read)."""
MAX_OPCODES = 200_000
"""The most pickle opcodes: bounds every list's, dict's and tuple's item count."""

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}
_PLAIN_KINDS = frozenset("biufc")  # numeric dtypes: no objects, no arbitrary-size void records


class _Budget:
    """The array bytes a pickle may still reconstruct: no more than the pickle itself holds."""

    def __init__(self, path: Path, total: int) -> None:
        self.path = path
        self.left = total

    def take(self, shape: Any, dtype: Any) -> None:
        try:
            dims = [int(d) for d in (shape if isinstance(shape, tuple) else (shape,))]
            itemsize = np.dtype(dtype).itemsize
        except (TypeError, ValueError, OverflowError):
            raise SeedModelError(f"{self.path}: malformed array (shape {shape!r}, dtype {dtype!r})") from None
        nbytes = itemsize
        for d in dims:
            if d < 0:
                raise SeedModelError(f"{self.path}: malformed array (shape {shape!r})")
            nbytes *= d
        if nbytes > self.left:
            raise SeedModelError(
                f"{self.path}: its arrays would take more memory than the file holds data ({nbytes} bytes "
                f"asked, {self.left} left): refusing an inflating pickle"
            )
        self.left -= nbytes


class _ArrayType:
    """What the pickle's ``numpy.ndarray`` resolves to: the type argument of :func:`_reconstruct`
    only. Calling ndarray itself would allocate any shape the pickle names; this is not callable."""


_NDARRAY = _ArrayType()


class _BoundedArray(np.ndarray):
    """An array under reconstruction whose state is checked against the budget before it is set."""

    _budget: _Budget

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise SeedModelError(f"{self._budget.path}: malformed array state")
        shape, dtype = state[-4], state[-3]
        if not isinstance(dtype, np.dtype) or dtype.kind not in _PLAIN_KINDS:
            raise SeedModelError(f"{self._budget.path}: only numeric arrays are allowed, got dtype {dtype!r}")
        self._budget.take(shape, dtype)
        super().__setstate__(state)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, path: Path) -> None:
        super().__init__(io.BytesIO(data))
        self._path = path
        self._budget = _Budget(path, len(data))

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise SeedModelError(
                f"{self._path}: refusing to load global '{module}.{name}' (only numpy arrays and plain data are allowed)"
            )
        if name == "_reconstruct":
            return self._reconstruct
        if name == "ndarray":
            return _NDARRAY
        if module == "_codecs":
            import _codecs

            return _codecs.encode
        return getattr(np, name)

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        """numpy's array reconstruction, for plain ndarrays only, its size taken from the budget."""
        if subtype is not _NDARRAY:
            raise SeedModelError(f"{self._path}: only plain numpy arrays are allowed")
        self._budget.take(shape, dtype)
        array = np.ndarray.__new__(_BoundedArray, shape, dtype)
        array._budget = self._budget
        return array

    def persistent_load(self, pid: Any) -> Any:
        raise SeedModelError(f"{self._path}: holds tensor storages; only numpy-based seed models are supported")


def _count_opcodes(payload: bytes, path: Path) -> None:
    """Refuse a pickle of more than :data:`MAX_OPCODES` opcodes, before it runs."""
    import pickletools

    try:
        for count, _ in enumerate(pickletools.genops(io.BytesIO(payload)), start=1):
            if count > MAX_OPCODES:
                raise SeedModelError(
                    f"{path}: the pickle has more than {MAX_OPCODES} opcodes (a seed model has about 8,000): refusing it"
                )
    except SeedModelError:
        raise
    except Exception as exc:  # a malformed pickle can raise almost anything
        raise SeedModelError(f"{path}: malformed pickle ({type(exc).__name__}: {exc})") from None


def _plain(value: Any) -> Any:
    """``value`` with every reconstructed array turned into a plain ndarray (iteratively: no recursion limit)."""
    if isinstance(value, _BoundedArray):
        return value.view(np.ndarray)
    root = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, _BoundedArray):
            container[key] = item.view(np.ndarray)
        elif isinstance(item, dict):
            stack.extend((item, k) for k in item)
        elif isinstance(item, list):
            stack.extend((item, i) for i in range(len(item)))
        elif isinstance(item, tuple) and any(isinstance(v, (_BoundedArray, dict, list, tuple)) for v in item):
            converted = list(item)
            container[key] = converted
            stack.append((container, key))
            stack.extend((converted, i) for i in range(len(converted)))
    return root[0]


def load_seed_pkl(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a seed model file into its plain dict (no code from the file runs). Sizes are checked
    before anything is inflated: the file (:data:`MAX_FILE_BYTES`), its pickle (:data:`MAX_PICKLE_BYTES`,
    :data:`MAX_OPCODES`) and the arrays it builds (no more bytes than the pickle holds)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SeedModelError(f"{path}: {size} bytes, more than a seed model's limit of {MAX_FILE_BYTES}")
        with zipfile.ZipFile(path) as archive:
            members = [i for i in archive.infolist() if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
            if len(members) != 1:
                raise SeedModelError(f"{path}: expected one data.pkl inside the archive, found {len(members)}")
            if members[0].file_size > MAX_PICKLE_BYTES:
                raise SeedModelError(
                    f"{path}: data.pkl inflates to {members[0].file_size} bytes, more than the limit of "
                    f"{MAX_PICKLE_BYTES}: refusing it"
                )
            with archive.open(members[0]) as member:
                payload = member.read(MAX_PICKLE_BYTES + 1)
            if len(payload) > MAX_PICKLE_BYTES:
                raise SeedModelError(f"{path}: data.pkl inflates past the limit of {MAX_PICKLE_BYTES} bytes")
    except OSError as exc:
        raise SeedModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise SeedModelError(f"{path}: not a torch.save zip archive ({exc})") from None
    _count_opcodes(payload, path)
    try:
        model = _plain(_RestrictedUnpickler(payload, path).load())
    except SeedModelError:
        raise
    except Exception as exc:  # a malformed pickle can raise almost anything
        raise SeedModelError(f"{path}: malformed pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, dict) or not {"first_conv", "blocks", "classifier"} <= set(model):
        raise SeedModelError(f"{path}: not a seed MCU model (expects keys first_conv, blocks, classifier)")
    return model


class _Importer:
    def __init__(self, path: Path, model: dict[str, Any], num_classes: int, head: str, seed: int) -> None:
        self.path = path
        self.model = model
        self.num_classes = num_classes
        self.head = head
        self.seed = seed
        self.b = GraphBuilder(
            path.stem,
            {
                "source": path.name,
                "importer": "tte_ir.import_seed_pkl",
                "num_classes": num_classes,
                "head": head,
                "head_init": HEAD_INIT.format(seed=seed),
                "input_mapping": "pixel p in [0,255] -> code p - 128 (scale 1/127.5, zero point 0)",
            },
        )

    def fail(self, where: str, message: str) -> SeedModelError:
        return SeedModelError(f"{self.path}: {where}: {message}")

    def get(self, d: Any, key: str, where: str) -> Any:
        if not isinstance(d, dict) or key not in d:
            raise self.fail(where, f"missing '{key}'")
        return d[key]

    def conv(self, name: str, conv: dict[str, Any], x: str) -> str:
        params = self.get(conv, "params", name)
        weight = np.asarray(self.get(params, "weight", name))
        bias = np.asarray(self.get(params, "bias", name))
        w_scales = np.asarray(self.get(params, "w_scales", name), dtype=np.float32)
        if weight.dtype != np.int8 or weight.ndim != 4:
            raise self.fail(name, f"weight must be int8 [O,C/g,k,k], got {weight.dtype}{list(weight.shape)}")
        if bias.dtype != np.int32 or bias.shape != (weight.shape[0],):
            raise self.fail(name, f"bias must be int32 [{weight.shape[0]}], got {bias.dtype}{list(bias.shape)}")
        self.check_input_quant(name, x, params)
        kernel = int(self.get(conv, "kernel_size", name)[0])
        groups = int(self.get(conv, "groups", name))
        stride = int(self.get(conv, "stride", name))
        w = self.b.constant(f"{name}.w", weight, QuantParams.per_channel(w_scales))
        bb = self.b.constant(f"{name}.b", bias)
        y = self.activation(f"{name}.y", name, params, self.out_shape(x, weight.shape[0], kernel, stride))
        self.b.node(name, Op.CONV2D, (x, w, bb), (y,), stride=stride, padding=(kernel - 1) // 2, groups=groups)
        return y

    def out_shape(self, x: str, channels: int, kernel: int, stride: int) -> tuple[int, int, int, int]:
        _, _, h, w = self.b.spec(x).shape
        pad = (kernel - 1) // 2
        return (1, channels, (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1)

    def activation(self, tensor: str, where: str, params: dict[str, Any], shape: tuple[int, ...]) -> str:
        scale = float(self.get(params, "y_scale", where))
        zero = int(self.get(params, "y_zero", where))
        return self.b.tensor(tensor, shape, DType.INT8, QuantParams.per_tensor(scale, zero))

    def check_input_quant(self, where: str, x: str, params: dict[str, Any]) -> None:
        """The layer's recorded input quantization must be the producer's output quantization."""
        q = self.b.spec(x).quant
        scale = float(np.float32(self.get(params, "x_scale", where)))
        zero = int(self.get(params, "x_zero", where))
        if q.tensor_scale != scale or q.zero_point != zero:
            raise self.fail(
                where,
                f"input quantization (scale {scale}, zero {zero}) differs from its producer's output "
                f"'{x}' (scale {q.tensor_scale}, zero {q.zero_point})",
            )

    def build(self) -> Graph:
        first = self.get(self.model, "first_conv", "model")
        fparams = self.get(first, "params", "first_conv")
        size = int(self.get(first, "in_shape", "first_conv"))
        channels = int(self.get(first, "in_channel", "first_conv"))
        x = self.b.input(
            "input",
            (1, channels, size, size),
            DType.INT8,
            QuantParams.per_tensor(float(fparams["x_scale"]), int(fparams["x_zero"])),
        )
        x = self.conv("conv0", first, x)
        for i, block in enumerate(self.get(self.model, "blocks", "model")):
            x = self.block(f"blocks.{i}", block, x)
        if self.model.get("feature_mix") is not None:
            raise self.fail("feature_mix", "a feature-mix layer is not supported by this importer")
        return self.classifier(x)

    def block(self, name: str, block: dict[str, Any], x: str) -> str:
        if block.get("se") is not None:
            raise self.fail(name, "squeeze-and-excitation is not a supported op")
        block_input = x
        if block.get("pointwise1") is not None:
            x = self.conv(f"{name}.pw1", block["pointwise1"], x)
        x = self.conv(f"{name}.dw", self.get(block, "depthwise", name), x)
        x = self.conv(f"{name}.pw2", self.get(block, "pointwise2", name), x)
        residual = block.get("residual")
        if residual is None:
            return x
        params = self.get(residual, "params", f"{name}.residual")
        self.check_input_quant(f"{name}.residual", block_input, params)
        y = self.activation(f"{name}.add.y", f"{name}.residual", params, self.b.spec(x).shape)
        self.b.node(f"{name}.add", Op.ADD, (block_input, x), (y,))
        return y

    def classifier(self, x: str) -> Graph:
        spec = self.b.spec(x)
        channels = spec.shape[1]
        pooled = self.b.tensor("pool.y", (1, channels, 1, 1), DType.INT8, spec.quant)
        self.b.node("pool", Op.GLOBAL_AVG_POOL, (x,), (pooled,))
        flat = self.b.tensor("flatten.y", (1, channels), DType.INT8, spec.quant)
        self.b.node("flatten", Op.RESHAPE, (pooled,), (flat,), shape=[1, channels])
        classifier = self.get(self.model, "classifier", "model")
        cparams = self.get(classifier, "params", "classifier")
        self.check_input_quant("classifier", flat, cparams)
        scale = float(self.get(cparams, "y_scale", "classifier")) if self.head == "int8" else 0.0
        y = new_head(self.b, flat, self.num_classes, self.head, self.seed, scale)
        self.b.output(y)
        return self.b.build()


def import_seed_pkl(path: str | os.PathLike[str], num_classes: int = 10, *, head: str = "int8", seed: int = 0) -> Graph:
    """Import a seed int8 MCU model as a verified forward graph with a new ``num_classes`` head.

    ``head`` is ``"int8"`` (a quantized linear layer, like the seed classifier) or ``"fp32"`` (float
    weights on the dequantized pooled features, the paper's best training setting).
    """
    if num_classes < 1:
        raise SeedModelError(f"--classes must be at least 1, got {num_classes}")
    if head not in ("int8", "fp32"):
        raise SeedModelError(f"head must be 'int8' or 'fp32', got '{head}'")
    path = Path(path)
    model = load_seed_pkl(path)
    try:
        return _Importer(path, model, num_classes, head, seed).build()
    except SeedModelError:
        raise
    except TteError as exc:
        raise SeedModelError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise SeedModelError(f"{path}: does not follow the seed model schema ({type(exc).__name__}: {exc})") from None
