// backend_registry.h: makes the judge backend a JudgeConfig names, from one table of backend kinds (rule,
// openai, anthropic, command, remote, ensemble), with the outside world (environment, cache, ledger)
// injected so tests can replace it. judge.backend (and every ensemble component and judge.failover) names
// either a kind, configured by its judge.<kind> section, or an entry of judge.backends, configured by that
// entry's own sections.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "judge/judge_backend.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

class JudgeCache;
class UsageLedger;

// The environment as a function: the value of a variable, or nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment (getenv).
std::optional<std::string> GetEnv(const std::string& name);

struct JudgeBackendDeps {
  EnvLookup env = GetEnv;         // where api_key_env variables are read
  JudgeCache* cache = nullptr;    // teacher answers cache; nullptr = none. Not owned.
  UsageLedger* ledger = nullptr;  // spend and budget; nullptr = not accounted. Not owned.
  // Set by the registry for the backend being made: its name in verdicts and Judge.Status ("" = the kind),
  // and the config path of its section for messages ("" = judge.<kind>).
  std::string label;
  std::string section;
};

using JudgeBackendFactory =
    std::function<absl::StatusOr<std::unique_ptr<JudgeBackend>>(const v1::JudgeConfig&, const JudgeBackendDeps&)>;

// The checks of a kind's section (named `section` in messages) without starting anything.
using JudgeBackendValidator = std::function<absl::Status(const v1::JudgeConfig&, const std::string& section)>;

struct JudgeBackendEntry {
  std::string name;         // the kind, as judge.backend spells it
  std::string description;  // one line, for help and errors
  JudgeBackendValidator validate;
  JudgeBackendFactory make;  // runs validate first
};

// Every backend kind, in the order they are listed to users.
const std::vector<JudgeBackendEntry>& JudgeBackendTable();

// "rule, openai, anthropic, command, remote, ensemble".
std::string KnownJudgeBackendNames();

// Every name the judge section uses (judge.backend, judge.failover, the ensemble's components, each
// judge.backends entry) is a known kind or entry, and each section it selects passes its kind's own checks.
// Starts nothing: `rlj run` calls it before any work; MakeJudgeBackend calls it too.
absl::Status ValidateJudgeConfig(const v1::JudgeConfig& config);

// The checks of the one backend `name` selects (a kind or a judge.backends entry).
absl::Status ValidateNamedJudgeBackend(const v1::JudgeConfig& config, const std::string& name,
                                       bool allow_ensemble = true);

// The backend `config.backend()` names (wrapped with judge.failover when that is set). An unknown name is
// InvalidArgument listing the known kinds; a backend's own configuration errors pass through.
absl::StatusOr<std::unique_ptr<JudgeBackend>> MakeJudgeBackend(const v1::JudgeConfig& config,
                                                               const JudgeBackendDeps& deps = {});

// One backend by name (a kind or a judge.backends entry), labelled `label` ("" = the name). Used for the
// primary, ensemble components and the failover backend. The ensemble kind is refused inside an ensemble.
absl::StatusOr<std::unique_ptr<JudgeBackend>> MakeNamedJudgeBackend(const v1::JudgeConfig& config,
                                                                    const std::string& name, const std::string& label,
                                                                    const JudgeBackendDeps& deps,
                                                                    bool allow_ensemble = true);

}  // namespace rlj
