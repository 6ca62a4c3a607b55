"""A pruned ResNet-50 (v1.5), written the way torch.onnx (opset 17) exports torchvision's resnet50
when BatchNormalization is not folded into the convolutions.

Input `input` float [batch, 3, resolution, resolution], output `output` float [batch, classes]:

    stem        conv1 7x7/2 -> bn1 -> Relu -> MaxPool 3x3/2 (pads 1)
    stages      `stages[s]` bottlenecks of width `width * 2**s`, expansion 4; the first of each
                stage after the first has stride 2, on its 3x3 conv (v1.5):
                conv1 1x1 -> bn1 -> Relu -> conv2 3x3/stride -> bn2 -> Relu -> conv3 1x1 -> bn3
                -> Add(., identity) -> Relu, identity = downsample (conv 1x1/stride -> bn) where
                the shape changes
    head        GlobalAveragePool -> Flatten -> Gemm(fc.weight [classes, C], fc.bias, transB=1)

Convolutions have no bias (BatchNormalization follows each). Every conv weight except the stem's is
magnitude-pruned to `sparsity` (`block` 1: unstructured; 4: blocks of 4 output channels at one
input index of the [C*kH*kW, N] matrix view; "4k": blocks of 4 input channels at one kernel tap of
one output channel); the stem and the fc head stay dense, as in the published pruned ResNet-50
numbers. Defaults give ResNet-50 at 224x224; e.g. stages (1, 1, 1, 1), width 16, resolution 32 give
a small test network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from ortsparse.model_versions import ModelVersions

from .convnet import ConvNetWriter, max_pool
from .graph import float_input, torch_scope

EXPANSION = 4
BATCH_NORM_EPSILON = 1e-5  # nn.BatchNorm2d's
# bn3 scales each residual branch down, as training leaves it (torchvision can even zero it), so
# the identity path's sum over 16 bottlenecks stays O(1).
RESIDUAL_BRANCH_GAMMA = 0.3


@dataclass(frozen=True)
class ResNetConfig:
    stages: tuple[int, ...] = (3, 4, 6, 3)  # bottlenecks per stage (ResNet-50)
    width: int = 64  # stem channels and the first stage's bottleneck width
    resolution: int = 224
    classes: int = 1000
    sparsity: float = 0.9
    block: int | str = 1  # 1: unstructured, 4: 4-block, "4k": K-block pruning (pruning.py)
    seed: int = 0
    versions: ModelVersions | None = None  # None: the newest the installed onnxruntime runs


class _ResNetWriter(ConvNetWriter):
    def conv_bn(
        self,
        x: str,
        conv: str,
        bn: str,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        gamma: float = 1.0,
        dense: bool = False,
    ) -> str:
        """Conv module `conv` then BatchNorm module `bn` (module paths, e.g. layer1.0.conv1)."""
        y = self.conv(x, conv, c_in, c_out, kernel, stride, dense=dense)
        return self.batch_norm(y, bn, c_out, BATCH_NORM_EPSILON, gamma)

    def relu(self, x: str, module: str) -> str:
        value = np.maximum(self.values[x], 0)
        return self.calibrated_node("Relu", [x], f"{torch_scope(module)}/Relu", value)

    def bottleneck(self, x: str, prefix: str, c_in: int, width: int, stride: int) -> str:
        c_out = width * EXPANSION
        relu = f"{prefix}.relu"  # torchvision's bottleneck reuses one nn.ReLU
        h = self.relu(self.conv_bn(x, f"{prefix}.conv1", f"{prefix}.bn1", c_in, width, 1), relu)
        h = self.conv_bn(h, f"{prefix}.conv2", f"{prefix}.bn2", width, width, 3, stride)
        h = self.relu(h, relu)
        h = self.conv_bn(
            h, f"{prefix}.conv3", f"{prefix}.bn3", width, c_out, 1, gamma=RESIDUAL_BRANCH_GAMMA
        )
        identity = x
        if stride != 1 or c_in != c_out:
            identity = self.conv_bn(
                x, f"{prefix}.downsample.0", f"{prefix}.downsample.1", c_in, c_out, 1, stride
            )
        value = self.values[h] + self.values[identity]
        summed = self.calibrated_node("Add", [h, identity], f"{torch_scope(prefix)}/Add", value)
        return self.relu(summed, relu)

    def stem(self, x: str, width: int) -> str:
        h = self.relu(self.conv_bn(x, "conv1", "bn1", 3, width, 7, 2, dense=True), "relu")
        return self.calibrated_node(
            "MaxPool",
            [h],
            "/maxpool/MaxPool",
            max_pool(self.values[h], kernel=3, stride=2, padding=1),
            kernel_shape=[3, 3],
            pads=[1] * 4,
            strides=[2, 2],
        )

    def head(self, x: str, channels: int, classes: int) -> str:
        g = self.g
        pooled = g.node("GlobalAveragePool", [x], "/avgpool/GlobalAveragePool")
        flat = g.node("Flatten", [pooled], "/Flatten", axis=1)
        bound = 1.0 / np.sqrt(channels)  # nn.Linear's default init
        weight = self.rng.uniform(-bound, bound, (classes, channels)).astype(np.float32)
        bias = self.rng.uniform(-bound, bound, classes).astype(np.float32)
        inputs = [flat, g.initializer("fc.weight", weight), g.initializer("fc.bias", bias)]
        return g.node("Gemm", inputs, "/fc/Gemm", alpha=1.0, beta=1.0, transB=1)


def build_resnet(config: ResNetConfig = ResNetConfig()) -> onnx.ModelProto:
    writer = _ResNetWriter(
        "pruned_resnet50",
        "input",
        config.resolution,
        config.sparsity,
        config.block,
        config.seed,
        config.versions,
    )
    x = writer.stem("input", config.width)
    channels = config.width
    for stage, bottlenecks in enumerate(config.stages):
        width = config.width * 2**stage
        for index in range(bottlenecks):
            stride = 2 if stage > 0 and index == 0 else 1
            x = writer.bottleneck(x, f"layer{stage + 1}.{index}", channels, width, stride)
            channels = width * EXPANSION
    y = writer.head(x, channels, config.classes)
    size = config.resolution
    return writer.g.build(
        [float_input("input", ["batch", 3, size, size])], y, "output", ["batch", config.classes]
    )
