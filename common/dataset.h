// dataset.h: prompt datasets in JSONL, one {"id", "prompt", "reference"} object per line.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rlj {

struct PromptRow {
  std::string id;
  std::string prompt;
  std::string reference;  // empty when the line has none
};

struct DatasetLimits {
  size_t max_line_bytes = 16u << 20;  // a longer line is rejected, not truncated
  size_t max_errors_reported = 10;
};

// Loads every row or fails with the first errors, each naming "path:line", and the count of invalid lines:
// one bad line refuses the whole file (no per-line skipping), so a run never trains on part of a dataset
// by accident. Blank lines are skipped. Rejected: invalid JSON, invalid UTF-8, a missing or non-string
// "prompt", an empty prompt, a missing or duplicate "id" (a string or an integer), a non-string
// "reference", an over-long line, an empty file. Memory is bounded by max_line_bytes: an over-long line is
// counted, not held.
absl::StatusOr<std::vector<PromptRow>> LoadPromptDataset(const std::string& path, const DatasetLimits& limits = {});

// Writes rows as JSONL (atomically).
absl::Status WritePromptDataset(const std::string& path, const std::vector<PromptRow>& rows);

}  // namespace rlj
