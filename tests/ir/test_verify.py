from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tte_ir import OP_TABLE, DType, Scheme, TensorSpec, VerifyError, compile_training, reference, verify
from tte_ir.ops import ATTR_TYPES

from .helpers import tiny_residual_graph


def test_tiny_graph_verifies_and_runs():
    graph = tiny_residual_graph().build()
    x = np.random.default_rng(0).integers(-128, 128, (1, 2, 4, 4)).astype(np.int8)
    values = reference.run_forward(graph, x, return_all=True)
    assert values["logits"].shape == (1, 3)
    assert set(values) == set(graph.tensors)


def _with_tensor(graph, name, **changes):
    tensors = dict(graph.tensors)
    tensors[name] = dataclasses.replace(tensors[name], **changes)
    return graph.replace(tensors=tensors)


def test_shape_mismatch_names_node_and_tensor():
    graph = _with_tensor(tiny_residual_graph().build(), "c.y", shape=(1, 2, 3, 4))
    with pytest.raises(VerifyError, match=r"node 'c' \(conv2d\): output 'y' tensor 'c.y' is declared \[1, 2, 3, 4\]"):
        verify(graph)


def test_dtype_mismatch_names_node_and_tensor():
    graph = _with_tensor(tiny_residual_graph().build(), "add.y", dtype=DType.INT32, quant=None)
    with pytest.raises(VerifyError, match=r"node 'add' \(add\): output 'y' tensor 'add.y' is declared int32"):
        verify(graph)


def test_dangling_reference():
    graph = tiny_residual_graph().build()
    nodes = list(graph.nodes)
    nodes[1] = dataclasses.replace(nodes[1], inputs=("x", "ghost"))
    with pytest.raises(VerifyError, match=r"node 'add' \(add\): tensor 'ghost' is not declared"):
        verify(graph.replace(nodes=tuple(nodes)))


def test_dangling_declared_tensor():
    graph = tiny_residual_graph().build()
    tensors = dict(graph.tensors)
    tensors["orphan"] = TensorSpec("orphan", (1,), DType.FLOAT32)
    with pytest.raises(VerifyError, match="'orphan' is declared but never used"):
        verify(graph.replace(tensors=tensors))


def test_read_before_write():
    graph = tiny_residual_graph().build()
    nodes = list(graph.nodes)
    nodes[0], nodes[1] = nodes[1], nodes[0]
    with pytest.raises(VerifyError, match="input 'b' tensor 'c.y' is read before it is written"):
        verify(graph.replace(nodes=tuple(nodes)))


def test_weight_channel_mismatch():
    builder = tiny_residual_graph()
    graph = builder.build()
    consts = dict(graph.constants)
    consts["c.w"] = np.zeros((2, 1, 3, 3), np.int8)
    graph = _with_tensor(graph.replace(constants=consts), "c.w", shape=(2, 1, 3, 3))
    with pytest.raises(VerifyError, match=r"node 'c' \(conv2d\): input 'w' tensor 'c.w' has shape \[2, 1, 3, 3\]"):
        verify(graph)


def test_bad_zero_point_and_scale():
    graph = tiny_residual_graph().build()
    bad = _with_tensor(graph, "c.y", quant=dataclasses.replace(graph.tensors["c.y"].quant, zero_point=200))
    with pytest.raises(VerifyError, match="zero point 200"):
        verify(bad)
    bad = _with_tensor(graph, "c.y", quant=dataclasses.replace(graph.tensors["c.y"].quant, scale=(0.0,)))
    with pytest.raises(VerifyError, match="not finite and positive"):
        verify(bad)


def test_unknown_attribute():
    graph = tiny_residual_graph().build()
    nodes = list(graph.nodes)
    nodes[0] = dataclasses.replace(nodes[0], attrs={"dilation": 2})
    with pytest.raises(VerifyError, match="unknown attribute 'dilation'"):
        verify(graph.replace(nodes=tuple(nodes)))


def test_every_attribute_of_every_op_has_a_type():
    """verify() checks each attribute against ATTR_TYPES: a new attribute needs its type there too."""
    for op, row in OP_TABLE.items():
        assert set(row.defaults) | set(row.required) <= set(ATTR_TYPES[op]), op


def _with_attrs(graph, index, **attrs):
    nodes = list(graph.nodes)
    nodes[index] = dataclasses.replace(nodes[index], attrs={**nodes[index].attrs, **attrs})
    return graph.replace(nodes=tuple(nodes))


