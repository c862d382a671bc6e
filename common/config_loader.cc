// config_loader.cc: YAML → protobuf through reflection, with errors that point at the offending key.
#include "common/config_loader.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/config_validate.h"
#include "common/status.h"
#include "common/utf8.h"

namespace rlj {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Where a node came from, for messages: "configs/demo.yaml:12:5" or "--set learner.lr=x".
struct Origin {
  std::string source;
  bool is_override = false;

  std::string At(const YAML::Node& node) const {
    if (is_override) return source;
    const YAML::Mark mark = node.Mark();
    if (mark.line < 0) return source;
    return absl::StrCat(source, ":", mark.line + 1, ":", mark.column + 1);
  }
};

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string UnknownKeyMessage(const Descriptor* descriptor, const std::string& key) {
  std::string best;
  size_t best_distance = 3;  // suggest only close names
  std::vector<std::string> names;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const std::string& name = descriptor->field(i)->name();
    names.push_back(name);
    const size_t distance = EditDistance(key, name);
    if (distance < best_distance) {
      best_distance = distance;
      best = name;
    }
  }
  if (!best.empty()) return absl::StrCat("unknown key (did you mean '", best, "'?)");
  return absl::StrCat("unknown key (known: ", absl::StrJoin(names, ", "), ")");
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return absl::StrCat("'", node.Scalar(), "'");
    default:
      return "an undefined value";
  }
}

std::string TypeName(const FieldDescriptor* field) {
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return "an integer (32-bit)";
    case FieldDescriptor::CPPTYPE_INT64:
      return "an integer";
    case FieldDescriptor::CPPTYPE_UINT32:
      return "a non-negative integer (32-bit)";
    case FieldDescriptor::CPPTYPE_UINT64:
      return "a non-negative integer";
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return "a number";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "true or false";
    case FieldDescriptor::CPPTYPE_STRING:
      return "a string";
    case FieldDescriptor::CPPTYPE_ENUM: {
      std::vector<std::string> names;
      for (int i = 0; i < field->enum_type()->value_count(); ++i) names.push_back(field->enum_type()->value(i)->name());
      const std::string last = names.back();
      names.pop_back();
      return names.empty() ? last : absl::StrCat(absl::StrJoin(names, ", "), " or ", last);
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return "a mapping";
  }
  return "a value";
}

class YamlToProto {
 public:
  explicit YamlToProto(Origin origin) : origin_(std::move(origin)) {}

