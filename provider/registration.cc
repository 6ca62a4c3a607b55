// Entry point ORT calls when the library is registered with SessionOptions: adds the ortsparse
// domain and its operators.
#include <mutex>
#include <vector>

#include "operators/integer_ops.h"
#include "operators/sparse_conv.h"
#include "operators/sparse_gemm.h"
#include "operators/sparse_qconv.h"
#include "operators/sparse_qgemm.h"

namespace {

constexpr const char* kDomain = "ortsparse";

// ORT keeps pointers to the op objects and to each domain for as long as sessions created from the
// options live, so both live until the library is unloaded.
std::vector<OrtCustomOp*>& Operators() {
  static ortsparse::SparseGemmOp sparse_gemm;
  static ortsparse::SparseConvOp sparse_conv;
  using ortsparse::OutputForm;
  static ortsparse::SparseQGemmOp<OutputForm::kRequantized> sparse_qgemm;
  static ortsparse::SparseQGemmOp<OutputForm::kFloat> sparse_qgemm_float;
  static ortsparse::SparseQConvOp<ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, OutputForm::kRequantized>
      sparse_qconv_u8;
  static ortsparse::SparseQConvOp<ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, OutputForm::kRequantized>
      sparse_qconv_s8;
  static ortsparse::SparseQConvOp<ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, OutputForm::kFloat>
      sparse_qconv_u8_float;
  static ortsparse::SparseQConvOp<ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, OutputForm::kFloat>
      sparse_qconv_s8_float;
  static ortsparse::SparseMatMulIntegerOp<ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8> matmul_integer_u8;
  static ortsparse::SparseMatMulIntegerOp<ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8> matmul_integer_s8;
  static ortsparse::SparseConvIntegerOp<ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8> conv_integer_u8;
  static ortsparse::SparseConvIntegerOp<ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8> conv_integer_s8;
  static std::vector<OrtCustomOp*> operators = {
      &sparse_gemm,           &sparse_conv,           &sparse_qgemm,      &sparse_qgemm_float,
      &sparse_qconv_u8,       &sparse_qconv_s8,       &sparse_qconv_u8_float,
      &sparse_qconv_s8_float, &matmul_integer_u8,     &matmul_integer_s8, &conv_integer_u8,
      &conv_integer_s8};
  return operators;
}

void KeepAlive(Ort::CustomOpDomain&& domain) {
  static std::mutex mutex;
  static std::vector<Ort::CustomOpDomain> domains;
  std::lock_guard<std::mutex> lock(mutex);
  domains.push_back(std::move(domain));
}

}  // namespace

extern "C" OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                     const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  // A runtime older than the headers offers no API to report the problem with; registering
  // nothing makes session creation fail on the unknown ortsparse ops instead.
  if (api == nullptr) return nullptr;
  Ort::InitApi(api);
  try {
    Ort::CustomOpDomain domain{kDomain};
    for (OrtCustomOp* op : Operators()) domain.Add(op);
    Ort::UnownedSessionOptions{options}.Add(domain);
    KeepAlive(std::move(domain));
    return nullptr;
  } catch (const Ort::Exception& e) {
    return api->CreateStatus(e.GetOrtErrorCode(), e.what());
  } catch (const std::exception& e) {
    return api->CreateStatus(ORT_FAIL, e.what());
  }
}
