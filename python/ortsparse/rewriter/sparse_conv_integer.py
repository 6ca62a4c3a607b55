"""The SparseConvInteger node (contract: docs/ops.md): ConvInteger's exact int32 convolution, with
its int8 weight packed in SparseQConv's quads."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ortsparse.rewriter.conv_window import ConvWindow
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.quad_packing import add_packed_quads
from ortsparse.rewriter.sparse_op import DOMAIN
from ortsparse.rewriter.sparse_qconv import FORMAT, pack_conv_quads

OP_TYPE = "SparseConvInteger"


def sparse_conv_integer_node(
    graph: Graph,
    base: str,
    x: str,
    weight: np.ndarray,
    x_zero_point: str,
    window: ConvWindow,
    output: str,
) -> onnx.NodeProto:
    """A SparseConvInteger node computing conv2d(x - x_zero_point, weight) (int8 [N, C, kH, kW],
    zero point 0) into ``output``; ``x_zero_point`` may be "" (0); ``window``: strides, dilations
    and explicit pads. The packed weight is added as initializers named after ``base``."""
    packed = pack_conv_quads(weight)
    inputs = [
        x,
        *add_packed_quads(graph, base, packed),
    ]
    if x_zero_point:
        inputs.append(x_zero_point)
    n, c, kh, kw = weight.shape
    return helper.make_node(
        OP_TYPE,
        inputs,
        [output],
        name=graph.unique_name(f"{base}_{OP_TYPE}"),
        domain=DOMAIN,
        C=c,
        N=n,
        kernel_shape=[kh, kw],
        format=FORMAT,
        strides=list(window.strides),
        dilations=list(window.dilations),
        pads=list(window.pads),
    )
