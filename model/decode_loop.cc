// decode_loop.cc: left-padded prefill, the step loop over the unfinished rows, and the cache compaction.
#include "model/decode_loop.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>

#include "common/status.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace rlj {
namespace {

// Left-padded prompts: tokens [B, W] (pad_id before each prompt), positions counting each row's real tokens,
// the key mask of the real tokens, and each row's next position [B, 1].
struct LeftPadded {
  at::Tensor tokens, positions, key_mask, next_positions;
};

LeftPadded PadLeft(std::span<const std::span<const int32_t>> prompts, int32_t pad_id, int64_t width) {
  const auto batch = static_cast<int64_t>(prompts.size());
  LeftPadded padded{at::full({batch, width}, pad_id, at::kLong), at::zeros({batch, width}, at::kLong),
                    at::zeros({batch, width}, at::kBool), at::empty({batch, 1}, at::kLong)};
  auto tokens = padded.tokens.accessor<int64_t, 2>();
  auto positions = padded.positions.accessor<int64_t, 2>();
  auto mask = padded.key_mask.accessor<bool, 2>();
  auto next = padded.next_positions.accessor<int64_t, 2>();
  for (int64_t b = 0; b < batch; ++b) {
    const std::span<const int32_t> prompt = prompts[static_cast<size_t>(b)];
    const auto length = static_cast<int64_t>(prompt.size());
    const int64_t offset = width - length;
    for (int64_t i = 0; i < length; ++i) {
      tokens[b][offset + i] = prompt[static_cast<size_t>(i)];
      positions[b][offset + i] = i;
      mask[b][offset + i] = true;
    }
    next[b][0] = length;
  }
  return padded;
}

// The cache slots (and their rows) still going.
struct LiveSlots {
  std::vector<int64_t> slots, rows;
};

LiveSlots Live(const std::vector<int64_t>& row_of_slot, const DecodeRows& rows) {
  LiveSlots live;
  for (size_t slot = 0; slot < row_of_slot.size(); ++slot) {
    if (rows.finished(row_of_slot[slot])) continue;
    live.slots.push_back(static_cast<int64_t>(slot));
    live.rows.push_back(row_of_slot[slot]);
  }
  return live;
}

}  // namespace

absl::Status DecodeRows::AfterPrefill(const at::Tensor&) { return absl::OkStatus(); }

absl::StatusOr<int64_t> DecodeBatch(Transformer& model, std::span<const std::span<const int32_t>> prompts,
                                    int32_t pad_id, int64_t max_steps, DecodeRows& rows) {
  const at::Tensor some_parameter = model->parameters().front();
  const c10::Device device = some_parameter.device();
  int64_t width = 0;
  for (const auto& prompt : prompts) width = std::max<int64_t>(width, static_cast<int64_t>(prompt.size()));
  LeftPadded padded = PadLeft(prompts, pad_id, width);
  KvCache cache(model->config(), static_cast<int64_t>(prompts.size()), width + max_steps, device,
                some_parameter.scalar_type());
  RLJ_RETURN_IF_ERROR(cache.Append(padded.key_mask));
  const at::Tensor prefill = model->forward_cached(padded.tokens.to(device), padded.positions.to(device), cache,
                                                   /*last_logits_only=*/!rows.WantsPrefillLogits());
  int64_t passes = 1;
  RLJ_RETURN_IF_ERROR(rows.AfterPrefill(prefill));

  at::Tensor logits = prefill.select(1, prefill.size(1) - 1);
  at::Tensor next_positions = padded.next_positions.to(device);
  std::vector<int64_t> row_of_slot(prompts.size());
  std::iota(row_of_slot.begin(), row_of_slot.end(), 0);
  for (int64_t step = 0; step < max_steps; ++step) {
    const LiveSlots live = Live(row_of_slot, rows);
    if (live.slots.empty()) break;
    at::Tensor step_logits = logits.to(at::kFloat);  // on the model's device: the rows sample there
    const bool all_live = live.slots.size() == row_of_slot.size();
    // The live slots' index, on the device: only when some slot is finished (a copy to the GPU per step otherwise).
    const at::Tensor live_index = all_live ? at::Tensor() : at::tensor(live.slots, at::kLong).to(device);
    if (!all_live) step_logits = step_logits.index_select(0, live_index);
    RLJ_ASSIGN_OR_RETURN(const at::Tensor chosen, rows.Step(step_logits.contiguous(), live.rows));
    at::Tensor ids = chosen.to(device);
    if (!all_live) {
      ids = at::full({static_cast<int64_t>(row_of_slot.size())}, pad_id, at::TensorOptions(at::kLong).device(device))
                .index_copy_(0, live_index, ids);
    }
    const int64_t remaining_steps = max_steps - 1 - step;
    const LiveSlots going = Live(row_of_slot, rows);
    if (going.slots.empty() || remaining_steps == 0) break;

    // Drop finished rows when the compute saved over the remaining steps outweighs moving the cache.
    const auto slots = static_cast<int64_t>(row_of_slot.size());
    const auto finished_slots = slots - static_cast<int64_t>(going.slots.size());
    if (finished_slots > 0 && finished_slots * remaining_steps >= 2 * slots) {
      RLJ_RETURN_IF_ERROR(cache.KeepRows(going.slots));
      const at::Tensor keep = at::tensor(going.slots, at::kLong).to(device);
      ids = ids.index_select(0, keep);
      next_positions = next_positions.index_select(0, keep);
      row_of_slot = going.rows;
    }
    RLJ_RETURN_IF_ERROR(cache.AppendValid(1));
    logits = model->forward_cached(ids.view({-1, 1}), next_positions, cache).select(1, 0);
    ++passes;
    next_positions.add_(1);
  }
  return passes;
}

}  // namespace rlj
