// Text ops: StringNormalizer, TfIdfVectorizer, StringConcat, StringSplit, RegexFullMatch.
//
// StringNormalizer: X is string [C] or [1, C]. Elements equal to a stopword are dropped, the rest
// are lowercased / uppercased / kept; Y is [C'] or [1, C']. When every element is dropped Y is [1]
// or [1, 1] holding "".
// TfIdfVectorizer: X is int32/int64/string [C] or [N, C]; Y is float32 [K] or [N, K] with
// K = max(ngram_indexes) + 1, holding each pool n-gram's (weighted) count at ngram_indexes[i].
// StringConcat: Z = X + Y elementwise, numpy broadcasting.
// StringSplit: X string [...]; Y string [..., K] holds each element's pieces padded with "", K the
// most pieces of any element; Z int64 [...] the number of pieces of each element.
// RegexFullMatch: Y bool [...] = whether the RE2 pattern matches all of X's element.
#include <re2/re2.h>

#include <algorithm>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

// ---------------------------------------------------------------------------------------------
// UTF-8 case mapping. Single code point to single code point, the mappings glibc's towlower /
// towupper make in C.UTF-8 for ASCII, Latin-1 Supplement, Latin Extended-A, Greek and Cyrillic.
// A table of our own (rather than the C library under a locale) keeps results independent of the
// process locale and thread-safe. Other code points, and bytes that are not valid UTF-8, pass
// through unchanged.

// Code points in [lo, hi] with the parity of `lo` map to cp + delta (pairs like U+0100/U+0101).
bool in_pairs(char32_t cp, char32_t lo, char32_t hi) { return cp >= lo && cp <= hi && (cp - lo) % 2 == 0; }

char32_t to_lower(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 32;
  if (cp == 0x130) return 'i';
  if (cp == 0x178) return 0xFF;
  if (in_pairs(cp, 0x100, 0x12E) || in_pairs(cp, 0x132, 0x136) || in_pairs(cp, 0x139, 0x147) ||
      in_pairs(cp, 0x14A, 0x176) || in_pairs(cp, 0x179, 0x17D))
    return cp + 1;
  // Greek: accented capitals, then the plain alphabet (U+03A2 is unassigned).
  if (cp == 0x386) return 0x3AC;
  if (cp >= 0x388 && cp <= 0x38A) return cp + 37;
  if (cp == 0x38C) return 0x3CC;
  if (cp == 0x38E || cp == 0x38F) return cp + 63;
  if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) return cp + 32;
  // Cyrillic.
  if (cp >= 0x400 && cp <= 0x40F) return cp + 80;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 32;
  if (cp == 0x4C0) return 0x4CF;
  if (in_pairs(cp, 0x460, 0x480) || in_pairs(cp, 0x48A, 0x4BE) || in_pairs(cp, 0x4C1, 0x4CD) ||
      in_pairs(cp, 0x4D0, 0x52E))
    return cp + 1;
  return cp;
}

char32_t to_upper(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
  if (cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) return cp - 32;
  if (cp == 0xB5) return 0x39C;  // micro sign -> Greek capital mu
  if (cp == 0xFF) return 0x178;
  if (cp == 0x131) return 'I';
  if (cp == 0x17F) return 'S';
  if (in_pairs(cp, 0x101, 0x12F) || in_pairs(cp, 0x133, 0x137) || in_pairs(cp, 0x13A, 0x148) ||
      in_pairs(cp, 0x14B, 0x177) || in_pairs(cp, 0x17A, 0x17E))
    return cp - 1;
  if (cp == 0x3AC) return 0x386;
  if (cp >= 0x3AD && cp <= 0x3AF) return cp - 37;
  if (cp == 0x3CC) return 0x38C;
  if (cp == 0x3CD || cp == 0x3CE) return cp - 63;
  if (cp == 0x3C2) return 0x3A3;  // final sigma
  if (cp >= 0x3B1 && cp <= 0x3CB) return cp - 32;
  if (cp >= 0x430 && cp <= 0x44F) return cp - 32;
  if (cp >= 0x450 && cp <= 0x45F) return cp - 80;
  if (cp == 0x4CF) return 0x4C0;
  if (in_pairs(cp, 0x461, 0x481) || in_pairs(cp, 0x48B, 0x4BF) || in_pairs(cp, 0x4C2, 0x4CE) ||
      in_pairs(cp, 0x4D1, 0x52F))
    return cp - 1;
  return cp;
}