@pytest.mark.parametrize(
    ("index", "attrs", "pattern"),
    [
        (0, {"padding": 1.0013}, r"node 'c' \(conv2d\): attribute 'padding' is 1.0013: it must be an integer"),
        (0, {"stride": ""}, "attribute 'stride' is '': it must be an integer"),
        (0, {"groups": True}, "attribute 'groups' is True: it must be an integer"),
        (0, {"act_min": -129}, r"attribute 'act_min' is -129: it must be an integer in \[-128, 127\]"),
        (0, {"save_mask": 1}, "attribute 'save_mask' is 1: it must be true or false"),
        (0, {"channels": [0, "1"]}, "attribute 'channels' is \\[0, '1'\\]: it must be a list of integers"),
        (0, {"tile": {"group": 0, "axis": "rows", "band": 1.5, "tile": 1}}, "attribute 'tile' is .*: it must be"),
        (0, {"tile": {"group": 0}}, "attribute 'tile' is .*: it must be {group, axis, band, tile}"),
        (3, {"shape": [1, 2.0]}, r"node 'flat' \(reshape\): attribute 'shape' is \[1, 2.0\]"),
    ],
)
def test_attribute_types_and_ranges(index, attrs, pattern):
    with pytest.raises(VerifyError, match=pattern):
        verify(_with_attrs(tiny_residual_graph().build(), index, **attrs))


def test_non_finite_float_constant_is_refused():
    from tests.compiler.nets import residual_net

    graph = residual_net(head="fp32")
    weights = np.array(graph.constants["head.w"])
    weights[1, 2] = np.inf
    with pytest.raises(VerifyError, match="constant 'head.w' holds NaN or infinite values"):
        verify(graph.replace(constants={**graph.constants, "head.w": weights}))


def test_shapes_are_positive_and_bounded():
    with pytest.raises(VerifyError, match=r"tensor 'c.y' has shape \[1, 2, 0, 4\]: expected 1 to 8 sizes >= 1"):
        verify(_with_tensor(tiny_residual_graph().build(), "c.y", shape=(1, 2, 0, 4)))
    with pytest.raises(VerifyError, match="at most 268435456 elements"):
        verify(_with_tensor(tiny_residual_graph().build(), "c.y", shape=(1, 2, 2**14, 2**14)))


@pytest.fixture(scope="module")
def training_graph():
    from tests.compiler.nets import residual_net

    return compile_training(residual_net(), Scheme(n_bias=2, head="fp32"))


def _with_training(graph, edit):
    info = json.loads(json.dumps(graph.metadata["training"]))
    edit(info)
    return graph.replace(metadata={**graph.metadata, "training": info})


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda i: i["state"].__setitem__("dw2.bb", i["state"].pop("dw2.b")), "state names 'dw2.bb', which is not"),
        (lambda i: i["state"].__setitem__("dw2.b", "dw2.b.nxt"), "the next value of 'dw2.b' is 'dw2.b.nxt'"),
        (lambda i: i["state"].__setitem__("dw2.b", "head.b.next"), "'head.b.next' does not have the shape"),
        (lambda i: i.__setitem__("state", ["dw2.b"]), "'state' must map each trained parameter"),
        (lambda i: i.__setitem__("logits", "logit"), "'logits' is 'logit', not the name of a tensor"),
        (lambda i: i.__setitem__("label", "input"), "label 'input' must be int32"),
        (lambda i: i.__delitem__("loss"), "'loss' is None"),
        (lambda i: i["scheme"].__setitem__("lr", float("nan")), r"scheme 'lr' is nan: it must be a finite number"),
        (lambda i: i["scheme"].__setitem__("head_lr", 3.4e38), r"scheme 'head_lr' is 3.4e\+38: .* in \[0, 1000\]"),
        (lambda i: i["scheme"].__setitem__("lr", -0.1), "scheme 'lr' is -0.1"),
        (lambda i: i["scheme"].__setitem__("lr", True), "scheme 'lr' is True"),
        (lambda i: i["scheme"].__setitem__("seed", 1e300), r"scheme 'seed' is 1e\+300: it must be an integer"),
        (lambda i: i["scheme"].__setitem__("seed", 2**32), r"scheme 'seed' is 4294967296"),
        (lambda i: i["scheme"].__setitem__("seed", -1), r"scheme 'seed' is -1"),
        (lambda i: i.__setitem__("scheme", None), "'scheme' must be the scheme's JSON object"),
    ],
)
def test_training_record_is_checked(training_graph, edit, pattern):
    verify(training_graph)
    with pytest.raises(VerifyError, match=r"graph 'resnet-tiny.train': training record: " + pattern):
        verify(_with_training(training_graph, edit))


def test_forward_graph_with_another_training_record_verifies():
    """tte train's own record on a forward graph is not a compiled training record."""
    graph = tiny_residual_graph().build()
    verify(graph.replace(metadata={"training": {"qas": True, "epochs": 3}}))
