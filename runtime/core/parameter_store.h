// The ParameterStore owns every initializer's tensor, in the file's order, each a Parameter
// (trainable, requires_grad like torch.nn.Parameter) or a buffer (never trained). The graph refers to
// entries by key; sessions read them in place.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tunnx/model.h"
#include "tunnx/tensor.h"

namespace tunnx {

struct StoredTensor {
  std::string name;
  Tensor value;
  TensorRole role = TensorRole::kBuffer;
  bool requires_grad = false;
  std::string reason;  // why the policy chose this role
  // Training state beside the Parameter (as torch keeps param.grad and optimizer.state[param]):
  // the accumulated gradient (undefined until a trainer computes one) and the optimizer's buffers.
  Tensor grad;
  std::vector<std::pair<std::string, Tensor>> optimizer_state;  // "momentum_buffer", "exp_avg", ...
};

class ParameterStore {
 public:
  // Adds an entry; throws Error(kInvalidModel) naming the tensor when the name is taken.
  StoredTensor& add(StoredTensor entry);

  StoredTensor* find(std::string_view name);
  const StoredTensor* find(std::string_view name) const;
  StoredTensor& at(std::string_view name);  // throws Error(kNotFound)
  const StoredTensor& at(std::string_view name) const;

  const std::vector<std::unique_ptr<StoredTensor>>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

 private:
  std::vector<std::unique_ptr<StoredTensor>> entries_;
  std::unordered_map<std::string, StoredTensor*> by_name_;
};

}  // namespace tunnx