// Decodes one code point at s[i]; returns its byte length, or 0 when the bytes are not valid UTF-8.
size_t decode_utf8(std::string_view s, size_t i, char32_t& cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t len;
  if (c < 0x80) {
    cp = c;
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  static constexpr char32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};  // reject overlong forms
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// `s` with every code point mapped through `fn`.
std::string map_case(std::string_view s, char32_t (*fn)(char32_t)) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    size_t len = decode_utf8(s, i, cp);
    if (len == 0) {
      out += s[i++];
      continue;
    }
    append_utf8(out, fn(cp));
    i += len;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// StringNormalizer (opset 10).

enum class CaseChange { kNone, kLower, kUpper };

struct StringNormalizerAttrs {
  CaseChange action = CaseChange::kNone;
  bool case_sensitive = false;
  // Stopwords as compared: verbatim when case-sensitive, lowercased otherwise.
  std::unordered_set<std::string> stopwords;
};

void run_string_normalizer(KernelContext& ctx, const StringNormalizerAttrs& a) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DataType::kString) throw ctx.error("X must be a string tensor, got " + std::string(to_string(x.dtype())));
  const auto& dims = x.dims();
  const bool two_d = dims.size() == 2;
  if (!(dims.size() == 1 || (two_d && dims[0] == 1)))
    throw ctx.error("X must have shape [C] or [1, C], got " + dims_to_string(dims));

  const std::string* in = data<std::string>(x);
  std::vector<std::string> kept;
  kept.reserve(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const std::string& s = in[i];
    if (!a.stopwords.empty()) {
      bool stop = a.case_sensitive ? a.stopwords.count(s) != 0 : a.stopwords.count(map_case(s, to_lower)) != 0;
      if (stop) continue;
    }
    switch (a.action) {
      case CaseChange::kNone: kept.push_back(s); break;
      case CaseChange::kLower: kept.push_back(map_case(s, to_lower)); break;
      case CaseChange::kUpper: kept.push_back(map_case(s, to_upper)); break;
    }
  }
  if (kept.empty()) kept.emplace_back();  // the spec's "empty value": one empty string
  const auto c = static_cast<int64_t>(kept.size());
  Tensor& y = ctx.allocate_output(0, DataType::kString, two_d ? std::vector<int64_t>{1, c} : std::vector<int64_t>{c});
  std::string* out = mutable_data<std::string>(y);
  for (size_t i = 0; i < kept.size(); ++i) out[i] = std::move(kept[i]);
}

std::unique_ptr<Kernel> make_string_normalizer(const KernelInit& init) {
  StringNormalizerAttrs a;
  const std::string action = init.attr_string("case_change_action", "NONE");
  if (action == "LOWER") a.action = CaseChange::kLower;
  else if (action == "UPPER") a.action = CaseChange::kUpper;
  else if (action != "NONE")
    throw init.error("case_change_action must be LOWER, UPPER or NONE, got '" + action + "'");
  a.case_sensitive = init.attr_int("is_case_sensitive", 0) != 0;
  // `locale` is accepted and ignored: the case mapping above is locale-independent.
  for (const std::string& w : init.attr_strings("stopwords"))
    a.stopwords.insert(a.case_sensitive ? w : map_case(w, to_lower));
  return make_kernel([a = std::move(a)](KernelContext& ctx) { run_string_normalizer(ctx, a); });
}

