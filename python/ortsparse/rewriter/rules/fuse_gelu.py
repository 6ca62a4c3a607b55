"""SparseGemm -> Gelu-20  ->  SparseGemm(activation=gelu), or gelu_tanh for approximate="tanh"."""

from __future__ import annotations

from onnx import helper

from ortsparse.rewriter.fusion import ActivationRule, sole_consumer_of_type
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.sparse_gemm import Activation, SparseGemm

_ACTIVATION_FOR_APPROXIMATION = {"none": "gelu", "tanh": "gelu_tanh"}


class FuseGelu(ActivationRule):
    label = "Gelu"

    def find_activation(self, graph: Graph, gemm: SparseGemm):
        gelu = sole_consumer_of_type(graph, gemm, "Gelu")
        if gelu is None or list(gelu.input) != [gemm.output]:
            return None
        attributes = {
            attribute.name: helper.get_attribute_value(attribute) for attribute in gelu.attribute
        }
        approximation = attributes.get("approximate", b"none").decode()
        if approximation not in _ACTIVATION_FOR_APPROXIMATION:
            return None
        return [gelu], Activation(_ACTIVATION_FOR_APPROXIMATION[approximation])
