"""Soak and concurrency of the compiled SparseConv kernels (AVX-512): sessions on several threads
compile and run new input sizes at once and are dropped while others run; afterwards no compiled
code stays mapped and the process has not grown beyond the allocator's caches. Run with -s to see
the figures."""

from __future__ import annotations

import gc
import threading

import numpy as np
import onnxruntime as ort
import ortsparse
import pytest
from onnx import TensorProto, helper, numpy_helper
from ortsparse.isa import cpu_report
from ortsparse.model_versions import newest_model_versions
from ortsparse.rewriter import rewrite_model

from tests.rewriter_testing import FORCE_REWRITE, conv_weight

THREADS = 4
ROUNDS = 20
SIZES = [(9, 11), (12, 12), (15, 7), (20, 18), (24, 31), (31, 9), (33, 33), (40, 22)]
# What the process may keep after the soak: the allocators' caches, ORT's arenas.
RSS_GROWTH_LIMIT_MB = 64

pytestmark = pytest.mark.skipif(
    not cpu_report()["best_kernel_family"].startswith("avx512"),
    reason="the compiled SparseConv kernels are AVX-512's",
)


def conv_chain():
    """X [1, 16, h, w] -> two 3x3 convs, 80% sparse, rewritten into SparseConv nodes."""
    nodes = [
        helper.make_node("Conv", ["X", "W0"], ["h"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Conv", ["r", "W1"], ["Y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    ]
    weights = [conv_weight(32, 16, (3, 3), 0.8, seed=0), conv_weight(24, 32, (3, 3), 0.8, seed=1)]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 16, "h", "w"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 24, "h", "w"])],
        [numpy_helper.from_array(w, f"W{i}") for i, w in enumerate(weights)],
    )
    model = newest_model_versions().make_model(graph)
    rewritten = rewrite_model(model, min_sparsity=FORCE_REWRITE).model
    assert [n.op_type for n in rewritten.graph.node] == ["SparseConv", "SparseConv"]
    return model.SerializeToString(), rewritten.SerializeToString()


def executable_bytes() -> int:
    """Bytes of anonymous executable mappings: where compiled kernels live."""
    total = 0
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if "x" in fields[1] and len(fields) < 6:  # no path: anonymous
                start, end = (int(part, 16) for part in fields[0].split("-"))
                total += end - start
    return total


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def make_session(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.register_custom_ops_library(ortsparse.library_path())
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def soak(rewritten, references, errors, seed):
    rng = np.random.default_rng(seed)
    for _ in range(ROUNDS):
        session = make_session(rewritten)  # a new session compiles each size again
        for index in rng.permutation(len(SIZES))[:3]:
            x, expected = references[index]
            (actual,) = session.run(None, {"X": x})
            if not np.allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()):
                errors.append(f"size {SIZES[index]}: outputs differ from ORT's")
        del session


def test_sessions_compiling_at_once_free_their_code_and_memory():
    original, rewritten = conv_chain()
    rng = np.random.default_rng(0)
    reference = make_session(original)
    references = []
    for height, width in SIZES:
        x = rng.standard_normal((1, 16, height, width)).astype(np.float32)
        references.append((x, reference.run(None, {"X": x})[0]))
    del reference

    soak(rewritten, references, [], seed=99)  # warm-up: ORT's and the allocators' first growth
    gc.collect()
    base_code, base_rss = executable_bytes(), rss_mb()

    live = make_session(rewritten)
    for x, _ in references:
        live.run(None, {"X": x})
    compiled_code = executable_bytes() - base_code
    assert compiled_code > 0, "no compiled code was mapped: the test would see nothing"

    errors: list[str] = []
    threads = [
        threading.Thread(target=soak, args=(rewritten, references, errors, seed))
        for seed in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for x, expected in references:  # the live session keeps running meanwhile
        np.testing.assert_allclose(live.run(None, {"X": x})[0], expected, rtol=1e-4, atol=1e-4)
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert executable_bytes() - base_code == compiled_code  # only the live session's code
    del live
    gc.collect()
    left_code, growth = executable_bytes() - base_code, rss_mb() - base_rss
    print(
        f"\n{len(SIZES)} sizes, {THREADS} threads x {ROUNDS} sessions: one session's compiled "
        f"code {compiled_code / 1024:.0f} KiB; after the soak {left_code} bytes of code left, "
        f"RSS {growth:+.1f} MB"
    )
    assert left_code == 0
    assert growth < RSS_GROWTH_LIMIT_MB
