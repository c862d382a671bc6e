// safetensors_header.cc: every field of a safetensors header checked before any byte of the data is used.
#include "common/safetensors_header.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace rlj {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation's limit
constexpr const char* kMetadataKey = "__metadata__";

absl::Status Malformed(const std::string& path, std::string_view what) {
  return absl::DataLossError(absl::StrCat(path, ": ", AsAbsl(what)));
}

absl::Status MalformedTensor(const std::string& path, const std::string& name, std::string_view what) {
  return absl::DataLossError(absl::StrCat(path, ": tensor '", name, "': ", AsAbsl(what)));
}

absl::StatusOr<SafetensorsTensorEntry> ParseEntry(const std::string& path, const std::string& name,
                                                  const nlohmann::json& value) {
  if (!value.is_object()) return MalformedTensor(path, name, "header entry is not an object");
  SafetensorsTensorEntry entry;
  entry.name = name;
  const auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) return MalformedTensor(path, name, "missing string field 'dtype'");
  entry.dtype = dtype->get<std::string>();
  entry.element_size = SafetensorsElementSize(entry.dtype);
  if (entry.element_size == 0) {
    return MalformedTensor(path, name,
                           absl::StrCat("unsupported dtype '", entry.dtype, "' (F32, BF16, F16, I32, I64, U8)"));
  }
  const auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) return MalformedTensor(path, name, "missing array field 'shape'");
  uint64_t bytes = entry.element_size;
  // The product of the non-zero dimensions bounds every stride of the tensor: it must fit in int64 too, or
  // an empty tensor with huge other dimensions would overflow LibTorch's stride arithmetic.
  uint64_t strides_bound = entry.element_size;
  for (const auto& dim : *shape) {
    if (!dim.is_number_unsigned())
      return MalformedTensor(path, name, "shape holds a non-integer or negative dimension");
    const uint64_t size = dim.get<uint64_t>();
    if (size > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(bytes, size, &bytes) ||
        (size > 0 && (__builtin_mul_overflow(strides_bound, size, &strides_bound) ||
                      strides_bound > static_cast<uint64_t>(INT64_MAX)))) {
      return MalformedTensor(path, name, "shape overflows");
    }
    entry.shape.push_back(static_cast<int64_t>(size));
  }
  const auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned()) {
    return MalformedTensor(path, name, "'data_offsets' must be two non-negative integers [begin, end]");
  }
  entry.begin = (*offsets)[0].get<uint64_t>();
  entry.end = (*offsets)[1].get<uint64_t>();
  if (entry.end < entry.begin) {
    return MalformedTensor(path, name,
                           absl::StrCat("data_offsets [", entry.begin, ", ", entry.end, "] end before they begin"));
  }
  if (entry.end - entry.begin != bytes) {
    return MalformedTensor(path, name,
                           absl::StrCat("data_offsets [", entry.begin, ", ", entry.end, "] hold ",
                                        entry.end - entry.begin, " bytes, but the shape and dtype need ", bytes));
  }
  return entry;
}

}  // namespace

size_t SafetensorsElementSize(std::string_view dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "BF16" || dtype == "F16") return 2;
  if (dtype == "I64") return 8;
  if (dtype == "U8") return 1;
  return 0;
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::string_view file, const std::string& path) {
  if (file.size() < 8) return Malformed(path, absl::StrCat("truncated: ", file.size(), " bytes, no header size"));
  uint64_t header_size = 0;
  std::memcpy(&header_size, file.data(), 8);  // little-endian, as the host (safetensors.cc checks)
  if (header_size > kMaxHeaderBytes || header_size > file.size() - 8) {
    return Malformed(path,
                     absl::StrCat("header size ", header_size, " goes beyond the file (", file.size(), " bytes)"));
  }
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(file.substr(8, header_size));
  } catch (const nlohmann::json::exception& error) {
    return Malformed(path, absl::StrCat("header is not valid JSON: ", error.what()));
  }
  if (!json.is_object()) return Malformed(path, "header is not a JSON object");

  SafetensorsHeader header;
  header.data_offset = 8 + header_size;
  header.data_bytes = file.size() - 8 - header_size;
  for (const auto& [name, value] : json.items()) {
    if (name == kMetadataKey) {
      if (!value.is_object()) return Malformed(path, "__metadata__ is not an object");
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string()) return Malformed(path, absl::StrCat("__metadata__ value '", key, "' is not a string"));
        header.metadata[key] = text.get<std::string>();
      }
      continue;
    }
    RLJ_ASSIGN_OR_RETURN(SafetensorsTensorEntry entry, ParseEntry(path, name, value));
    header.tensors.push_back(std::move(entry));
  }

  // File order (empty tensors at the same offset by name); the byte buffer must be covered exactly, without
  // overlaps or holes.
  std::stable_sort(header.tensors.begin(), header.tensors.end(),
                   [](const SafetensorsTensorEntry& a, const SafetensorsTensorEntry& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  uint64_t covered = 0;
  for (const SafetensorsTensorEntry& entry : header.tensors) {
    if (entry.end > header.data_bytes) {
      return MalformedTensor(
          path, entry.name,
          absl::StrCat("data_offsets [", entry.begin, ", ", entry.end, "] go beyond the data section (",
                       header.data_bytes, " bytes; file truncated?)"));
    }
    if (entry.begin < covered) {
      return MalformedTensor(path, entry.name,
                             absl::StrCat("data_offsets [", entry.begin, ", ", entry.end,
                                          "] overlap the previous tensor, which ends at ", covered));
    }
    if (entry.begin > covered) {
      return MalformedTensor(
          path, entry.name,
          absl::StrCat("data_offsets begin at ", entry.begin, ", leaving a hole after byte ", covered));
    }
    covered = entry.end;
  }
  if (covered != header.data_bytes) {
    return Malformed(path, absl::StrCat("the tensors cover ", covered, " of ", header.data_bytes, " data bytes"));
  }
  return header;
}

}  // namespace rlj
