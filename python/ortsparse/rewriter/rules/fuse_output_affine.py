"""SparseGemm/SparseConv with an activation -> Mul or Add (constant that broadcasts along the
channels)  ->  same op with an output affine (docs/ops.md: output_scale, output_shift).

    act(X W + b) * s + t

No weight can take a factor or a shift that comes after the activation, so the op applies it in
its output stage instead of ORT's two passes over the whole output: PaddlePaddle's PP-LCNetV3
(PP-OCRv4's detector and recognizer) ends every activation with a learnable scale and shift. The
factors broadcast as FuseBiasAdd's do, either operand order; a Mul scales the affine the op has
so far, an Add shifts it. Only before any residual (a residual added after the activation would
be scaled too) and on NCHW or [..., N] outputs in one piece. Before an activation the affine
folds into the weights and bias instead (FoldChannelScale, FuseBiasAdd).
"""

from __future__ import annotations

from ortsparse.rewriter.fusion import EpilogueRule, Fusion, channel_constant
from ortsparse.rewriter.graph import Graph, is_default_domain
from ortsparse.rewriter.sparse_op import NO_ACTIVATION, OutputAffine, SparseOp


class FuseOutputAffine(EpilogueRule):
    label = "Mul/Add after the activation"

    def match(self, graph: Graph, op: SparseOp) -> Fusion | None:
        if op.activation.name == NO_ACTIVATION or op.residual or not op.channels_on_axis():
            return None
        consumer = graph.sole_consumer(op.output)
        shape = graph.shape(op.output)
        if (
            consumer is None
            or consumer.op_type not in ("Mul", "Add")
            or not is_default_domain(consumer)
            or shape is None
            or op.more_outputs()
        ):
            return None
        value = channel_constant(graph, consumer, op.output, op.n, op.CHANNEL_AXIS, len(shape))
        if value is None:
            return None
        affine = op.output_affine or OutputAffine.identity(op.n)
        if consumer.op_type == "Mul":
            affine = OutputAffine(affine.scale * value, affine.shift * value)
        else:
            affine = OutputAffine(affine.scale, affine.shift + value)
        return Fusion((consumer,), op.replace(output_affine=affine, output=consumer.output[0]))
