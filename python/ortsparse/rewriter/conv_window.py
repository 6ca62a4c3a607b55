"""A Conv node's window as SparseConv, SparseQConv and SparseConvInteger take it: strides,
dilations and explicit pads."""

from __future__ import annotations

from dataclasses import dataclass

from ortsparse.rewriter.decisions import Refusal
from ortsparse.rewriter.graph import Shape


@dataclass(frozen=True)
class ConvWindow:
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, int, int, int]  # top, left, bottom, right


def conv_window(attributes: dict, spatial: Shape, kernel: list[int]) -> ConvWindow | Refusal:
    """The window of a Conv node with these attributes, X of these spatial dims and this kernel;
    why not (a string) when auto_pad cannot be resolved."""
    strides = tuple(attributes.get("strides", (1, 1)))
    dilations = tuple(attributes.get("dilations", (1, 1)))
    pads = explicit_pads(attributes, spatial, kernel, strides, dilations)
    if pads is None:
        return Refusal("auto_pad SAME_* needs X's height and width, which are not static")
    return ConvWindow(strides, dilations, pads)


def explicit_pads(
    attributes: dict, spatial: Shape, kernel: list[int], strides: tuple, dilations: tuple
) -> tuple[int, int, int, int] | None:
    """[top, left, bottom, right], auto_pad resolved as ONNX Runtime does; None when SAME_* meets
    a height or width that is not static."""
    auto_pad = attributes.get("auto_pad", b"NOTSET").decode()
    if auto_pad == "NOTSET":
        return tuple(attributes.get("pads", (0, 0, 0, 0)))
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    if not all(isinstance(size, int) for size in spatial):
        return None
    heads, tails = [], []
    for size, k, stride, dilation in zip(spatial, kernel, strides, dilations):
        output_size = -(-size // stride)
        # A negative need (stride above the kernel) changes no output size: it pads nothing.
        needed = max(0, (output_size - 1) * stride + (k - 1) * dilation + 1 - size)
        head = -(-needed // 2) if auto_pad == "SAME_LOWER" else needed // 2
        heads.append(head)
        tails.append(needed - head)
    return (*heads, *tails)