  absl::Status Merge(const YAML::Node& node, Message* message, const std::string& path) {
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsMap()) return Error(node, path.empty() ? "config" : path, "expected a mapping, got " + Describe(node));
    const Descriptor* descriptor = message->GetDescriptor();
    std::set<std::string> seen;
    for (const auto& entry : node) {
      if (!entry.first.IsScalar()) return Error(entry.first, path, "keys must be plain names");
      const std::string key = entry.first.Scalar();
      const std::string key_path = path.empty() ? key : absl::StrCat(path, ".", key);
      if (!seen.insert(key).second) return Error(entry.first, key_path, "duplicate key");
      const FieldDescriptor* field = descriptor->FindFieldByName(key);
      if (field == nullptr) return Error(entry.first, key_path, UnknownKeyMessage(descriptor, key));
      RLJ_RETURN_IF_ERROR(SetField(entry.second, message, field, key_path));
    }
    return absl::OkStatus();
  }

  absl::Status SetField(const YAML::Node& node, Message* message, const FieldDescriptor* field,
                        const std::string& path) {
    const Reflection* reflection = message->GetReflection();
    if (node.IsNull()) {
      reflection->ClearField(message, field);
      return absl::OkStatus();
    }
    if (field->is_map()) return SetMap(node, message, field, path);
    if (field->is_repeated()) {
      if (!node.IsSequence()) return Error(node, path, "expected a list, got " + Describe(node));
      reflection->ClearField(message, field);
      for (size_t i = 0; i < node.size(); ++i) {
        RLJ_RETURN_IF_ERROR(AddRepeated(node[i], message, field, absl::StrCat(path, "[", i, "]")));
      }
      return absl::OkStatus();
    }
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      return Merge(node, reflection->MutableMessage(message, field), path);
    }
    return SetScalar(node, message, field, path, /*repeated=*/false);
  }

 private:
  absl::Status Error(const YAML::Node& node, std::string_view path, std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(origin_.At(node), ": ", AsAbsl(path), ": ", AsAbsl(what)));
  }

  absl::Status AddRepeated(const YAML::Node& node, Message* message, const FieldDescriptor* field,
                           const std::string& path) {
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      return Merge(node, message->GetReflection()->AddMessage(message, field), path);
    }
    return SetScalar(node, message, field, path, /*repeated=*/true);
  }

  absl::Status SetMap(const YAML::Node& node, Message* message, const FieldDescriptor* field, const std::string& path) {
    if (!node.IsMap()) return Error(node, path, "expected a mapping, got " + Describe(node));
    const Reflection* reflection = message->GetReflection();
    reflection->ClearField(message, field);
    const FieldDescriptor* key_field = field->message_type()->map_key();
    const FieldDescriptor* value_field = field->message_type()->map_value();
    for (const auto& entry : node) {
      const std::string key = entry.first.Scalar();
      Message* item = reflection->AddMessage(message, field);
      const std::string item_path = absl::StrCat(path, ".", key);
      RLJ_RETURN_IF_ERROR(SetScalar(entry.first, item, key_field, item_path, false));
      RLJ_RETURN_IF_ERROR(SetField(entry.second, item, value_field, item_path));
    }
    return absl::OkStatus();
  }

  absl::Status SetScalar(const YAML::Node& node, Message* message, const FieldDescriptor* field,
                         const std::string& path, bool repeated) {
    if (!node.IsScalar())
      return Error(node, path, absl::StrCat("expected ", TypeName(field), ", got ", Describe(node)));
    const std::string& text = node.Scalar();
    const Reflection* r = message->GetReflection();
    auto wrong = [&]() { return Error(node, path, absl::StrCat("expected ", TypeName(field), ", got '", text, "'")); };
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: {
        int64_t v;
        if (!absl::SimpleAtoi(text, &v) || v < std::numeric_limits<int32_t>::min() ||
            v > std::numeric_limits<int32_t>::max())
          return wrong();
        repeated ? r->AddInt32(message, field, static_cast<int32_t>(v))
                 : r->SetInt32(message, field, static_cast<int32_t>(v));
        break;
      }
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t v;
        if (!absl::SimpleAtoi(text, &v)) return wrong();
        repeated ? r->AddInt64(message, field, v) : r->SetInt64(message, field, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_UINT32: {
        uint64_t v;
        if (!absl::SimpleAtoi(text, &v) || v > std::numeric_limits<uint32_t>::max()) return wrong();
        repeated ? r->AddUInt32(message, field, static_cast<uint32_t>(v))
                 : r->SetUInt32(message, field, static_cast<uint32_t>(v));
        break;
      }
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t v;
        if (!absl::SimpleAtoi(text, &v)) return wrong();
        repeated ? r->AddUInt64(message, field, v) : r->SetUInt64(message, field, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT: {
        double v;
        if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) return wrong();
        if (field->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
          repeated ? r->AddFloat(message, field, static_cast<float>(v))
                   : r->SetFloat(message, field, static_cast<float>(v));
        } else {
          repeated ? r->AddDouble(message, field, v) : r->SetDouble(message, field, v);
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        const std::string lower = absl::AsciiStrToLower(text);
        bool v;
        if (lower == "true") {
          v = true;
        } else if (lower == "false") {
          v = false;
        } else {
          return wrong();
        }
        repeated ? r->AddBool(message, field, v) : r->SetBool(message, field, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING:
        // Config text is UTF-8: other bytes would not survive the resolved YAML a run directory keeps.
        if (!IsValidUtf8(text)) return Error(node, path, "expected UTF-8 text, got bytes that are not valid UTF-8");
        repeated ? r->AddString(message, field, text) : r->SetString(message, field, text);
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* value = field->enum_type()->FindValueByName(text);
        if (value == nullptr) return wrong();
        repeated ? r->AddEnum(message, field, value) : r->SetEnum(message, field, value);
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return wrong();
    }
    return absl::OkStatus();
  }

  Origin origin_;
};

absl::StatusOr<YAML::Node> ParseYaml(std::string_view text, std::string_view source) {
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(AsAbsl(source), ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML syntax error: ", e.msg));
  }
}

void EmitMessage(YAML::Emitter& out, const Message& message);

// The shortest text that reads back as the same double (1e-04 stays 0.0001, not 0.00010000000000000000479).
std::string ShortestDouble(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

void EmitScalar(YAML::Emitter& out, const Message& message, const FieldDescriptor* field, int index) {
  const Reflection* r = message.GetReflection();
  const bool rep = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      out << (rep ? r->GetRepeatedInt32(message, field, index) : r->GetInt32(message, field));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      out << (rep ? r->GetRepeatedInt64(message, field, index) : r->GetInt64(message, field));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      out << (rep ? r->GetRepeatedUInt32(message, field, index) : r->GetUInt32(message, field));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      out << (rep ? r->GetRepeatedUInt64(message, field, index) : r->GetUInt64(message, field));
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      out << ShortestDouble(rep ? r->GetRepeatedDouble(message, field, index) : r->GetDouble(message, field));
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      out << ShortestDouble(rep ? r->GetRepeatedFloat(message, field, index) : r->GetFloat(message, field));
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out << (rep ? r->GetRepeatedBool(message, field, index) : r->GetBool(message, field));
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      out << YAML::DoubleQuoted << (rep ? r->GetRepeatedString(message, field, index) : r->GetString(message, field));
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      out << (rep ? r->GetRepeatedEnum(message, field, index) : r->GetEnum(message, field))->name();
      break;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      EmitMessage(out, rep ? r->GetRepeatedMessage(message, field, index) : r->GetMessage(message, field));
      break;
  }
}

constexpr char kDefaultCommentMarker[] = "default: ";

// `line` split at every `marker` that is not inside a double-quoted YAML string (every string is emitted
// double-quoted, so a value that spells the marker stays whole).
std::vector<std::string> SplitOutsideQuotes(const std::string& line, const std::string& marker) {
  std::vector<std::string> parts(1);
  bool in_quotes = false;
  for (size_t i = 0; i < line.size();) {
    if (!in_quotes && line.compare(i, marker.size(), marker) == 0) {
      parts.emplace_back();
      i += marker.size();
      continue;
    }
    if (in_quotes && line[i] == '\\' && i + 1 < line.size()) {
      parts.back() += line.substr(i, 2);
      i += 2;
      continue;
    }
    if (line[i] == '"') in_quotes = !in_quotes;
    parts.back() += line[i++];
  }
  return parts;
}

// yaml-cpp writes comments after the preceding value ("n_heads: 2  # default n_kv_heads: 0  # default …") or,
// first in a map, at column 0. Give each default its own line, indented like the keys of its map.
std::string PutDefaultCommentsOnTheirOwnLines(const std::string& yaml) {
  const std::string inline_marker = absl::StrCat("  # ", kDefaultCommentMarker);
  const std::string leading_marker = absl::StrCat("# ", kDefaultCommentMarker);
  std::vector<std::string> lines = absl::StrSplit(yaml, '\n');
  std::string result;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string line = lines[i];
    std::vector<std::string> defaults;
    std::string indent;
    if (line.rfind(leading_marker, 0) == 0) {
      line = line.substr(leading_marker.size());
      defaults = SplitOutsideQuotes(line, inline_marker);
      line.clear();
      for (size_t j = i + 1; j < lines.size(); ++j) {  // the keys of this map are indented like the next key
        if (lines[j].rfind(leading_marker, 0) == 0) continue;
        indent = lines[j].substr(0, lines[j].find_first_not_of(' '));
        break;
      }
    } else {
      std::vector<std::string> parts = SplitOutsideQuotes(line, inline_marker);
      line = parts[0];
      defaults.assign(parts.begin() + 1, parts.end());
      indent = line.substr(0, line.find_first_not_of(' '));
    }
    if (!line.empty()) absl::StrAppend(&result, line, "\n");
    for (const std::string& entry : defaults) absl::StrAppend(&result, indent, "# ", entry, "  (default)\n");
  }
  while (result.size() >= 2 && result.substr(result.size() - 2) == "\n\n") result.pop_back();
  return result;
}

void EmitMessage(YAML::Emitter& out, const Message& message) {
  const Descriptor* descriptor = message.GetDescriptor();
  const Reflection* r = message.GetReflection();
  out << YAML::BeginMap;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (field->is_map()) {
      out << YAML::Key << field->name() << YAML::Value << YAML::BeginMap;
      for (int j = 0; j < r->FieldSize(message, field); ++j) {
        const Message& item = r->GetRepeatedMessage(message, field, j);
        const FieldDescriptor* key = field->message_type()->map_key();
        const FieldDescriptor* value = field->message_type()->map_value();
        out << YAML::Key;
        EmitScalar(out, item, key, -1);
        out << YAML::Value;
        EmitScalar(out, item, value, -1);
      }
      out << YAML::EndMap;
    } else if (field->is_repeated()) {
      out << YAML::Key << field->name() << YAML::Value << YAML::BeginSeq;
      for (int j = 0; j < r->FieldSize(message, field); ++j) EmitScalar(out, message, field, j);
      out << YAML::EndSeq;
    } else if (field->has_presence() && !r->HasField(message, field)) {
      // Presence is meaning (an unset key falls back to something else; a model shape key the user did not set
      // is taken from the checkpoint), so an unset key stays unset when the resolved YAML is read back. Its
      // schema default is shown as a comment, so the file still tells every value in force.
      if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE && field->has_default_value()) {
        YAML::Emitter value;
        EmitScalar(value, message, field, -1);
        out << YAML::Comment(absl::StrCat(kDefaultCommentMarker, field->name(), ": ", value.c_str()));
      }
      continue;
    } else {
      out << YAML::Key << field->name() << YAML::Value;
      EmitScalar(out, message, field, -1);
    }
  }
  out << YAML::EndMap;
}

