"""One-shot sparsification of a dense ONNX model for ortsparse's kernels (`ortsparse sparsify`):
patterns the kernels store (patterns.py), magnitude pruning or layer-wise reconstruction from
calibration inputs (reconstruction.py), over a model's MatMul, Gemm and Conv layers (model.py)."""

from ortsparse.sparsify.calibration_inputs import CalibrationError, CalibrationInputs
from ortsparse.sparsify.model import SparsifyError, SparsifyResult, sparsify_model
from ortsparse.sparsify.patterns import Pattern, parse_pattern
from ortsparse.sparsify.recipe import Recipe, RecipeError, load_recipe

__all__ = [
    "CalibrationError",
    "CalibrationInputs",
    "Pattern",
    "Recipe",
    "RecipeError",
    "SparsifyError",
    "SparsifyResult",
    "load_recipe",
    "parse_pattern",
    "sparsify_model",
]
