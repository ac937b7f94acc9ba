"""Import a user's float PyTorch CNN through :mod:`torch.fx` into a :class:`~tte_algo.floatgraph.FloatGraph`.

Supported (everything the IR can express):

- ``nn.Conv2d`` (any groups; any kernel size and stride, e.g. ``(10, 4)`` at ``(2, 2)``; integer
  padding per axis or ``"valid"`` / ``"same"``; no dilation, zero padding mode), optionally followed by
  ``nn.BatchNorm2d`` (folded into the conv); an ``nn.ZeroPad2d`` read only by a conv folds into the conv's
  padding (asymmetric padding, e.g. TensorFlow's SAME at stride 2);
- ``nn.ReLU`` / ``nn.ReLU6`` / ``F.relu`` / ``F.relu6`` / ``torch.relu`` right after a conv, linear
  or residual add (folded into the output quantization);
- ``nn.Hardswish`` / ``nn.Hardsigmoid`` / ``nn.Sigmoid`` / ``F.hardswish`` / ``F.hardsigmoid`` /
  ``torch.sigmoid`` on any tensor (an int8 table activation, ``Op.LUT``);
- squeeze-and-excite: ``x * gate`` (``*``, ``torch.mul``, ``x.mul``) of a ``[N, C, H, W]`` map by a
  ``[N, C, 1, 1]`` vector, e.g. ``gate = hardsigmoid(conv(relu(conv(avg_pool(x)))))`` (``Op.MUL``; the
  shapes are checked when the graph is quantized);
- residual add (``x + y``, ``torch.add``, ``+=``) of two tensors;
- global average pooling (``nn.AdaptiveAvgPool2d(1)``, ``F.adaptive_avg_pool2d(x, 1)``,
  ``x.mean((2, 3))``), ``nn.Flatten`` / ``torch.flatten(x, 1)``, ``nn.Linear``;
- ``nn.MaxPool2d`` / ``F.max_pool2d`` and ``nn.AvgPool2d`` / ``F.avg_pool2d`` (any kernel size and
  stride, padding per axis up to half the kernel, no dilation, no ``ceil_mode``, no ``divisor_override``); a ReLU right after a
  max pool moves before it (they commute), one after an average pool folds into its output range;
- channel concat, split and shuffle (ShuffleNet): ``torch.cat([a, b, ...], dim=1)`` (more than two
  inputs become a chain of two-input concats), ``x.chunk(n, dim=1)`` / ``torch.chunk``, ``torch.split`` /
  ``x.split(size_or_sizes, dim=1)`` and ``x[:, a:b]``, and the channel shuffle
  ``x.view(N, g, C // g, H, W)`` -> ``transpose(1, 2)`` (-> ``contiguous()``) -> ``view`` / ``reshape`` to
  ``[N, C, H, W]`` or ``flatten(1, 2)`` (torchvision's ``channel_shuffle`` traces to exactly this; ``x.size()``
  and arithmetic on sizes are followed, ``g`` must be a Python int);
- ``nn.Dropout`` and ``nn.Identity`` (identity at inference).

Anything else raises one :class:`UnsupportedModelError` naming every unsupported module path (or
call) with its type and, where there is one, the supported rewrite (ReLU6 for a clamp to [0, 6],
AdaptiveAvgPool2d(1) for an average over the whole map...). A layer refused only because its input
comes from an unsupported one is not listed again. The model is traced in eval mode; BN uses its
running statistics.
"""

from __future__ import annotations

import itertools
import operator
from typing import Any

import numpy as np
import torch
from torch import fx, nn
from torch.nn import functional as F

from tte_algo.floatgraph import INPUT, FloatGraph, FloatOp
from tte_ir import Op, TteError

__all__ = ["SUPPORTED", "UnsupportedModelError", "import_fx"]

