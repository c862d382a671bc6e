// safetensors.h: reading and writing the safetensors format (8-byte little-endian header length, JSON
// header of dtype/shape/data_offsets per tensor, then the raw bytes), the format Hugging Face uses.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace rlj {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Writes tensors (any device; stored in their own dtype: F32, BF16, F16, I32, I64, U8) and optional
// string metadata ("__metadata__"), atomically (a temporary file renamed into place), streaming one tensor at a
// time to the file.
absl::Status WriteSafetensors(const std::string& path, const NamedTensors& tensors,
                              const std::map<std::string, std::string>& metadata = {});

// Reads every tensor as a CPU tensor in its stored dtype, in file order. The file is mapped once
// (copy-on-write): the tensors are views of the mapping, which stays alive while any of them does, so the
// bytes are read from disk once, when a tensor is first used (e.g. copied into a parameter); writing to a
// tensor never changes the file. Malformed headers, offsets outside the file, overlapping or truncated data,
// unknown dtypes: an error naming the file and tensor.
absl::StatusOr<NamedTensors> ReadSafetensors(const std::string& path);

}  // namespace rlj
