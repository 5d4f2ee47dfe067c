#include "runtime/core/glob.h"

#include <vector>

namespace tunnx {
namespace {

// Matches one character class starting at pattern[p] == '['. Sets `next` past the ']'.
// Returns false with next == npos when the class is unterminated (then '[' is a literal).
bool match_class(std::string_view pattern, size_t p, char c, size_t& next) {
  size_t i = p + 1;
  bool negate = i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^');
  if (negate) ++i;
  bool matched = false;
  bool first = true;
  for (; i < pattern.size() && (pattern[i] != ']' || first); ++i, first = false) {
    if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
      if (pattern[i] <= c && c <= pattern[i + 2]) matched = true;
      i += 2;
    } else if (pattern[i] == c) {
      matched = true;
    }
  }
  if (i >= pattern.size()) {
    next = std::string_view::npos;
    return false;
  }
  next = i + 1;
  return matched != negate;
}

}  // namespace

// Iterative matcher with single-star backtracking: linear in practice, no recursion blow-up.
bool glob_match(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0;
  size_t star_p = std::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size()) {
      char pc = pattern[p];
      if (pc == '*') {
        star_p = p++;
        star_t = t;
        continue;
      }
      if (pc == '?') {
        ++p, ++t;
        continue;
      }
      if (pc == '[') {
        size_t next = 0;
        bool ok = match_class(pattern, p, text[t], next);
        if (next == std::string_view::npos) {
          if (text[t] == '[') {
            ++p, ++t;
            continue;
          }
        } else if (ok) {
          p = next, ++t;
          continue;
        }
      } else if (pc == text[t]) {
        ++p, ++t;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace tunnx
