#!/usr/bin/env bash
# The custom-op library built with AddressSanitizer and UndefinedBehaviorSanitizer (CMake option
# ORTSPARSE_SANITIZE) into build/sanitize, with the C++ microkernel tests (ctest, run first); then
# the op tests (every kernel family this CPU has, compiled SparseConv kernels included), the
# fuzzing of the ops' input validation and of the rewriter, and whole networks under each kernel
# family this CPU has run on the library. Any report aborts the run and fails it.
#
# Python and ONNX Runtime are not instrumented: the sanitizers' runtimes are preloaded so that
# ASan sees every allocation, ORT's included; leak checking is off (CPython's are not ours).
# pytest captures only Python's output (--capture=sys): a report, written to the process's stderr
# just before it aborts, reaches the log. Extra arguments go to pytest.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ORTSPARSE_VENV:-$repo_root/.venv}"
build="$repo_root/build/sanitize"
cd "$repo_root"

echo "test_sanitizers: building the library and the microkernel tests with ASan and UBSan" >&2
cmake -S "$repo_root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DORTSPARSE_BUILD_PYTHON_MODULE=OFF -DORTSPARSE_BUILD_TESTS=ON \
  -DORTSPARSE_SANITIZE=address,undefined >/dev/null
cmake --build "$build" --target ortsparse_ops microkernel_tests -j "$(nproc)" \
  >"$build/build.log" 2>&1 || { cat "$build/build.log" >&2; exit 1; }
ctest --test-dir "$build" --output-on-failure

runtimes="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libubsan.so)"
sanitized=(env LD_PRELOAD="$runtimes"
  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  ORTSPARSE_LIBRARY="$build/libortsparse_ops.so")
pytest=("$venv/bin/python" -m pytest -p no:cacheprovider -q --capture=sys)

echo "test_sanitizers: running the op tests, the fuzzers and whole networks on it..." >&2
"${sanitized[@]}" "${pytest[@]}" \
  tests/test_sparse_gemm_op.py tests/test_sparse_conv_op.py \
  tests/test_sparse_qgemm_op.py tests/test_sparse_qconv_op.py tests/test_sparse_qconv_residual.py \
  tests/test_sparse_matmul_integer_op.py tests/test_sparse_conv_integer_op.py \
  tests/test_fuzz_ops.py tests/test_fuzz_rewriter.py tests/test_end_to_end.py \
  tests/test_quantized_end_to_end.py \
  --deselect tests/test_end_to_end.py::test_resnet50_at_224_rewritten_matches_ort \
  "$@"

# The runs above use this CPU's best kernel family for whole networks; each lower family it has
# runs an FP32 and an INT8 network too (ORTSPARSE_ISA lowers the family; one the CPU lacks
# resolves to one below, run already).
best="$("$venv/bin/python" -c \
  'from ortsparse.isa import cpu_report; print(cpu_report()["best_kernel_family"])')"
for family in scalar avx2 avxvnni avx512 avx512vnni; do
  resolved="$(ORTSPARSE_ISA=$family "$venv/bin/python" -c \
    'from ortsparse.isa import cpu_report; print(cpu_report()["kernel_family"])')"
  if [ "$resolved" != "$family" ] || [ "$family" = "$best" ]; then
    continue
  fi
  echo "test_sanitizers: whole networks on kernel family $family..." >&2
  ORTSPARSE_ISA=$family "${sanitized[@]}" "${pytest[@]}" \
    tests/test_end_to_end.py::test_yolo_rewritten_matches_ort tests/test_quantized_end_to_end.py \
    -k "yolo or resnet" "$@"
done
