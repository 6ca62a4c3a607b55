"""The SparseQGemm node (contract: docs/ops.md): an int8 weight packed in quads, an optional int32
bias and output requantized to X's type, or a float bias and output dequantized to float."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.quad_packing import add_packed_quads, pack_quads
from ortsparse.rewriter.sparse_op import DOMAIN

OP_TYPE = "SparseQGemm"
FORMAT = "quad4"


@dataclass(frozen=True)
class QuantizedProduct:
    """Y = requantize((X - x_zero_point) · W + bias) of a quantized MatMul or Gemm, whatever form
    it had; or, where y_zero_point is None, the float Y = ((X - x_zero_point) · W) *
    output_scale + bias."""

    x: str  # uint8 or int8
    weight: np.ndarray  # int8 [K, N], zero point 0
    # float32 [N]: x_scale * w_scale / y_scale, as ORT computes it; x_scale * w_scale for a float Y
    output_scales: np.ndarray
    x_zero_point: int
    y_zero_point: int | None
    output: str
    # int32 [N], in units of x_scale * w_scale[n]; float32 [N] (required) for a float Y
    bias: np.ndarray | None = None


def sparse_qgemm_node(graph: Graph, base: str, product: QuantizedProduct) -> onnx.NodeProto:
    """A SparseQGemm node computing ``product``, its packed weight and scales added as
    initializers named after ``base``."""
    packed = pack_quads(product.weight)
    inputs = [
        product.x,
        *add_packed_quads(graph, base, packed),
        graph.add_initializer(f"{base}.output_scale", product.output_scales),
    ]
    if product.bias is not None:
        inputs.append(graph.add_initializer(f"{base}.bias", product.bias))
    quantized_output = (
        {} if product.y_zero_point is None else {"y_zero_point": product.y_zero_point}
    )
    return helper.make_node(
        OP_TYPE,
        inputs,
        [product.output],
        name=graph.unique_name(f"{base}_{OP_TYPE}"),
        domain=DOMAIN,
        K=packed.k,
        N=packed.n,
        format=FORMAT,
        x_zero_point=product.x_zero_point,
        **quantized_output,
    )
