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
       [](const v1::JudgeConfig& config, const std::string& section) {
         return RuleBackend::Validate(config.rule(), section);
       },
       [](const v1::JudgeConfig& config,
          const JudgeBackendDeps& deps) -> absl::StatusOr<std::unique_ptr<JudgeBackend>> {
         return Upcast(RuleBackend::Create(config.rule(), deps));
       }},
      {"openai", "a teacher behind an OpenAI-compatible API: rubric, label (logprobs) or likelihood mode",
       OpenAIBackend::Validate,
       [](const v1::JudgeConfig& config, const JudgeBackendDeps& deps) {
         return Upcast(OpenAIBackend::Create(config, deps));
       }},
      {"anthropic", "a teacher behind the Anthropic Messages API, rubric mode", AnthropicBackend::Validate,
       [](const v1::JudgeConfig& config, const JudgeBackendDeps& deps) {
         return Upcast(AnthropicBackend::Create(config, deps));
       }},
      {"command", "an external program speaking JSON lines on stdin/stdout, kept alive",
       [](const v1::JudgeConfig& config, const std::string& section) {
         return CommandBackend::Validate(config.command(), section);
       },
       [](const v1::JudgeConfig& config, const JudgeBackendDeps& deps) {
         return Upcast(CommandBackend::Create(config.command(), deps));
       }},
      {"remote", "any service implementing rlj.v1.Judge/Score over gRPC",
       [](const v1::JudgeConfig& config, const std::string& section) {
         return RemoteBackend::Validate(config.remote(), section);
       },
       [](const v1::JudgeConfig& config, const JudgeBackendDeps& deps) {
         return Upcast(RemoteBackend::Create(config.remote(), deps));
       }},
      {"ensemble", "a weighted sum of other backends, or a teacher ranking each group (group_rank)",
       EnsembleBackend::Validate,
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

namespace {

// What a name selects: its kind, the config whose sections that kind reads, and the section's path.
struct ResolvedBackend {
  const JudgeBackendEntry* kind = nullptr;
  v1::JudgeConfig config;
  std::string section;
};

absl::StatusOr<ResolvedBackend> ResolveJudgeBackend(const v1::JudgeConfig& config, const std::string& name,
                                                    bool allow_ensemble) {
  if (const JudgeBackendEntry* kind = FindJudgeBackendKind(name); kind != nullptr) {
    if (name == "ensemble" && !allow_ensemble) {
      return absl::InvalidArgumentError("an ensemble cannot contain an ensemble (nor be the failover)");
    }
    return ResolvedBackend{kind, config, absl::StrCat("judge.", name)};
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
  const JudgeBackendEntry* kind = FindJudgeBackendKind(defined.backend());
  if (kind == nullptr || kind->name == "ensemble") {
    return absl::InvalidArgumentError(absl::StrCat("judge.backends.", name, ".backend '", defined.backend(),
                                                   "' must be one of rule, openai, anthropic, command, remote"));
  }
  // The entry's sections stand in for the top-level ones; the judge-wide keys (timeout, cache, …) stay.
  ResolvedBackend resolved{kind, config, absl::StrCat("judge.backends.", name, ".", kind->name)};
  resolved.config.set_backend(defined.backend());
  *resolved.config.mutable_rule() = defined.rule();
  *resolved.config.mutable_openai() = defined.openai();
  *resolved.config.mutable_anthropic() = defined.anthropic();
  *resolved.config.mutable_command() = defined.command();
  *resolved.config.mutable_remote() = defined.remote();
  return resolved;
}

}  // namespace

absl::Status ValidateNamedJudgeBackend(const v1::JudgeConfig& config, const std::string& name, bool allow_ensemble) {
  RLJ_ASSIGN_OR_RETURN(ResolvedBackend resolved, ResolveJudgeBackend(config, name, allow_ensemble));
  return resolved.kind->validate(resolved.config, resolved.section);
}

absl::Status ValidateJudgeConfig(const v1::JudgeConfig& config) {
  RLJ_RETURN_IF_ERROR(ValidateNamedJudgeBackend(config, config.backend()));
  if (!config.failover().empty()) {
    if (config.failover() == config.backend()) {
      return absl::InvalidArgumentError("judge.failover must name a different backend than judge.backend");
    }
    RLJ_RETURN_IF_ERROR(
        Annotate(ValidateNamedJudgeBackend(config, config.failover(), /*allow_ensemble=*/false), "judge.failover"));
  }
  for (const auto& [name, entry] : config.backends()) {
    RLJ_RETURN_IF_ERROR(ValidateNamedJudgeBackend(config, name, /*allow_ensemble=*/false));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<JudgeBackend>> MakeNamedJudgeBackend(const v1::JudgeConfig& config,
                                                                    const std::string& name, const std::string& label,
                                                                    const JudgeBackendDeps& deps, bool allow_ensemble) {
  RLJ_ASSIGN_OR_RETURN(ResolvedBackend resolved, ResolveJudgeBackend(config, name, allow_ensemble));
  JudgeBackendDeps named = deps;
  named.label = label.empty() ? name : label;
  named.section = resolved.section;
  return resolved.kind->make(resolved.config, named);
}

absl::StatusOr<std::unique_ptr<JudgeBackend>> MakeJudgeBackend(const v1::JudgeConfig& config,
                                                               const JudgeBackendDeps& deps) {
  RLJ_RETURN_IF_ERROR(ValidateJudgeConfig(config));
  auto primary = MakeNamedJudgeBackend(config, config.backend(), "", deps);
  if (!primary.ok()) return primary.status();
  if (config.failover().empty()) return primary;
  auto secondary = MakeNamedJudgeBackend(config, config.failover(), "", deps, /*allow_ensemble=*/false);
  if (!secondary.ok()) return Annotate(secondary.status(), "judge.failover");
  return std::unique_ptr<JudgeBackend>(
      std::make_unique<FailoverBackend>(std::move(primary).value(), std::move(secondary).value()));
}

}  // namespace rlj
