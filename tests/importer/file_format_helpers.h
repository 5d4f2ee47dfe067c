// What the .npy / .npz / safetensors tests share: tensors of every dtype with known values, raw file
// bytes, and cross-checks with the project's .venv Python (tests/e2e/venv_python.h).
#pragma once

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/core/float16.h"
#include "tests/e2e/cli_harness.h"
#include "tests/e2e/venv_python.h"
#include "tunnx/tensor.h"

namespace tunnx::formats {

namespace fs = std::filesystem;

using e2e::kVenvPython;
using e2e::run_python;
using e2e::venv_python_has;

// Distinct, exactly representable values in every dtype; the integers use their full width.
inline Tensor sample(DataType dtype, std::vector<int64_t> dims, int seed = 0) {
  Tensor t(dtype, std::move(dims));
  auto fill = [&t](auto&& value_at) {
    using T = decltype(value_at(int64_t{}));
    T* p = static_cast<T*>(t.mutable_data());
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = value_at(i);
  };
  auto small = [seed](int64_t i) { return static_cast<int>((i * 7 + seed) % 23) - 11; };
  switch (dtype) {
    case DataType::kBool: fill([&](int64_t i) { return (i + seed) % 3 == 0; }); break;
    case DataType::kInt8: fill([&](int64_t i) { return static_cast<int8_t>(small(i) * 11); }); break;
    case DataType::kInt16: fill([&](int64_t i) { return static_cast<int16_t>(small(i) * 2900); }); break;
    case DataType::kInt32: fill([&](int64_t i) { return static_cast<int32_t>(small(i) * 190'000'000); }); break;
    case DataType::kInt64: fill([&](int64_t i) { return small(i) * (int64_t{1} << 59); }); break;
    case DataType::kUInt8: fill([&](int64_t i) { return static_cast<uint8_t>(250 - small(i)); }); break;
    case DataType::kUInt16: fill([&](int64_t i) { return static_cast<uint16_t>(65000 - small(i)); }); break;
    case DataType::kUInt32: fill([&](int64_t i) { return static_cast<uint32_t>(4'000'000'000u - small(i)); }); break;
    case DataType::kUInt64: fill([&](int64_t i) { return (uint64_t{1} << 63) + static_cast<uint64_t>(small(i) + 11); }); break;
    case DataType::kFloat16: fill([&](int64_t i) { return Float16(small(i) * 0.25f); }); break;
    case DataType::kBFloat16: fill([&](int64_t i) { return BFloat16(small(i) * 0.125f); }); break;
    case DataType::kFloat32: fill([&](int64_t i) { return small(i) * 1.5e-3f; }); break;
    case DataType::kFloat64: fill([&](int64_t i) { return small(i) * 1e-300; }); break;
    case DataType::kString: fill([&](int64_t i) { return "s" + std::to_string(small(i)) + "\xc3\xa9"; }); break;
    default: break;
  }
  return t;
}

inline std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// The message of the tunnx::Error `f` throws; a test failure if it throws nothing or something else.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-tunnx exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

// Damages `bytes` `rounds` times (1 to 4 random bytes set to random values, or a random cut, from a
// fixed seed), writes each copy to `path` and calls `load`, which must succeed or throw tunnx::Error:
// any other exception fails the test, and a crash ends it.
inline void load_damaged_copies(const std::string& bytes, const fs::path& path, const std::function<void()>& load,
                                int rounds = 400) {
  std::mt19937 random(20240607);
  for (int round = 0; round < rounds; ++round) {
    std::string damaged = bytes;
    if (round % 8 == 7) {
      damaged.resize(random() % bytes.size());
    } else {
      for (int n = 1 + static_cast<int>(random() % 4); n > 0; --n)
        damaged[random() % damaged.size()] = static_cast<char>(random());
    }
    write_bytes(path, damaged);
    try {
      load();
    } catch (const Error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "round " << round << ": a non-tunnx exception: " << e.what();
    }
  }
}

}  // namespace tunnx::formats
