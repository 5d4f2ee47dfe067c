// Devices a tensor or session can live on. Only the CPU executes today; CUDA is recognised so that
// models, parameters and the CLI can already name it.
#pragma once

#include <string>
#include <string_view>

namespace tunnx {

enum class DeviceType { kCpu, kCuda };

struct Device {
  DeviceType type = DeviceType::kCpu;
  int index = 0;

  static Device cpu() { return {DeviceType::kCpu, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::kCuda, index}; }
  // "cpu", "cuda", "cuda:1"; throws Error(kInvalidArgument) on anything else.
  static Device parse(std::string_view text);

  std::string to_string() const;
  bool operator==(const Device&) const = default;
};

// Number of CUDA devices visible to this process (0 when built without CUDA or with no GPU).
int cuda_device_count();

}  // namespace tunnx
