#include "runtime/core/parameter_store.h"

#include <algorithm>

namespace tunnx {

StoredTensor& ParameterStore::add(StoredTensor entry) {
  if (const StoredTensor* existing = find(entry.name))
    throw Error(ErrorCode::kInvalidArgument,
                std::string("the name is already taken by a ") + to_string(existing->role),
                {.tensor = entry.name});
  entries_.push_back(std::make_unique<StoredTensor>(std::move(entry)));
  StoredTensor* stored = entries_.back().get();
  by_name_.emplace(stored->name, stored);
  return *stored;
}

void ParameterStore::remove(std::string_view name) {
  auto it = by_name_.find(std::string(name));
  if (it == by_name_.end()) return;
  const StoredTensor* gone = it->second;
  by_name_.erase(it);
  entries_.erase(std::find_if(entries_.begin(), entries_.end(), [gone](const auto& e) { return e.get() == gone; }));
}

StoredTensor* ParameterStore::find(std::string_view name) {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : it->second;
}

const StoredTensor* ParameterStore::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : it->second;
}

StoredTensor& ParameterStore::at(std::string_view name) {
  if (StoredTensor* s = find(name)) return *s;
  throw Error(ErrorCode::kNotFound, "no parameter or buffer of this name", {.tensor = std::string(name)});
}

const StoredTensor& ParameterStore::at(std::string_view name) const {
  if (const StoredTensor* s = find(name)) return *s;
  throw Error(ErrorCode::kNotFound, "no parameter or buffer of this name", {.tensor = std::string(name)});
}

}  // namespace tunnx
