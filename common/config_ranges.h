// config_ranges.h: the one check of every numeric config key against the range its schema field states
// (the `range` option of proto/rlj/v1/options.proto), walking the config by reflection; errors name the key
// path (map entries by their key, repeated fields by index) and the range.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace rlj {

// Every numeric field of `message` and of the messages it holds, set or defaulted, lies in its range;
// NaN lies in none. `path` prefixes the key paths in errors ("" at the root).
absl::Status ValidateRanges(const google::protobuf::Message& message, const std::string& path = "");

// int32, int64, uint32, uint64, double or float: the fields a range applies to.
bool IsNumericField(const google::protobuf::FieldDescriptor& field);

// The range of `field` in words ("1..4096", "(0, 1]", ">= 0"); "" when it has none.
std::string DescribeRange(const google::protobuf::FieldDescriptor& field);

}  // namespace rlj
