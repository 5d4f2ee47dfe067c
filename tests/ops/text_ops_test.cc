// StringConcat, StringSplit and RegexFullMatch (opset 20) on hand-made strings.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/core/ops/gradient.h"
#include "tests/ops/node_runner.h"

namespace tunnx_test {
namespace {

using namespace tunnx;
using ops::attr;

Tensor strings(std::vector<int64_t> dims, std::vector<std::string> values) {
  return Tensor::from_vector(std::move(dims), values);
}

std::vector<std::string> strings_of(const Value& v) {
  const Tensor& t = v.tensor();
  return std::vector<std::string>(t.data_as<std::string>(), t.data_as<std::string>() + t.numel());
}

TEST(StringConcat, BroadcastsAndKeepsUtf8) {
  std::vector<Value> out = run_one_node({.domain = "", .opset = 20, .op_type = "StringConcat",
                                         .inputs = {strings({2, 1}, {"a", "\u00e9"}), strings({3}, {"x", "", "\u4e2d"})},
                                         .attributes = {}});
  EXPECT_EQ(out[0].tensor().dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(strings_of(out[0]), (std::vector<std::string>{"ax", "a", "a\u4e2d", "\u00e9x", "\u00e9", "\u00e9\u4e2d"}));
}

TEST(StringConcat, RejectsNonStringsAndBadShapes) {
  std::string why = error_of([] {
    run_one_node({.domain = "", .opset = 20, .op_type = "StringConcat",
                  .inputs = {strings({2}, {"a", "b"}), strings({3}, {"x", "y", "z"})}, .attributes = {}});
  });
  EXPECT_NE(why.find("node 'node' (StringConcat)"), std::string::npos) << why;
}

// Runs StringSplit on `x` with `attributes`; returns (Y, Z).
std::pair<Value, Value> split(Tensor x, std::vector<ir::Attribute> attributes) {
  std::vector<Value> out = run_one_node({.domain = "", .opset = 20, .op_type = "StringSplit", .inputs = {std::move(x)},
                                         .attributes = std::move(attributes), .num_outputs = 2});
  return {out[0], out[1]};
}

TEST(StringSplit, DelimiterKeepsEmptyPiecesAndPads) {
  auto [y, z] = split(strings({3}, {"a,,b", "", "c"}), {attr("delimiter", std::string(","))});
  EXPECT_EQ(y.tensor().dims(), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(strings_of(y), (std::vector<std::string>{"a", "", "b", "", "", "", "c", "", ""}));
  EXPECT_EQ(z.tensor().dims(), (std::vector<int64_t>{3}));
  const int64_t* counts = z.tensor().data_as<int64_t>();
  EXPECT_EQ(std::vector<int64_t>(counts, counts + 3), (std::vector<int64_t>{3, 1, 1}));
}

TEST(StringSplit, WhitespaceRunsWithMaxsplit) {
  // No delimiter: runs of whitespace (U+3000 included, as Python's str.split) separate; leading and
  // trailing whitespace go; after maxsplit splits the rest is one piece, its leading spaces dropped.
  auto [y, z] = split(strings({2}, {"  a \t b  c ", "x\u3000y"}), {attr("maxsplit", int64_t{1})});
  EXPECT_EQ(strings_of(y), (std::vector<std::string>{"a", "b  c ", "x", "y"}));
  const int64_t* counts = z.tensor().data_as<int64_t>();
  EXPECT_EQ(counts[0], 2);
  EXPECT_EQ(counts[1], 2);
  auto [all, n] = split(strings({1}, {"   "}), {});
  EXPECT_EQ(all.tensor().dims(), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(n.tensor().data_as<int64_t>()[0], 0);
}

TEST(StringSplit, RejectsNonStrings) {
  std::string why = error_of([] { split(Tensor::from_vector<int64_t>({1}, {7}), {}); });
  EXPECT_NE(why.find("X must be a string tensor, got int64"), std::string::npos) << why;
}

TEST(RegexFullMatch, MatchesWholeStrings) {
  std::vector<Value> out = run_one_node({.domain = "", .opset = 20, .op_type = "RegexFullMatch",
                                         .inputs = {strings({4}, {"ab12", "ab12x", "", "AB1"})},
                                         .attributes = {attr("pattern", std::string("[a-z]+\\d*"))}});
  const bool* m = out[0].tensor().data_as<bool>();
  EXPECT_EQ(std::vector<bool>(m, m + 4), (std::vector<bool>{true, false, false, false}));
}

TEST(RegexFullMatch, InvalidPatternNamesTheNode) {
  std::string why = error_of([] {
    run_one_node({.domain = "", .opset = 20, .op_type = "RegexFullMatch", .inputs = {strings({1}, {"a"})},
                  .attributes = {attr("pattern", std::string("(a"))}});
  });
  EXPECT_NE(why.find("node 'node' (RegexFullMatch)"), std::string::npos) << why;
  EXPECT_NE(why.find("invalid RE2 pattern '(a': missing )"), std::string::npos) << why;
}

}  // namespace
}  // namespace tunnx_test