// ---------------------------------------------------------------------------------------------
// TfIdfVectorizer (opset 9).
//
// The pool's n-grams go into a trie keyed by item; a node reached by the items of a pool n-gram
// holds that n-gram's number (its position among the pool's n-grams). Counting walks the trie from
// every start position of a row, stepping by skip + 1 items, for every skip in [0, max_skip_count].

enum class Weighting { kTF, kIDF, kTFIDF };

template <typename K> struct NgramTrie {
  struct Node {
    std::unordered_map<K, int32_t> children;
    int64_t ngram = -1;  // which pool n-gram ends here; -1: none
  };
  std::vector<Node> nodes{1};  // nodes[0] is the root

  void insert(const K* items, int64_t n, int64_t ngram) {
    int32_t at = 0;
    for (int64_t i = 0; i < n; ++i) {
      auto [it, added] = nodes[static_cast<size_t>(at)].children.try_emplace(items[i], 0);
      if (added) it->second = static_cast<int32_t>(nodes.size());
      at = it->second;
      if (added) nodes.emplace_back();  // may move the maps, so `it` is not used past here
    }
    nodes[static_cast<size_t>(at)].ngram = ngram;  // a repeated n-gram: the last one wins
  }
  // The child of `at` by `key`, or -1.
  int32_t child(int32_t at, const K& key) const {
    const auto& ch = nodes[static_cast<size_t>(at)].children;
    auto it = ch.find(key);
    return it == ch.end() ? -1 : it->second;
  }
};

struct TfIdfAttrs {
  Weighting mode = Weighting::kTF;
  int64_t min_gram = 1, max_gram = 1, max_skip = 0;
  std::vector<int64_t> ngram_indexes;  // output column of each pool n-gram
  std::vector<float> weights;          // empty: all ones
  int64_t output_size = 0;
  bool strings = false;  // which pool (and trie) is in use
  NgramTrie<int64_t> int_trie;
  NgramTrie<std::string> string_trie;
};

// Adds one row's n-gram counts to `counts` (output_size entries). `row` holds the row's C items.
template <typename K>
void count_row(const TfIdfAttrs& a, const NgramTrie<K>& trie, const K* row, int64_t c, int64_t* counts) {
  int64_t min_size = a.min_gram;
  // A step past the row's end fits no n-gram longer than one item.
  const int64_t max_step = std::min(a.max_skip, c) + 1;
  for (int64_t step = 1; step <= max_step; ++step) {
    // The first item of an n-gram of min_size must leave room for the rest: start + step * (min_size - 1) < c.
    for (int64_t start = 0; start < c && min_size - 1 <= (c - 1 - start) / step; ++start) {
      int32_t node = 0;
      for (int64_t size = 1, item = start; size <= a.max_gram && item < c; ++size, item += step) {
        node = trie.child(node, row[item]);
        if (node < 0) break;
        int64_t ngram = trie.nodes[static_cast<size_t>(node)].ngram;
        if (size >= min_size && ngram >= 0) ++counts[a.ngram_indexes[static_cast<size_t>(ngram)]];
      }
    }
    // Unigrams do not depend on the skip: count them on the first pass only.
    if (min_size == 1) {
      min_size = 2;
      if (min_size > a.max_gram) break;
    }
  }
}

