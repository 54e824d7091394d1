"""Row-wise int8 quantisation (grader/quantize.py) on a small graph, against numpy in fp32."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from grader.encoding import quantize


@pytest.fixture
def graph(tmp_path, monkeypatch):
    """ids -> Gather(table) -> two MatMuls sharing one weight; fp32 file, int8 file, and the weights."""
    monkeypatch.setattr(quantize, "TABLE_ROWS", 16)
    rng = np.random.default_rng(0)
    table = rng.normal(size=(50, 32)).astype(np.float32)
    table[1] *= 1000  # a token with huge activations
    weight = rng.normal(size=(32, 24)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", "ids"], ["h"], axis=0),
             helper.make_node("MatMul", ["h", "w"], ["y1"]),
             helper.make_node("MatMul", ["h", "w"], ["y2"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [None, None])],
                          [helper.make_tensor_value_info(y, TensorProto.FLOAT, [None, None, 24]) for y in ("y1", "y2")],
                          [numpy_helper.from_array(table, "table"), numpy_helper.from_array(weight, "w")])
    source, target = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(source))
    assert quantize.quantize_rows(source, target) == 2  # the shared weight is stored once
    return target, table, weight


def _run(path, ids):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"ids": ids})


def test_int8_graph_matches_fp32_and_stores_no_fp32_weights(graph):
    path, table, weight = graph
    ids = np.array([[8, 7, 3, 49], [0, 2, 2, 5]], dtype=np.int64)
    y1, y2 = _run(path, ids)
    expected = table[ids] @ weight
    assert np.array_equal(y1, y2)
    assert np.abs(y1 - expected).max() < 0.02 * np.abs(expected).max()
    floats = [i.name for i in onnx.load(str(path)).graph.initializer
              if i.data_type == TensorProto.FLOAT and np.prod(i.dims) > 64]
    assert not floats, floats


def test_a_row_is_quantised_on_its_own(graph):
    """A neighbour row with activations a thousand times larger leaves a row's output unchanged."""
    path, table, weight = graph
    alone = _run(path, np.array([[4, 9]], dtype=np.int64))[0]
    together = _run(path, np.array([[4, 9], [1, 1]], dtype=np.int64))[0]
    assert np.array_equal(alone[0], together[0])
    assert np.abs(together[1] - table[[1, 1]] @ weight).max() < 0.02 * np.abs(table[1] @ weight).max()


def test_activations_round_to_the_nearest_level(graph):
    """The int8 graph computes exactly the integer arithmetic of the scheme in the module docstring.

    Activations are rounded to the nearest of 255 levels (a cast that truncated without the half
    shift would bias every product downward), weights to 63 levels per output column.
    """
    path, table, weight = graph
    ids = np.array([[8, 7, 3, 49], [0, 2, 2, 5]], dtype=np.int64)
    y1, _ = _run(path, ids)
    row_scale = (np.abs(table).max(axis=1, keepdims=True) / np.float32(127)).astype(np.float32)
    table_q = np.clip(np.round(table / row_scale), -127, 127).astype(np.int8)
    x = table_q[ids].astype(np.float32) * row_scale[ids]
    x_range = np.maximum(np.abs(x).max(axis=-1, keepdims=True), np.float32(1e-12))
    q = (x * (np.float32(127) / x_range) + np.float32(128.5)).astype(np.uint8).astype(np.int32)
    column_scale = (np.abs(weight).max(axis=0) / np.float32(quantize.WEIGHT_LEVELS)).astype(np.float32)
    weight_q = np.clip(np.round(weight / column_scale), -quantize.WEIGHT_LEVELS, quantize.WEIGHT_LEVELS)
    exact = ((q - 128) @ weight_q.astype(np.int32)).astype(np.float32) * column_scale
    expected = exact * (x_range * np.float32(1 / 127))
    assert np.allclose(y1, expected, rtol=1e-5, atol=1e-6)
    # Rounding down instead (truncating x / scale + 128) gives measurably different products.
    floor_q = (x * (np.float32(127) / x_range) + np.float32(128)).astype(np.uint8).astype(np.int32)
    biased = ((floor_q - 128) @ weight_q.astype(np.int32)).astype(np.float32) * column_scale
    assert not np.allclose(y1, biased * (x_range * np.float32(1 / 127)), rtol=1e-5, atol=1e-6)
