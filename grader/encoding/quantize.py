"""Dynamic int8 quantisation of an exported encoder, with a scale for every token row.

ONNX Runtime's ``quantize_dynamic`` scales a call's activations by one value for the
whole call, so a text's vectors shift with its batch neighbours: a long answer with
one large activation coarsens every other text's grid. :func:`quantize_rows` instead
rewrites each multiplication by a weight matrix so that every row of its input (one
token of one text) is quantised on its own:

    scale = max|x_row| / 127                 ReduceMax over the last axis
    q     = uint8(x / scale + 128.5)         symmetric, zero point 128; the cast truncates,
                                             so this rounds to nearest without a Round pass
    y     = MatMulIntegerToFloat(q, W8, 1, w_scale, 128) * scale

Weights are int8 (7 bits used, see ``WEIGHT_LEVELS``), symmetric per output column. A token's vectors then depend on its
own text only, so int8 texts can share a padded batch like fp32 ones (the speed of
short answers depends on it), and rounding is finer than one scale for a whole batch:
on SAF-en answers the sentence vectors' cosine to fp32 is 0.996 on average, against
0.991 with ``quantize_dynamic`` (``bench/int8_encoder.py``).

Matrix multiplications between two activations (attention scores) stay fp32, as
``quantize_dynamic`` leaves them. Large lookup tables (the word embeddings, three quarters
of MiniLM's weights) are stored int8 with one scale per row and dequantised per looked-up
token, which keeps the file and the resident memory small.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCHEME = "rows-symmetric-u8-halfup/cols-symmetric-s7/table-rows-s8"  # part of the ONNX cache key
# Matrix weights use 7 bits (-63..63). x86 CPUs without VNNI (AVX2) add pairs of u8 x s8
# products in int16, which saturates above 32767: 2 * 255 * 127 does, 2 * 255 * 63 does not.
# So results are exact integer arithmetic, the same on every CPU (ORT's reduce_range).
WEIGHT_LEVELS = 63
TABLE_ROWS = 4096  # a Gather over a table with at least this many rows gets an int8 table
_CONSTANTS = {
    "rowq_127": (127.0, np.float32),
    # x / scale lies in [-127, 127]; shifted by 128.5 it lies in [1.5, 255.5], where a cast to
    # uint8 truncates, so it yields round-half-up of x / scale + 128. One pass over the
    # activations fewer than Round then Cast: 3-4% of the int8 encoder's time.
    "rowq_shift": (128.5, np.float32),
    "rowq_tiny": (1e-12, np.float32),  # an all-zero row gets this scale instead of a division by zero
    "rowq_inv127": (1.0 / 127.0, np.float32),
    "rowq_one": (1.0, np.float32),
    "rowq_zero_point": (128, np.uint8),
}


def quantize_rows(source: Path, path: Path) -> int:
    """Write the int8 form of the fp32 ONNX graph ``source`` to ``path``; returns the weights quantised."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    weights = {i.name: i for i in graph.initializer if len(i.dims) == 2 and i.data_type == TensorProto.FLOAT}
    added = [numpy_helper.from_array(np.array(v, dtype), name) for name, (v, dtype) in _CONSTANTS.items()]
    quantised_inputs: dict[str, str] = {}  # activation -> prefix of its quantised form (Q, K and V share one)
    replaced: set[str] = set()  # fp32 weights some node no longer reads
    done: set[str] = set()  # int8 forms already added
    nodes = []
    for node in graph.node:
        if node.op_type == "Gather" and node.input[0] in weights and _axis(node) == 0 \
                and weights[node.input[0]].dims[0] >= TABLE_ROWS:
            name, out = node.input[0], node.output[0]
            if f"{name}_rows" not in done:  # a table looked up twice is stored once
                table = numpy_helper.to_array(weights[name]).astype(np.float32)
                row_scale = np.abs(table).max(axis=1, keepdims=True) / 127.0
                row_scale[row_scale == 0] = 1.0
                added += [numpy_helper.from_array(np.clip(np.round(table / row_scale), -127, 127).astype(np.int8),
                                                  f"{name}_rows_int8"),
                          numpy_helper.from_array(row_scale.astype(np.float32), f"{name}_rows_scale")]
                done.add(f"{name}_rows")
            replaced.add(name)
            nodes += [
                helper.make_node("Gather", [f"{name}_rows_int8", node.input[1]], [f"{out}_int8"], axis=0),
                helper.make_node("Cast", [f"{out}_int8"], [f"{out}_float"], to=TensorProto.FLOAT),
                helper.make_node("Gather", [f"{name}_rows_scale", node.input[1]], [f"{out}_scale"], axis=0),
                helper.make_node("Mul", [f"{out}_float", f"{out}_scale"], [out]),
            ]
            continue
        if node.op_type != "MatMul" or node.input[1] not in weights:
            nodes.append(node)
            continue
        x, name = node.input
        if name not in done:  # a matrix shared by several multiplications is stored once
            matrix = numpy_helper.to_array(weights[name]).astype(np.float32)  # (in, out)
            column_scale = np.abs(matrix).max(axis=0) / WEIGHT_LEVELS
            column_scale[column_scale == 0] = 1.0
            matrix_q = np.clip(np.round(matrix / column_scale), -WEIGHT_LEVELS, WEIGHT_LEVELS).astype(np.int8)
            added += [numpy_helper.from_array(matrix_q, f"{name}_int8"),
                      numpy_helper.from_array(column_scale.astype(np.float32), f"{name}_int8_scale")]
            done.add(name)
        replaced.add(name)
        if x not in quantised_inputs:
            p = quantised_inputs[x] = f"{x}_rowq"
            nodes += [
                helper.make_node("Abs", [x], [f"{p}_abs"]),
                helper.make_node("ReduceMax", [f"{p}_abs"], [f"{p}_max"], axes=[-1], keepdims=1),
                helper.make_node("Max", [f"{p}_max", "rowq_tiny"], [f"{p}_range"]),
                helper.make_node("Mul", [f"{p}_range", "rowq_inv127"], [f"{p}_scale"]),
                helper.make_node("Div", ["rowq_127", f"{p}_range"], [f"{p}_inverse"]),
                helper.make_node("Mul", [x, f"{p}_inverse"], [f"{p}_scaled"]),
                helper.make_node("Add", [f"{p}_scaled", "rowq_shift"], [f"{p}_shifted"]),
                helper.make_node("Cast", [f"{p}_shifted"], [f"{p}_q"], to=TensorProto.UINT8),
            ]
        p = quantised_inputs[x]
        out = node.output[0]
        nodes += [
            helper.make_node("MatMulIntegerToFloat", [f"{p}_q", f"{name}_int8", "rowq_one", f"{name}_int8_scale",
                                                      "rowq_zero_point"], [f"{out}_unscaled"],
                             domain="com.microsoft", name=f"{node.name or out}_int8"),
            helper.make_node("Mul", [f"{out}_unscaled", f"{p}_scale"], [out]),
        ]
    still_used = {i for n in nodes for i in n.input}
    kept = [i for i in graph.initializer if i.name not in replaced or i.name in still_used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + added)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return len(done)


def _axis(node) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 0)