void run_tfidf(KernelContext& ctx, const TfIdfAttrs& a) {
  const Tensor& x = ctx.input(0);
  const auto& dims = x.dims();
  if (dims.size() > 2) throw ctx.error("X must have shape [C] or [N, C], got " + dims_to_string(dims));
  const bool batched = dims.size() == 2;
  const int64_t rows = batched ? dims[0] : 1;
  const int64_t c = batched ? dims[1] : x.numel();

  Tensor& y = ctx.allocate_output(0, DataType::kFloat32,
                                  batched ? std::vector<int64_t>{rows, a.output_size} : std::vector<int64_t>{a.output_size});
  std::vector<int64_t> counts(static_cast<size_t>(rows * a.output_size), 0);

  if (a.strings) {
    if (x.dtype() != DataType::kString)
      throw ctx.error("pool_strings is set, so X must be a string tensor, got " + std::string(to_string(x.dtype())));
    const std::string* in = data<std::string>(x);
    for (int64_t r = 0; r < rows; ++r) count_row(a, a.string_trie, in + r * c, c, counts.data() + r * a.output_size);
  } else {
    if (x.dtype() != DataType::kInt32 && x.dtype() != DataType::kInt64)
      throw ctx.error("pool_int64s is set, so X must be an int32 or int64 tensor, got " +
                      std::string(to_string(x.dtype())));
    const std::vector<int64_t> in = read_int_values(x, ctx);
    for (int64_t r = 0; r < rows; ++r) count_row(a, a.int_trie, in.data() + r * c, c, counts.data() + r * a.output_size);
  }

  // Weights are indexed by output column, as ONNX Runtime and the ONNX reference implementation do.
  float* out = mutable_data<float>(y);
  for (int64_t i = 0; i < rows * a.output_size; ++i) {
    const float w = a.weights.empty() ? 1.0f : a.weights[static_cast<size_t>(i % a.output_size)];
    const auto n = static_cast<float>(counts[static_cast<size_t>(i)]);
    switch (a.mode) {
      case Weighting::kTF: out[i] = n; break;
      case Weighting::kIDF: out[i] = n > 0 ? w : 0.0f; break;
      case Weighting::kTFIDF: out[i] = n * w; break;
    }
  }
}

std::unique_ptr<Kernel> make_tfidf(const KernelInit& init) {
  auto a = std::make_shared<TfIdfAttrs>();
  const std::string mode = init.attr_string("mode", "");
  if (mode == "TF") a->mode = Weighting::kTF;
  else if (mode == "IDF") a->mode = Weighting::kIDF;
  else if (mode == "TFIDF") a->mode = Weighting::kTFIDF;
  else throw init.error("mode must be TF, IDF or TFIDF, got '" + mode + "'");

  a->min_gram = init.attr_int("min_gram_length", 0);
  a->max_gram = init.attr_int("max_gram_length", 0);
  a->max_skip = init.attr_int("max_skip_count", 0);
  if (a->min_gram < 1 || a->max_gram < a->min_gram)
    throw init.error("need 1 <= min_gram_length <= max_gram_length, got " + std::to_string(a->min_gram) + " and " +
                     std::to_string(a->max_gram));
  if (a->max_skip < 0) throw init.error("max_skip_count must be >= 0, got " + std::to_string(a->max_skip));

  const bool has_ints = init.has_attr("pool_int64s"), has_strings = init.has_attr("pool_strings");
  if (has_ints == has_strings) throw init.error("exactly one of pool_int64s and pool_strings must be set");
  a->strings = has_strings;
  const std::vector<int64_t> pool_ints = init.attr_ints("pool_int64s");
  const std::vector<std::string> pool_strings = init.attr_strings("pool_strings");
  const auto pool_size = static_cast<int64_t>(has_strings ? pool_strings.size() : pool_ints.size());

  a->ngram_indexes = init.attr_ints("ngram_indexes");
  a->weights = init.attr_floats("weights");
  const std::vector<int64_t> ngram_counts = init.attr_ints("ngram_counts");
  if (a->ngram_indexes.empty()) throw init.error("ngram_indexes must not be empty");
  for (int64_t index : a->ngram_indexes) {
    if (index < 0) throw init.error("ngram_indexes must be >= 0, got " + std::to_string(index));
    a->output_size = std::max(a->output_size, index + 1);
  }
  if (!a->weights.empty() && static_cast<int64_t>(a->weights.size()) < a->output_size)
    throw init.error("weights has " + std::to_string(a->weights.size()) + " values, the output has " +
                     std::to_string(a->output_size) + " columns");

  // ngram_counts[k] is where the (k+1)-grams start in the pool; each level is a whole number of n-grams.
  int64_t ngram = 0;
  for (size_t k = 0; k < ngram_counts.size(); ++k) {
    const int64_t begin = ngram_counts[k];
    const int64_t end = k + 1 < ngram_counts.size() ? ngram_counts[k + 1] : pool_size;
    const auto size = static_cast<int64_t>(k + 1);
    if (begin < 0 || end < begin || end > pool_size)
      throw init.error("ngram_counts must be non-decreasing offsets into the pool of " + std::to_string(pool_size) +
                       " items");
    if ((end - begin) % size != 0)
      throw init.error("the pool's " + std::to_string(size) + "-grams take " + std::to_string(end - begin) +
                       " items, not a multiple of " + std::to_string(size));
    const int64_t count = (end - begin) / size;
    if (ngram + count > static_cast<int64_t>(a->ngram_indexes.size()))
      throw init.error("the pool holds more n-grams than ngram_indexes has entries (" +
                       std::to_string(a->ngram_indexes.size()) + ")");
    // Only the lengths the op extracts go into the trie; the others still take their numbers.
    if (size >= a->min_gram && size <= a->max_gram) {
      for (int64_t g = 0; g < count; ++g) {
        const int64_t first = begin + g * size;
        if (has_strings) a->string_trie.insert(pool_strings.data() + first, size, ngram + g);
        else a->int_trie.insert(pool_ints.data() + first, size, ngram + g);
      }
    }
    ngram += count;
  }
  // Extra ngram_indexes entries (more than the pool's n-grams) only widen the output, as in ONNX Runtime.

  return make_kernel([a](KernelContext& ctx) { run_tfidf(ctx, *a); });
}

