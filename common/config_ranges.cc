// config_ranges.cc: the reflection walk over a config message and the range check of one value.
#include "common/config_ranges.h"

#include <cmath>
#include <cstdint>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rlj/v1/options.pb.h"

namespace rlj {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

bool IsInteger(const FieldDescriptor& field) {
  return field.cpp_type() != FieldDescriptor::CPPTYPE_DOUBLE && field.cpp_type() != FieldDescriptor::CPPTYPE_FLOAT;
}

// A bound as people write it: integers without a decimal point, others in the shortest form.
std::string Bound(double value, bool integer) {
  if (integer && std::abs(value) < 1e18) return absl::StrCat(static_cast<int64_t>(value));
  return absl::StrFormat("%g", value);
}

double ValueAt(const Message& message, const FieldDescriptor& field, int index) {
  const Reflection& r = *message.GetReflection();
  const bool repeated = field.is_repeated();
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return repeated ? r.GetRepeatedInt32(message, &field, index) : r.GetInt32(message, &field);
    case FieldDescriptor::CPPTYPE_INT64:
      return static_cast<double>(repeated ? r.GetRepeatedInt64(message, &field, index) : r.GetInt64(message, &field));
    case FieldDescriptor::CPPTYPE_UINT32:
      return repeated ? r.GetRepeatedUInt32(message, &field, index) : r.GetUInt32(message, &field);
    case FieldDescriptor::CPPTYPE_UINT64:
      return static_cast<double>(repeated ? r.GetRepeatedUInt64(message, &field, index) : r.GetUInt64(message, &field));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return repeated ? r.GetRepeatedDouble(message, &field, index) : r.GetDouble(message, &field);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return repeated ? r.GetRepeatedFloat(message, &field, index) : r.GetFloat(message, &field);
    default:
      return 0;
  }
}

bool InRange(double value, const v1::Range& range) {
  if (std::isnan(value)) return false;
  if (range.has_min() && (range.min_exclusive() ? !(value > range.min()) : !(value >= range.min()))) return false;
  if (range.has_max() && (range.max_exclusive() ? !(value < range.max()) : !(value <= range.max()))) return false;
  return true;
}

absl::Status CheckValue(const FieldDescriptor& field, double value, const std::string& key) {
  const v1::Range& range = field.options().GetExtension(v1::range);
  if (InRange(value, range)) return absl::OkStatus();
  const std::string shown = IsInteger(field) ? Bound(value, true) : absl::StrFormat("%g", value);
  return absl::InvalidArgumentError(absl::StrCat(key, ": ", shown, " is out of range; must be ", DescribeRange(field)));
}

std::string Join(const std::string& path, std::string_view name) {
  return path.empty() ? std::string(name) : absl::StrCat(path, ".", std::string(name));
}

// A map<string, Message> entry's key, for the path.
std::string MapKey(const Message& entry) {
  const FieldDescriptor* key = entry.GetDescriptor()->map_key();
  if (key->cpp_type() == FieldDescriptor::CPPTYPE_STRING) return entry.GetReflection()->GetString(entry, key);
  return absl::StrCat(static_cast<int64_t>(ValueAt(entry, *key, 0)));
}

}  // namespace

bool IsNumericField(const FieldDescriptor& field) {
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return true;
    default:
      return false;
  }
}

std::string DescribeRange(const FieldDescriptor& field) {
  if (!field.options().HasExtension(v1::range)) return "";
  const v1::Range& range = field.options().GetExtension(v1::range);
  const bool integer = IsInteger(field);
  if (range.has_min() && range.has_max()) {
    if (integer && !range.min_exclusive() && !range.max_exclusive()) {
      return absl::StrCat(Bound(range.min(), true), "..", Bound(range.max(), true));
    }
    return absl::StrCat(range.min_exclusive() ? "(" : "[", Bound(range.min(), integer), ", ",
                        Bound(range.max(), integer), range.max_exclusive() ? ")" : "]");
  }
  if (range.has_min()) return absl::StrCat(range.min_exclusive() ? "> " : ">= ", Bound(range.min(), integer));
  if (range.has_max()) return absl::StrCat(range.max_exclusive() ? "< " : "<= ", Bound(range.max(), integer));
  return "";
}

absl::Status ValidateRanges(const Message& message, const std::string& path) {
  const google::protobuf::Descriptor& descriptor = *message.GetDescriptor();
  const Reflection& r = *message.GetReflection();
  for (int i = 0; i < descriptor.field_count(); ++i) {
    const FieldDescriptor& field = *descriptor.field(i);
    const std::string key = Join(path, field.name());
    if (field.is_map()) {
      for (int k = 0; k < r.FieldSize(message, &field); ++k) {
        const Message& entry = r.GetRepeatedMessage(message, &field, k);
        const FieldDescriptor* value = entry.GetDescriptor()->map_value();
        if (value->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
        const absl::Status status =
            ValidateRanges(entry.GetReflection()->GetMessage(entry, value), Join(key, MapKey(entry)));
        if (!status.ok()) return status;
      }
    } else if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field.is_repeated()) {
        for (int k = 0; k < r.FieldSize(message, &field); ++k) {
          const absl::Status status =
              ValidateRanges(r.GetRepeatedMessage(message, &field, k), absl::StrCat(key, "[", k, "]"));
          if (!status.ok()) return status;
        }
      } else if (r.HasField(message, &field)) {
        const absl::Status status = ValidateRanges(r.GetMessage(message, &field), key);
        if (!status.ok()) return status;
      }
    } else if (IsNumericField(field) && field.options().HasExtension(v1::range)) {
      if (field.is_repeated()) {
        for (int k = 0; k < r.FieldSize(message, &field); ++k) {
          const absl::Status status = CheckValue(field, ValueAt(message, field, k), absl::StrCat(key, "[", k, "]"));
          if (!status.ok()) return status;
        }
      } else if (r.HasField(message, &field) || field.has_default_value()) {  // unset without a default: "unset"
        const absl::Status status = CheckValue(field, ValueAt(message, field, 0), key);
        if (!status.ok()) return status;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace rlj
