"""Images as the pipelines take them: file paths, encoded bytes, numpy arrays or PIL images,
each read into an RGB uint8 array [height, width, 3]."""

from __future__ import annotations

import io
import os
from typing import Any, Union

import numpy as np

ImageInput = Union[str, os.PathLike, bytes, np.ndarray, Any]  # Any: a PIL.Image.Image


class ImageError(ValueError):
    """An input that is not an image the pipelines can read."""


def pil():
    """The PIL module (Pillow), which the pipelines extra installs."""
    try:
        from PIL import Image
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "ortsparse's pipelines need Pillow: pip install 'ortsparse[pipelines]'"
        ) from error
    return Image


def load_rgb(image: ImageInput) -> np.ndarray:
    """``image`` as an RGB uint8 array [H, W, 3]. Arrays are taken as RGB: [H, W, 3] (uint8, or
    float in [0, 1]), [H, W, 4] (alpha dropped) or [H, W] grayscale."""
    if isinstance(image, np.ndarray):
        return _rgb_array(image)
    Image = pil()
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, (bytes, bytearray)):
        if not image:
            raise ImageError("the image is empty (0 bytes)")
        return _decode(io.BytesIO(image), "the data")
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise ImageError(f"no image file at {path}")
        with open(path, "rb") as file:
            return _decode(file, path)
    raise ImageError(
        f"an image must be a path, bytes, a numpy array or a PIL image, not {type(image).__name__}"
    )


def _decode(file, origin: str) -> np.ndarray:
    Image = pil()
    try:
        with Image.open(file) as opened:
            return np.asarray(opened.convert("RGB"))
    except Image.UnidentifiedImageError:
        raise ImageError(f"{origin} is not an image (no format Pillow reads)") from None
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as error:
        raise ImageError(f"{origin} is not an image Pillow can read ({error})") from None


def _rgb_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or 0 in array.shape:
        raise ImageError(
            f"an image array must be [height, width, 3 or 4] or [height, width], got {array.shape}"
        )
    array = array[:, :, :3]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating):
        return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    raise ImageError(f"an image array must be uint8 or float in [0, 1], got {array.dtype}")


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of an RGB uint8 array with Pillow, which averages over the source pixels
    when shrinking, as torchvision's transforms on PIL images do. (Ultralytics resizes with
    OpenCV's INTER_LINEAR, which does not: scores can differ from theirs in the last digits.)"""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    Image = pil()
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
