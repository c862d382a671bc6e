// backend_registry.h: makes the judge backend a JudgeConfig names, from one table of known backends, with
// the outside world (HTTP, environment) injected so tests can replace it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "judge/http_client.h"
#include "judge/judge_backend.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

// The environment as a function: the value of a variable, or nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment (getenv).
std::optional<std::string> GetEnv(const std::string& name);

struct JudgeBackendDeps {
  HttpClient* http_client = nullptr;  // not owned; nullptr: a backend that needs HTTP makes its own CurlHttpClient
  EnvLookup env = GetEnv;             // where api_key_env variables are read
};

using JudgeBackendFactory =
    std::function<absl::StatusOr<std::unique_ptr<JudgeBackend>>(const v1::JudgeConfig&, const JudgeBackendDeps&)>;

struct JudgeBackendEntry {
  std::string name;         // judge.backend in the config
  std::string description;  // one line, for help and errors
  JudgeBackendFactory make;
};

// Every known backend, in the order they are listed to users.
const std::vector<JudgeBackendEntry>& JudgeBackendTable();

// "rule, openai".
std::string KnownJudgeBackendNames();

// The backend `config.backend()` names, configured from its sub-config. An unknown name is InvalidArgument
// listing the known ones; a backend's own configuration errors (a missing API key variable, …) pass through.
absl::StatusOr<std::unique_ptr<JudgeBackend>> MakeJudgeBackend(const v1::JudgeConfig& config,
                                                               const JudgeBackendDeps& deps = {});

}  // namespace rlj
