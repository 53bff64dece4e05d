// A dense fp32 buffer with its row-major shape. Weights and adapter matrices use it;
// activations live in plain vectors inside RunState.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace al {

using Shape = std::vector<int64_t>;

inline int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

inline std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

struct Tensor {
  Shape shape;
  std::vector<float> data;  // numel(shape) values, row-major

  Tensor() = default;
  explicit Tensor(Shape s) : shape(std::move(s)), data(static_cast<size_t>(numel(shape))) {}

  bool empty() const { return data.empty(); }
  float* ptr() { return data.data(); }
  const float* ptr() const { return data.data(); }
  size_t bytes() const { return data.size() * sizeof(float); }
};

}  // namespace al
