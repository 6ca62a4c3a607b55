#!/usr/bin/env python3
"""Quantize an FP32 ONNX model to INT8 with ONNX Runtime's own static quantizer
(`onnxruntime.quantization.quantize_static`), calibrated on seeded random inputs, or with its
dynamic one (`quantize_dynamic`, --format dynamic: MatMul -> MatMulInteger behind a
DynamicQuantizeLinear of its activation, no calibration).

Weights become signed 8-bit; activations unsigned (u8, default) or signed (s8) 8-bit. Float
inputs are calibrated on standard-normal data, integer inputs (token ids) on zeros; symbolic dims
get sizes only for calibration (--batch, --dim) and stay symbolic in the output. The scales thus
fit random inputs, not a real data set: the result is meant for measuring INT8 speed and
structure, not for deployment accuracy.

    python tools/build_model.py mlp --out mlp.onnx
    python tools/quantize_model.py mlp.onnx mlp.int8.onnx                      # QDQ, per tensor
    python tools/quantize_model.py mlp.onnx mlp.qop.onnx --format qoperator --per-channel
    python tools/build_model.py bert --layers 2 --out bert.onnx
    python tools/quantize_model.py bert.onnx bert.int8.onnx --batch 4 --dim sequence=128
    python tools/quantize_model.py resnet50.onnx resnet50.int8.onnx --activation-type s8
    python tools/quantize_model.py bert.onnx bert.dyn.onnx --format dynamic    # MatMulInteger
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_dynamic,
    quantize_static,
)

_FORMATS = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator, "dynamic": None}
_ACTIVATION_TYPES = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
_INTEGER_TYPES = {
    onnx.TensorProto.INT8,
    onnx.TensorProto.UINT8,
    onnx.TensorProto.INT16,
    onnx.TensorProto.UINT16,
    onnx.TensorProto.INT32,
    onnx.TensorProto.UINT32,
    onnx.TensorProto.INT64,
    onnx.TensorProto.UINT64,
}


class BadInput(Exception):
    """A problem with the user's model or options (as opposed to a bug): main() prints it."""


class _RandomDataReader(CalibrationDataReader):
    """`samples` feeds of standard-normal floats (zeros for integer inputs such as token ids)."""

    def __init__(
        self, inputs: dict[str, tuple[np.dtype, tuple[int, ...]]], samples: int, seed: int
    ):
        self._feeds = self._generate(inputs, samples, np.random.default_rng(seed))

    @staticmethod
    def _generate(inputs, samples, rng) -> Iterator[dict[str, np.ndarray]]:
        for _ in range(samples):
            yield {
                name: rng.standard_normal(shape, dtype=np.float32)
                if dtype == np.float32
                else np.zeros(shape, dtype)
                for name, (dtype, shape) in inputs.items()
            }

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _load(model_path: Path) -> onnx.ModelProto:
    if not model_path.is_file():
        raise BadInput(f"{model_path}: no such file")
    try:
        model = onnx.load(str(model_path))
    except Exception as error:  # protobuf's DecodeError and onnx's external-data errors alike
        raise BadInput(f"{model_path}: not an ONNX model ({error})") from error
    # Protobuf parses many non-model byte strings without complaint, into an empty graph.
    if not model.graph.node or not model.opset_import:
        raise BadInput(f"{model_path}: not an ONNX model (no graph nodes or opset)")
    return model


def _input_specs(
    model: onnx.ModelProto, dims: dict[str, int], batch: int
) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Each graph input's numpy dtype and concrete calibration shape."""
    # Old exporters list initializers among the graph inputs; those are not fed.
    initializers = {tensor.name for tensor in model.graph.initializer}
    specs = {}
    used_dims = set()
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        if (
            tensor_type.elem_type != onnx.TensorProto.FLOAT
            and tensor_type.elem_type not in _INTEGER_TYPES
        ):
            type_name = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
            raise BadInput(
                f"input '{value.name}' has type {type_name}; only float32 and integer inputs "
                "can be given random calibration data"
            )
        shape = []
        for axis, dim in enumerate(tensor_type.shape.dim):
            if dim.HasField("dim_value"):
                shape.append(dim.dim_value)
            elif dim.dim_param in dims:
                shape.append(dims[dim.dim_param])
                used_dims.add(dim.dim_param)
            elif axis == 0:
                shape.append(batch)
            elif dim.dim_param:
                raise BadInput(
                    f"input '{value.name}' has symbolic dim '{dim.dim_param}' at axis {axis}; "
                    f"give it a size with --dim {dim.dim_param}=VALUE"
                )
            else:
                raise BadInput(
                    f"input '{value.name}' has an unnamed dynamic dim at axis {axis}, which "
                    "--dim cannot name; give the model a fixed or named dim there"
                )
        specs[value.name] = (
            onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type),
            tuple(shape),
        )
    unused = sorted(set(dims) - used_dims)
    if unused:
        raise BadInput(f"--dim {', '.join(unused)}: no model input has a symbolic dim of that name")
    return specs


