// Everything a user of tunnx needs: include this one header.
#pragma once

#include <string>

#include "tunnx/checkpoint.h"
#include "tunnx/data.h"
#include "tunnx/device.h"
#include "tunnx/extend.h"
#include "tunnx/io.h"
#include "tunnx/model.h"
#include "tunnx/session.h"
#include "tunnx/status.h"
#include "tunnx/tensor.h"
#include "tunnx/threads.h"
#include "tunnx/train.h"
#include "tunnx/value.h"

namespace tunnx {

const char* version();         // "0.1.0"
std::string build_features();  // "onednn 2.6.3, cuda 13.0 (1 devices)", "onednn off, cuda off"

}  // namespace tunnx
