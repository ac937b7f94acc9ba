"""``tte quantize`` and ``tte train`` (entry points of the ``tte.commands`` group, see :mod:`tte_ir.cli`).

Every user error is a :class:`~tte_ir.TteError`: one line on stderr, exit status 2. torch is imported
only when one of these commands runs, so the other ``tte`` commands stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from tte_ir import TteError
from tte_ir.cli_args import (
    DataError,
    bounded_float,
    bounded_int,
    distinct_outputs,
    learning_rate,
    output_file,
    seed_value,
)
from tte_ir.scheme import ROUNDING_MODES

__all__ = ["register_quantize", "register_train"]


def register_quantize(subparsers: Any) -> None:
    """Add ``tte quantize``."""
    p = subparsers.add_parser(
        "quantize",
        help="quantize a float PyTorch CNN (zoo model or your own) into an int8 .tte forward graph",
        description=(
            "Post-training quantization: BN folding, activation ranges calibrated on data, per-channel int8 "
            "weights, int32 biases, ReLU/ReLU6 folded into the output quantization."
        ),
    )
    p.add_argument(
        "model",
        help="a zoo model (mbv2, proxyless-w0.3, mcunet-5fps, mcunet-tiny, plain-cnn) or 'package.module:function' "
        "returning an nn.Module",
    )
    p.add_argument("-o", "--output", required=True, help="the .tte file to write")
    p.add_argument(
        "--checkpoint",
        help="a float state_dict saved with torch.save (loaded with weights_only=True); a zoo model needs it "
        "unless --random-weights",
    )
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="quantize a zoo model's freshly initialised weights (no --checkpoint): to try the pipeline only",
    )
    p.add_argument("--classes", type=int, help="classes of a zoo model's head (default: the data's classes)")
    p.add_argument("--width", type=float, default=0.35, help="width multiplier of the mbv2 zoo model (default 0.35)")
    p.add_argument("--new-head", type=int, metavar="N", help="replace the final Linear by a fresh N-class head")
    p.add_argument("--resolution", type=int, help="input resolution R: inputs 3 x R x R (default 32)")
    p.add_argument(
        "--input-shape",
        metavar="CxHxW",
        help="the model's input shape, e.g. 1x49x10 or 1x28x28 (instead of --resolution; default: an .npz's own, "
        "else 3x32x32)",
    )
    p.add_argument(
        "--data",
        default="digits",
        help="calibration data: 'digits' (built in, resized to the input shape), an image folder (one sub-folder per "
        "class), or an .npz with x (float inputs [N, C, H, W] in the model's input scale) and y (labels [N])",
    )
    p.add_argument("--data-classes", help="restrict the data to these classes, e.g. 0-4")
    p.add_argument("--calib", type=int, default=256, help="calibration images (default 256)")
    p.add_argument("--head", choices=("fp32", "int8"), default="fp32", help="classifier precision (default fp32)")
    p.add_argument(
        "--requant",
        choices=("float", "fixed"),
        default="float",
        help="requantization: float32 rounding (default) or fixed, TFLite's integer arithmetic (NUMERICS.md 2b)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of fresh weights and heads (default 0)")
    p.set_defaults(func=_cmd_quantize)


def _user_model(spec: str) -> Any:
    from torch import nn

    module_name, _, function = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as exc:
        raise TteError(f"cannot load model factory '{spec}' ({exc})") from None
    model = factory()
    if not isinstance(model, nn.Module):
        raise TteError(f"'{spec}' returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _load_checkpoint(model: Any, path: str) -> None:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TteError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # torch reports unsafe or corrupt files with many exception types
        raise TteError(f"{path}: not a loadable weights-only checkpoint ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise TteError(f"{path}: does not fit the model ({str(exc).splitlines()[0]})") from None


def _final_linear(model: Any) -> tuple[Any, str, Any]:
    from torch import nn

    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TteError("--new-head: the model has no Linear layer")
    name, layer = linears[-1]
    parent_name, _, attr = name.rpartition(".")
    return model.get_submodule(parent_name) if parent_name else model, attr, layer


def _check_takes(model: Any, spec: str, sample: Any) -> None:
    """Refuse a model that cannot run on the data's input shape, in one line, before calibration."""
    import torch

    from tte_algo.data import dequantize_input

    try:
        with torch.no_grad():
            model.eval()(dequantize_input(sample))
    except RuntimeError as exc:  # torch reports a layer that does not fit its input this way
        raise TteError(
            f"'{spec}' does not take inputs {list(sample.shape)} ({str(exc).splitlines()[0]}); pass --input-shape "
            "C x H x W of the model's input"
        ) from None


def _check_quantize_arguments(args: argparse.Namespace) -> None:
    """Refuse bad numbers and an unwritable output of ``tte quantize`` before torch or the data load."""
    for name, value in (("--classes", args.classes), ("--new-head", args.new_head)):
        if value is not None:
            bounded_int(value, name, 1)
    if args.resolution is not None:
        bounded_int(args.resolution, "--resolution", 1, 4096)
    bounded_int(args.calib, "--calib", 1)
    bounded_float(args.width, "--width", 0.0, 16.0, low_open=True)
    seed_value(args.seed, "--seed")
    output_file(args.output, "-o")


