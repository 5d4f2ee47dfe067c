// Shell-style globs over parameter names, as Model::requires_grad(glob, value) uses them.
#include "runtime/core/glob.h"

#include <gtest/gtest.h>

namespace tunnx {
namespace {

TEST(Glob, LiteralMatchesOnlyItself) {
  EXPECT_TRUE(glob_match("fc1.weight", "fc1.weight"));
  EXPECT_FALSE(glob_match("fc1.weight", "fc1.weights"));
  EXPECT_FALSE(glob_match("fc1.weight", "fc1.weigh"));
  EXPECT_FALSE(glob_match("fc1.weight", "FC1.weight"));  // case-sensitive
}

TEST(Glob, StarMatchesAcrossDots) {
  EXPECT_TRUE(glob_match("encoder.*.weight", "encoder.layer.0.attn.weight"));
  EXPECT_TRUE(glob_match("encoder.*.weight", "encoder.x.weight"));
  EXPECT_TRUE(glob_match("*", "a.b.c"));
  EXPECT_TRUE(glob_match("fc*", "fc1.bias"));
}

TEST(Glob, StarNeedsTheLiteralPartsAroundIt) {
  EXPECT_FALSE(glob_match("encoder.*.weight", "encoder.weight"));
  EXPECT_FALSE(glob_match("encoder.*.weight", "decoder.layer.0.weight"));
  EXPECT_FALSE(glob_match("encoder.*.weight", "encoder.layer.0.attn.bias"));
}

TEST(Glob, StarMatchesEmpty) {
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("fc1*", "fc1"));
  EXPECT_TRUE(glob_match("**", "x"));
  EXPECT_TRUE(glob_match("a**b", "ab"));
}

TEST(Glob, StarBacktracksToALaterOccurrence) {
  EXPECT_TRUE(glob_match("*.weight", "a.weight.b.weight"));
  EXPECT_TRUE(glob_match("*a*b", "xaxxab"));
  EXPECT_FALSE(glob_match("a*b", "acbd"));
}

TEST(Glob, QuestionMarkMatchesExactlyOneCharacter) {
  EXPECT_TRUE(glob_match("fc?.weight", "fc1.weight"));
  EXPECT_TRUE(glob_match("fc?weight", "fc.weight"));
  EXPECT_FALSE(glob_match("fc?.weight", "fc.weight"));
  EXPECT_FALSE(glob_match("fc?.weight", "fc10.weight"));
  EXPECT_FALSE(glob_match("?", ""));
}

TEST(Glob, ClassMatchesListedCharacters) {
  EXPECT_TRUE(glob_match("fc[12].bias", "fc1.bias"));
  EXPECT_TRUE(glob_match("fc[12].bias", "fc2.bias"));
  EXPECT_FALSE(glob_match("fc[12].bias", "fc3.bias"));
  EXPECT_FALSE(glob_match("fc[12].bias", "fc.bias"));
}

TEST(Glob, ClassRange) {
  EXPECT_TRUE(glob_match("layer[0-3].w", "layer0.w"));
  EXPECT_TRUE(glob_match("layer[0-3].w", "layer3.w"));
  EXPECT_FALSE(glob_match("layer[0-3].w", "layer4.w"));
  EXPECT_TRUE(glob_match("[a-cx]", "x"));
  EXPECT_TRUE(glob_match("[a-]", "-"));  // a '-' before ']' is literal
}

TEST(Glob, NegatedClass) {
  EXPECT_TRUE(glob_match("fc[!1].w", "fc2.w"));
  EXPECT_FALSE(glob_match("fc[!1].w", "fc1.w"));
  EXPECT_TRUE(glob_match("fc[^1].w", "fc2.w"));
  EXPECT_FALSE(glob_match("fc[^1].w", "fc1.w"));
}

TEST(Glob, CloseBracketFirstInAClassIsLiteral) {
  EXPECT_TRUE(glob_match("a[]]", "a]"));
  EXPECT_TRUE(glob_match("a[!]]", "ab"));
  EXPECT_FALSE(glob_match("a[!]]", "a]"));
}

TEST(Glob, UnterminatedClassIsALiteralBracket) {
  EXPECT_TRUE(glob_match("a[b", "a[b"));
  EXPECT_FALSE(glob_match("a[b", "ab"));
}

TEST(Glob, ClassAfterStar) {
  EXPECT_TRUE(glob_match("*.[wb]*", "encoder.layer.0.weight"));
  EXPECT_TRUE(glob_match("*.[wb]*", "fc.bias"));
  EXPECT_FALSE(glob_match("*.[wb]*", "bn.running_mean"));
}

TEST(Glob, EmptyPatternMatchesOnlyEmptyText) {
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("", "x"));
}

TEST(Glob, NoMatch) {
  EXPECT_FALSE(glob_match("conv*", "fc1.weight"));
  EXPECT_FALSE(glob_match("x", ""));
}

TEST(Glob, LongTextWithManyStarsFinishesQuickly) {
  std::string text(10000, 'a');
  EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*b", text));
  EXPECT_TRUE(glob_match("*a*a*a*a*a*a*a*", text));
}

}  // namespace
}  // namespace tunnx
