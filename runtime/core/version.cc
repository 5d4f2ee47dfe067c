#include <string>

#include "tunnx/tunnx.h"

#ifdef TUNNX_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif
#ifdef TUNNX_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace tunnx {

const char* version() { return "0.1.0"; }

std::string build_features() {
  std::string out;
#ifdef TUNNX_WITH_ONEDNN
  const dnnl_version_t* v = dnnl_version();
  out += "onednn " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch);
#else
  out += "onednn off";
#endif
#ifdef TUNNX_WITH_CUDA
  out += ", cuda " + std::to_string(CUDART_VERSION / 1000) + "." + std::to_string(CUDART_VERSION % 1000 / 10);
  out += " (" + std::to_string(cuda_device_count()) + " devices)";
#else
  out += ", cuda off";
#endif
  return out;
}

}  // namespace tunnx
