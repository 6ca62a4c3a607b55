"""Reading back the prunable weights of a built model, for reports and tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from .pruning import conv_matrix_view


def _gemm_transposes_b(node: onnx.NodeProto) -> bool:
    return any(attr.name == "transB" and attr.i == 1 for attr in node.attribute)


def linear_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Constant B operands of MatMul/Gemm nodes by initializer name, as [K, N] (transB undone)."""
    initializers = {init.name: init for init in model.graph.initializer}
    weights = {}
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or node.input[1] not in initializers:
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]])
        if node.op_type == "Gemm" and _gemm_transposes_b(node):
            weight = weight.T
        weights[node.input[1]] = weight
    return weights


def conv_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Constant weights of Conv nodes by initializer name, as their [K, N] matrix views."""
    initializers = {init.name: init for init in model.graph.initializer}
    return {
        node.input[1]: conv_matrix_view(numpy_helper.to_array(initializers[node.input[1]]))
        for node in model.graph.node
        if node.op_type == "Conv" and node.input[1] in initializers
    }


def overall_sparsity(model: onnx.ModelProto) -> float:
    """Fraction of zeros over all MatMul/Gemm/Conv weights together (dense ones included)."""
    weights = [*linear_weights(model).values(), *conv_weights(model).values()]
    zeros = sum(int(np.count_nonzero(w == 0)) for w in weights)
    return zeros / sum(w.size for w in weights)
