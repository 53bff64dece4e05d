// The CUDA build runs on the CUDA device (the CPU addon links device_select_cpu.cpp instead).
#include "engine/device.h"

namespace al {

Device& cuda_device();  // cuda/device_cuda.cu

Device& default_device() { return cuda_device(); }

}  // namespace al