def _input_shape(args: argparse.Namespace) -> tuple[int, int, int] | None:
    """The input shape ``(C, H, W)`` of ``tte quantize``'s model from --input-shape or --resolution;
    None leaves it to the data (an .npz's own shape, else 3 x 32 x 32)."""
    if args.input_shape is not None and args.resolution is not None:
        raise TteError("--input-shape and --resolution exclude each other: give one")
    if args.resolution is not None:
        return (3, args.resolution, args.resolution)
    if args.input_shape is None:
        return None
    parts = args.input_shape.lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(part) for part in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or not all(1 <= d <= 4096 for d in shape):
        raise TteError(f"--input-shape '{args.input_shape}': expected C x H x W, each 1..4096, e.g. 1x49x10")
    return shape  # type: ignore[return-value]


def _cmd_quantize(args: argparse.Namespace) -> int:
    import torch
    from torch import nn

    from tte_algo.data import load_data, parse_classes
    from tte_algo.ptq import quantize_model
    from tte_algo.zoo import ZOO, build_model
    from tte_ir import conv_nodes, save

    _check_quantize_arguments(args)
    if args.checkpoint and args.random_weights:
        raise TteError("--checkpoint and --random-weights exclude each other")
    if args.model in ZOO and not args.checkpoint and not args.random_weights:
        # an untrained zoo model quantizes without complaint into a graph that predicts nothing
        raise TteError(
            f"zoo model '{args.model}' has no trained weights: pass --checkpoint FILE (your float state_dict), "
            "or --random-weights to quantize random ones"
        )
    shape = _input_shape(args)
    if shape is None and not args.data.endswith(".npz"):
        shape = (3, 32, 32)
    data = load_data(args.data, shape, parse_classes(args.data_classes))
    shape = tuple(data.codes.shape[1:])
    if args.model in ZOO and shape[0] != 3:
        raise TteError(
            f"zoo model '{args.model}' takes 3-channel inputs; the data are {list(shape)}: pass 3 channels "
            "or your own model (package.module:function)"
        )
    if args.model in ZOO:
        model = build_model(args.model, args.classes or len(data.classes), args.width, args.seed)
    elif ":" in args.model:
        model = _user_model(args.model)
    else:
        raise TteError(f"unknown model '{args.model}' (a zoo model: {', '.join(ZOO)}; or 'package.module:function')")
    if args.checkpoint:
        _load_checkpoint(model, args.checkpoint)
    if args.new_head:
        parent, attr, old = _final_linear(model)
        torch.manual_seed(args.seed)
        setattr(parent, attr, nn.Linear(old.in_features, args.new_head))
    generator = torch.Generator().manual_seed(args.seed)
    calib = data.codes[torch.randperm(len(data), generator=generator)[: args.calib]]
    _check_takes(model, args.model, calib[:1])
    graph = quantize_model(
        model,
        calib,
        head=args.head,
        requant=args.requant,
        name=Path(args.output).stem,
        metadata={
            "source": args.model,
            "checkpoint": args.checkpoint,
            "random_weights": args.random_weights,
            "calibration": f"{len(calib)} inputs {list(shape)} of {args.data}",
        },
    )
    save(graph, args.output)
    print(
        f"wrote {args.output}: {len(conv_nodes(graph))} convs, {len(graph.nodes)} nodes, head {args.head}, "
        f"requant {args.requant}"
    )
    return 0


