from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tte_ir import DType, TensorSpec, VerifyError, reference, verify

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
