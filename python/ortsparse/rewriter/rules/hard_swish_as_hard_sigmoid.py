"""x * Clip(x + 3, 0, 6) / 6 that no ortsparse op took  ->  x * HardSigmoid(x; 1/6, 1/2).

PaddlePaddle's exporter writes hard-swish in four nodes, which fuse_hard_swish_clip fuses into a
SparseConv; where one stays in ORT's part of the graph (after a depthwise Conv whose output a
squeeze-excite reads too, as in PP-OCR's blocks) ORT runs four elementwise passes where two do
the same (docs/performance.md has what PP-OCR's models gained). HardSigmoid exists from opset 6;
ONNX's HardSwish only from 14, and it measured no faster. The patterns and constants are
fuse_hard_swish_clip's; every result between x and the last node must have no other reader.
"""

from __future__ import annotations

import onnx
from onnx import helper

from ortsparse.rewriter.fusion import OrtNodeRule
from ortsparse.rewriter.graph import Graph, is_default_domain
from ortsparse.rewriter.pattern import match_node
from ortsparse.rewriter.rules.fuse_hard_swish_clip import FuseHardSwishClip

# Rank bound for the first match, which finds x; the second checks the constants against x's.
_ANY_RANK = 8


class HardSwishAsHardSigmoid(OrtNodeRule):
    label = "x * HardSigmoid(x)"

    def rewrite(self, graph: Graph, node: onnx.NodeProto) -> None:
        found = _hard_swish_rooted_at(graph, node)
        if found is None:
            return
        nodes, x = found
        output = nodes[-1].output[0]
        gate = graph.unique_name(f"{output}_gate")
        graph.replace(
            nodes,
            [
                helper.make_node("HardSigmoid", [x], [gate], alpha=1.0 / 6.0, beta=0.5),
                helper.make_node("Mul", [x, gate], [output]),
            ],
        )


def _hard_swish_rooted_at(
    graph: Graph, root: onnx.NodeProto
) -> tuple[list[onnx.NodeProto], str] | None:
    """The nodes (root last) of a hard-swish that ``root`` ends, and its x; None otherwise."""
    if not is_default_domain(root):
        return None
    for pattern in FuseHardSwishClip.patterns:
        if root.op_type != pattern.op_type:
            continue
        match = match_node(graph, pattern, root, {}, max_rank=_ANY_RANK)
        if match is None:
            continue
        x = match.bindings["x"]
        shape = graph.shape(x)
        if shape is None or match_node(graph, pattern, root, {"x": x}, len(shape)) is None:
            continue
        nodes = list(match.nodes)
        inside = [output for node in nodes[:-1] for output in node.output]
        if all(graph.used_only_by(name, nodes) for name in inside):
            return nodes, x
    return None