SUPPORTED = (
    "Conv2d (any groups, kernel size, stride and padding), ZeroPad2d (before a conv), BatchNorm2d (after a conv), ReLU, ReLU6, Hardswish, Hardsigmoid, Sigmoid, residual add, "
    "squeeze-excite multiply (map * per-channel gate), AdaptiveAvgPool2d(1) or mean over (H, W), Flatten, Linear, "
    "MaxPool2d, AvgPool2d, Dropout, Identity, torch.cat / chunk / split / x[:, a:b] along channels, channel shuffle"
)


class UnsupportedModelError(TteError):
    """A user model uses a layer or pattern tte cannot express as an int8 graph."""


class _Problem(Exception):
    """One refused node; ``follows`` marks a refusal that an unsupported input layer may cause."""

    def __init__(self, text: str, follows: bool) -> None:
        super().__init__(text)
        self.text = text
        self.follows = follows


_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_RELU_FUNCTIONS = {F.relu: "relu", torch.relu: "relu", F.relu6: "relu6"}
_IDENTITY_MODULES = (nn.Dropout, nn.Identity)
_IDENTITY_FUNCTIONS = (F.dropout,)
_LUT_MODULES = ((nn.Hardswish, "hard_swish"), (nn.Hardsigmoid, "hard_sigmoid"), (nn.Sigmoid, "sigmoid"))
_LUT_FUNCTIONS = {
    F.hardswish: "hard_swish",
    F.hardsigmoid: "hard_sigmoid",
    torch.sigmoid: "sigmoid",
    "sigmoid": "sigmoid",
    "sigmoid_": "sigmoid",
}
_MUL_FUNCTIONS = (operator.mul, operator.imul, torch.mul, "mul", "mul_", "__mul__")

_ACTIVATION = "is not supported yet (the supported activations are ReLU, ReLU6, Hardswish, Hardsigmoid and Sigmoid)"
_CLAMP = "is not supported: write a clamp to [0, 6] as nn.ReLU6 and one to [0, inf) as nn.ReLU"
_ADAPTIVE_MAX_POOL = "is not supported yet (use MaxPool2d with a fixed kernel, or AdaptiveAvgPool2d(1))"
_MODULE_HINTS: tuple[tuple[tuple[type[nn.Module], ...], str], ...] = (
    (
        (nn.SiLU, nn.GELU, nn.Tanh, nn.LeakyReLU, nn.ELU, nn.PReLU),
        _ACTIVATION,
    ),
    ((nn.Hardtanh,), "is supported only with the bounds (0, 6), i.e. as nn.ReLU6"),
    ((nn.AdaptiveMaxPool2d,), _ADAPTIVE_MAX_POOL),
    ((nn.BatchNorm1d,), "is not supported (fold it into the Linear before it)"),
)
_FUNCTION_HINTS: dict[Any, str] = {
    **dict.fromkeys((torch.clamp, torch.clip, F.hardtanh, "clamp", "clamp_", "clip"), _CLAMP),
    **dict.fromkeys((torch.tanh, F.silu, F.gelu, "tanh"), _ACTIVATION),
    **dict.fromkeys((F.adaptive_max_pool2d,), _ADAPTIVE_MAX_POOL),
}


def _module_hint(module: nn.Module) -> str:
    return next((hint for types, hint in _MODULE_HINTS if isinstance(module, types)), "is not supported")


def _function_hint(target: Any) -> str:
    try:
        return _FUNCTION_HINTS.get(target, "is not supported")
    except TypeError:  # an unhashable call target
        return "is not supported"


