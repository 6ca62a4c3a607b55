"""SparseConv -> BatchNormalization (inference: constant parameters)  ->  SparseConv with the
normalization folded into its packed weight and its bias.

    BN(y) = (y - mean) * s + B,   s = scale / sqrt(var + epsilon), one value per channel n
    W'[:, n] = W[:, n] * s[n],    b'[n] = (b[n] - mean[n]) * s[n] + B[n]

Only while the epilogue is still affine in the product (no activation or residual fused yet),
which holds for the BatchNormalization right after a Conv. The packed values are scaled where they
are stored, so the weight keeps its sparsity pattern and the cost model's verdict stands.
"""

from __future__ import annotations

import numpy as np
import onnx

from ortsparse.rewriter.fusion import EpilogueRule, Fusion, packed_weight, sole_consumer_of_type
from ortsparse.rewriter.graph import Graph, attribute_values
from ortsparse.rewriter.packing import scale_output_channels
from ortsparse.rewriter.sparse_conv import SparseConv
from ortsparse.rewriter.sparse_op import NO_ACTIVATION, SparseOp

_DEFAULT_EPSILON = 1e-5  # ONNX BatchNormalization's


class FoldBatchNorm(EpilogueRule):
    label = "BatchNormalization"

    def match(self, graph: Graph, op: SparseOp) -> Fusion | None:
        if not isinstance(op, SparseConv) or op.activation.name != NO_ACTIVATION or op.residual:
            return None
        if not op.channels_on_axis():
            return None
        batch_norm = sole_consumer_of_type(graph, op, "BatchNormalization")
        if batch_norm is None:
            return None
        found = batch_norm_factors(graph, batch_norm, op.output, op.n)
        if found is None:
            return None
        factors, mean, shift = found
        bias = graph.constant(op.bias) if op.bias else 0.0
        folded_bias = (bias - mean) * factors + shift

        folded_values = scale_output_channels(packed_weight(graph, op), factors).values
        fused = op.replace(
            weight_values=graph.add_initializer(f"{op.name}.weight_values", folded_values),
            bias=graph.add_initializer(f"{op.name}.bias", folded_bias.astype(np.float32)),
            output=batch_norm.output[0],
        )
        return Fusion((batch_norm,), fused)


def batch_norm_factors(
    graph: Graph, batch_norm: onnx.NodeProto, x: str, channels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(s, mean, B) in float64 of ``batch_norm`` normalizing ``x`` of ``channels`` channels with
    constant parameters in its inference form; None otherwise."""
    if not _is_inference_form(batch_norm, x):
        return None
    parameters = [graph.constant(name) for name in batch_norm.input[1:]]
    if not all(_is_channel_vector(value, channels) for value in parameters):
        return None
    scale, shift, mean, variance = (value.astype(np.float64) for value in parameters)
    epsilon = attribute_values(batch_norm).get("epsilon", _DEFAULT_EPSILON)
    return scale / np.sqrt(variance + epsilon), mean, shift


def _is_inference_form(batch_norm: onnx.NodeProto, x: str) -> bool:
    """One output (training_mode=1 and the training forms of older opsets add the running and
    saved statistics) and normalizing ``x`` per channel (opsets 7-8 could normalize per element
    with spatial=0)."""
    attributes = attribute_values(batch_norm)
    return (
        len(batch_norm.input) == 5
        and batch_norm.input[0] == x
        and [output for output in batch_norm.output if output] == [batch_norm.output[0]]
        and attributes.get("spatial", 1) == 1
    )


def _is_channel_vector(value: np.ndarray | None, n: int) -> bool:
    return value is not None and value.shape == (n,) and np.issubdtype(value.dtype, np.floating)
