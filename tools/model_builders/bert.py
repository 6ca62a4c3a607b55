"""A pruned BERT-style encoder, written the way torch.onnx (opset 17) exports HF BertModel.encoder.

Input `input_embeddings` float [batch, sequence, hidden]: the output of BERT's embedding block. The
token/position embedding lookup and its LayerNorm are left out because they hold no prunable MatMul
and would only add an int64 input to feed. There is no attention mask (every token attends to every
token). Output `last_hidden_state` float [batch, sequence, hidden].

Each layer, with torch's node names (`/encoder/layer.<i>/...`):

    Q, K, V       MatMul(h, W[hidden,hidden]) -> Add(bias, .)        (torch writes the bias first)
    heads         Reshape [0, 0, heads, head_dim] -> Transpose [0, 2, 1, 3]
                  (K^T: a further Transpose [0, 1, 3, 2])
    attention     MatMul(Q, K^T) -> Div(., sqrt(head_dim)) -> Softmax(-1) -> MatMul(., V)
                  -> Transpose [0, 2, 1, 3] -> Reshape [0, 0, hidden]
    attn output   MatMul -> Add(bias, .) -> Add(., h) (residual) -> LayerNormalization
    FFN           MatMul(W[hidden,ffn]) -> Add(bias, .) -> GELU
                  -> MatMul(W[ffn,hidden]) -> Add(bias, .) -> Add(., residual) -> LayerNormalization
    GELU          x * (Erf(x / 1.4142135) + 1) * 0.5, exactly torch's opset-17 decomposition:
                  Div -> Erf -> Add(., 1) -> Mul(x, .) -> Mul(., 0.5)

With graph="ort-optimized" each layer is what onnxruntime.transformers.optimizer makes of it
(com.microsoft ops; GELU always exact):

    attention     Attention(h, W_qkv [hidden, 3 * hidden], b_qkv; num_heads)
    attn output   MatMul -> SkipLayerNormalization(., h, gamma, beta, bias)
    FFN           MatMul -> BiasGelu(., bias) -> MatMul -> SkipLayerNormalization(., h1, ..., bias)

Scalars and reshape targets are Constant nodes, as torch writes them; the reshape targets are
literal (0 = keep that dimension) rather than torch's Shape/Gather/Concat chain, which computes the
same thing. Weights are initializers stored [in, out] (the transpose torch folds into the MatMul),
pruned like the MLP's; the attention-score MatMuls have no weights and are left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import onnx
from ortsparse.model_versions import ModelVersions

from .graph import GraphBuilder, float_input
from .pruning import sample_pruned_weight

SQRT_2 = 1.4142135  # the float32 value torch writes for sqrt(2) in its GELU export
LAYER_NORM_EPSILON = 1e-12


@dataclass(frozen=True)
class BertConfig:
    layers: int = 12
    hidden: int = 768
    heads: int = 12
    intermediate: int = 3072
    seq: int | None = None  # None: symbolic "sequence" dimension
    # "erf": torch's decomposition of GELU; "contrib": one com.microsoft Gelu node, as ONNX
    # Runtime's optimizer (and exporters targeting it) write it.
    gelu: str = "erf"
    # "torch": as torch.onnx exports it; "ort-optimized": as ORT's transformer optimizer fuses it.
    graph: str = "torch"
    sparsity: float = 0.9
    block: int | str = 1  # 1: unstructured, 4: 4-block, "4k": K-block pruning (pruning.py)
    seed: int = 0
    versions: ModelVersions | None = None  # None: the newest the installed onnxruntime runs

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def _scope(prefix: str) -> str:
    """Torch's node scope of a parameter prefix: encoder.layer.0.query -> /encoder/layer.0/query."""
    return "/" + re.sub(r"layer/(\d+)", r"layer.\1", prefix.replace(".", "/"))


