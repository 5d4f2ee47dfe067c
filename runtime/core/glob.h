// Shell-style glob matching for parameter names: `*` matches any run of characters (dots included,
// so "encoder.*.weight" reaches every depth), `?` one character, `[abc]`/`[!abc]` a class.
#pragma once

#include <string_view>

namespace tunnx {

bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace tunnx
