"""The SparseMatMulInteger node (contract: docs/ops.md): MatMulInteger's exact int32 product, with
its int8 weight packed in quads."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.quad_packing import add_packed_quads, pack_quads
from ortsparse.rewriter.sparse_op import DOMAIN
from ortsparse.rewriter.sparse_qgemm import FORMAT

OP_TYPE = "SparseMatMulInteger"


def sparse_matmul_integer_node(
    graph: Graph, base: str, x: str, weight: np.ndarray, x_zero_point: str, output: str
) -> onnx.NodeProto:
    """A SparseMatMulInteger node computing (x - x_zero_point) · weight (int8 [K, N], zero point
    0) into ``output``; ``x_zero_point`` may be "" (0). The packed weight is added as initializers
    named after ``base``."""
    packed = pack_quads(weight)
    inputs = [
        x,
        *add_packed_quads(graph, base, packed),
    ]
    if x_zero_point:
        inputs.append(x_zero_point)
    return helper.make_node(
        OP_TYPE,
        inputs,
        [output],
        name=graph.unique_name(f"{base}_{OP_TYPE}"),
        domain=DOMAIN,
        K=packed.k,
        N=packed.n,
        format=FORMAT,
    )
