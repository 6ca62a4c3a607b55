"""The IR version and ai.onnx opset of the models ortsparse makes from nothing (model builders,
calibration models, tests): the newest that the installed onnxruntime supports and the installed
onnx package knows.

Models that come from somewhere (the rewriter's, the sparsifier's, the rewrite cache's) keep
their input's versions instead. onnx's own defaults are no answer: each onnx release stamps its
newest IR version, which older onnxruntime releases refuse ("Unsupported model IR version").
Nor is the newest opset that onnxruntime loads: onnxruntime 1.32 loads opset 28 models but has no
CPU kernel for opset 28's DequantizeLinear, nor for opset 22's RoiAlign.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from onnx import TensorProto, helper

# Every onnxruntime that ortsparse supports (>= 1.21) loads and runs these.
_OLDEST_IR_VERSION = 8
_OLDEST_OPSET = 17
# onnxruntime's kernel registry marks a kernel with no upper version so.
_OPEN_ENDED = 2**31 - 1


@dataclass(frozen=True)
class ModelVersions:
    ir_version: int
    opset: int  # of the default (ai.onnx) domain

    def make_model(
        self, graph: onnx.GraphProto, domains: Sequence[tuple[str, int]] = (), **fields
    ) -> onnx.ModelProto:
        """`graph` as a model of these versions, importing `domains` (name, version) besides."""
        opsets = [helper.make_opsetid("", self.opset)]
        opsets += [helper.make_opsetid(domain, version) for domain, version in domains]
        return helper.make_model(graph, opset_imports=opsets, ir_version=self.ir_version, **fields)


def _loads(ir_version: int) -> bool:
    import onnxruntime

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = ModelVersions(ir_version, _OLDEST_OPSET).make_model(graph)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # the refusal is the answer, not news
    try:
        onnxruntime.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception:  # onnxruntime's Fail/InvalidGraph are not importable as one base class
        return False
    return True


def _runs_every_operator_at(
    opset: int, schema_versions: dict[str, list[int]], kernels: dict[str, list[tuple[int, int]]]
) -> bool:
    """Whether each operator that the CPU provider runs at some opset keeps a kernel at `opset`
    (the schema version in force there; an open-ended kernel matches its own version only, as
    onnxruntime's kernel lookup does)."""
    for op_type, ranges in kernels.items():
        in_force = [version for version in schema_versions.get(op_type, ()) if version <= opset]
        if not in_force:
            continue
        version = max(in_force)
        if not any(
            start == version or start < version <= end < _OPEN_ENDED for start, end in ranges
        ):
            return False
    return True


def _newest_opset(ir_version: int) -> int:
    from onnxruntime.capi import onnxruntime_pybind11_state as runtime

    schema_versions: dict[str, list[int]] = {}
    for schema in runtime.get_all_operator_schema():
        if schema.domain in ("", "ai.onnx") and not schema.deprecated:
            schema_versions.setdefault(schema.name, []).append(schema.since_version)
    kernels: dict[str, list[tuple[int, int]]] = {}
    for kernel in runtime.get_all_opkernel_def():
        if kernel.domain in ("", "ai.onnx") and kernel.provider == "CPUExecutionProvider":
            kernels.setdefault(kernel.op_name, []).append(tuple(kernel.version_range))
    newest_known = min(
        onnx.defs.onnx_opset_version(), max(max(v) for v in schema_versions.values())
    )
    return next(
        opset
        for opset in range(newest_known, _OLDEST_OPSET - 1, -1)
        if helper.find_min_ir_version_for([helper.make_opsetid("", opset)]) <= ir_version
        and _runs_every_operator_at(opset, schema_versions, kernels)
    )


@functools.cache
def newest_model_versions() -> ModelVersions:
    """The newest IR version that the installed onnxruntime loads, and the newest opset at which
    its CPU provider still runs every operator it runs at all; neither newer than the installed
    onnx knows. Found once per process (a few milliseconds)."""
    ir_version = next(ir for ir in range(onnx.IR_VERSION, _OLDEST_IR_VERSION - 1, -1) if _loads(ir))
    return ModelVersions(ir_version, _newest_opset(ir_version))