void CollectPaths(const Descriptor* descriptor, const std::string& prefix, std::vector<std::string>* out, int depth) {
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    const std::string path = prefix.empty() ? field->name() : absl::StrCat(prefix, ".", field->name());
    out->push_back(path);
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !field->is_map() && depth < 8) {
      CollectPaths(field->message_type(), field->is_repeated() ? path + "[]" : path, out, depth + 1);
    }
  }
}

}  // namespace

absl::Status MergeYamlIntoMessage(std::string_view yaml_text, std::string_view source, Message* message) {
  RLJ_ASSIGN_OR_RETURN(YAML::Node root, ParseYaml(yaml_text, source));
  YamlToProto converter(Origin{std::string(source), false});
  return converter.Merge(root, message, "");
}

absl::Status ApplyOverride(std::string_view assignment, Message* message) {
  const std::string origin = absl::StrCat("--set ", AsAbsl(assignment));
  const size_t eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": expected KEY.PATH=VALUE"));
  }
  const std::string key_path(absl::StripAsciiWhitespace(AsAbsl(assignment.substr(0, eq))));
  const std::string value_text(assignment.substr(eq + 1));
  YAML::Node value;
  try {
    value = YAML::Load(value_text);
  } catch (const YAML::Exception&) {
    value = YAML::Node(value_text);  // not YAML: take it as a plain string
  }
  if (value.IsNull() && !value_text.empty() && value_text != "null" && value_text != "~")
    value = YAML::Node(value_text);
  if (value_text.empty()) value = YAML::Node(std::string());

  Message* target = message;
  const std::vector<std::string> parts = absl::StrSplit(key_path, '.');
  std::string walked;
  for (size_t i = 0; i < parts.size(); ++i) {
    walked = walked.empty() ? parts[i] : absl::StrCat(walked, ".", parts[i]);
    const FieldDescriptor* field = target->GetDescriptor()->FindFieldByName(parts[i]);
    if (field == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": ", walked, ": ", UnknownKeyMessage(target->GetDescriptor(), parts[i])));
    }
    YamlToProto converter(Origin{origin, true});
    if (i + 1 == parts.size()) return converter.SetField(value, target, field, walked);
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || field->is_repeated()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": ", walked, ": is not a section; cannot set a key inside it"));
    }
    target = target->GetReflection()->MutableMessage(target, field);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::RunConfig> ParseRunConfig(std::string_view yaml_text, std::string_view source,
                                             const std::vector<std::string>& overrides) {
  RLJ_ASSIGN_OR_RETURN(YAML::Node root, ParseYaml(yaml_text, source));
  if (!root.IsMap() && !root.IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": the config must be a mapping of sections"));
  }
  v1::RunConfig config;
  YamlToProto converter(Origin{std::string(source), false});
  RLJ_RETURN_IF_ERROR(converter.Merge(root, &config, ""));
  for (const std::string& assignment : overrides) RLJ_RETURN_IF_ERROR(ApplyOverride(assignment, &config));
  RLJ_RETURN_IF_ERROR(Annotate(ValidateRunConfig(config), source));
  return config;
}

absl::StatusOr<v1::RunConfig> LoadRunConfig(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("config file ", path, ": cannot open (", std::strerror(errno), ")"));
  std::stringstream text;
  text << in.rdbuf();
  return ParseRunConfig(text.str(), path, overrides);
}

std::string MessageToYaml(const Message& message) {
  YAML::Emitter out;
  EmitMessage(out, message);
  return PutDefaultCommentsOnTheirOwnLines(out.c_str());
}

std::vector<std::string> SchemaKeyPaths(const Message& root) {
  std::vector<std::string> paths;
  CollectPaths(root.GetDescriptor(), "", &paths, 0);
  return paths;
}

}  // namespace rlj
