#include "tunnx/device.h"

#include <charconv>

#include "tunnx/status.h"

#ifdef TUNNX_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace tunnx {

Device Device::parse(std::string_view text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.starts_with("cuda:")) {
    std::string_view digits = text.substr(5);
    int index = -1;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (ec == std::errc() && end == digits.data() + digits.size() && index >= 0) return cuda(index);
  }
  throw Error(ErrorCode::kInvalidArgument,
              "unknown device '" + std::string(text) + "' (expected cpu, cuda or cuda:N)");
}

std::string Device::to_string() const {
  if (type == DeviceType::kCpu) return "cpu";
  return "cuda:" + std::to_string(index);
}

int cuda_device_count() {
#ifdef TUNNX_WITH_CUDA
  int count = 0;
  // No driver or no GPU is not an error here: the answer is simply zero devices.
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
#else
  return 0;
#endif
}

}  // namespace tunnx