class _EncoderWriter:
    def __init__(self, config: BertConfig):
        if config.gelu not in ("erf", "contrib"):
            raise ValueError(f"gelu must be 'erf' or 'contrib', got {config.gelu!r}")
        if config.graph not in ("torch", "ort-optimized"):
            raise ValueError(f"graph must be 'torch' or 'ort-optimized', got {config.graph!r}")
        if config.graph == "ort-optimized" and config.gelu != "erf":
            raise ValueError("gelu applies to torch graphs; ort-optimized ones use BiasGelu")
        if config.hidden % config.heads:
            raise ValueError(
                f"hidden ({config.hidden}) must be a multiple of heads ({config.heads})"
            )
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.g = GraphBuilder("pruned_bert_encoder", config.versions)

    def weight_and_bias(self, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        # Gain 1, not ReLU's 2: no activation halves the variance between these products, and
        # the LayerNorms after each residual keep the stack's activations O(1).
        weight = sample_pruned_weight(self.rng, k, n, c.sparsity, c.block, gain=1.0)
        bias = self.rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)
        return weight, bias

    def product(self, x: str, prefix: str, weight: np.ndarray) -> str:
        g = self.g
        return g.node(
            "MatMul", [x, g.initializer(f"{prefix}.weight", weight)], f"{_scope(prefix)}/MatMul"
        )

    def linear(self, x: str, prefix: str, k: int, n: int) -> str:
        weight, bias = self.weight_and_bias(k, n)
        product = self.product(x, prefix, weight)
        bias_name = self.g.initializer(f"{prefix}.bias", bias)
        return self.g.node("Add", [bias_name, product], f"{_scope(prefix)}/Add")

    def layer_norm_parameters(self, prefix: str) -> list[str]:
        n = self.config.hidden
        gamma = 1.0 + 0.1 * self.rng.standard_normal(n, dtype=np.float32)
        beta = 0.1 * self.rng.standard_normal(n, dtype=np.float32)
        return [
            self.g.initializer(f"{prefix}.weight", gamma),
            self.g.initializer(f"{prefix}.bias", beta),
        ]

    def layer_norm(self, x: str, prefix: str) -> str:
        return self.g.node(
            "LayerNormalization",
            [x, *self.layer_norm_parameters(prefix)],
            f"{_scope(prefix)}/LayerNormalization",
            axis=-1,
            epsilon=LAYER_NORM_EPSILON,
        )

    def split_heads(self, x: str, scope: str) -> str:
        c = self.config
        shape = self.g.int64s(f"{scope}/Constant", [0, 0, c.heads, c.head_dim])
        reshaped = self.g.node("Reshape", [x, shape], f"{scope}/Reshape")
        return self.g.node("Transpose", [reshaped], f"{scope}/Transpose", perm=[0, 2, 1, 3])

    def merge_heads(self, x: str, scope: str) -> str:
        transposed = self.g.node("Transpose", [x], f"{scope}/Transpose", perm=[0, 2, 1, 3])
        shape = self.g.int64s(f"{scope}/Constant", [0, 0, self.config.hidden])
        return self.g.node("Reshape", [transposed, shape], f"{scope}/Reshape")

    def self_attention(self, h: str, prefix: str) -> str:
        c, g = self.config, self.g
        scope = f"{_scope(prefix)}/attention/self"
        q, k, v = (
            self.split_heads(
                self.linear(h, f"{prefix}.attention.self.{name}", c.hidden, c.hidden), scope
            )
            for name in ("query", "key", "value")
        )
        k_t = g.node("Transpose", [k], f"{scope}/Transpose", perm=[0, 1, 3, 2])
        scores = g.node("MatMul", [q, k_t], f"{scope}/MatMul")
        scaled = g.node(
            "Div", [scores, g.scalar(f"{scope}/Constant", np.sqrt(c.head_dim))], f"{scope}/Div"
        )
        probs = g.node("Softmax", [scaled], f"{scope}/Softmax", axis=-1)
        context = g.node("MatMul", [probs, v], f"{scope}/MatMul")
        return self.merge_heads(context, scope)

    def gelu(self, x: str, scope: str) -> str:
        g = self.g
        if self.config.gelu == "contrib":
            return g.node("Gelu", [x], f"{scope}/Gelu", domain="com.microsoft")
        scaled = g.node("Div", [x, g.scalar(f"{scope}/Constant", SQRT_2)], f"{scope}/Div")
        erf = g.node("Erf", [scaled], f"{scope}/Erf")
        erf_plus_one = g.node("Add", [erf, g.scalar(f"{scope}/Constant", 1.0)], f"{scope}/Add")
        x_times = g.node("Mul", [x, erf_plus_one], f"{scope}/Mul")
        return g.node("Mul", [x_times, g.scalar(f"{scope}/Constant", 0.5)], f"{scope}/Mul")

    def residual_layer_norm(self, x: str, residual: str, prefix: str) -> str:
        summed = self.g.node("Add", [x, residual], f"{_scope(prefix)}/Add")
        return self.layer_norm(summed, f"{prefix}.LayerNorm")

    def encoder_layer(self, h: str, index: int) -> str:
        c = self.config
        prefix = f"encoder.layer.{index}"
        context = self.self_attention(h, prefix)
        attended = self.linear(context, f"{prefix}.attention.output.dense", c.hidden, c.hidden)
        h1 = self.residual_layer_norm(attended, h, f"{prefix}.attention.output")
        inner = self.linear(h1, f"{prefix}.intermediate.dense", c.hidden, c.intermediate)
        activated = self.gelu(inner, f"{_scope(prefix)}/intermediate/intermediate_act_fn")
        out = self.linear(activated, f"{prefix}.output.dense", c.intermediate, c.hidden)
        return self.residual_layer_norm(out, h1, f"{prefix}.output")

    def skip_layer_norm(self, x: str, skip: str, bias: np.ndarray, prefix: str) -> str:
        g = self.g
        return g.node(
            "SkipLayerNormalization",
            [
                x,
                skip,
                *self.layer_norm_parameters(f"{prefix}.LayerNorm"),
                g.initializer(f"{prefix}.dense.bias", bias),
            ],
            f"{_scope(prefix)}/SkipLayerNormalization",
            domain="com.microsoft",
            epsilon=LAYER_NORM_EPSILON,
        )

    def ort_optimized_encoder_layer(self, h: str, index: int) -> str:
        """The layer as ORT's transformer optimizer fuses it."""
        c, g = self.config, self.g
        prefix = f"encoder.layer.{index}"
        scope = f"{_scope(prefix)}/attention/self"
        projections = [self.weight_and_bias(c.hidden, c.hidden) for _ in range(3)]
        qkv_weight = np.concatenate([weight for weight, _ in projections], axis=1)
        qkv_bias = np.concatenate([bias for _, bias in projections])
        context = g.node(
            "Attention",
            [
                h,
                g.initializer(f"{prefix}.attention.self.qkv.weight", qkv_weight),
                g.initializer(f"{prefix}.attention.self.qkv.bias", qkv_bias),
            ],
            f"{scope}/Attention",
            domain="com.microsoft",
            num_heads=c.heads,
        )
        output_prefix = f"{prefix}.attention.output"
        weight, bias = self.weight_and_bias(c.hidden, c.hidden)
        attended = self.product(context, f"{output_prefix}.dense", weight)
        h1 = self.skip_layer_norm(attended, h, bias, output_prefix)
        weight, bias = self.weight_and_bias(c.hidden, c.intermediate)
        inner = self.product(h1, f"{prefix}.intermediate.dense", weight)
        activated = g.node(
            "BiasGelu",
            [inner, g.initializer(f"{prefix}.intermediate.dense.bias", bias)],
            f"{_scope(prefix)}/intermediate/BiasGelu",
            domain="com.microsoft",
        )
        weight, bias = self.weight_and_bias(c.intermediate, c.hidden)
        out = self.product(activated, f"{prefix}.output.dense", weight)
        return self.skip_layer_norm(out, h1, bias, f"{prefix}.output")

    def build(self) -> onnx.ModelProto:
        c = self.config
        shape = ["batch", c.seq or "sequence", c.hidden]
        h = "input_embeddings"
        layer = (
            self.ort_optimized_encoder_layer if c.graph == "ort-optimized" else self.encoder_layer
        )
        for index in range(c.layers):
            h = layer(h, index)
        return self.g.build([float_input("input_embeddings", shape)], h, "last_hidden_state", shape)


def build_bert(config: BertConfig = BertConfig()) -> onnx.ModelProto:
    return _EncoderWriter(config).build()
