"""A pruned multi-layer perceptron: `layers` x Linear(hidden, hidden), ReLU between layers.

Graph (input `input` float [batch, hidden], output `output` float [batch, hidden]):

    matmul form (default):  MatMul(x, W[K,N]) -> Add(., bias) -> Relu  (no Relu after the last)
    gemm form:              Gemm(x, W[N,K], bias, transB=1) -> Relu    (torch.onnx's addmm)

Weights are Kaiming-scaled random normals, magnitude-pruned to `sparsity` (unstructured, 4-block or
K-block: see pruning.py) and rescaled to their dense norm so activations stay O(1) at any sparsity;
biases follow nn.Linear's default init, uniform(+-1/sqrt(K)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from ortsparse.model_versions import ModelVersions

from .graph import GraphBuilder, float_input
from .pruning import sample_pruned_weight


@dataclass(frozen=True)
class MlpConfig:
    layers: int = 4
    hidden: int = 1024
    sparsity: float = 0.9
    block: int | str = 1  # 1: unstructured, 4: 4-block, "4k": K-block pruning (pruning.py)
    gemm: bool = False
    seed: int = 0
    versions: ModelVersions | None = None  # None: the newest the installed onnxruntime runs


def _linear_bias(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    bound = 1.0 / np.sqrt(k)
    return rng.uniform(-bound, bound, size=n).astype(np.float32)


def _matmul_linear(
    g: GraphBuilder, x: str, prefix: str, weight: np.ndarray, bias: np.ndarray
) -> str:
    product = g.node("MatMul", [x, g.initializer(f"{prefix}.weight", weight)], f"/{prefix}/MatMul")
    return g.node("Add", [product, g.initializer(f"{prefix}.bias", bias)], f"/{prefix}/Add")


def _gemm_linear(g: GraphBuilder, x: str, prefix: str, weight: np.ndarray, bias: np.ndarray) -> str:
    # nn.Linear keeps its weight as [out, in]; the Gemm export reads it with transB=1.
    w_out_in = g.initializer(f"{prefix}.weight", np.ascontiguousarray(weight.T))
    return g.node(
        "Gemm", [x, w_out_in, g.initializer(f"{prefix}.bias", bias)], f"/{prefix}/Gemm", transB=1
    )


def build_mlp(config: MlpConfig = MlpConfig()) -> onnx.ModelProto:
    rng = np.random.default_rng(config.seed)
    g = GraphBuilder("pruned_mlp", config.versions)
    linear = _gemm_linear if config.gemm else _matmul_linear
    x = "input"
    for layer in range(config.layers):
        prefix = f"layers.{layer}"
        weight = sample_pruned_weight(
            rng, config.hidden, config.hidden, config.sparsity, config.block
        )
        x = linear(g, x, prefix, weight, _linear_bias(rng, config.hidden, config.hidden))
        if layer < config.layers - 1:
            x = g.node("Relu", [x], f"/{prefix}/Relu")
    return g.build(
        [float_input("input", ["batch", config.hidden])], x, "output", ["batch", config.hidden]
    )
