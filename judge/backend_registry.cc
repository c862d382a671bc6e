// backend_registry.cc: the table of judge backend kinds, named backends (judge.backends), and failover.
#include "judge/backend_registry.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "judge/backends/anthropic_backend.h"
#include "judge/backends/command_backend.h"
#include "judge/backends/ensemble_backend.h"
#include "judge/backends/failover_backend.h"
#include "judge/backends/openai_backend.h"
#include "judge/backends/remote_backend.h"
#include "judge/backends/rule_backend.h"

namespace rlj {
namespace {

template <typename Backend>
absl::StatusOr<std::unique_ptr<JudgeBackend>> Upcast(absl::StatusOr<std::unique_ptr<Backend>> made) {
  if (!made.ok()) return made.status();
  return std::unique_ptr<JudgeBackend>(std::move(made).value());
}

}  // namespace

std::optional<std::string> GetEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

const std::vector<JudgeBackendEntry>& JudgeBackendTable() {
  static const auto* table = new std::vector<JudgeBackendEntry>{
      {"rule", "checks the completion against the reference (exact, numeric, regex, contains; length penalty)",
       [](const v1::JudgeConfig& config,
          const JudgeBackendDeps& deps) -> absl::StatusOr<std::unique_ptr<JudgeBackend>> {
         return Upcast(RuleBackend::Create(config.rule(), deps));
       }},
      {"openai", "a teacher behind an OpenAI-compatible API: rubric, label (logprobs) or likelihood mode",
       [](const v1::JudgeConfig& config, const JudgeBackendDeps& deps) {
         return Upcast(OpenAIBackend::Create(config, deps));
       }},
      {"anthropic", "a teacher behind the Anthropic Messages API, rubric mode",
       [](const v1::JudgeConfig& config, const JudgeBackendDeps& deps) {
         return Upcast(AnthropicBackend::Create(config, deps));
       }},
      {"command", "an external program speaking JSON lines on stdin/stdout, kept alive",
       [](const v1::JudgeConfig& config, const JudgeBackendDeps& deps) {
         return Upcast(CommandBackend::Create(config.command(), deps));
       }},
      {"remote", "any service implementing rlj.v1.Judge/Score over gRPC",
       [](const v1::JudgeConfig& config, const JudgeBackendDeps& deps) {
         return Upcast(RemoteBackend::Create(config.remote(), deps));
       }},
      {"ensemble", "a weighted sum of other backends, or a teacher ranking each group (group_rank)",
       [](const v1::JudgeConfig& config, const JudgeBackendDeps& deps) {
         return Upcast(EnsembleBackend::Create(config, deps));
       }},
  };
  return *table;
}

std::string KnownJudgeBackendNames() {
  std::vector<std::string> names;
  for (const JudgeBackendEntry& entry : JudgeBackendTable()) names.push_back(entry.name);
  return absl::StrJoin(names, ", ");
}

namespace {

// The backend kind called `name`, or null when no kind is.
const JudgeBackendEntry* FindJudgeBackendKind(const std::string& name) {
  for (const JudgeBackendEntry& entry : JudgeBackendTable()) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<JudgeBackend>> MakeNamedJudgeBackend(const v1::JudgeConfig& config,
                                                                    const std::string& name, const std::string& label,
                                                                    const JudgeBackendDeps& deps, bool allow_ensemble) {
  JudgeBackendDeps named = deps;
  named.label = label.empty() ? name : label;
  if (const JudgeBackendEntry* kind = FindJudgeBackendKind(name); kind != nullptr) {
    if (name == "ensemble" && !allow_ensemble) {
      return absl::InvalidArgumentError("an ensemble cannot contain an ensemble");
    }
    named.section = absl::StrCat("judge.", name);
    return kind->make(config, named);
  }
  auto it = config.backends().find(name);
  if (it == config.backends().end()) {
    std::vector<std::string> defined;
    for (const auto& [defined_name, backend] : config.backends()) defined.push_back(defined_name);
    return absl::InvalidArgumentError(absl::StrCat(
        "judge backend '", name, "' is unknown; known backends: ", KnownJudgeBackendNames(),
        defined.empty() ? "" : absl::StrCat("; defined in judge.backends: ", absl::StrJoin(defined, ", "))));
  }
  const v1::JudgeBackendConfig& defined = it->second;
  // The entry's sections stand in for the top-level ones; the judge-wide keys (timeout, cache, …) stay.
  v1::JudgeConfig resolved = config;
  resolved.set_backend(defined.backend());
  *resolved.mutable_rule() = defined.rule();
  *resolved.mutable_openai() = defined.openai();
  *resolved.mutable_anthropic() = defined.anthropic();
  *resolved.mutable_command() = defined.command();
  *resolved.mutable_remote() = defined.remote();
  if (const JudgeBackendEntry* kind = FindJudgeBackendKind(defined.backend());
      kind != nullptr && kind->name != "ensemble") {
    named.section = absl::StrCat("judge.backends.", name, ".", kind->name);
    return kind->make(resolved, named);
  }
  return absl::InvalidArgumentError(absl::StrCat("judge.backends.", name, ".backend '", defined.backend(),
                                                 "' must be one of rule, openai, anthropic, command, remote"));
}

absl::StatusOr<std::unique_ptr<JudgeBackend>> MakeJudgeBackend(const v1::JudgeConfig& config,
                                                               const JudgeBackendDeps& deps) {
  if (FindJudgeBackendKind(config.backend()) == nullptr &&
      config.backends().find(config.backend()) == config.backends().end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("judge.backend '", config.backend(), "' is unknown; known backends: ", KnownJudgeBackendNames()));
  }
  auto primary = MakeNamedJudgeBackend(config, config.backend(), "", deps);
  if (!primary.ok()) return primary.status();
  if (config.failover().empty()) return primary;
  if (config.failover() == config.backend()) {
    return absl::InvalidArgumentError("judge.failover must name a different backend than judge.backend");
  }
  auto secondary = MakeNamedJudgeBackend(config, config.failover(), "", deps);
  if (!secondary.ok()) return Annotate(secondary.status(), "judge.failover");
  return std::unique_ptr<JudgeBackend>(
      std::make_unique<FailoverBackend>(std::move(primary).value(), std::move(secondary).value()));
}

}  // namespace rlj
