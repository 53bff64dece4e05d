// Reading tensors out of safetensors files. The TS side parsed the headers and passes
// each tensor's location; this file maps the bytes read-only and converts to fp32.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "engine/tensor.h"

namespace al {

enum class DType { F32, F16, BF16 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);

// n stored values of `dtype` at `src` (any alignment) to fp32.
void convert_to_f32(const uint8_t* src, DType dtype, int64_t n, float* dst);

// Where one stored tensor lives.
struct TensorRef {
  std::string name;    // HF name, used in every error message
  std::string file;    // absolute path of the .safetensors file
  uint64_t offset = 0; // absolute byte offset of the first element
  uint64_t nbytes = 0;
  DType dtype = DType::F32;
  Shape shape;         // as stored, e.g. [out_features, in_features]
};

// Maps each file once (on first use) and converts tensors to fp32.
class TensorReader {
 public:
  TensorReader();
  ~TensorReader();
  TensorReader(const TensorReader&) = delete;
  TensorReader& operator=(const TensorReader&) = delete;

  // Checks that `ref` has the `expected` shape, that its byte length matches shape and
  // dtype and that it lies inside its file. Throws std::runtime_error naming the tensor
  // and the file otherwise. Cheap: loaders check every tensor before reading any.
  void check(const TensorRef& ref, const Shape& expected);
  // check(), then the tensor converted to fp32.
  Tensor read(const TensorRef& ref, const Shape& expected);
  // check(), then the tensor's stored bytes as mapped (ref.nbytes of ref.dtype; any alignment).
  const uint8_t* raw(const TensorRef& ref, const Shape& expected);

 private:
  struct MappedFile;
  const MappedFile& map(const std::string& path);
  std::map<std::string, std::unique_ptr<MappedFile>> files_;
};

}  // namespace al