// ---------------------------------------------------------------------------------------------
// StringConcat, StringSplit, RegexFullMatch (opset 20).

void require_strings(const KernelContext& ctx, const Tensor& t, const char* name) {
  if (t.dtype() != DataType::kString)
    throw ctx.error(std::string(name) + " must be a string tensor, got " + to_string(t.dtype()));
}

void run_string_concat(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& y = ctx.input(1);
  require_strings(ctx, x, "X");
  require_strings(ctx, y, "Y");
  const std::vector<int64_t> dims = broadcast_shapes({x.dims(), y.dims()}, ctx);
  const std::vector<int64_t> xi = broadcast_index_map(x.dims(), dims), yi = broadcast_index_map(y.dims(), dims);
  Tensor& z = ctx.allocate_output(0, DataType::kString, dims);
  const std::string *a = data<std::string>(x), *b = data<std::string>(y);
  std::string* out = mutable_data<std::string>(z);
  for (size_t i = 0; i < xi.size(); ++i) out[i] = a[xi[i]] + b[yi[i]];
}

// The code points Python's str.isspace() accepts: the reference splits with str.split().
bool is_python_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// Byte length of the whitespace code point at s[i], or 0 when s[i] starts anything else.
size_t space_at(std::string_view s, size_t i) {
  char32_t cp = 0;
  const size_t len = decode_utf8(s, i, cp);
  return len != 0 && is_python_space(cp) ? len : 0;
}

// Python's s.split(delimiter, maxsplit): on every delimiter, or, when the delimiter is empty, on runs
// of whitespace with leading and trailing whitespace dropped. maxsplit < 0 splits without limit.
std::vector<std::string_view> split(std::string_view s, std::string_view delimiter, int64_t maxsplit) {
  std::vector<std::string_view> pieces;
  if (!delimiter.empty()) {
    size_t start = 0;
    for (size_t at; maxsplit != 0 && (at = s.find(delimiter, start)) != std::string_view::npos; --maxsplit) {
      pieces.push_back(s.substr(start, at - start));
      start = at + delimiter.size();
    }
    pieces.push_back(s.substr(start));
    return pieces;
  }
  size_t i = 0;
  const auto skip_spaces = [&] {
    for (size_t len; i < s.size() && (len = space_at(s, i)) != 0;) i += len;
  };
  for (; maxsplit != 0; --maxsplit) {
    skip_spaces();
    if (i == s.size()) return pieces;
    const size_t start = i;
    while (i < s.size() && space_at(s, i) == 0) {
      char32_t cp = 0;
      const size_t len = decode_utf8(s, i, cp);
      i += len != 0 ? len : 1;  // a byte that is not UTF-8 counts as one character, not a space
    }
    pieces.push_back(s.substr(start, i - start));
  }
  // maxsplit reached: the rest, its leading whitespace dropped, is the last piece.
  skip_spaces();
  if (i < s.size()) pieces.push_back(s.substr(i));
  return pieces;
}

