// config_ranges_test.cc: every numeric key of the run config has a range in the schema, and absurd values of
// every one of them (below the range, above it, NaN, infinity, the type's extremes) are refused with an error
// naming the key: by the validator for every key (map entries and list items included), and through
// `--set key=value` as users write them for every plain key.
#include "common/config_ranges.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/config_loader.h"
#include "common/config_validate.h"
#include "rlj/v1/config.pb.h"
#include "rlj/v1/options.pb.h"

namespace rlj {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// One numeric key: how to reach its message from the root (creating map entries "b" and list items [0]) and
// its path as errors name it.
struct NumericKey {
  std::string path;
  std::vector<const FieldDescriptor*> route;  // message fields from RunConfig down to the key's message
  const FieldDescriptor* field = nullptr;
  bool plain = true;  // no map or list on the way: `--set path=value` reaches it
};

void CollectKeys(const Descriptor& descriptor, const std::string& prefix, std::vector<const FieldDescriptor*> route,
                 bool plain, std::vector<NumericKey>* keys) {
  for (int i = 0; i < descriptor.field_count(); ++i) {
    const FieldDescriptor* field = descriptor.field(i);
    const std::string path = prefix.empty() ? field->name() : absl::StrCat(prefix, ".", field->name());
    if (field->is_map()) {
      const FieldDescriptor* value = field->message_type()->map_value();
      if (value->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
      std::vector<const FieldDescriptor*> next = route;
      next.push_back(field);
      CollectKeys(*value->message_type(), path + ".b", next, false, keys);
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      std::vector<const FieldDescriptor*> next = route;
      next.push_back(field);
      CollectKeys(*field->message_type(), field->is_repeated() ? path + "[0]" : path, next,
                  plain && !field->is_repeated(), keys);
    } else if (IsNumericField(*field)) {
      keys->push_back(
          NumericKey{field->is_repeated() ? path + "[0]" : path, route, field, plain && !field->is_repeated()});
    }
  }
}

std::vector<NumericKey> AllNumericKeys() {
  std::vector<NumericKey> keys;
  CollectKeys(*v1::RunConfig::descriptor(), "", {}, true, &keys);
  return keys;
}

// The message holding `key` in `config`, created on the way (map entry "b", list item 0).
Message* HolderOf(const NumericKey& key, v1::RunConfig* config) {
  Message* message = config;
  for (const FieldDescriptor* step : key.route) {
    const Reflection& r = *message->GetReflection();
    if (step->is_map()) {
      Message* entry =
          r.FieldSize(*message, step) > 0 ? r.MutableRepeatedMessage(message, step, 0) : r.AddMessage(message, step);
      entry->GetReflection()->SetString(entry, entry->GetDescriptor()->map_key(), "b");
      message = entry->GetReflection()->MutableMessage(entry, entry->GetDescriptor()->map_value());
    } else if (step->is_repeated()) {
      message =
          r.FieldSize(*message, step) > 0 ? r.MutableRepeatedMessage(message, step, 0) : r.AddMessage(message, step);
    } else {
      message = r.MutableMessage(message, step);
    }
  }
  return message;
}

// Sets `value` (clamped into the field's type) on the key; false when the type cannot hold it.
bool SetValue(const NumericKey& key, double value, v1::RunConfig* config) {
  Message* holder = HolderOf(key, config);
  const Reflection& r = *holder->GetReflection();
  const FieldDescriptor* f = key.field;
  const auto fits = [&](double low, double high) { return !std::isnan(value) && value >= low && value <= high; };
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      if (!fits(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max())) return false;
      f->is_repeated() ? r.AddInt32(holder, f, static_cast<int32_t>(value))
                       : r.SetInt32(holder, f, static_cast<int32_t>(value));
      return true;
    case FieldDescriptor::CPPTYPE_INT64:
      if (!fits(-9.2e18, 9.2e18)) return false;
      f->is_repeated() ? r.AddInt64(holder, f, static_cast<int64_t>(value))
                       : r.SetInt64(holder, f, static_cast<int64_t>(value));
      return true;
    case FieldDescriptor::CPPTYPE_UINT32:
      if (!fits(0, std::numeric_limits<uint32_t>::max())) return false;
      f->is_repeated() ? r.AddUInt32(holder, f, static_cast<uint32_t>(value))
                       : r.SetUInt32(holder, f, static_cast<uint32_t>(value));
      return true;
    case FieldDescriptor::CPPTYPE_UINT64:
      if (!fits(0, 1.8e19)) return false;
      f->is_repeated() ? r.AddUInt64(holder, f, static_cast<uint64_t>(value))
                       : r.SetUInt64(holder, f, static_cast<uint64_t>(value));
      return true;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      f->is_repeated() ? r.AddDouble(holder, f, value) : r.SetDouble(holder, f, value);
      return true;
    case FieldDescriptor::CPPTYPE_FLOAT:
      f->is_repeated() ? r.AddFloat(holder, f, static_cast<float>(value))
                       : r.SetFloat(holder, f, static_cast<float>(value));
      return true;
    default:
      return false;
  }
}

// Values outside the key's range: just past each bound, far past it, the type's extremes, NaN and infinity.
std::vector<double> AbsurdValues(const FieldDescriptor& field) {
  const v1::Range& range = field.options().GetExtension(v1::range);
  const bool integer =
      field.cpp_type() != FieldDescriptor::CPPTYPE_DOUBLE && field.cpp_type() != FieldDescriptor::CPPTYPE_FLOAT;
  std::vector<double> values;
  if (range.has_min()) {
    values.push_back(integer || range.min_exclusive() ? range.min() - (integer ? 1 : 0)
                                                      : range.min() - 1e-3 * (1 + std::abs(range.min())));
    values.push_back(-2147483648.0);
    if (!integer) values.push_back(-std::numeric_limits<double>::infinity());
  }
  if (range.has_max()) {
    values.push_back(integer || range.max_exclusive() ? range.max() + (integer ? 1 : 0)
                                                      : range.max() + 1e-3 * (1 + std::abs(range.max())));
    values.push_back(2147483647.0);
    if (!integer) values.push_back(std::numeric_limits<double>::infinity());
  }
  if (!integer) values.push_back(std::numeric_limits<double>::quiet_NaN());
  // Keep what lies outside: the type's extremes may be inside a wide range (model.rope_theta up to 1e12).
  std::vector<double> outside;
  for (const double v : values) {
    const bool above_min = !range.has_min() || (range.min_exclusive() ? v > range.min() : v >= range.min());
    const bool below_max = !range.has_max() || (range.max_exclusive() ? v < range.max() : v <= range.max());
    if (std::isnan(v) || !above_min || !below_max) outside.push_back(v);
  }
  return outside;
}

// A config that passes validation: what the keys are changed from.
v1::RunConfig ValidBase() {
  absl::StatusOr<v1::RunConfig> config = ParseRunConfig("name: ranges\n", "<test>");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : v1::RunConfig();
}

TEST(ConfigRanges, EveryNumericKeyHasARangeInTheSchema) {
  const std::vector<NumericKey> keys = AllNumericKeys();
  EXPECT_GT(keys.size(), 100u);
  for (const NumericKey& key : keys) {
    EXPECT_TRUE(key.field->options().HasExtension(v1::range)) << key.path << " has no (range) in config.proto";
    const v1::Range& range = key.field->options().GetExtension(v1::range);
    EXPECT_TRUE(range.has_min() || range.has_max()) << key.path << ": a range without bounds";
    if (range.has_min() && range.has_max()) EXPECT_LT(range.min(), range.max()) << key.path;
  }
}

TEST(ConfigRanges, DefaultsAndMidRangeValuesAreAccepted) {
  EXPECT_TRUE(ValidateRunConfig(ValidBase()).ok()) << ValidateRunConfig(ValidBase());
  EXPECT_TRUE(ValidateRanges(ValidBase()).ok());
  // Every key set to its own default, map entries and list items included, is in range.
  for (const NumericKey& key : AllNumericKeys()) {
    if (!key.field->has_default_value()) continue;
    v1::RunConfig config = ValidBase();
    HolderOf(key, &config);
    EXPECT_TRUE(ValidateRanges(config).ok()) << key.path << ": " << ValidateRanges(config);
  }
}

TEST(ConfigRanges, AbsurdValuesOfEveryNumericKeyAreRefusedNamingTheKey) {
  int checked = 0;
  for (const NumericKey& key : AllNumericKeys()) {
    for (const double value : AbsurdValues(*key.field)) {
      v1::RunConfig config = ValidBase();
      if (!SetValue(key, value, &config)) continue;  // the type cannot hold it: the loader refuses it (below)
      const absl::Status status = ValidateRunConfig(config);
      ++checked;
      ASSERT_FALSE(status.ok()) << key.path << " = " << value << " was accepted";
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << key.path;
      EXPECT_EQ(std::string(status.message()).rfind(key.path + ": ", 0), 0u)
          << key.path << " = " << value << ": " << status.message();
      EXPECT_NE(std::string(status.message()).find("must be "), std::string::npos) << status.message();
    }
  }
  EXPECT_GT(checked, 400);
}

// As users write them: `--set key=value` on a config file, for every key without a map or list on its path.
TEST(ConfigRanges, AbsurdOverridesAreRefusedNamingTheKey) {
  int checked = 0;
  for (const NumericKey& key : AllNumericKeys()) {
    if (!key.plain) continue;
    const v1::Range& range = key.field->options().GetExtension(v1::range);
    std::vector<std::string> values;
    if (range.has_min()) values.push_back("-99999999999999999999");
    values.push_back("1e30");
    values.push_back("100000000000000000000");
    if (key.field->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) values.push_back(".nan");
    for (const std::string& value : values) {
      if (!range.has_max() && value[0] != '-' && value != ".nan") {
        // Only a type bound above (seed): the loader still refuses what the type cannot hold.
        if (key.field->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) continue;
      }
      const absl::StatusOr<v1::RunConfig> config =
          ParseRunConfig("name: ranges\n", "ranges.yaml", {absl::StrCat(key.path, "=", value)});
      ++checked;
      ASSERT_FALSE(config.ok()) << "--set " << key.path << "=" << value << " was accepted";
      EXPECT_NE(std::string(config.status().message()).find(key.path), std::string::npos)
          << "--set " << key.path << "=" << value << ": " << config.status().message();
    }
  }
  EXPECT_GT(checked, 300);
}

TEST(ConfigRanges, TheErrorStatesTheRange) {
  const auto message_of = [](const std::string& assignment) {
    return std::string(ParseRunConfig("name: ranges\n", "ranges.yaml", {assignment}).status().message());
  };
  EXPECT_NE(message_of("sampling.group_size=100000000")
                .find("sampling.group_size: 100000000 is out of range; must be 1..1024"),
            std::string::npos)
      << message_of("sampling.group_size=100000000");
  EXPECT_NE(message_of("learner.lr=0").find("learner.lr: 0 is out of range; must be (0, 1]"), std::string::npos)
      << message_of("learner.lr=0");
  EXPECT_NE(message_of("learner.adam_beta2=1").find("must be [0, 1)"), std::string::npos)
      << message_of("learner.adam_beta2=1");
  EXPECT_NE(message_of("judge.threads=0").find("judge.threads: 0 is out of range; must be 1..4096"), std::string::npos)
      << message_of("judge.threads=0");
}

}  // namespace
}  // namespace rlj
