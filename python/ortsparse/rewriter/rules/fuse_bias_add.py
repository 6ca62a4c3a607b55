"""SparseGemm -> Add(constant broadcastable as [N], either operand order)  ->  SparseGemm(bias).

Only before an activation: the epilogue adds the bias to the product, then activates. A bias the
SparseGemm already has (from Gemm's C) is summed with the new one.
"""

from __future__ import annotations

import numpy as np

from ortsparse.rewriter.fusion import EpilogueRule, Fusion, other_operand, sole_consumer_of_type
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.sparse_gemm import NO_ACTIVATION, SparseGemm, as_bias


class FuseBiasAdd(EpilogueRule):
    label = "Add"

    def match(self, graph: Graph, gemm: SparseGemm) -> Fusion | None:
        if gemm.activation.name != NO_ACTIVATION:
            return None
        add = sole_consumer_of_type(graph, gemm, "Add")
        shape = graph.shape(gemm.output)
        if add is None or shape is None:
            return None
        other = other_operand(add, gemm.output)
        value = graph.constant(other) if other else None
        bias = as_bias(value, gemm.n, max_rank=len(shape)) if value is not None else None
        if bias is None:
            return None
        if gemm.bias:
            bias = bias + graph.constant(gemm.bias)
        bias_name = graph.add_initializer(f"{gemm.name}.bias", bias.astype(np.float32))
        return Fusion((add,), gemm.replace(bias=bias_name, output=add.output[0]))
