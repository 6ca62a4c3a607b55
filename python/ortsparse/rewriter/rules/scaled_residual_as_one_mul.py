"""x + x * s, s a smaller tensor that broadcasts over x  ->  x * (1 + s), the sum taken on s.

A squeeze-excite with a residual (PP-OCRv4 detector's neck: x plus x scaled by each channel's
gate) writes it as a Mul over the whole of x and an Add over it again; the one Mul reads x once
and writes once, and 1 + s costs a pass over the gates alone. x's elements round once instead
of twice, within an ulp of each other. The Mul's output must have no other reader; s must not
grow x's shape (every dim of s is 1 or x's own) and be smaller.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from ortsparse.rewriter.fusion import OrtNodeRule, other_operand
from ortsparse.rewriter.graph import Graph, is_default_domain


class ScaledResidualAsOneMul(OrtNodeRule):
    label = "x + x * s as x * (1 + s)"

    def rewrite(self, graph: Graph, node: onnx.NodeProto) -> None:
        found = _scaled_residual(graph, node)
        if found is None:
            return
        mul, x, scale = found
        output = node.output[0]
        one = graph.add_initializer(f"{output}_one", np.array(1.0, np.float32))
        gain = graph.unique_name(f"{output}_gain")
        graph.replace(
            [mul, node],
            [
                helper.make_node("Add", [scale, one], [gain]),
                helper.make_node("Mul", [x, gain], [output]),
            ],
        )


def _scaled_residual(graph: Graph, add: onnx.NodeProto) -> tuple[onnx.NodeProto, str, str] | None:
    """(the Mul, x, s) where ``add`` computes x + x * s as the module says; None otherwise."""
    if add.op_type != "Add" or not is_default_domain(add) or len(add.input) != 2:
        return None
    for product in add.input:
        mul = graph.producer(product)
        x = other_operand(add, product)
        if mul is None or x is None or mul.op_type != "Mul" or not is_default_domain(mul):
            continue
        scale = other_operand(mul, x)
        if scale is None or graph.sole_consumer(product) is not add:
            continue
        if _broadcasts_within(graph, scale, x):
            return mul, x, scale
    return None


def _broadcasts_within(graph: Graph, scale: str, x: str) -> bool:
    """Whether float tensors ``scale`` and ``x`` have known shapes, ``scale`` broadcasting to
    ``x``'s without growing it, and with fewer elements."""
    scale_shape, x_shape = graph.shape(scale), graph.shape(x)
    if scale_shape is None or x_shape is None or len(scale_shape) > len(x_shape):
        return False
    if any(graph.elem_type(name) != TensorProto.FLOAT for name in (scale, x)):
        return False
    padded = (1,) * (len(x_shape) - len(scale_shape)) + tuple(scale_shape)
    if not all(dim == 1 or (dim is not None and dim == own) for dim, own in zip(padded, x_shape)):
        return False
    # Fewer elements: a static dim of x over which s broadcasts.
    return any(dim == 1 and isinstance(own, int) and own > 1 for dim, own in zip(padded, x_shape))
