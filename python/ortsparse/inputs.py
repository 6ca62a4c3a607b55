"""Random inputs for a model: the shapes to feed (batch size, symbolic dims, `-shapes`) and data of
every tensor type ONNX Runtime takes as an input.

Shapes: a dim named like a leading (axis 0) symbolic dim is the batch and takes the batch size
wherever it appears; every other symbolic dim is 1. ``-shapes`` replaces all of that by exact
shapes, one per input in the model's input order. A fixed leading dim is the batch size the model
was exported for, and ONNX Runtime cannot change it: asking for another one is an InputError.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import ml_dtypes
import numpy as np
import onnxruntime as ort
from onnx import ModelProto, TensorProto, helper

#: ORT's type strings ("tensor(float)", "tensor(int64)") name the ONNX data types in lower case.
_ONNX_TYPE_OF_ORT_NAME = {
    f"tensor({name.lower()})": value for name, value in TensorProto.DataType.items()
}

_FLOAT_TYPES = {
    TensorProto.FLOAT,
    TensorProto.DOUBLE,
    TensorProto.FLOAT16,
    TensorProto.BFLOAT16,
    TensorProto.FLOAT8E4M3FN,
    TensorProto.FLOAT8E4M3FNUZ,
    TensorProto.FLOAT8E5M2,
    TensorProto.FLOAT8E5M2FNUZ,
}
_INTEGER_TYPES = {
    TensorProto.INT8,
    TensorProto.INT16,
    TensorProto.INT32,
    TensorProto.INT64,
    TensorProto.UINT8,
    TensorProto.UINT16,
    TensorProto.UINT32,
    TensorProto.UINT64,
}
#: Types numpy lacks, as ml_dtypes provides them; ORT only takes them as OrtValues of raw bits.
_RAW_BIT_TYPES = {
    TensorProto.BFLOAT16: ml_dtypes.bfloat16,
    TensorProto.FLOAT8E4M3FN: ml_dtypes.float8_e4m3fn,
    TensorProto.FLOAT8E4M3FNUZ: ml_dtypes.float8_e4m3fnuz,
    TensorProto.FLOAT8E5M2: ml_dtypes.float8_e5m2,
    TensorProto.FLOAT8E5M2FNUZ: ml_dtypes.float8_e5m2fnuz,
}
SUPPORTED_TYPES = _FLOAT_TYPES | _INTEGER_TYPES | {TensorProto.BOOL, TensorProto.STRING}

# Integers are 0 or 1: valid indices into any embedding table (token ids, token type ids) and a
# plausible attention mask.
_INTEGER_HIGH = 2

Dim = Union[int, str, None]  # as ORT reports it: a size, a symbol, or None for an unnamed dim
Feed = Union[np.ndarray, ort.OrtValue]

_SHAPE = r"\[\s*(?:\d+\s*(?:,\s*\d+\s*)*)?\]"
_SHAPES = re.compile(rf"\s*{_SHAPE}(?:\s*,\s*{_SHAPE})*\s*")


class InputError(ValueError):
    """The inputs asked for do not fit the model; the message says which input and why."""


@dataclass(frozen=True)
class InputSpec:
    """One model input as ONNX Runtime reports it."""

    name: str
    type: str  # ORT's type string, e.g. "tensor(float)"
    shape: tuple[Dim, ...]

    @classmethod
    def from_node_arg(cls, node_arg: Any) -> InputSpec:
        return cls(node_arg.name, node_arg.type, tuple(node_arg.shape))

    @property
    def onnx_type(self) -> int:
        return _ONNX_TYPE_OF_ORT_NAME.get(self.type, TensorProto.UNDEFINED)


def input_specs(session: ort.InferenceSession) -> list[InputSpec]:
    return [InputSpec.from_node_arg(node_arg) for node_arg in session.get_inputs()]


def model_input_specs(model: ModelProto) -> list[InputSpec]:
    """The graph inputs that are not initializers, as ORT reports them."""
    constants = {tensor.name for tensor in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in constants:
            continue
        tensor = value.type.tensor_type
        type_name = TensorProto.DataType.Name(tensor.elem_type).lower()
        dims = tuple(
            dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
            for dim in tensor.shape.dim
        )
        specs.append(InputSpec(value.name, f"tensor({type_name})", dims))
    return specs


def unsized_dims(specs: Sequence[InputSpec]) -> dict[str, list[str]]:
    """The symbolic dims nothing sizes but a guess, by input: those not at axis 0 and not named
    like an axis-0 dim (the batch), described as "'name' (axis i)"."""
    batch_symbols = {
        spec.shape[0] for spec in specs if spec.shape and isinstance(spec.shape[0], str)
    }
    unsized = {}
    for spec in specs:
        dims = [
            f"'{dim}' (axis {axis})" if dim else f"an unnamed dim (axis {axis})"
            for axis, dim in enumerate(spec.shape)
            if axis > 0 and not isinstance(dim, int) and dim not in batch_symbols
        ]
        if dims:
            unsized[spec.name] = dims
    return unsized


def parse_input_shapes(text: str) -> list[list[int]]:
    """``"[1,3,224,224],[1,128]"`` -> ``[[1, 3, 224, 224], [1, 128]]``; ``[]`` is a scalar.

    Raises ValueError, with an example of the expected form, for anything else.
    """
    if not _SHAPES.fullmatch(text):
        raise ValueError(
            f"expected one [d0,d1,...] per model input, separated by commas, e.g. "
            f'"[1,3,224,224],[1,128]"; got {text!r}'
        )
    shapes = [[int(dim) for dim in re.findall(r"\d+", shape)] for shape in re.findall(_SHAPE, text)]
    if any(dim == 0 for shape in shapes for dim in shape):
        raise ValueError(f"every dimension must be at least 1; got {text!r}")
    return shapes


@dataclass(frozen=True)
class ResolvedInputs:
    batch_size: int  # items per run, for throughput
    shapes: dict[str, tuple[int, ...]]  # input name -> shape to feed


def resolve_input_shapes(
    specs: Sequence[InputSpec],
    batch_size: int | None = None,
    shapes: Sequence[Sequence[int]] | None = None,
) -> ResolvedInputs:
    """The shape to feed each input (module docstring) and the batch size they make.

    ``batch_size`` None: the model's own fixed batch if it has one, else 1. With ``shapes`` the
    batch size is the first input's leading dim. Raises InputError when the two disagree, when
    ``shapes`` does not fit the model, or when the model fixes another batch size.
    """
    if shapes is not None:
        return _given_shapes(specs, batch_size, shapes)
    fixed_batches = {spec.name: spec.shape[0] for spec in specs if spec.shape and _fixed(spec)}
    if batch_size is None:
        batch_size = next(iter(fixed_batches.values()), 1)
    for name, fixed in fixed_batches.items():
        if fixed != batch_size:
            raise InputError(
                f"input '{name}' has a fixed batch dimension of {fixed}, which ONNX Runtime "
                f"cannot change to {batch_size}: use batch size {fixed}, or give the model a "
                "symbolic batch dimension"
            )
    batch_symbols = {
        spec.shape[0] for spec in specs if spec.shape and isinstance(spec.shape[0], str)
    }
    resolved = {
        spec.name: tuple(
            _dim_size(dim, axis, batch_symbols, batch_size) for axis, dim in enumerate(spec.shape)
        )
        for spec in specs
    }
    return ResolvedInputs(batch_size, resolved)


def _fixed(spec: InputSpec) -> bool:
    return isinstance(spec.shape[0], int)


def _dim_size(dim: Dim, axis: int, batch_symbols: set[str], batch_size: int) -> int:
    if isinstance(dim, int):
        return dim
    return batch_size if axis == 0 or dim in batch_symbols else 1


def _given_shapes(
    specs: Sequence[InputSpec], batch_size: int | None, shapes: Sequence[Sequence[int]]
) -> ResolvedInputs:
    if len(shapes) != len(specs):
        names = ", ".join(spec.name for spec in specs)
        raise InputError(
            f"{len(shapes)} shape(s) given for the model's {len(specs)} input(s) ({names})"
        )
    for spec, shape in zip(specs, shapes):
        if len(shape) != len(spec.shape):
            raise InputError(
                f"input '{spec.name}' has rank {len(spec.shape)} ({_format_dims(spec.shape)}); "
                f"the shape given, {list(shape)}, has rank {len(shape)}"
            )
        for axis, (dim, given) in enumerate(zip(spec.shape, shape)):
            if isinstance(dim, int) and dim != given:
                raise InputError(
                    f"input '{spec.name}' has the fixed size {dim} at axis {axis} "
                    f"({_format_dims(spec.shape)}); the shape given, {list(shape)}, has {given}"
                )
    leading = shapes[0][0] if shapes[0] else 1
    if batch_size is not None and batch_size != leading:
        raise InputError(
            f"batch size {batch_size} disagrees with the first input's shape {list(shapes[0])}"
        )
    return ResolvedInputs(leading, {spec.name: tuple(shape) for spec, shape in zip(specs, shapes)})


def _format_dims(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join("?" if dim is None else str(dim) for dim in shape) + "]"


def random_inputs(
    specs: Sequence[InputSpec], shapes: dict[str, tuple[int, ...]], seed: int = 0
) -> list[np.ndarray]:
    """Random data of each input's type and shape, in input order: floats standard normal,
    integers 0 or 1, booleans, short strings. bfloat16 and float8 inputs are ml_dtypes arrays.

    Raises InputError for an input that is not a tensor of a type ORT accepts as an input.
    """
    rng = np.random.default_rng(seed)
    return [_random_array(spec, shapes[spec.name], rng) for spec in specs]


def _random_array(spec: InputSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    onnx_type = spec.onnx_type
    if onnx_type not in SUPPORTED_TYPES:
        raise InputError(
            f"input '{spec.name}' is a {spec.type}; random data can be made for tensors of "
            "float, double, float16, bfloat16, float8, (u)int8-64, bool and string only"
        )
    if onnx_type == TensorProto.STRING:
        letters = np.array(list("abcdefghij"))
        return np.array(
            ["".join(rng.choice(letters, 4)) for _ in range(int(np.prod(shape)))], dtype=object
        ).reshape(shape)
    if onnx_type == TensorProto.BOOL:
        return rng.random(shape) < 0.5
    dtype = numpy_dtype(onnx_type)
    if onnx_type in _INTEGER_TYPES:
        return rng.integers(0, _INTEGER_HIGH, shape).astype(dtype)
    return rng.standard_normal(shape, dtype=np.float32).astype(dtype)


def numpy_dtype(onnx_type: int) -> np.dtype:
    """The numpy dtype of the ONNX tensor type ``onnx_type``: ml_dtypes' for bfloat16 and float8,
    which onnx before 1.19 maps to float32."""
    if onnx_type in _RAW_BIT_TYPES:
        return np.dtype(_RAW_BIT_TYPES[onnx_type])
    return helper.tensor_dtype_to_np_dtype(onnx_type)


def to_feed(spec: InputSpec, array: np.ndarray) -> Feed:
    """What session.run takes for ``array``: the array itself, or for a type numpy lacks
    (bfloat16, float8) an OrtValue over its bits."""
    if spec.onnx_type not in _RAW_BIT_TYPES:
        return array
    bits = np.ascontiguousarray(array).view(np.uint16 if array.itemsize == 2 else np.uint8)
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, spec.onnx_type)
