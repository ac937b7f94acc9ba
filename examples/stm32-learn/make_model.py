"""The model and the samples of the stm32-learn example: a tiny int8 CNN whose fp32 head (and last
conv's bias) the device trains on scikit-learn's handwritten digits, as they arrive.

    python make_model.py OUT_DIR

writes, into OUT_DIR:

* ``learn.tte``: the compiled training graph (``tte generate OUT_DIR/learn.tte -o model --name digits``
  makes its C; the example's CMakeLists.txt runs both steps at configure time);
* ``learn.bin``: the stream of labelled samples the device learns from, one after the other, each an
  int32 label (little-endian) followed by the image's int8 codes in the engine's HWC order;
* ``test.bin``: held-out samples in the same format, on which the device measures its accuracy.

The backbone is frozen and random (two stride-2 3x3 convs with a ReLU range, then a channels-last
flatten): on a real product it would be a network pretrained elsewhere (``tte demo`` shows that
path), here it keeps the example free of torch and fast under QEMU. The head starts at zero, so the
untrained model's accuracy is chance (10 %) and everything above it was learned on the device.
Needs numpy, tte-ir and scikit-learn.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tte_ir import DType, Graph, GraphBuilder, Op, QuantParams, Scheme, save
from tte_ir.compiler import compile_training
from tte_ir.serialize import atomic_write_bytes

SIZE = 16  # input resolution: the 8x8 digits, each pixel doubled
CLASSES = 10
LEARN = 400  # samples streamed to the device
TEST = 200  # held-out samples for the accuracy
SEED = 0


def forward_graph(seed: int = SEED) -> Graph:
    """input [1,3,16,16] -> conv 3x3/2 (8) -> conv 3x3/2 (16) -> flatten (hwc) -> fp32 linear (10)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("stm32-learn-digits")
    x = b.input("input", (1, 3, SIZE, SIZE), DType.INT8, QuantParams.per_tensor(1 / 127.5, 0))
    size, channels = SIZE, 3
    for name, cout, out_scale in (("c1", 8, 0.05), ("c2", 16, 0.05)):
        w = rng.integers(-127, 128, size=(cout, channels, 3, 3)).astype(np.int8)
        wt = b.constant(f"{name}.w", w, QuantParams.per_channel(np.full(cout, 1 / 127.0)))
        bt = b.constant(f"{name}.b", np.zeros(cout, dtype=np.int32))
        size //= 2
        y = b.tensor(f"{name}.y", (1, cout, size, size), DType.INT8, QuantParams.per_tensor(out_scale, -128))
        b.node(name, Op.CONV2D, (x, wt, bt), (y,), stride=2, padding=1)
        x, channels = y, cout
    features = channels * size * size
    flat = b.tensor("flat.y", (1, features), DType.INT8, b.spec(x).quant)
    b.node("flat", Op.RESHAPE, (x,), (flat,), shape=[1, features], order="hwc")
    hw = b.constant("head.w", np.zeros((CLASSES, features), dtype=np.float32))
    hb = b.constant("head.b", np.zeros(CLASSES, dtype=np.float32))
    logits = b.tensor("logits", (1, CLASSES), DType.FLOAT32)
    b.node("head", Op.LINEAR, (flat, hw, hb), (logits,))
    b.output(logits)
    return b.build()


def training_graph() -> Graph:
    """The forward graph compiled for on-device training: the head and c2's bias."""
    scheme = Scheme.from_json(
        {"format": "tte-scheme", "version": 1, "n_bias": 1, "head": "fp32", "lr": 0.01, "head_lr": 0.01, "seed": SEED}
    )
    return compile_training(forward_graph(), scheme)


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as int8 HWC images [N, 16, 16, 3] (codes = pixel - 128) and labels, shuffled."""
    from sklearn.datasets import load_digits

    data = load_digits()
    pixels = np.rint(data.images * (255.0 / 16.0)).astype(np.int16)  # 0..255
    pixels = pixels.repeat(2, axis=1).repeat(2, axis=2)
    codes = (pixels - 128).astype(np.int8)
    hwc = np.repeat(codes[:, :, :, None], 3, axis=3)
    order = np.random.default_rng(SEED).permutation(len(hwc))
    return np.ascontiguousarray(hwc[order]), data.target[order].astype(np.int32)


def samples(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The example's sample format: per sample an int32 label, then the HWC int8 image."""
    return b"".join(np.int32(y).astype("<i4").tobytes() + x.tobytes() for x, y in zip(images, labels, strict=True))


def main(argv: list[str] | None = None) -> int:
    """Write learn.tte, learn.bin and test.bin into the folder given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        images, labels = digits()
        save(training_graph(), out / "learn.tte")
        atomic_write_bytes(out / "learn.bin", samples(images[:LEARN], labels[:LEARN]))
        atomic_write_bytes(out / "test.bin", samples(images[LEARN : LEARN + TEST], labels[LEARN : LEARN + TEST]))
    except (OSError, ImportError) as exc:
        print(f"make_model.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
