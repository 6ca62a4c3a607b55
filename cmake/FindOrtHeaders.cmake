# Locates ONNX Runtime's C/C++ headers (PyPI's wheel ships none), in this order:
#   1. ONNXRUNTIME_INCLUDE_DIR, as a CMake variable or an environment variable;
#   2. the system include directories (e.g. Debian's libonnxruntime-dev);
#   3. the cache filled by tools/fetch_ort_headers.sh.
# Sets ONNXRUNTIME_INCLUDE_DIR to the directory holding onnxruntime_c_api.h.

if(NOT ONNXRUNTIME_INCLUDE_DIR AND DEFINED ENV{ONNXRUNTIME_INCLUDE_DIR})
  set(ONNXRUNTIME_INCLUDE_DIR "$ENV{ONNXRUNTIME_INCLUDE_DIR}")
endif()

if(ONNXRUNTIME_INCLUDE_DIR)
  if(NOT EXISTS "${ONNXRUNTIME_INCLUDE_DIR}/onnxruntime_c_api.h")
    message(FATAL_ERROR
      "ONNXRUNTIME_INCLUDE_DIR=${ONNXRUNTIME_INCLUDE_DIR} does not contain onnxruntime_c_api.h")
  endif()
else()
  if(DEFINED ENV{ORTSPARSE_CACHE_DIR})
    set(_ortsparse_cache "$ENV{ORTSPARSE_CACHE_DIR}")
  elseif(DEFINED ENV{XDG_CACHE_HOME})
    set(_ortsparse_cache "$ENV{XDG_CACHE_HOME}/ortsparse")
  else()
    set(_ortsparse_cache "$ENV{HOME}/.cache/ortsparse")
  endif()
  set(_ortsparse_header_cache "${_ortsparse_cache}/ort-headers/usr/include/onnxruntime")

  # Two searches so that the system directories always win over the download cache.
  find_path(ONNXRUNTIME_INCLUDE_DIR onnxruntime_c_api.h
    PATH_SUFFIXES onnxruntime onnxruntime/core/session)
  if(NOT ONNXRUNTIME_INCLUDE_DIR)
    find_path(ONNXRUNTIME_INCLUDE_DIR onnxruntime_c_api.h
      PATHS "${_ortsparse_header_cache}" NO_DEFAULT_PATH)
  endif()

  if(NOT ONNXRUNTIME_INCLUDE_DIR)
    message(FATAL_ERROR
      "ONNX Runtime C/C++ headers not found (onnxruntime_c_api.h). The PyPI wheel ships none. "
      "Provide them in one of three ways:\n"
      "  1. set ONNXRUNTIME_INCLUDE_DIR (CMake variable or environment variable) to a directory "
      "holding onnxruntime_c_api.h;\n"
      "  2. install them in a system include directory (e.g. Debian 13's libonnxruntime-dev);\n"
      "  3. run tools/fetch_ort_headers.sh, which extracts Debian's libonnxruntime-dev into "
      "${_ortsparse_cache}/ort-headers without installing anything.")
  endif()
endif()

if(NOT EXISTS "${ONNXRUNTIME_INCLUDE_DIR}/onnxruntime_cxx_api.h")
  message(FATAL_ERROR "${ONNXRUNTIME_INCLUDE_DIR} has the C API header but not onnxruntime_cxx_api.h")
endif()
message(STATUS "ONNX Runtime headers: ${ONNXRUNTIME_INCLUDE_DIR}")
