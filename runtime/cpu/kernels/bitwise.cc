// Bitwise integer ops of the elementwise family: BitwiseAnd, BitwiseOr, BitwiseXor (opset 18,
// numpy broadcasting), BitwiseNot (opset 18, X's shape), and BitShift from opset 28, which added the
// signed integers (the unsigned BitShift of opsets 11-27 lives with the arithmetic in
// elementwise_binary.cc). The output has the inputs' dtype.
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/elementwise_binary.h"

namespace tunnx::cpu {
namespace {

using IntegerTypes = Types<int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t>;

// out = fn(a, b) over the broadcast of A and B, for the integer dtypes `types`.
template <typename... Ts, typename Fn>
void integer_binary(KernelContext& ctx, Types<Ts...> types, const Fn& fn) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  require_same_dtype(ctx, a, b);
  const std::vector<int64_t> dims = broadcast_shapes({a.dims(), b.dims()}, ctx);
  dispatch(a.dtype(), ctx, types, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output_uninitialized(0, a.dtype(), dims);
    const T* pa = data<T>(a);
    const T* pb = data<T>(b);
    T* out = mutable_data<T>(y);
    const int64_t n = y.numel();
    if (a.dims() == dims && b.dims() == dims) {
      for (int64_t i = 0; i < n; ++i) out[i] = fn(pa[i], pb[i]);
      return;
    }
    const std::vector<int64_t> ia = broadcast_index_map(a.dims(), dims), ib = broadcast_index_map(b.dims(), dims);
    for (int64_t i = 0; i < n; ++i) out[i] = fn(pa[ia[static_cast<size_t>(i)]], pb[ib[static_cast<size_t>(i)]]);
  });
}

template <typename Fn> void add_bitwise(KernelRegistry& r, const char* op, Fn fn) {
  add_kernel(r, op, 18, INT_MAX, dtypes(IntegerTypes{}), [fn](const KernelInit&) {
    return make_kernel([fn](KernelContext& ctx) { integer_binary(ctx, IntegerTypes{}, fn); });
  });
}

// BitShift from opset 28. LEFT wraps (through the sign bit of a signed T); RIGHT is arithmetic for a
// signed T. A shift that is negative or at least the bit width leaves only the sign fill: -1 for RIGHT
// of a negative X, else 0.
template <typename T> T shift(T x, T by, bool left) {
  constexpr T bits = static_cast<T>(sizeof(T) * 8);
  if constexpr (std::is_signed_v<T>) {
    if (by < 0 || by >= bits) return left || x >= 0 ? T(0) : T(-1);
  } else {
    if (by >= bits) return T(0);
  }
  if (left) return static_cast<T>(static_cast<Wide<T>>(x) << by);
  return static_cast<T>(x >> by);
}

}  // namespace

void register_bitwise_kernels(KernelRegistry& r) {
  add_bitwise(r, "BitwiseAnd", [](auto a, auto b) { return static_cast<decltype(a)>(a & b); });
  add_bitwise(r, "BitwiseOr", [](auto a, auto b) { return static_cast<decltype(a)>(a | b); });
  add_bitwise(r, "BitwiseXor", [](auto a, auto b) { return static_cast<decltype(a)>(a ^ b); });

  add_kernel(r, "BitwiseNot", 18, INT_MAX, dtypes(IntegerTypes{}), [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      dispatch(x.dtype(), ctx, IntegerTypes{}, [&](auto tag) {
        using T = typename decltype(tag)::type;
        Tensor& y = ctx.allocate_output_uninitialized(0, x.dtype(), x.dims());
        const T* in = data<T>(x);
        T* out = mutable_data<T>(y);
        for (int64_t i = 0; i < x.numel(); ++i) out[i] = static_cast<T>(~in[i]);
      });
    });
  });

  // Every integer dtype, the unsigned ones too: registered before elementwise_binary.cc's unsigned
  // BitShift (opset 11 on), this kernel is the one chosen from opset 28 when the planner cannot tell
  // the dtype.
  add_kernel(r, "BitShift", 28, INT_MAX, dtypes(IntegerTypes{}), [](const KernelInit& init) {
    const std::string direction = init.attr_string("direction", "");
    if (direction != "LEFT" && direction != "RIGHT")
      throw init.error("direction must be \"LEFT\" or \"RIGHT\", got \"" + direction + "\"");
    const bool left = direction == "LEFT";
    return make_kernel([left](KernelContext& ctx) {
      integer_binary(ctx, IntegerTypes{}, [left](auto x, auto by) { return shift(x, by, left); });
    });
  });
}

}  // namespace tunnx::cpu
