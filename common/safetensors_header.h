// safetensors_header.h: the header of a safetensors file (8-byte little-endian length, then a JSON object of
// dtype/shape/data_offsets per tensor and optional string "__metadata__"), parsed and checked without
// LibTorch: the part of reading a checkpoint that sees untrusted bytes (and the part that is fuzzed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rlj {

struct SafetensorsTensorEntry {
  std::string name;
  std::string dtype;        // F32, BF16, F16, I32, I64 or U8
  size_t element_size = 0;  // bytes per element of dtype
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // [begin, end) within the data section
};

struct SafetensorsHeader {
  uint64_t data_offset = 0;                     // where the data section starts in the file: 8 + the header's length
  uint64_t data_bytes = 0;                      // the data section's size, which the tensors cover exactly
  std::vector<SafetensorsTensorEntry> tensors;  // in file order (empty tensors at one offset by name)
  std::map<std::string, std::string> metadata;
};

// The bytes per element of a dtype name; 0 for a dtype rlj does not read.
size_t SafetensorsElementSize(std::string_view dtype);

// Parses and checks the header of `file` (the whole file's bytes): its length within the file (and at most
// 100 MiB), valid JSON, every entry's dtype, shape (no overflow) and data_offsets (matching the shape, inside
// the data section, covering it exactly without overlaps or holes). Errors are DATA_LOSS naming `path` and
// the tensor.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::string_view file, const std::string& path);

}  // namespace rlj
