"""The graph rewriter: turns eligible MatMul/Gemm/Conv nodes of a sparse ONNX model into
SparseGemm/SparseConv, INT8 MatMuls (QLinearMatMul, QDQ MatMul and Gemm) into SparseQGemm and
INT8 convolutions (QLinearConv, QDQ Conv) into SparseQConv.

    result = rewrite_model(model)            # or rewrite_file("in.onnx", "out.onnx")
    print(format_report(result.decisions))

A measured cost model decides which weights are sparse enough to win and in which packed format
(cost_model.py); ``min_sparsity`` overrides it with a plain threshold. Bias, activation and
residual Adds after the product (and a BatchNormalization after a Conv) are fused into the op
(rules/).
"""

from ortsparse.rewriter.decisions import Decision, RewriteResult
from ortsparse.rewriter.errors import RewriteError
from ortsparse.rewriter.model_io import rewrite_file
from ortsparse.rewriter.pipeline import rewrite_model
from ortsparse.rewriter.report import format_report

__all__ = [
    "Decision",
    "RewriteError",
    "RewriteResult",
    "format_report",
    "rewrite_file",
    "rewrite_model",
]
