// backend_registry.cc: the table of judge backends (rule, openai) and the lookup by name.
#include "judge/backend_registry.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "judge/backends/openai_backend.h"
#include "judge/backends/rule_backend.h"

namespace rlj {

std::optional<std::string> GetEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

const std::vector<JudgeBackendEntry>& JudgeBackendTable() {
  static const auto* table = new std::vector<JudgeBackendEntry>{
      {"rule", "checks the completion against the reference answer (exact or numeric)",
       [](const v1::JudgeConfig& config, const JudgeBackendDeps&) -> absl::StatusOr<std::unique_ptr<JudgeBackend>> {
         return std::unique_ptr<JudgeBackend>(std::make_unique<RuleBackend>(config.rule()));
       }},
      {"openai", "asks a teacher model behind an OpenAI-compatible /chat/completions endpoint to grade with a rubric",
       [](const v1::JudgeConfig& config,
          const JudgeBackendDeps& deps) -> absl::StatusOr<std::unique_ptr<JudgeBackend>> {
         auto backend = OpenAIBackend::Create(config, deps);
         if (!backend.ok()) return backend.status();
         return std::unique_ptr<JudgeBackend>(std::move(backend).value());
       }},
  };
  return *table;
}

std::string KnownJudgeBackendNames() {
  std::vector<std::string> names;
  for (const JudgeBackendEntry& entry : JudgeBackendTable()) names.push_back(entry.name);
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<std::unique_ptr<JudgeBackend>> MakeJudgeBackend(const v1::JudgeConfig& config,
                                                               const JudgeBackendDeps& deps) {
  for (const JudgeBackendEntry& entry : JudgeBackendTable()) {
    if (entry.name == config.backend()) return entry.make(config, deps);
  }
  return absl::InvalidArgumentError(absl::StrCat("judge.backend '", config.backend(),
                                                 "' is unknown; known backends: ", KnownJudgeBackendNames()));
}

}  // namespace rlj
