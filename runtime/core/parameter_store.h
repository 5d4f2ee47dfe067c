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
  TensorOrigin origin = TensorOrigin::kImported;
  bool persistent = true;  // false: a registered buffer left out of state_dict() and checkpoints
  bool external_data = false;  // read from an external-data file (a view on it until written)
  // Training state beside the Parameter (as torch keeps param.grad and optimizer.state[param]):
  // the accumulated gradient (undefined until a trainer computes one) and the optimizer's buffers.
  Tensor grad;
  std::vector<std::pair<std::string, Tensor>> optimizer_state;  // "momentum_buffer", "exp_avg", ...
};

class ParameterStore {
 public:
  // Adds an entry; throws Error(kInvalidArgument) naming the tensor when a parameter or buffer has
  // its name already.
  StoredTensor& add(StoredTensor entry);

  // Removes an entry (a graph edit dropped the last node that read it); no-op when absent.
  void remove(std::string_view name);

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
