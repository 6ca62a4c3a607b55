"""What the ResNet and YOLO builders share: pruned Conv and inference-form BatchNormalization
nodes, written the way torch.onnx (opset 17) exports nn.Conv2d and nn.BatchNorm2d in eval mode
without folding them.

BatchNormalization statistics are random but sane. Running statistics drawn at random would not
normalize anything: a deep stack's activations would then grow or shrink geometrically, whatever
scale were chosen. So, like a trained network's, they are measured: the writer carries a
calibration batch of standard normal images through every node it adds (in numpy), and each
running mean and variance is the measured per-channel statistic of the conv output, the variance
times a random factor in [0.8, 1.25]; the scale is near `gamma` and the shift near 0, so every
BatchNormalization gives O(1) outputs at any depth, resolution and sparsity.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from ortsparse.model_versions import ModelVersions

from .graph import GraphBuilder, torch_scope
from .pruning import sample_pruned_conv_weight

KAIMING_GAIN = 2.0
# Values per channel the statistics of the smallest (stride-32) maps are measured on: the
# calibration batch has as many images as that takes (one, from 256x256 inputs up).
CALIBRATION_SAMPLES = 64
FEATURE_STRIDE = 32


def _windows(x: np.ndarray, kernel: int, stride: int, padding: int, fill: float) -> np.ndarray:
    """[B, C, H, W] -> [B, C, OH, OW, kernel, kernel]: the (padded) input under each output."""
    pad = (padding, padding)
    padded = np.pad(x, ((0, 0), (0, 0), pad, pad), constant_values=fill)
    return sliding_window_view(padded, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride]


def conv2d(x: np.ndarray, weight: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """[B, C, H, W] * [N, C, k, k] -> [B, N, OH, OW], zero padding, as ONNX Conv (group 1)."""
    windows = _windows(x, weight.shape[-1], stride, padding, fill=0.0)
    return np.tensordot(windows, weight, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


def max_pool(x: np.ndarray, kernel: int, stride: int, padding: int) -> np.ndarray:
    """[B, C, H, W] -> [B, C, OH, OW], as ONNX MaxPool (padding never wins the max)."""
    return _windows(x, kernel, stride, padding, fill=-np.inf).max(axis=(4, 5))


class ConvNetWriter:
    """Adds Conv/BatchNormalization nodes to a GraphBuilder, pruning every weight to `sparsity`
    (`block` 1: unstructured, 4: 4-block, "4k": K-block; see pruning.py) unless the caller asks for
    a dense one.

    `values` holds what each tensor that later nodes read is for the calibration batch (NCHW):
    nodes added through `calibrated_node` must say what their output is for it."""

    def __init__(
        self,
        name: str,
        image: str,
        resolution: int,
        sparsity: float,
        block: int | str,
        seed: int,
        versions: ModelVersions | None,
    ):
        self.g = GraphBuilder(name, versions)
        self.rng = np.random.default_rng(seed)
        self.sparsity = sparsity
        self.block = block
        smallest_map = max(resolution // FEATURE_STRIDE, 1) ** 2
        images = -(-CALIBRATION_SAMPLES // smallest_map)
        shape = (images, 3, resolution, resolution)
        self.values = {image: self.rng.standard_normal(shape, dtype=np.float32)}

    def calibrated_node(
        self, op_type: str, inputs: list[str], name: str, value: np.ndarray, **attributes
    ) -> str:
        """A node whose output is `value` for the calibration batch."""
        output = self.g.node(op_type, inputs, name, **attributes)
        self.values[output] = value.astype(np.float32)
        return output

    def conv(
        self,
        x: str,
        prefix: str,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        padding: int | None = None,
        dense: bool = False,
        bias: bool = False,
    ) -> str:
        """nn.Conv2d(c_in, c_out, kernel, stride, padding (default kernel // 2)) of `x`."""
        padding = kernel // 2 if padding is None else padding
        sparsity = 0.0 if dense else self.sparsity
        weight = sample_pruned_conv_weight(
            self.rng, c_out, c_in, kernel, sparsity, self.block, KAIMING_GAIN
        )
        inputs = [x, self.g.initializer(f"{prefix}.weight", weight)]
        value = conv2d(self.values[x], weight, stride, padding)
        if bias:
            bound = 1.0 / np.sqrt(c_in * kernel * kernel)  # nn.Conv2d's default bias init
            values = self.rng.uniform(-bound, bound, size=c_out).astype(np.float32)
            inputs.append(self.g.initializer(f"{prefix}.bias", values))
            value += values[:, None, None]  # broadcasts over [B, N, OH, OW] from the right
        return self.calibrated_node(
            "Conv",
            inputs,
            f"{torch_scope(prefix)}/Conv",
            value,
            dilations=[1, 1],
            group=1,
            kernel_shape=[kernel, kernel],
            pads=[padding] * 4,
            strides=[stride, stride],
        )

    def batch_norm(
        self, x: str, prefix: str, channels: int, epsilon: float, gamma: float = 1.0
    ) -> str:
        """Inference-form BatchNormalization of `x`; `gamma` sets the typical scale, which a
        residual branch keeps small so that the sum along the identity path stays O(1)."""
        rng, value = self.rng, self.values[x]
        scale = gamma * rng.uniform(0.5, 1.5, channels)
        shift = 0.1 * rng.standard_normal(channels)
        mean = value.mean(axis=(0, 2, 3))
        jitter = np.exp(rng.uniform(np.log(0.8), np.log(1.25), channels))
        variance = value.var(axis=(0, 2, 3)) * jitter
        parameters = {"weight": scale, "bias": shift, "running_mean": mean, "running_var": variance}
        names = [
            self.g.initializer(f"{prefix}.{key}", value.astype(np.float32))
            for key, value in parameters.items()
        ]
        factor = scale / np.sqrt(variance + epsilon)
        normalized = (value - mean[:, None, None]) * factor[:, None, None] + shift[:, None, None]
        return self.calibrated_node(
            "BatchNormalization",
            [x, *names],
            f"{torch_scope(prefix)}/BatchNormalization",
            normalized,
            epsilon=epsilon,
            momentum=0.9,
        )
