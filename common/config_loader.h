// config_loader.h: loads a run's YAML config into rlj.v1.RunConfig, validating it against the proto schema.
// Unknown keys and wrong types are errors naming the key path, file, line and column; `--set a.b=c`
// overrides are applied on top with the same checks.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "rlj/v1/config.pb.h"

namespace google::protobuf {
class Message;
}

namespace rlj {

// Reads `path`, applies `overrides` ("a.b=c", the value parsed as YAML), checks the schema and then the
// semantic rules (ValidateRunConfig). Relative paths inside the config stay relative to the working
// directory; call MakePathsAbsolute before handing the config to another process.
absl::StatusOr<v1::RunConfig> LoadRunConfig(const std::string& path, const std::vector<std::string>& overrides = {});

// Same, from text; `source` names it in messages (a file name, or "<string>").
absl::StatusOr<v1::RunConfig> ParseRunConfig(std::string_view yaml_text, std::string_view source,
                                             const std::vector<std::string>& overrides = {});

// Merges YAML text into any message with the same rules (used for sub-configs such as a judge config).
absl::Status MergeYamlIntoMessage(std::string_view yaml_text, std::string_view source,
                                  google::protobuf::Message* message);

// Applies one "a.b.c=value" override to a message.
absl::Status ApplyOverride(std::string_view assignment, google::protobuf::Message* message);

// YAML of every field, defaults included: what a run actually used.
std::string MessageToYaml(const google::protobuf::Message& message);

// Every key path of the schema rooted at `descriptor_full_name` ("rlj.v1.RunConfig"), e.g. "learner.lr".
std::vector<std::string> SchemaKeyPaths(const google::protobuf::Message& root);

}  // namespace rlj
