"""Image pipelines on ortsparse's sparse execution: ``Pipeline.create(task=..., model_path=...)``
for the tasks `yolo` and `image_classification` (pipeline.py, yolo.py, classification.py)."""

from ortsparse.pipelines.classification import ClassificationOutput, ImageClassificationPipeline
from ortsparse.pipelines.images import ImageError
from ortsparse.pipelines.pipeline import Pipeline, Timings
from ortsparse.pipelines.yolo import YoloOutput, YoloPipeline

__all__ = [
    "ClassificationOutput",
    "ImageClassificationPipeline",
    "ImageError",
    "Pipeline",
    "Timings",
    "YoloOutput",
    "YoloPipeline",
]
