"""A pruned YOLOv5s-like detector (YOLOv5 v6 architecture), written the way YOLOv5's export.py
writes it at opset 17 without folding BatchNormalization.

Input `images` float [batch, 3, resolution, resolution], output `output` float
[batch, 3 * (r/8)^2 + 3 * (r/16)^2 + 3 * (r/32)^2, classes + 5]: per anchor and grid cell, the
sigmoid of the raw box, objectness and class predictions. (The export's box decoding against the
anchor grid is elementwise arithmetic on this tensor and is left out.)

    Conv(c1, c2, k, s)   Conv (no bias, pads k // 2) -> BatchNormalization -> x * Sigmoid(x)
    Bottleneck(c)        Conv(c, c, 1) -> Conv(c, c, 3) -> Add(x, .) when it has a shortcut
    C3(c1, c2, n)        Concat(n x Bottleneck(Conv(c1, c2/2, 1)), Conv(c1, c2/2, 1))
                         -> Conv(c2, c2, 1)
    SPPF(c1, c2)         Conv(c1, c1/2, 1) -> 3 chained MaxPool 5x5/1 -> Concat of all 4 -> Conv
    backbone             Conv 6x6/2, Conv 3x3/2, C3, Conv/2, C3 x2, Conv/2, C3 x3, Conv/2, C3, SPPF
    neck (FPN + PAN)     1x1 Conv, Resize (nearest, scales [1, 1, 2, 2]) and Concat with the
                         backbone's stride-16, then stride-8 maps; strided 3x3 Convs and Concat
                         back down; C3s without shortcut
    detect               a 1x1 Conv with bias per scale -> Reshape [0, 3, classes + 5, -1] ->
                         Transpose -> Reshape [0, -1, classes + 5]; Concat of the 3 -> Sigmoid

Channels are YOLOv5's (64, 128, 256, 512, 1024) times `width` rounded up to multiples of 8, and
bottleneck counts (3, 6, 9, 3) times `depth` rounded (at least 1): the defaults 0.5 and 0.33 are
YOLOv5s. Every conv except the stem's is magnitude-pruned to `sparsity` (`block` 1: unstructured;
4: blocks of 4 output channels at one input index of the [C*kH*kW, N] matrix view; "4k": blocks of
4 input channels at one kernel tap of one output channel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from ortsparse.model_versions import ModelVersions

from .convnet import ConvNetWriter, max_pool
from .graph import float_input, torch_scope

BATCH_NORM_EPSILON = 1e-3  # YOLOv5's nn.BatchNorm2d(eps=0.001)
ANCHORS_PER_CELL = 3
SPPF_POOL = 5
UPSAMPLE_SCALES = [1.0, 1.0, 2.0, 2.0]  # nn.Upsample(scale_factor=2) on NCHW


@dataclass(frozen=True)
class YoloConfig:
    width: float = 0.5  # channel multiple (YOLOv5s)
    depth: float = 0.33  # bottleneck-count multiple (YOLOv5s)
    resolution: int = 640  # a multiple of 32
    classes: int = 80
    sparsity: float = 0.9
    block: int | str = 1  # 1: unstructured, 4: 4-block, "4k": K-block pruning (pruning.py)
    seed: int = 0
    versions: ModelVersions | None = None  # None: the newest the installed onnxruntime runs

    def channels(self, base: int) -> int:
        return math.ceil(base * self.width / 8) * 8

    def bottlenecks(self, base: int) -> int:
        return max(round(base * self.depth), 1)

    @property
    def predictions(self) -> int:
        return self.classes + 5  # box (4), objectness, classes

    @property
    def anchors(self) -> int:
        return sum(ANCHORS_PER_CELL * (self.resolution // s) ** 2 for s in (8, 16, 32))


class _YoloWriter(ConvNetWriter):
    def conv_bn_silu(
        self, x: str, prefix: str, c1: int, c2: int, kernel: int, stride: int = 1, **options
    ) -> str:
        """YOLOv5's Conv module: conv, bn and SiLU, which its export writes as x * Sigmoid(x)."""
        y = self.conv(x, f"{prefix}.conv", c1, c2, kernel, stride, **options)
        y = self.batch_norm(y, f"{prefix}.bn", c2, BATCH_NORM_EPSILON)
        scope = f"{torch_scope(prefix)}/act"
        sigmoid = self.g.node("Sigmoid", [y], f"{scope}/Sigmoid")
        value = self.values[y] / (1.0 + np.exp(-self.values[y]))
        return self.calibrated_node("Mul", [y, sigmoid], f"{scope}/Mul", value)

    def bottleneck(self, x: str, prefix: str, c: int, shortcut: bool) -> str:
        h = self.conv_bn_silu(x, f"{prefix}.cv1", c, c, 1)
        h = self.conv_bn_silu(h, f"{prefix}.cv2", c, c, 3)
        if not shortcut:
            return h
        value = self.values[x] + self.values[h]
        return self.calibrated_node("Add", [x, h], f"{torch_scope(prefix)}/Add", value)

    def c3(self, x: str, prefix: str, c1: int, c2: int, n: int, shortcut: bool = True) -> str:
        hidden = c2 // 2
        h = self.conv_bn_silu(x, f"{prefix}.cv1", c1, hidden, 1)
        for index in range(n):
            h = self.bottleneck(h, f"{prefix}.m.{index}", hidden, shortcut)
        side = self.conv_bn_silu(x, f"{prefix}.cv2", c1, hidden, 1)
        joined = self.concat([h, side], prefix)
        return self.conv_bn_silu(joined, f"{prefix}.cv3", 2 * hidden, c2, 1)

    def sppf(self, x: str, prefix: str, c1: int, c2: int) -> str:
        hidden = c1 // 2
        pooled = [self.conv_bn_silu(x, f"{prefix}.cv1", c1, hidden, 1)]
        for _ in range(3):
            pooled.append(
                self.calibrated_node(
                    "MaxPool",
                    [pooled[-1]],
                    f"{torch_scope(prefix)}/m/MaxPool",
                    max_pool(self.values[pooled[-1]], SPPF_POOL, 1, SPPF_POOL // 2),
                    kernel_shape=[SPPF_POOL, SPPF_POOL],
                    pads=[SPPF_POOL // 2] * 4,
                    strides=[1, 1],
                )
            )
        return self.conv_bn_silu(self.concat(pooled, prefix), f"{prefix}.cv2", 4 * hidden, c2, 1)

    def concat(self, tensors: list[str], prefix: str) -> str:
        value = np.concatenate([self.values[t] for t in tensors], axis=1)
        return self.calibrated_node(
            "Concat", tensors, f"{torch_scope(prefix)}/Concat", value, axis=1
        )

    def upsample(self, x: str, prefix: str) -> str:
        scope = torch_scope(prefix)
        scales = self.g.constant(f"{scope}/Constant", np.array(UPSAMPLE_SCALES, dtype=np.float32))
        return self.calibrated_node(
            "Resize",
            [x, "", scales],
            f"{scope}/Resize",
            self.values[x].repeat(2, axis=2).repeat(2, axis=3),
            coordinate_transformation_mode="asymmetric",
            cubic_coeff_a=-0.75,
            mode="nearest",
            nearest_mode="floor",
        )

    def detect(self, features: list[tuple[str, int]], prefix: str, predictions: int) -> str:
        g, scope = self.g, torch_scope(prefix)
        flattened = []
        for index, (x, channels) in enumerate(features):
            y = self.conv(
                x, f"{prefix}.m.{index}", channels, ANCHORS_PER_CELL * predictions, 1, bias=True
            )
            per_anchor = g.int64s(f"{scope}/Constant", [0, ANCHORS_PER_CELL, predictions, -1])
            y = g.node("Reshape", [y, per_anchor], f"{scope}/Reshape")
            y = g.node("Transpose", [y], f"{scope}/Transpose", perm=[0, 1, 3, 2])
            rows = g.int64s(f"{scope}/Constant", [0, -1, predictions])
            flattened.append(g.node("Reshape", [y, rows], f"{scope}/Reshape"))
        joined = g.node("Concat", flattened, f"{scope}/Concat", axis=1)
        return g.node("Sigmoid", [joined], f"{scope}/Sigmoid")


def _backbone(w: _YoloWriter, c: YoloConfig) -> tuple[str, str, str]:
    """The stride-8, stride-16 and stride-32 feature maps (model.4, model.6 and model.9)."""
    ch, n = c.channels, c.bottlenecks
    x = w.conv_bn_silu("images", "model.0", 3, ch(64), 6, 2, padding=2, dense=True)
    x = w.conv_bn_silu(x, "model.1", ch(64), ch(128), 3, 2)
    x = w.c3(x, "model.2", ch(128), ch(128), n(3))
    x = w.conv_bn_silu(x, "model.3", ch(128), ch(256), 3, 2)
    p3 = w.c3(x, "model.4", ch(256), ch(256), n(6))
    x = w.conv_bn_silu(p3, "model.5", ch(256), ch(512), 3, 2)
    p4 = w.c3(x, "model.6", ch(512), ch(512), n(9))
    x = w.conv_bn_silu(p4, "model.7", ch(512), ch(1024), 3, 2)
    x = w.c3(x, "model.8", ch(1024), ch(1024), n(3))
    return p3, p4, w.sppf(x, "model.9", ch(1024), ch(1024))


def _neck(w: _YoloWriter, c: YoloConfig, p3: str, p4: str, p5: str) -> list[tuple[str, int]]:
    """Top-down (FPN) then bottom-up (PAN) paths; the detect inputs with their channels."""
    ch, n = c.channels, c.bottlenecks
    lateral5 = w.conv_bn_silu(p5, "model.10", ch(1024), ch(512), 1)
    x = w.concat([w.upsample(lateral5, "model.11"), p4], "model.12")
    x = w.c3(x, "model.13", ch(1024), ch(512), n(3), shortcut=False)
    lateral4 = w.conv_bn_silu(x, "model.14", ch(512), ch(256), 1)
    x = w.concat([w.upsample(lateral4, "model.15"), p3], "model.16")
    out3 = w.c3(x, "model.17", ch(512), ch(256), n(3), shortcut=False)
    x = w.concat([w.conv_bn_silu(out3, "model.18", ch(256), ch(256), 3, 2), lateral4], "model.19")
    out4 = w.c3(x, "model.20", ch(512), ch(512), n(3), shortcut=False)
    x = w.concat([w.conv_bn_silu(out4, "model.21", ch(512), ch(512), 3, 2), lateral5], "model.22")
    out5 = w.c3(x, "model.23", ch(1024), ch(1024), n(3), shortcut=False)
    return [(out3, ch(256)), (out4, ch(512)), (out5, ch(1024))]


def build_yolo(config: YoloConfig = YoloConfig()) -> onnx.ModelProto:
    if config.resolution % 32:
        raise ValueError(f"resolution must be a multiple of 32, got {config.resolution}")
    writer = _YoloWriter(
        "pruned_yolov5",
        "images",
        config.resolution,
        config.sparsity,
        config.block,
        config.seed,
        config.versions,
    )
    features = _neck(writer, config, *_backbone(writer, config))
    y = writer.detect(features, "model.24", config.predictions)
    size = config.resolution
    return writer.g.build(
        [float_input("images", ["batch", 3, size, size])],
        y,
        "output",
        ["batch", config.anchors, config.predictions],
    )
