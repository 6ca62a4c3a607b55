"""INT8 after pruning: ONNX Runtime's own static quantizer on the sparse model, calibrated on the
same inputs, so that the INT8 sparse kernels take the result.

Weights become int8 with one symmetric scale per output channel (or per tensor): a pruned weight,
exactly 0.0, quantizes to exactly 0, so the pattern survives. Activations are uint8 or int8,
their ranges calibrated by ORT (min-max) on the calibration samples. The format is QDQ
(QuantizeLinear / DequantizeLinear around float operators, which the rewriter turns into
SparseQGemm and SparseQConv) or QOperator (QLinearMatMul, QLinearConv).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from ortsparse.sparsify.calibration_inputs import CalibrationInputs

FORMATS = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
ACTIVATION_TYPES = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}


@dataclass(frozen=True)
class Quantization:
    format: str = "qdq"
    per_channel: bool = True
    activation_type: str = "u8"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.activation_type not in ACTIVATION_TYPES:
            raise ValueError(
                f"activation_type must be one of {', '.join(ACTIVATION_TYPES)}, got "
                f"{self.activation_type!r}"
            )


class _Feeds(CalibrationDataReader):
    def __init__(self, calibration: CalibrationInputs) -> None:
        self._feeds = iter(calibration)

    def get_next(self):
        return next(self._feeds, None)


def quantize(
    model: onnx.ModelProto, calibration: CalibrationInputs, quantization: Quantization
) -> onnx.ModelProto:
    """`model` (float, pruned) quantized to INT8 as `quantization` says."""
    with tempfile.TemporaryDirectory(prefix="ortsparse-sparsify.") as scratch:
        source, preprocessed, quantized = (
            Path(scratch) / name for name in ("sparse.onnx", "pre.onnx", "int8.onnx")
        )
        onnx.save(model, str(source))
        # Folds BatchNormalization into Conv, which the quantizer would leave in float, and
        # infers the shapes it needs (ONNX's inference: the symbolic one needs sympy).
        quant_pre_process(str(source), str(preprocessed), skip_symbolic_shape=True)
        quantize_static(
            str(preprocessed),
            str(quantized),
            _Feeds(calibration),
            quant_format=FORMATS[quantization.format],
            per_channel=quantization.per_channel,
            activation_type=ACTIVATION_TYPES[quantization.activation_type],
            weight_type=QuantType.QInt8,
        )
        return onnx.load(str(quantized))