def register_train(subparsers: Any) -> None:
    """Add ``tte train``."""
    p = subparsers.add_parser(
        "train",
        help="simulate on-device training of an int8 .tte graph (QAS-SGD, sparse update)",
        description=(
            "Train a forward graph's int8 codes as the device would (bit-exact int8 forward, QAS-SGD), by a "
            "sparse-update scheme; writes the trained .tte and a metrics JSON."
        ),
    )
    p.add_argument("graph", help="a .tte forward graph (from tte quantize or tte import-pkl)")
    p.add_argument("-o", "--output", required=True, help="the trained .tte file to write")
    p.add_argument("--metrics", help="metrics JSON to write (default: OUTPUT with .json)")
    p.add_argument("--scheme", help="a scheme file, or FILE:model/label (e.g. seed-schemes.json:mcunet-5fps/49kb)")
    p.add_argument(
        "--last-convs", type=int, help="without --scheme: train the last K convs + head (default 6, or all if fewer)"
    )
    p.add_argument(
        "--head", choices=("fp32", "int8"), help="head precision while training (default: the scheme's, fp32)"
    )
    p.add_argument(
        "--data",
        default="digits",
        help="'digits' (built in, resized to the graph's input), an image folder (one sub-folder per class), or an "
        ".npz with x (float inputs [N, C, H, W] in the model's input scale) and y (labels [N])",
    )
    p.add_argument("--classes", help="restrict the data to these classes, e.g. 5-9 (relabelled 0..)")
    p.add_argument("--test-fraction", type=float, default=0.25, help="held-out fraction for accuracy (0.25)")
    p.add_argument(
        "--split-seed", type=int, default=0, help="seed of the held-out split, independent of --seed (default 0)"
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument(
        "--batch-size",
        type=int,
        help="samples per update (default: the scheme's batch, 1 unless it sets one; a scheme's batch B > 1 is the "
        "device's update, the mean of B gradients, and only B is accepted then); larger batches of a batch-1 scheme "
        "are a faster simulation",
    )
    p.add_argument("--lr", type=float, help="learning rate (default: the scheme's)")
    p.add_argument("--head-lr", type=float, help="learning rate of the head (default: the scheme's)")
    p.add_argument("--momentum", type=float, help="SGD momentum (default: the scheme's, 0)")
    p.add_argument("--rounding", choices=ROUNDING_MODES, help="update rounding (default: the scheme's)")
    p.add_argument("--no-qas", action="store_true", help="apply unscaled code gradients (the int8 baseline)")
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    p.add_argument(
        "--seed",
        type=int,
        help="seed of the sample order (tte_ir.order.sample_order, as `tte run`) and stochastic rounding "
        "(default: the scheme's)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda when present)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _check_train_arguments(args: argparse.Namespace) -> Path:
    """Refuse bad numbers and unwritable outputs of ``tte train`` before anything is loaded; return the
    metrics path."""
    if args.last_convs is not None:
        bounded_int(args.last_convs, "--last-convs", 1)
    bounded_float(args.test_fraction, "--test-fraction", 0.0, 1.0, low_open=True, high_open=True)
    seed_value(args.split_seed, "--split-seed")
    bounded_int(args.epochs, "--epochs", 1)
    if args.batch_size is not None:
        bounded_int(args.batch_size, "--batch-size", 1)
    for name, value in (("--lr", args.lr), ("--head-lr", args.head_lr)):
        if value is not None:
            learning_rate(value, name)
    if args.momentum is not None:
        bounded_float(args.momentum, "--momentum", 0.0, 1.0, high_open=True)
    if args.seed is not None:
        seed_value(args.seed, "--seed")
    metrics = Path(args.metrics) if args.metrics else Path(args.output).with_suffix(".json")
    output_file(args.output, "-o")
    output_file(metrics, "--metrics")
    distinct_outputs(("-o", args.output), ("--metrics" if args.metrics else "the default --metrics", metrics))
    return metrics


def _cmd_train(args: argparse.Namespace) -> int:
    from tte_algo.data import load_data, parse_classes
    from tte_algo.sim import head_node
    from tte_algo.train import TrainConfig, default_device, scheme_last_convs, train_int8
    from tte_ir import conv_nodes, load, load_scheme, save
    from tte_ir.saturation import saturation_text
    from tte_ir.serialize import atomic_write_bytes

    metrics_path = _check_train_arguments(args)
    graph = load(args.graph)
    if args.scheme:
        scheme = load_scheme(args.scheme)
        try:
            scheme.validate_for(graph)
        except TteError as exc:
            raise TteError(f"{args.scheme}: {exc}") from None
    else:
        scheme = scheme_last_convs(graph, args.last_convs or min(6, len(conv_nodes(graph))))
    overrides = {
        key: getattr(args, key)
        for key in ("lr", "head_lr", "momentum", "rounding", "seed", "head")
        if getattr(args, key) is not None
    }
    scheme = replace(scheme, **overrides)
    n_out = graph.tensors[head_node(graph).outputs[0]].shape[1]
    shape = graph.tensors[graph.inputs[0]].shape[1:]
    data = load_data(args.data, shape, parse_classes(args.classes), quant=graph, head=n_out)
    train, test = data.split(args.test_fraction, args.split_seed)
    if len(train) == 0 or len(test) == 0:
        raise DataError(
            f"--test-fraction {args.test_fraction} splits the {len(data)} images into {len(train)} to train on and "
            f"{len(test)} to test; both need at least one"
        )
    if scheme.batch > 1 and args.batch_size not in (None, scheme.batch):
        raise TteError(
            f"--batch-size {args.batch_size}: the scheme updates once per batch of {scheme.batch} samples, as the "
            f"device will; leave --batch-size out or pass {scheme.batch}"
        )
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=scheme.batch if args.batch_size is None else args.batch_size,
        qas=not args.no_qas,
        schedule=args.schedule,
        device=default_device() if args.device == "auto" else args.device,
        progress=not args.quiet,
    )
    result = train_int8(graph, scheme, train, test, config)
    save(result.graph, args.output)
    metrics = {
        "graph": args.graph,
        "output": args.output,
        "data": args.data,
        "split_seed": args.split_seed,
        **result.metrics,
    }
    atomic_write_bytes(metrics_path, (json.dumps(metrics, indent=1) + "\n").encode())
    before, after = metrics["test_accuracy_before"], metrics["test_accuracy"]
    print(
        f"wrote {args.output} and {metrics_path}: test accuracy {100 * before:.1f}% -> {100 * after:.1f}% "
        f"({len(train)} train / {len(test)} test images, {metrics['skipped_steps']} skipped steps)"
    )
    print(saturation_text(metrics["saturation"]))
    return 0
