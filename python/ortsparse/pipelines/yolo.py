"""The `yolo` task: letterboxed images in, boxes in each image's own pixels out.

Heads, told apart by their output's shape [batch, a, b]:
* YOLOv8 style [batch, 4 + classes, anchors]: center x, y, width, height and a score per class;
* YOLOv5 style [batch, anchors, 5 + classes]: the same with an objectness score before the class
  scores, which multiplies them.
With class names known, the number of classes decides; else a head whose middle dim is the
smaller is YOLOv8's. Pre-processing is the exporters' letterbox (Ultralytics' LetterBox with
auto=False): scale to fit, bilinear (images.resize), centre, pad with gray 114, RGB scaled to
[0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ortsparse.pipelines.images import resize
from ortsparse.pipelines.pipeline import Pipeline, Timings

PAD_VALUE = 114
# Class-aware NMS in one pass: each class's boxes are moved this far apart (larger than any
# image the exporters take), so boxes of different classes never overlap.
CLASS_OFFSET = 7680.0
# At most this many candidates (the highest scores) enter NMS.
MAX_NMS_CANDIDATES = 30000


@dataclass(frozen=True)
class Letterbox:
    """How an image of ``height`` x ``width`` was placed in the model's input."""

    height: int
    width: int
    gain: float
    pad_x: float
    pad_y: float


@dataclass
class YoloOutput:
    """Per image: ``boxes`` [[x1, y1, x2, y2], ...] in its own pixels, ``scores``, ``labels``
    (class names where known, else class indices as strings); ``timings`` in milliseconds."""

    boxes: list[list[list[float]]]
    scores: list[list[float]]
    labels: list[list[str]]
    timings: dict[str, float]

    def to_dict(self) -> dict:
        return {"boxes": self.boxes, "scores": self.scores, "labels": self.labels}


class YoloPipeline(Pipeline):
    task = "yolo"
    default_image_size = 640

    @classmethod
    def aliases(cls) -> tuple[str, ...]:
        return ("yolo", "yolov5", "yolov8", "object_detection")

    def check_options(self, options: Mapping[str, Any]) -> dict:
        checked = {"conf_thres": 0.25, "iou_thres": 0.7, "max_detections": 300}
        unknown = set(options) - set(checked)
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; yolo takes {sorted(checked)}")
        checked.update(options)
        for name in ("conf_thres", "iou_thres"):
            checked[name] = float(checked[name])
            if not 0.0 <= checked[name] <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {checked[name]}")
        checked["max_detections"] = int(checked["max_detections"])
        if checked["max_detections"] < 1:
            raise ValueError(f"max_detections must be at least 1, got {checked['max_detections']}")
        return checked

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        height, width = image.shape[:2]
        gain = min(self.image_height / height, self.image_width / width)
        new_width, new_height = round(width * gain), round(height * gain)
        pad_x = (self.image_width - new_width) / 2
        pad_y = (self.image_height - new_height) / 2
        top, bottom = round(pad_y - 0.1), round(pad_y + 0.1)
        left, right = round(pad_x - 0.1), round(pad_x + 0.1)
        canvas = np.full((self.image_height, self.image_width, 3), PAD_VALUE, np.uint8)
        canvas[top : self.image_height - bottom, left : self.image_width - right] = resize(
            image, new_width, new_height
        )
        array = canvas.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
        return array, Letterbox(height, width, gain, left, top)

    def postprocess(
        self,
        outputs: list[np.ndarray],
        letterbox: Letterbox,
        *,
        conf_thres: float,
        iou_thres: float,
        max_detections: int,
    ) -> dict:
        boxes, scores, classes = decode(outputs[0], self.class_names, conf_thres)
        keep = class_aware_nms(boxes, scores, classes, iou_thres)[:max_detections]
        boxes = to_image_pixels(boxes[keep], letterbox)
        return {
            "boxes": boxes.round(2).tolist(),
            "scores": scores[keep].astype(float).round(5).tolist(),
            "labels": [self.label(int(index)) for index in classes[keep]],
        }

    def make_output(self, results: list[dict], timings: Timings) -> YoloOutput:
        return YoloOutput(
            [result["boxes"] for result in results],
            [result["scores"] for result in results],
            [result["labels"] for result in results],
            timings.as_dict(),
        )


def decode(
    head: np.ndarray, class_names: list[str] | None, conf_thres: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's head output [a, b] as candidate boxes [n, 4] (x1, y1, x2, y2 in the model's
    input pixels), scores [n] and class indices [n], those scoring at least ``conf_thres``."""
    if head.ndim != 2:
        raise ValueError(f"a YOLO head is [batch, a, b]; this model's is [batch, {head.shape}]")
    predictions, objectness = _rows_with_objectness(head, class_names)
    class_scores = predictions[:, 4:]
    if objectness is not None:
        class_scores = class_scores * objectness[:, None]
    classes = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(classes)), classes]
    chosen = np.flatnonzero(scores >= conf_thres)
    if len(chosen) > MAX_NMS_CANDIDATES:
        chosen = chosen[np.argsort(-scores[chosen], kind="stable")[:MAX_NMS_CANDIDATES]]
    center, size = predictions[chosen, :2], predictions[chosen, 2:4]
    boxes = np.concatenate([center - size / 2, center + size / 2], axis=1)
    return boxes.astype(np.float64), scores[chosen], classes[chosen]


def _rows_with_objectness(head: np.ndarray, class_names: list[str] | None):
    """([anchors, 4 + classes] box and class columns, objectness [anchors] or None)."""
    a, b = head.shape
    if class_names is not None:
        classes = len(class_names)
        if a == 4 + classes:
            return head.T, None
        if b == 4 + classes:
            return head, None
        if b == 5 + classes:
            return np.delete(head, 4, axis=1), head[:, 4]
        if a == 5 + classes:
            return np.delete(head.T, 4, axis=1), head[4]
        raise ValueError(
            f"the model's head [{a}, {b}] fits neither 4 + {classes} nor 5 + {classes} columns "
            f"for its {classes} class names"
        )
    if a < b:
        return head.T, None  # YOLOv8: channels first
    return np.delete(head, 4, axis=1), head[:, 4]


def class_aware_nms(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_thres: float
) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression within each class, highest
    score first."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    shifted = boxes + (classes.astype(np.float64) * CLASS_OFFSET)[:, None]
    x1, y1, x2, y2 = shifted.T
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    order = np.argsort(-scores, kind="stable")
    kept = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(best)
        width = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        height = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        overlap = width * height
        union = areas[best] + areas[rest] - overlap
        iou = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
        order = rest[iou <= iou_thres]
    return np.array(kept, np.int64)


def to_image_pixels(boxes: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """Boxes in the model's input pixels mapped back to the original image's, clipped to it."""
    shifted = boxes - [letterbox.pad_x, letterbox.pad_y, letterbox.pad_x, letterbox.pad_y]
    scaled = shifted / letterbox.gain
    scaled[:, [0, 2]] = scaled[:, [0, 2]].clip(0, letterbox.width)
    scaled[:, [1, 3]] = scaled[:, [1, 3]].clip(0, letterbox.height)
    return scaled