def quantize_model(
    model_path: str | Path,
    out_path: str | Path,
    *,
    quant_format: str = "qdq",
    per_channel: bool = False,
    activation_type: str = "u8",
    samples: int = 8,
    dims: dict[str, int] | None = None,
    batch: int = 1,
    seed: int = 0,
    float_products: bool = False,
) -> None:
    """Quantize the FP32 model at `model_path` to INT8 (s8 weights) and save it at `out_path`.

    quant_format: "qdq" (QuantizeLinear/DequantizeLinear pairs around float ops), "qoperator"
    (QLinearConv, QLinearMatMul, ...) or "dynamic" (MatMulInteger, ConvInteger: activations
    quantized at run time, to u8 only, no calibration). activation_type: "u8" or "s8".
    samples: how many random calibration feeds. dims: sizes of named symbolic input dims; a
    symbolic first dim not named there gets `batch`, any other one missing raises BadInput. seed:
    seeds the calibration data.
    float_products: (qdq only) leave the outputs of Conv, MatMul and Gemm in float, dequantized
    products as partly quantized models have them, instead of quantizing them again.
    """
    if quant_format not in _FORMATS:
        raise BadInput(f"quant_format must be one of {sorted(_FORMATS)}, not {quant_format!r}")
    if activation_type not in _ACTIVATION_TYPES:
        raise BadInput(
            f"activation_type must be one of {sorted(_ACTIVATION_TYPES)}, not {activation_type!r}"
        )
    if quant_format == "dynamic" and activation_type != "u8":
        raise BadInput("dynamic quantization quantizes activations to u8 (DynamicQuantizeLinear)")
    if float_products and quant_format != "qdq":
        raise BadInput("float products are a form of the qdq format only")
    if samples < 1 or batch < 1 or any(size < 1 for size in (dims or {}).values()):
        raise BadInput("samples, batch and every --dim size must be at least 1")
    model_path, out_path = Path(model_path), Path(out_path)
    model = _load(model_path)
    # Only calibration needs input sizes.
    inputs = {} if quant_format == "dynamic" else _input_specs(model, dims or {}, batch)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="quantize_model.") as tmp:
        # Pre-processing folds BatchNormalization into Conv (resnet50, yolo), which the quantizer
        # would otherwise leave in float between DequantizeLinear and QuantizeLinear, and infers
        # shapes the quantizer needs. (It also fuses MatMul + Add into Gemm, so QOperator output
        # has QGemm where the input had MatMul with a bias.) Its symbolic shape inference needs
        # sympy, which is not a dependency of this project, so it is skipped; ONNX's own shape
        # inference still runs.
        preprocessed = Path(tmp) / "preprocessed.onnx"
        print(
            "[quantize] pre-processing (ORT basic optimizations, ONNX shape inference) ...",
            file=sys.stderr,
        )
        quant_pre_process(str(model_path), str(preprocessed), skip_symbolic_shape=True)

        if quant_format == "dynamic":
            print("[quantize] quantizing weights (dynamic) ...", file=sys.stderr)
            quantize_dynamic(
                str(preprocessed),
                str(out_path),
                per_channel=per_channel,
                weight_type=QuantType.QInt8,
            )
            print(f"[quantize] wrote {out_path}", file=sys.stderr)
            return
        shapes = ", ".join(f"{name} {list(shape)}" for name, (_, shape) in inputs.items())
        print(f"[quantize] calibrating on {samples} random samples ({shapes}) ...", file=sys.stderr)
        quantize_static(
            str(preprocessed),
            str(out_path),
            _RandomDataReader(inputs, samples, seed),
            quant_format=_FORMATS[quant_format],
            per_channel=per_channel,
            activation_type=_ACTIVATION_TYPES[activation_type],
            weight_type=QuantType.QInt8,
            extra_options=(
                {"OpTypesToExcludeOutputQuantization": ["Conv", "MatMul", "Gemm"]}
                if float_products
                else {}
            ),
        )
    print(f"[quantize] wrote {out_path}", file=sys.stderr)


def _dim(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with VALUE >= 1, got {text!r}")
    return name, int(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quantize_model.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", type=Path, help="the FP32 .onnx model")
    parser.add_argument("out", type=Path, help="where to write the INT8 .onnx model")
    parser.add_argument(
        "--format",
        choices=list(_FORMATS),
        default="qdq",
        help="qdq: QuantizeLinear/DequantizeLinear around float ops (default); qoperator: "
        "QLinearConv, QLinearMatMul, QGemm and other quantized operators; dynamic: "
        "MatMulInteger/ConvInteger with activations quantized at run time (u8, no calibration)",
    )
    parser.add_argument(
        "--per-channel",
        action="store_true",
        help="one weight scale per output channel of Conv, MatMul and Gemm weights",
    )
    parser.add_argument(
        "--activation-type",
        choices=list(_ACTIVATION_TYPES),
        default="u8",
        help="activation type (default u8); weights are always s8",
    )
    parser.add_argument(
        "--float-products",
        action="store_true",
        help="(qdq only) leave the outputs of Conv, MatMul and Gemm in float instead of "
        "quantizing them again, as partly quantized models have them",
    )
    parser.add_argument(
        "--calibration-samples",
        type=int,
        default=8,
        metavar="N",
        help="random calibration feeds (default 8)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        metavar="B",
        help="size given to a symbolic first (batch) dim of each input during calibration "
        "(default 1); the model keeps its symbolic dims",
    )
    parser.add_argument(
        "--dim",
        type=_dim,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="size of the symbolic dim NAME during calibration, e.g. --dim sequence=128 "
        "(repeatable; overrides --batch for a first dim); required for every symbolic dim "
        "that is not a first dim",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random calibration data (default 0)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        quantize_model(
            args.model,
            args.out,
            quant_format=args.format,
            per_channel=args.per_channel,
            activation_type=args.activation_type,
            samples=args.calibration_samples,
            dims=dict(args.dim),
            batch=args.batch,
            seed=args.seed,
            float_products=args.float_products,
        )
    except BadInput as error:
        # One line, even where the message came from protobuf or onnx.
        print(f"quantize_model.py: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
