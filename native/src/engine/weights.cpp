#include "engine/weights.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace al {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
  }
  return "?";
}

// A whole file mapped read-only; pages come in on demand and are shared with the page cache.
struct TensorReader::MappedFile {
  std::string path;
  const uint8_t* data = nullptr;
  uint64_t size = 0;

  explicit MappedFile(const std::string& p) : path(p) {
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot open '" + p + "': " + std::strerror(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      throw std::runtime_error("cannot stat '" + p + "': " + std::strerror(err));
    }
    size = static_cast<uint64_t>(st.st_size);
    if (size > 0) {  // mmap rejects length 0; an empty file simply holds no tensor
      void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (m == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        throw std::runtime_error("cannot map '" + p + "': " + std::strerror(err));
      }
      ::madvise(m, size, MADV_SEQUENTIAL);
      data = static_cast<const uint8_t*>(m);
    }
    ::close(fd);  // the mapping stays valid without the descriptor
  }
  ~MappedFile() {
    if (data) ::munmap(const_cast<uint8_t*>(data), size);
  }
};

TensorReader::TensorReader() = default;
TensorReader::~TensorReader() = default;

const TensorReader::MappedFile& TensorReader::map(const std::string& path) {
  auto it = files_.find(path);
  if (it == files_.end()) it = files_.emplace(path, std::make_unique<MappedFile>(path)).first;
  return *it->second;
}

namespace {

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24 is exact in fp32.
    float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / nan
  } else {
    bits = sign | ((exp + (127 - 15)) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

void TensorReader::check(const TensorRef& ref, const Shape& expected) {
  const std::string where = "tensor '" + ref.name + "' in '" + ref.file + "'";
  if (ref.shape != expected) {
    throw std::runtime_error(where + " has shape " + shape_str(ref.shape) + " but the model config implies " +
                             shape_str(expected));
  }
  const uint64_t want = static_cast<uint64_t>(numel(ref.shape)) * dtype_size(ref.dtype);
  if (ref.nbytes != want) {
    throw std::runtime_error(where + " is " + std::to_string(ref.nbytes) + " bytes but shape " + shape_str(ref.shape) +
                             " of " + dtype_name(ref.dtype) + " needs " + std::to_string(want) + " bytes");
  }
  const MappedFile& f = map(ref.file);
  if (ref.offset > f.size || ref.nbytes > f.size - ref.offset) {
    throw std::runtime_error(where + " spans bytes " + std::to_string(ref.offset) + ".." +
                             std::to_string(ref.offset + ref.nbytes) + " but the file has only " +
                             std::to_string(f.size) + " bytes (truncated file or wrong tensor table)");
  }
}

const uint8_t* TensorReader::raw(const TensorRef& ref, const Shape& expected) {
  check(ref, expected);
  return map(ref.file).data + ref.offset;
}

void convert_to_f32(const uint8_t* src, DType dtype, int64_t n, float* dst) {
  // Offsets need not be aligned (safetensors packs F16 tensors back to back), so every
  // element is read through memcpy, which compiles to an unaligned load.
  switch (dtype) {
    case DType::F32:
      if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      break;
    case DType::F16:
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      break;
    case DType::BF16:
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      break;
  }
}

Tensor TensorReader::read(const TensorRef& ref, const Shape& expected) {
  check(ref, expected);
  const MappedFile& f = map(ref.file);
  Tensor t(ref.shape);
  convert_to_f32(f.data + ref.offset, ref.dtype, numel(ref.shape), t.ptr());
  return t;
}

}  // namespace al