class _Importer:
    def __init__(self, model: nn.Module, name: str) -> None:
        self.model = model
        self.graph = FloatGraph(name)
        self.names: dict[fx.Node, str] = {}  # fx value -> FloatGraph tensor
        self.producer: dict[str, FloatOp] = {}  # tensor -> the op that writes it
        self.uses: dict[fx.Node, int] = {}
        self.shape_values: set[fx.Node] = set()  # x.size(), x.shape and arithmetic on them (a shuffle's sizes)
        # chunk / split -> (input, its pieces' sections, or a split's piece size)
        self.sections: dict[fx.Node, tuple[str, list[tuple[Any, ...]] | int]] = {}
        self.done: set[fx.Node] = set()  # nodes a recognized pattern (the channel shuffle) already imported
        self.pads: dict[fx.Node, tuple[int, int, int, int]] = {}  # a ZeroPad2d folded into the conv reading it

    def fail(self, node: fx.Node, what: str, *, follows: bool = False) -> _Problem:
        if node.op == "call_module":
            module = self.model.get_submodule(str(node.target))
            where = f"module '{node.target}' ({type(module).__module__}.{type(module).__name__})"
        else:
            where = f"'{node.name}' ({node.op} {_target_name(node.target)})"
        return _Problem(f"{where}: {what}", follows)

    def run(self, traced: fx.GraphModule) -> FloatGraph:
        for node in traced.graph.nodes:
            self.uses[node] = len(node.users)
        placeholders = [n for n in traced.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise UnsupportedModelError(f"the model takes {len(placeholders)} inputs; tte models take one image")
        problems: list[str] = []
        refused: set[fx.Node] = set()
        for node in traced.graph.nodes:
            if node.op == "placeholder":
                self.names[node] = INPUT
                continue
            if node in self.done:
                continue
            if node.op == "output":
                out = node.args[0]
                if not isinstance(out, fx.Node):
                    raise UnsupportedModelError("the model must return one tensor (the logits)")
                self.graph.output = self.names[out]
                continue
            try:
                if node.op == "call_module":
                    self.module(node, self.model.get_submodule(str(node.target)))
                elif node.op in ("call_function", "call_method"):
                    self.function(node)
                else:
                    raise self.fail(node, "reads a parameter or buffer directly")
            except _Problem as problem:
                # a stand-in value, so that the layers after this one are checked too (one report lists all)
                refused.add(node)
                self.names[node] = node.name
                if not (problem.follows and refused.intersection(node.all_input_nodes)):
                    problems.append(problem.text)
        if problems:
            listed = (
                problems[0] if len(problems) == 1 else f"{len(problems)} unsupported layers: " + "; ".join(problems)
            )
            raise UnsupportedModelError(f"{listed} (supported: {SUPPORTED})")
        if not self.graph.ops or self.graph.ops[-1].kind is not Op.LINEAR:
            raise UnsupportedModelError("the model must end in a Linear classifier after pooling and flattening")
        return self.graph

    def arg(self, node: fx.Node, index: int = 0) -> str:
        value = node.args[index] if index < len(node.args) else None
        if not isinstance(value, fx.Node) or value not in self.names:
            raise self.fail(node, f"argument {index} is not a tensor computed by a supported layer", follows=True)
        return self.names[value]

    def emit(self, node: fx.Node, op: FloatOp) -> None:
        self.graph.ops.append(op)
        self.producer[op.output] = op
        self.names[node] = op.output

    def module(self, node: fx.Node, module: nn.Module) -> None:
        path = str(node.target)
        if isinstance(module, nn.Conv2d):
            self.emit(node, _conv(self, node, module, path))
        elif isinstance(module, nn.ZeroPad2d):
            self.zero_pad(node, module.padding)
        elif isinstance(module, nn.BatchNorm2d):
            self.fold_bn(node, module)
        elif isinstance(module, nn.ReLU6) or (
            isinstance(module, nn.Hardtanh) and (module.min_val, module.max_val) == (0.0, 6.0)
        ):
            self.attach_act(node, "relu6")
        elif isinstance(module, nn.ReLU):
            self.attach_act(node, "relu")
        elif isinstance(module, _IDENTITY_MODULES):
            self.names[node] = self.arg(node)
        elif any(isinstance(module, kind) for kind, _ in _LUT_MODULES):
            function = next(f for kind, f in _LUT_MODULES if isinstance(module, kind))
            self.emit(node, FloatOp(Op.LUT, path, (self.arg(node),), path, function=function))
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            self.pool(node, module, path)
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            size = module.output_size
            if size not in (1, (1, 1)):
                raise self.fail(node, f"output size {size} is not global pooling: use AdaptiveAvgPool2d(1)")
            self.emit(node, FloatOp(Op.GLOBAL_AVG_POOL, path, (self.arg(node),), path))
        elif isinstance(module, nn.Flatten):
            if module.start_dim != 1 or module.end_dim != -1:
                raise self.fail(node, "only nn.Flatten() (start_dim=1, end_dim=-1) is supported")
            self.emit(node, FloatOp(Op.RESHAPE, path, (self.arg(node),), path))
        elif isinstance(module, nn.Linear):
            bias = module.bias.detach().double().numpy() if module.bias is not None else np.zeros(module.out_features)
            op = FloatOp(Op.LINEAR, path, (self.arg(node),), path, module.weight.detach().double().numpy(), bias)
            self.emit(node, op)
        else:
            raise self.fail(node, _module_hint(module))

    def function(self, node: fx.Node) -> None:
        target = node.target
        if self.shape_value(node):
            self.shape_values.add(node)
        elif target is operator.getitem:
            self.getitem(node)
        elif target in (torch.cat, torch.concat, "cat"):
            self.cat(node)
        elif target in (torch.chunk, "chunk", torch.split, "split"):
            self.sectioned(node)
        elif target in ("view", "reshape", torch.reshape) and len(self.sizes(node)) == 5:
            self.shuffle(node)
        elif target == "contiguous":
            self.names[node] = self.arg(node)
        elif target in _ADD_FUNCTIONS or target in ("add", "add_", "__add__", "__iadd__"):
            self.add(node)
        elif target in _RELU_FUNCTIONS or target in ("relu", "relu_"):
            self.attach_act(node, _RELU_FUNCTIONS.get(target, "relu"))
        elif target in _IDENTITY_FUNCTIONS:
            self.names[node] = self.arg(node)
        elif target in _LUT_FUNCTIONS:
            self.emit(node, FloatOp(Op.LUT, node.name, (self.arg(node),), node.name, function=_LUT_FUNCTIONS[target]))
        elif target in _MUL_FUNCTIONS:
            self.mul(node)
        elif target in (F.max_pool2d, F.avg_pool2d):
            self.pool(node, None, node.name)
        elif target is F.adaptive_avg_pool2d:
            size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
            if size not in (1, (1, 1)):
                raise self.fail(node, f"output size {size} is not global pooling: use adaptive_avg_pool2d(x, 1)")
            self.emit(node, FloatOp(Op.GLOBAL_AVG_POOL, node.name, (self.arg(node),), node.name))
        elif target in (torch.mean, "mean"):
            self.mean(node)
        elif target in (torch.flatten, "flatten"):
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            if start != 1 or end != -1:
                raise self.fail(node, "only flatten(x, 1) is supported")
            self.emit(node, FloatOp(Op.RESHAPE, node.name, (self.arg(node),), node.name))
        else:
            raise self.fail(node, _function_hint(target))

    def shape_value(self, node: fx.Node) -> bool:
        """``x.size()``, ``x.shape``, an item of one, or integer arithmetic on them."""
        if node.target == "size" or (node.target is getattr and node.args[1:] == ("shape",)):
            return True
        nodes = [a for a in node.args if isinstance(a, fx.Node)]
        return (
            node.target in (operator.getitem, operator.floordiv, operator.mul, operator.add, operator.sub)
            and bool(nodes)
            and all(a in self.shape_values for a in nodes)
        )

    def dim(self, node: fx.Node, index: int, default: Any = 0) -> Any:
        return node.args[index] if len(node.args) > index else node.kwargs.get("dim", default)

    def cat(self, node: fx.Node) -> None:
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        if self.dim(node, 1) != 1:
            raise self.fail(node, "only a concatenation along channels (dim=1) is supported")
        if not isinstance(tensors, (list, tuple)) or len(tensors) < 2:
            raise self.fail(node, "concatenate a list of at least two tensors")
        names = []
        for value in tensors:
            if not isinstance(value, fx.Node) or value not in self.names:
                raise self.fail(node, "an input is not a tensor computed by a supported layer", follows=True)
            names.append(self.names[value])
        left = names[0]
        for k, right in enumerate(names[1:], start=1):  # two inputs per concat, left to right
            name = node.name if k == len(names) - 1 else f"{node.name}.{k}"
            op = FloatOp(Op.CONCAT, name, (left, right), name)
            self.graph.ops.append(op)
            self.producer[name] = op
            left = name
        self.names[node] = left

    def sectioned(self, node: fx.Node) -> None:
        """``chunk`` or ``split`` along channels: its pieces are imported where they are indexed."""
        source = self.arg(node)
        if self.dim(node, 2) != 1:
            raise self.fail(node, f"only a {node.target if isinstance(node.target, str) else node.target.__name__} "
                            "along channels (dim=1) is supported")  # fmt: skip
        spec = (
            node.args[1] if len(node.args) > 1 else node.kwargs.get("chunks", node.kwargs.get("split_size_or_sections"))
        )
        if node.target in (torch.chunk, "chunk"):
            if not isinstance(spec, int) or spec < 1:
                raise self.fail(node, f"chunks {spec!r} must be a positive Python int")
            pieces = [("chunk", spec, i) for i in range(spec)]
        elif isinstance(spec, int) and spec >= 1:
            pieces = spec  # pieces of `spec` channels: their count depends on the map's channels
        elif isinstance(spec, (list, tuple)) and all(isinstance(v, int) and v >= 1 for v in spec):
            bounds = np.cumsum([0, *spec]).tolist()
            pieces = [("range", a, b) for a, b in itertools.pairwise(bounds)]
        else:
            raise self.fail(node, f"split sizes {spec!r} must be a positive int or a list of them")
        self.sections[node] = (source, pieces)

    def getitem(self, node: fx.Node) -> None:
        value, index = node.args
        if value in self.sections:
            if not node.users:  # an unpacked piece nothing reads (a, _ = x.chunk(2, 1)) becomes no op
                return
            source, pieces = self.sections[value]
            if isinstance(pieces, int):  # torch.split(x, size, 1)[i]: channels [i*size, (i+1)*size)
                if not isinstance(index, int) or index < 0:
                    raise self.fail(node, f"index the pieces of a split by size with ints >= 0, not {index!r}")
                section = ("range", index * pieces, (index + 1) * pieces)
            elif isinstance(index, int) and -len(pieces) <= index < len(pieces):
                section = pieces[index]
            else:
                raise self.fail(node, f"piece {index!r} of a chunk or split is not a Python int in range")
            self.emit(node, FloatOp(Op.CHANNEL_SPLIT, node.name, (source,), node.name, section=section))
            return
        source = self.arg(node)
        index = index if isinstance(index, tuple) else (index,)
        rest = [i for i in index[2:] if i is not Ellipsis and i != slice(None)]
        if len(index) < 2 or index[0] != slice(None) or not isinstance(index[1], slice) or rest:
            raise self.fail(node, "only indexing a channel range, x[:, a:b], is supported")
        channels = index[1]
        bounds = (channels.start, channels.stop)
        if channels.step not in (None, 1) or not all(b is None or isinstance(b, int) for b in bounds):
            raise self.fail(node, "a channel range x[:, a:b] needs int bounds and step 1")
        self.emit(node, FloatOp(Op.CHANNEL_SPLIT, node.name, (source,), node.name, section=("range", *bounds)))

    def sizes(self, node: fx.Node) -> tuple[Any, ...]:
        """The target sizes of a ``view`` / ``reshape`` call."""
        sizes = tuple(node.args[1:]) or tuple(node.kwargs.get("shape", ()))
        return tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (list, tuple)) else sizes

    def shuffle(self, node: fx.Node) -> None:
        """``view(N, g, C/g, H, W)`` -> ``transpose(1, 2)`` -> (``contiguous``) -> back to 4-D: the shuffle."""
        groups = self.sizes(node)[1]
        what = "a 5-D view is supported only as a channel shuffle: view(N, g, C // g, H, W), transpose(1, 2), view(N, C, H, W)"
        if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
            raise self.fail(node, f"{what}, with g a Python int (got {groups!r})")
        chain, current = [], node
        steps = [
            lambda n: n.target in ("transpose", torch.transpose) and tuple(n.args[1:]) in ((1, 2), (2, 1)),
            lambda n: n.target == "contiguous",
            lambda n: (
                (n.target in ("view", "reshape", torch.reshape) and len(self.sizes(n)) == 4)
                or (n.target in ("flatten", torch.flatten) and tuple(n.args[1:]) == (1, 2))
            ),
        ]
        for k, step in enumerate(steps):
            users = list(current.users)
            if len(users) != 1 or not step(users[0]):
                if k == 1:  # contiguous() is optional
                    continue
                raise self.fail(node, what)
            current = users[0]
            chain.append(current)
        self.done.update(chain)
        op = FloatOp(Op.CHANNEL_SHUFFLE, current.name, (self.arg(node),), current.name, groups=groups)
        self.graph.ops.append(op)
        self.producer[op.output] = op
        for n in (node, *chain):
            self.names[n] = op.output

    def zero_pad(self, node: fx.Node, padding: Any) -> None:
        """``nn.ZeroPad2d`` (left, right, top, bottom) before a conv: zeros in the input are what the
        conv's own padding adds (a padded tap contributes 0), so it folds into that padding."""
        users = list(node.users)
        reader = (
            self.model.get_submodule(str(users[0].target)) if len(users) == 1 and users[0].op == "call_module" else None
        )
        left, right, top, bottom = (int(v) for v in padding)
        if not isinstance(reader, nn.Conv2d) or min(left, right, top, bottom) < 0:
            raise self.fail(
                node,
                "ZeroPad2d is supported only with non-negative padding, read by one Conv2d (it folds into the conv's padding)",
            )
        self.pads[node] = (top, left, bottom, right)
        self.names[node] = self.arg(node)

    def add(self, node: fx.Node) -> None:
        if len(node.args) != 2 or node.kwargs:
            raise self.fail(node, "only an add of two tensors is supported")
        a, b = self.arg(node, 0), self.arg(node, 1)
        self.emit(node, FloatOp(Op.ADD, node.name, (a, b), node.name))

    def mul(self, node: fx.Node) -> None:
        if len(node.args) != 2 or node.kwargs or not all(isinstance(a, fx.Node) for a in node.args):
            raise self.fail(node, "only a multiply of two tensors is supported (a [N,C,H,W] map by a [N,C,1,1] gate)")
        a, b = self.arg(node, 0), self.arg(node, 1)
        self.emit(node, FloatOp(Op.MUL, node.name, (a, b), node.name))

    def pool(self, node: fx.Node, module: nn.Module | None, name: str) -> None:
        """A max or average pool, from its module or from its functional call's arguments."""
        if module is not None:
            kind = Op.MAX_POOL if isinstance(module, nn.MaxPool2d) else Op.AVG_POOL
            options = {key: getattr(module, key) for key in _POOL_DEFAULTS[kind]}
        else:
            kind = Op.MAX_POOL if node.target is F.max_pool2d else Op.AVG_POOL
            options = dict(_POOL_DEFAULTS[kind])
            options.update(zip(options, node.args[1:], strict=False))
            unknown = set(node.kwargs) - set(options) - {"input"}
            if unknown:
                raise self.fail(node, f"unknown arguments {sorted(unknown)}")
            options.update({k: v for k, v in node.kwargs.items() if k != "input"})
        what = "max_pool2d" if kind is Op.MAX_POOL else "avg_pool2d"
        kernel = _pair(self, node, options["kernel_size"], "kernel size")
        stride = kernel if options["stride"] in (None, ()) else _pair(self, node, options["stride"], "stride")
        ph, pw = _pair(self, node, options["padding"], "padding")
        if options.get("dilation", 1) not in (1, (1, 1)):
            raise self.fail(node, f"a dilated {what} is not supported")
        if options["ceil_mode"]:
            raise self.fail(node, f"{what} with ceil_mode=True is not supported (use ceil_mode=False)")
        if options.get("return_indices"):
            raise self.fail(node, "max_pool2d with return_indices=True is not supported")
        if options.get("divisor_override") is not None:
            raise self.fail(node, "avg_pool2d with divisor_override is not supported")
        if ph > kernel[0] // 2 or pw > kernel[1] // 2:
            raise self.fail(node, f"padding {(ph, pw)} is more than half the kernel {kernel}")
        op = FloatOp(kind, name, (self.arg(node),), name, stride=stride, padding=(ph, pw, ph, pw), kernel=kernel)
        if kind is Op.AVG_POOL:
            op.count_include_pad = bool(options["count_include_pad"])
        self.emit(node, op)

    def mean(self, node: fx.Node) -> None:
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        if not isinstance(dims, (list, tuple)) or sorted(d % 4 for d in dims) != [2, 3]:
            raise self.fail(node, f"a mean over dims {dims} is not global average pooling: use x.mean((2, 3))")
        pooled = f"{node.name}.pool"
        self.graph.ops.append(FloatOp(Op.GLOBAL_AVG_POOL, pooled, (self.arg(node),), pooled))
        if keepdim:
            self.names[node] = pooled
            return
        self.emit(node, FloatOp(Op.RESHAPE, node.name, (pooled,), node.name))

    def fold_bn(self, node: fx.Node, bn: nn.BatchNorm2d) -> None:
        source = self.arg(node)
        conv = self.producer.get(source)
        value = node.args[0]
        if conv is None or conv.kind is not Op.CONV2D or conv.act is not None or self.uses[value] != 1:
            raise self.fail(
                node, "BatchNorm2d must directly follow a Conv2d whose output nothing else reads", follows=True
            )
        if not bn.track_running_stats or bn.running_mean is None:
            raise self.fail(node, "BatchNorm2d without running statistics cannot be folded")
        gamma = bn.weight.detach().double().numpy() if bn.affine else np.ones(bn.num_features)
        beta = bn.bias.detach().double().numpy() if bn.affine else np.zeros(bn.num_features)
        mean = bn.running_mean.detach().double().numpy()
        var = bn.running_var.detach().double().numpy()
        factor = gamma / np.sqrt(var + bn.eps)
        conv.weight = conv.weight * factor[:, None, None, None]
        conv.bias = (conv.bias - mean) * factor + beta
        self.names[node] = source

    def attach_act(self, node: fx.Node, act: str) -> None:
        source = self.arg(node)
        producer = self.producer.get(source)
        value = node.args[0]
        if producer is not None and producer.kind is Op.MAX_POOL:
            self.act_before_max_pool(node, producer, act)
            return
        if (
            producer is None
            or producer.kind not in (Op.CONV2D, Op.LINEAR, Op.ADD, Op.AVG_POOL)
            or producer.act is not None
        ):
            raise self.fail(
                node, "an activation must directly follow a conv (+BN), a linear or a residual add", follows=True
            )
        if self.uses[value] != 1:
            raise self.fail(node, "the activation's input is also read elsewhere, so it cannot be folded")
        producer.act = act
        self.names[node] = source

    def act_before_max_pool(self, node: fx.Node, pool: FloatOp, act: str) -> None:
        """``act(max_pool(x))`` is ``max_pool(act(x))`` (ReLU and ReLU6 are monotonic): the activation
        folds into the max pool's producer, whose output the max pool must be the only reader of."""
        source = pool.inputs[0]
        producer = self.producer.get(source)
        value = next(n for n, t in self.names.items() if t == pool.output)
        readers = [n for n, t in self.names.items() if t == source and n.op != "placeholder"]
        if (
            producer is None
            or producer.kind not in (Op.CONV2D, Op.LINEAR, Op.ADD, Op.AVG_POOL)
            or producer.act is not None
            or self.uses[value] != 1
            or any(self.uses[n] != 1 for n in readers)
        ):
            raise self.fail(
                node, "an activation after a max pool must follow a conv (+BN), linear or add that only the pool reads",
                follows=True,
            )  # fmt: skip
        producer.act = act
        self.names[node] = pool.output


