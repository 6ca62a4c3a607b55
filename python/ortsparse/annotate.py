"""`ortsparse annotate`: a YOLO pipeline's detections drawn onto the images (Pillow)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ortsparse.pipelines import YoloPipeline
from ortsparse.pipelines.images import load_rgb, pil

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def image_files(source: str | os.PathLike) -> list[Path]:
    """``source`` itself, or the image files of the directory ``source`` (sorted)."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(
                f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}"
            )
        return files
    if not path.is_file():
        raise FileNotFoundError(f"no image or directory at {path}")
    return [path]


def draw_detections(
    image: np.ndarray,
    boxes: Iterable[Iterable[float]],
    scores: Iterable[float],
    labels: Iterable[str],
):
    """An RGB PIL image of ``image`` with each box outlined and captioned "label score"."""
    Image = pil()
    from PIL import ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    line_width = max(2, round(0.003 * max(canvas.size)))
    for box, score, label in zip(boxes, scores, labels):
        colour = _colour(label)
        x1, y1, x2, y2 = box
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=line_width)
        caption = f"{label} {score:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), caption)
        height = bottom - top
        top_edge = y1 - height - 2 if y1 - height - 2 >= 0 else y1
        draw.rectangle([x1, top_edge, x1 + (right - left) + 4, top_edge + height + 2], fill=colour)
        draw.text((x1 + 2, top_edge), caption, fill=(255, 255, 255))
    return canvas


def annotate(
    pipeline: YoloPipeline,
    sources: list[Path],
    out_dir: str | os.PathLike,
    progress=print,
    **options,
) -> list[Path]:
    """Runs ``pipeline`` on each of ``sources`` and writes it annotated into ``out_dir`` (same
    file name); the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index, source in enumerate(sources, 1):
        image = load_rgb(source)
        result = pipeline([image], **options)
        target = out / source.name
        draw_detections(image, result.boxes[0], result.scores[0], result.labels[0]).save(target)
        found = ", ".join(sorted(set(result.labels[0]))) or "nothing"
        progress(
            f"[{index}/{len(sources)}] {source} -> {target}: {len(result.boxes[0])} "
            f"detection(s) ({found})"
        )
        written.append(target)
    return written


def _colour(label: str) -> tuple[int, int, int]:
    """A distinct, stable colour per label."""
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(label))
    rng = np.random.default_rng(seed)
    return tuple(int(v) for v in rng.integers(40, 220, 3))
