#!/usr/bin/env bash
# The tests of what an AVX2 CPU without AVX-512 changes, run on such a CPU emulated by QEMU
# (Haswell): ortsparse's AVX2 and scalar kernel families as the best the CPU has, and ORT's own
# AVX2 kernels, whose u8 x s8 products saturate (tests/int8_reference.py). Correctness only: QEMU
# says nothing of speed. Extra arguments go to pytest.
#
# Runs the kernel-family op tests (FP32 and INT8), the fuzzing of the ops' validation and of the
# rewriter, the rewriter's rule tests, the quantization tool's, the INT8 benchmark's (whose ORT
# reference saturates there), the whole-network tests (FP32 and INT8 ones, ResNet-50 at 224
# aside: 70 s under QEMU for what the small ResNets check too) and the trained zoo models' (OCR,
# YOLOv8n, PP-LCNet). About 4 minutes on 2 cores.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ORTSPARSE_VENV:-$repo_root/.venv}"
qemu="$("$repo_root/tools/fetch_qemu.sh" | tail -n 1)"
cd "$repo_root"

emulated=(env "QEMU_CPU=Haswell-v4" "$qemu" "$venv/bin/python")
family="$("${emulated[@]}" -c 'from ortsparse.isa import cpu_report; print(cpu_report()["best_kernel_family"])')"
if [ "$family" != "avx2" ]; then
  echo "test_avx2: QEMU's CPU offers kernel family '$family', not avx2" >&2
  exit 1
fi
echo "test_avx2: running the AVX2 tests on QEMU's Haswell..." >&2
exec "${emulated[@]}" -m pytest -p no:cacheprovider \
  tests/test_sparse_gemm_op.py tests/test_sparse_conv_op.py \
  tests/test_sparse_qgemm_op.py tests/test_sparse_qconv_op.py tests/test_sparse_qconv_residual.py \
  tests/test_sparse_matmul_integer_op.py tests/test_sparse_conv_integer_op.py \
  tests/test_fuzz_ops.py tests/test_fuzz_rewriter.py python/ortsparse/rewriter \
  tests/test_quantize_model.py tests/test_quantized_end_to_end.py tests/test_bench_int8.py \
  tests/test_model_zoo.py tests/test_bench_zoo.py tests/test_verification.py \
  tests/test_end_to_end.py --deselect tests/test_end_to_end.py::test_resnet50_at_224_rewritten_matches_ort \
  "$@"
