// kv_cache.cc: preallocation, slot reservation and row compaction of the key/value cache.
#include "model/kv_cache.h"

#include <ATen/ops/all.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/tensor/torch_util.h"

namespace rlj {

KvCache::KvCache(const TransformerConfig& config, int64_t batch, int64_t max_len, c10::Device device,
                 c10::ScalarType dtype)
    : capacity_batch_(batch), batch_(batch), max_len_(max_len) {
  TORCH_CHECK(batch > 0, "KvCache: batch must be > 0, got ", batch);
  TORCH_CHECK(max_len > 0 && max_len <= config.max_seq_len, "KvCache: max_len must be in 1..", config.max_seq_len,
              ", got ", max_len);
  const auto options = at::TensorOptions().dtype(dtype).device(device);
  keys_.reserve(config.n_layers);
  values_.reserve(config.n_layers);
  for (int layer = 0; layer < config.n_layers; ++layer) {
    keys_.push_back(at::empty({batch, config.n_kv_heads, max_len, config.head_dim()}, options));
    values_.push_back(at::empty({batch, config.n_kv_heads, max_len, config.head_dim()}, options));
  }
  key_mask_ = at::zeros({batch, max_len}, at::TensorOptions().dtype(at::kBool).device(device));
  workspace_ =
      at::empty({batch, config.n_kv_heads, config.n_heads / config.n_kv_heads, max_len, config.head_dim()}, options);
}

absl::Status KvCache::Append(const at::Tensor& key_mask) {
  if (pending_ != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("KvCache::Append: ", pending_, " reserved slots were never written by forward_cached"));
  }
  if (!key_mask.defined() || key_mask.dim() != 2 || key_mask.size(0) != batch_) {
    return absl::InvalidArgumentError(absl::StrCat("KvCache::Append: key_mask must be [", batch_, ", T_new]"));
  }
  const int64_t count = key_mask.size(1);
  if (count < 1 || length_ + count > max_len_) {
    return absl::OutOfRangeError(
        absl::StrCat("KvCache::Append: ", count, " slots after ", length_, " exceed the capacity of ", max_len_));
  }
  RLJ_RETURN_IF_ERROR(TorchCall("KvCache::Append", [&] {
    const at::Tensor slots = key_mask_.narrow(0, 0, batch_).narrow(1, length_, count);
    slots.copy_(key_mask);
    if (!has_pad_keys_ && !slots.all().item<bool>()) has_pad_keys_ = true;
  }));
  length_ += count;
  pending_ = count;
  return absl::OkStatus();
}

absl::Status KvCache::AppendValid(int64_t count) {
  if (pending_ != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("KvCache::AppendValid: ", pending_, " reserved slots were never written by forward_cached"));
  }
  if (count < 1 || length_ + count > max_len_) {
    return absl::OutOfRangeError(
        absl::StrCat("KvCache::AppendValid: ", count, " slots after ", length_, " exceed the capacity of ", max_len_));
  }
  RLJ_RETURN_IF_ERROR(
      TorchCall("KvCache::AppendValid", [&] { key_mask_.narrow(0, 0, batch_).narrow(1, length_, count).fill_(true); }));
  length_ += count;
  pending_ = count;
  return absl::OkStatus();
}

absl::Status KvCache::KeepRows(const std::vector<int64_t>& rows) {
  if (rows.empty()) return absl::InvalidArgumentError("KvCache::KeepRows: keep at least one row");
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= batch_ || (i > 0 && rows[i] <= rows[i - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("KvCache::KeepRows: rows must be ascending, distinct and in 0..", batch_ - 1));
    }
  }
  const auto kept = static_cast<int64_t>(rows.size());
  if (kept == batch_) return absl::OkStatus();
  RLJ_RETURN_IF_ERROR(TorchCall("KvCache::KeepRows", [&] {
    const at::Tensor index = at::from_blob(const_cast<int64_t*>(rows.data()), {kept}, at::kLong).to(key_mask_.device());
    // Only the filled slots move; index_select reads before the copy writes, so overlap is harmless.
    auto compact = [&](at::Tensor& storage) {
      const at::Tensor filled = storage.narrow(0, 0, batch_).narrow(2, 0, length_);
      storage.narrow(0, 0, kept).narrow(2, 0, length_).copy_(filled.index_select(0, index));
    };
    for (auto& k : keys_) compact(k);
    for (auto& v : values_) compact(v);
    const at::Tensor mask = key_mask_.narrow(0, 0, batch_).narrow(1, 0, length_);
    key_mask_.narrow(0, 0, kept).narrow(1, 0, length_).copy_(mask.index_select(0, index));
  }));
  batch_ = kept;
  return absl::OkStatus();
}

void KvCache::Reset() {
  batch_ = capacity_batch_;
  length_ = 0;
  pending_ = 0;
  has_pad_keys_ = false;
  key_mask_.fill_(false);
}

at::Tensor KvCache::keys(int64_t layer) const { return keys_.at(layer).narrow(0, 0, batch_); }
at::Tensor KvCache::values(int64_t layer) const { return values_.at(layer).narrow(0, 0, batch_); }
at::Tensor KvCache::attention_workspace() const { return workspace_.narrow(0, 0, batch_); }
at::Tensor KvCache::key_mask() const { return key_mask_.narrow(0, 0, batch_).narrow(1, 0, length_); }

}  // namespace rlj