def _conv(importer: _Importer, node: fx.Node, conv: nn.Conv2d, path: str) -> FloatOp:
    kh, kw = _pair(importer, node, conv.kernel_size, "kernel size")
    stride = _pair(importer, node, conv.stride, "stride")
    if _pair(importer, node, conv.dilation, "dilation") != (1, 1):
        raise importer.fail(node, "dilated convolutions are not supported")
    if conv.padding_mode != "zeros":
        raise importer.fail(node, f"padding mode '{conv.padding_mode}' is not supported (only zeros)")
    if conv.padding == "valid":
        padding = (0, 0, 0, 0)
    elif conv.padding == "same":  # stride 1 (PyTorch's rule): the odd pixel of an even kernel goes after
        padding = ((kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2)
    else:
        ph, pw = _pair(importer, node, conv.padding, "padding")
        padding = (ph, pw, ph, pw)
    extra = importer.pads.get(node.args[0] if node.args else None, (0, 0, 0, 0))  # type: ignore[arg-type]
    padding = tuple(a + b for a, b in zip(padding, extra, strict=True))
    weight = conv.weight.detach().double().numpy()
    bias = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(conv.out_channels)
    return FloatOp(Op.CONV2D, path, (importer.arg(node),), path, weight, bias, stride, padding, conv.groups)


# The options of a pooling layer in the order of its functional form's arguments (after the input), with defaults.
_POOL_DEFAULTS = {
    Op.MAX_POOL: {
        "kernel_size": None, "stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "return_indices": False,
    },
    Op.AVG_POOL: {
        "kernel_size": None, "stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True,
        "divisor_override": None,
    },
}  # fmt: skip


def _pair(importer: _Importer, node: fx.Node, value: Any, what: str) -> tuple[int, int]:
    """An int (the same on both axes) or a pair of ints as ``(along H, along W)``; anything else is refused."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair):
        raise importer.fail(node, f"{what} {value!r} is not an int or a pair of ints")
    return int(pair[0]), int(pair[1])


def _target_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", None) or ""
    return f"{module}.{getattr(target, '__name__', repr(target))}".lstrip(".")


def import_fx(model: nn.Module, name: str = "model") -> FloatGraph:
    """Trace ``model`` (in eval mode) and return its BN-folded float graph.

    Raises :class:`UnsupportedModelError` for layers or patterns outside :data:`SUPPORTED`, and
    when ``torch.fx`` cannot trace the model (data-dependent control flow).
    """
    model = model.eval()
    try:
        traced = fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types on untraceable code
        raise UnsupportedModelError(
            f"torch.fx cannot trace {type(model).__name__} ({type(exc).__name__}: {exc}); "
            "remove data-dependent control flow from forward()"
        ) from None
    with torch.no_grad():
        return _Importer(model, name).run(traced)