struct StringSplitAttrs {
  std::string delimiter;
  int64_t maxsplit = -1;
};

void run_string_split(KernelContext& ctx, const StringSplitAttrs& a) {
  const Tensor& x = ctx.input(0);
  require_strings(ctx, x, "X");
  const std::string* in = data<std::string>(x);
  std::vector<std::vector<std::string_view>> pieces(static_cast<size_t>(x.numel()));
  size_t most = 0;
  for (size_t i = 0; i < pieces.size(); ++i) {
    pieces[i] = split(in[i], a.delimiter, a.maxsplit);
    most = std::max(most, pieces[i].size());
  }
  std::vector<int64_t> y_dims = x.dims();
  y_dims.push_back(static_cast<int64_t>(most));
  Tensor& y = ctx.allocate_output(0, DataType::kString, y_dims);  // shorter rows keep the "" it starts with
  std::string* out = mutable_data<std::string>(y);
  for (size_t i = 0; i < pieces.size(); ++i)
    for (size_t k = 0; k < pieces[i].size(); ++k) out[i * most + k] = pieces[i][k];
  if (ctx.output_wanted(1)) {
    Tensor& z = ctx.allocate_output(1, DataType::kInt64, x.dims());
    int64_t* counts = mutable_data<int64_t>(z);
    for (size_t i = 0; i < pieces.size(); ++i) counts[i] = static_cast<int64_t>(pieces[i].size());
  }
}

std::unique_ptr<Kernel> make_string_split(const KernelInit& init) {
  StringSplitAttrs a;
  a.delimiter = init.attr_string("delimiter", "");
  a.maxsplit = init.attr_int("maxsplit", -1);
  return make_kernel([a](KernelContext& ctx) { run_string_split(ctx, a); });
}

std::unique_ptr<Kernel> make_regex_full_match(const KernelInit& init) {
  if (!init.has_attr("pattern")) throw init.error("the pattern attribute is required");
  const std::string pattern = init.attr_string("pattern", "");
  // Quiet: RE2 would otherwise log a bad pattern to stderr; the error below says it instead.
  auto re = std::make_shared<const RE2>(pattern, RE2::Quiet);
  if (!re->ok()) throw init.error("invalid RE2 pattern '" + pattern + "': " + re->error());
  // A compiled RE2 is safe to match from several threads at once.
  return make_kernel([re](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    require_strings(ctx, x, "X");
    Tensor& y = ctx.allocate_output(0, DataType::kBool, x.dims());
    const std::string* in = data<std::string>(x);
    bool* out = mutable_data<bool>(y);
    for (int64_t i = 0; i < x.numel(); ++i) out[i] = RE2::FullMatch(in[i], *re);
  });
}

}  // namespace

void register_text_kernels(KernelRegistry& registry) {
  add_kernel(registry, "StringNormalizer", 10, INT_MAX, {DataType::kString}, make_string_normalizer);
  add_kernel(registry, "TfIdfVectorizer", 9, INT_MAX, {DataType::kInt32, DataType::kInt64, DataType::kString},
             make_tfidf);
  add_kernel(registry, "StringConcat", 20, INT_MAX, {DataType::kString},
             [](const KernelInit&) { return make_kernel(run_string_concat); });
  add_kernel(registry, "StringSplit", 20, INT_MAX, {DataType::kString}, make_string_split);
  add_kernel(registry, "RegexFullMatch", 20, INT_MAX, {DataType::kString}, make_regex_full_match);
}

}  // namespace tunnx::cpu
