// The CPU build runs on the CPU device (the CUDA addon links cuda/device_select_cuda.cpp instead).
#include "engine/device.h"

namespace al {

Device& default_device() { return cpu_device(); }

}  // namespace al
