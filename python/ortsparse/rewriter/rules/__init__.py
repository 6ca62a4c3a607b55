"""The rewrite rules, one per module, in the order the pipeline applies them."""

from ortsparse.rewriter.fusion import ActivationRule
from ortsparse.rewriter.rules.attention_to_sparse_gemm import AttentionToSparseGemm
from ortsparse.rewriter.rules.conv_integer_to_sparse_conv_integer import (
    ConvIntegerToSparseConvInteger,
)
from ortsparse.rewriter.rules.conv_to_sparse_conv import ConvToSparseConv
from ortsparse.rewriter.rules.fold_batch_norm import FoldBatchNorm
from ortsparse.rewriter.rules.fold_channel_scale import FoldChannelScale
from ortsparse.rewriter.rules.fold_input_affine import FoldInputAffine
from ortsparse.rewriter.rules.fold_into_ort_convolution import FoldIntoOrtConvolution
from ortsparse.rewriter.rules.fuse_bias_add import FuseBiasAdd
from ortsparse.rewriter.rules.fuse_channel_groups_last import FuseChannelGroupsLast
from ortsparse.rewriter.rules.fuse_clip import FuseClip
from ortsparse.rewriter.rules.fuse_contrib_gelu import FuseContribGelu
from ortsparse.rewriter.rules.fuse_depthwise_prologue import FuseDepthwisePrologue
from ortsparse.rewriter.rules.fuse_gelu import FuseGelu
from ortsparse.rewriter.rules.fuse_gelu_erf import FuseGeluErf
from ortsparse.rewriter.rules.fuse_gelu_tanh import FuseGeluTanh
from ortsparse.rewriter.rules.fuse_hard_swish import FuseHardSwish, FuseXTimesHardSigmoid
from ortsparse.rewriter.rules.fuse_hard_swish_clip import FuseHardSwishClip
from ortsparse.rewriter.rules.fuse_leaky_relu import FuseLeakyRelu
from ortsparse.rewriter.rules.fuse_output_affine import FuseOutputAffine
from ortsparse.rewriter.rules.fuse_qdq_residual_add import FuseQdqResidualAdd
from ortsparse.rewriter.rules.fuse_relu import FuseRelu
from ortsparse.rewriter.rules.fuse_residual_add import FuseResidualAdd
from ortsparse.rewriter.rules.fuse_sigmoid import FuseSigmoid
from ortsparse.rewriter.rules.fuse_silu import FuseSilu
from ortsparse.rewriter.rules.gemm_to_sparse_gemm import GemmToSparseGemm
from ortsparse.rewriter.rules.hard_swish_as_hard_sigmoid import HardSwishAsHardSigmoid
from ortsparse.rewriter.rules.hoist_activation_through_layout import HoistActivationThroughLayout
from ortsparse.rewriter.rules.matmul_integer_to_sparse_matmul_integer import (
    MatMulIntegerToSparseMatMulInteger,
)
from ortsparse.rewriter.rules.matmul_to_sparse_gemm import MatMulToSparseGemm
from ortsparse.rewriter.rules.merge_sibling_convs import MergeSiblingConvs
from ortsparse.rewriter.rules.qdq_conv_to_sparse_qconv import QdqConvToSparseQConv
from ortsparse.rewriter.rules.qdq_gemm_to_sparse_qgemm import QdqGemmToSparseQGemm
from ortsparse.rewriter.rules.qdq_matmul_to_sparse_qgemm import QdqMatMulToSparseQGemm
from ortsparse.rewriter.rules.qlinear_conv_to_sparse_qconv import QLinearConvToSparseQConv
from ortsparse.rewriter.rules.qlinear_matmul_to_sparse_qgemm import QLinearMatMulToSparseQGemm
from ortsparse.rewriter.rules.read_concat_in_place import ReadConcatInPlace
from ortsparse.rewriter.rules.scaled_residual_as_one_mul import ScaledResidualAsOneMul
from ortsparse.rewriter.rules.softmax_as_reductions import SoftmaxAsReductions

# For each node, the first rule of its op type that applies_to it converts it.
CONVERSION_RULES = (
    QdqMatMulToSparseQGemm(),
    MatMulToSparseGemm(),
    QdqGemmToSparseQGemm(),
    GemmToSparseGemm(),
    QdqConvToSparseQConv(),
    ConvToSparseConv(),
    QLinearMatMulToSparseQGemm(),
    QLinearConvToSparseQConv(),
    MatMulIntegerToSparseMatMulInteger(),
    ConvIntegerToSparseConvInteger(),
    AttentionToSparseGemm(),
)

# Tried in this order after every fusion, so a chain folds in graph order: a BatchNormalization
# or a Mul by channel factors, a bias Add and a residual Add before the activation, the
# activation, then a residual Add after it. Each rule's own preconditions (e.g. no activation
# yet) keep the epilogue's order of operations exact. The layout change comes last: after it
# only activations fuse.
EPILOGUE_RULES = (
    FoldBatchNorm(),
    FoldChannelScale(),
    FuseBiasAdd(),
    FuseResidualAdd(),
    FuseRelu(),
    FuseClip(),
    FuseSigmoid(),
    FuseSilu(),
    FuseGelu(),
    FuseGeluErf(),
    FuseGeluTanh(),
    FuseContribGelu(),
    FuseLeakyRelu(),
    FuseHardSwish(),
    FuseXTimesHardSigmoid(),
    FuseHardSwishClip(),
    FuseOutputAffine(),
    FuseChannelGroupsLast(),
)

# What SparseQConv takes over from the QDQ graph after it (its requantization already holds the
# QuantizeLinear of the product).
QUANTIZED_EPILOGUE_RULES = (FuseQdqResidualAdd(),)

# Applied once each, in this order, after every epilogue is fused (pipeline.py step 3). A
# depthwise prologue comes after the others: the SparseConv then reads X in one part and has no
# sibling, and an affine folded before it no longer separates it from the depthwise Conv's
# activation. Last, ORT's own nodes in a rewritten model: the hard-swish patterns no op took
# become two nodes instead of four, a Softmax along a leading axis reductions instead of ORT's
# transposes, x + x * s one Mul, and the Adds and BatchNormalizations after ORT's Conv and
# ConvTranspose nodes part of their weights.
GRAPH_RULES = (
    HoistActivationThroughLayout(),
    ReadConcatInPlace(),
    MergeSiblingConvs(),
    FoldInputAffine(),
    FuseDepthwisePrologue(rule for rule in EPILOGUE_RULES if isinstance(rule, ActivationRule)),
    HardSwishAsHardSigmoid(),
    SoftmaxAsReductions(),
    ScaledResidualAsOneMul(),
    FoldIntoOrtConvolution(),
)
