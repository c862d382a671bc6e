// config_validate.cc: the checks of a parsed RunConfig: the schema's ranges (config_ranges), then the names
// a string key accepts and the agreements between keys. Choices that are enums in the schema are checked by
// the loader; the judge section's backends are checked by judge/backend_registry (ValidateJudgeConfig).
#include "common/config_validate.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/config_ranges.h"
#include "common/device_name.h"
#include "common/status.h"
#include "common/tokenizer/chat_template.h"
#include "common/wire_bounds.h"

namespace rlj {
namespace {

absl::Status Invalid(std::string_view path, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(AsAbsl(path), ": ", AsAbsl(what)));
}

}  // namespace

constexpr const char* kDeviceForms = "must be auto, cpu, cuda or cuda:N";

#define RLJ_REQUIRE(cond, path, what)        \
  do {                                       \
    if (!(cond)) return Invalid(path, what); \
  } while (0)

absl::Status ValidateRunConfig(const v1::RunConfig& c) {
  // Every numeric key against the range its schema states; below, what ranges cannot say.
  RLJ_RETURN_IF_ERROR(ValidateRanges(c));
  if (c.has_name()) {
    RLJ_REQUIRE(!c.name().empty() && c.name().find('/') == std::string::npos && c.name() != "." && c.name() != "..",
                "name", "must be a non-empty name without '/'");
  }
  const auto& rt = c.runtime();
  RLJ_REQUIRE(ParseDeviceName(rt.device()).ok(), "runtime.device", kDeviceForms);
  RLJ_REQUIRE(!c.actor().has_device() || ParseDeviceName(c.actor().device()).ok(), "actor.device", kDeviceForms);

  const auto& m = c.model();
  RLJ_REQUIRE(m.d_model() % m.n_heads() == 0, "model.d_model",
              absl::StrCat("must be divisible by model.n_heads (", m.n_heads(), ")"));
  RLJ_REQUIRE((m.d_model() / m.n_heads()) % 2 == 0, "model.d_model",
              "head size (d_model / n_heads) must be even for RoPE");
  const int kv_heads = m.n_kv_heads() == 0 ? m.n_heads() : m.n_kv_heads();
  RLJ_REQUIRE(kv_heads > 0 && m.n_heads() % kv_heads == 0, "model.n_kv_heads", "must divide model.n_heads");
  RLJ_REQUIRE(!m.attention_bias() || m.architecture() == v1::ModelConfig::llama, "model.attention_bias",
              "is a llama option (qwen2 always has q/k/v biases, mistral none)");
  const auto& rope_scaling = m.rope_scaling();
  if (rope_scaling.type() == v1::RopeScalingConfig::llama3) {
    RLJ_REQUIRE(rope_scaling.high_freq_factor() > rope_scaling.low_freq_factor(), "model.rope_scaling.high_freq_factor",
                "must be > model.rope_scaling.low_freq_factor");
  }

  const auto& tok = c.tokenizer();
  RLJ_REQUIRE(tok.kind() == v1::TokenizerConfig::hf || !tok.has_path(), "tokenizer.path", "is for tokenizer.kind: hf");
  RLJ_REQUIRE(tok.kind() != v1::TokenizerConfig::hf || !tok.path().empty() || !m.init_checkpoint().empty(),
              "tokenizer.path",
              "is required with tokenizer.kind: hf unless model.init_checkpoint holds a tokenizer.json");
  RLJ_RETURN_IF_ERROR(ChatTemplate::Parse(tok.chat_template()).status());

  const auto& s = c.sampling();
  RLJ_REQUIRE(s.max_new_tokens() < m.max_seq_len(), "sampling.max_new_tokens", "must be < model.max_seq_len");
  for (int i = 0; i < s.stop_size(); ++i) {
    RLJ_REQUIRE(!s.stop(i).empty(), absl::StrCat("sampling.stop[", i, "]"), "must not be empty");
  }

  const auto& l = c.learner();
  RLJ_REQUIRE(l.buffer_groups() >= l.groups_per_step(), "learner.buffer_groups", "must be >= learner.groups_per_step");
  RLJ_REQUIRE(!l.has_device() || ParseDeviceName(l.device()).ok(), "learner.device", kDeviceForms);
  RLJ_REQUIRE(l.dual_clip() == 0 || l.dual_clip() > 1, "learner.dual_clip", "must be 0 (off) or > 1");
  RLJ_REQUIRE(l.tis_cap() == 0 || l.tis_cap() >= 1, "learner.tis_cap", "must be 0 (off) or >= 1");

  // learner.distill adds the judge's per-token teacher log-probs; without a judge that gives them it would
  // silently do nothing.
  bool distill_judge = c.judge().openai().mode() == v1::OpenAIMode::distill;
  for (const auto& [name, entry] : c.judge().backends()) {
    distill_judge = distill_judge || entry.openai().mode() == v1::OpenAIMode::distill;
  }
  RLJ_REQUIRE(l.distill().coef() == 0 || distill_judge, "learner.distill.coef",
              "needs a judge that gives per-token teacher log-probs (an openai backend with mode: distill)");

  const auto& a = c.actor();
  RLJ_REQUIRE(int64_t{a.prompts_per_batch()} * c.sampling().group_size() <= kMaxSamplesPerScoreRequest,
              "actor.prompts_per_batch",
              absl::StrCat("times sampling.group_size must be at most ", kMaxSamplesPerScoreRequest,
                           " (the sequences of one sampled batch)"));

  const auto& e = c.eval();
  RLJ_REQUIRE(e.stop_when_no_gain_for() == 0 || e.every_steps() > 0, "eval.stop_when_no_gain_for",
              "needs eval.every_steps (it counts periodic evaluations)");

  if (c.has_teacher()) {
    const auto& tc = c.teacher();
    const size_t colon = tc.listen().rfind(':');
    const std::string port = colon == std::string::npos ? "" : tc.listen().substr(colon + 1);
    RLJ_REQUIRE(colon != std::string::npos && colon > 0 && !port.empty() && port.size() <= 5 &&
                    port.find_first_not_of("0123456789") == std::string::npos && std::stoi(port) <= 65535,
                "teacher.listen", "must be HOST:PORT (port 0 picks a free one)");
    RLJ_REQUIRE(!tc.served_model_name().empty(), "teacher.served_model_name", "must not be empty");
    RLJ_REQUIRE(!tc.has_device() || ParseDeviceName(tc.device()).ok(), "teacher.device", kDeviceForms);
    // rlj run points the openai judge at its teacher unless judge.openai.base_url names another server.
    if (c.judge().backend() == "openai" && !c.judge().openai().has_base_url()) {
      RLJ_REQUIRE(c.judge().openai().model() == tc.served_model_name(), "judge.openai.model",
                  absl::StrCat("must be the teacher's teacher.served_model_name ('", tc.served_model_name(),
                               "'): rlj run sends the judge to the teacher"));
    }
  }

  const auto& t = c.telemetry();
  for (const auto& [key, address] :
       {std::pair<const char*, const std::string*>{"telemetry.metrics_listen", &t.metrics_listen()},
        {"telemetry.learner_metrics_listen", &t.learner_metrics_listen()},
        {"telemetry.judge_metrics_listen", &t.judge_metrics_listen()},
        {"telemetry.actor_metrics_listen", &t.actor_metrics_listen()},
        {"telemetry.teacher_metrics_listen", &t.teacher_metrics_listen()}}) {
    if (address->empty()) continue;
    const size_t colon = address->rfind(':');
    const std::string port = colon == std::string::npos ? "" : address->substr(colon + 1);
    RLJ_REQUIRE(colon != std::string::npos && colon > 0 && !port.empty() && port.size() <= 5 &&
                    port.find_first_not_of("0123456789") == std::string::npos && std::stoi(port) <= 65535,
                key, "must be HOST:PORT (port 0 picks a free one)");
  }

  const auto& q = c.quality();
  RLJ_REQUIRE(
      q.length_correlation_min_samples() >= 2 && q.length_correlation_min_samples() <= q.length_correlation_window(),
      "quality.length_correlation_min_samples", "must be in [2, quality.length_correlation_window]");

  const auto& sec = c.security();
  RLJ_REQUIRE(sec.tls_cert().empty() == sec.tls_key().empty(),
              sec.tls_cert().empty() ? "security.tls_cert" : "security.tls_key",
              sec.tls_cert().empty() ? "is required with security.tls_key" : "is required with security.tls_cert");
  RLJ_REQUIRE(
      sec.client_cert().empty() == sec.client_key().empty(),
      sec.client_cert().empty() ? "security.client_cert" : "security.client_key",
      sec.client_cert().empty() ? "is required with security.client_key" : "is required with security.client_cert");
  RLJ_REQUIRE(!sec.require_client_cert() || (!sec.tls_cert().empty() && !sec.tls_ca().empty()),
              "security.require_client_cert",
              "needs security.tls_cert and security.tls_ca (servers verify client certificates with it)");
  RLJ_REQUIRE(!sec.has_token_env() || !sec.token_env().empty(), "security.token_env",
              "must name an environment variable");
  return absl::OkStatus();
}

#undef RLJ_REQUIRE

int ResolveThreads(const v1::RunConfig& config, int role_threads) {
  if (role_threads > 0) return role_threads;
  if (config.runtime().threads() > 0) return config.runtime().threads();
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace rlj
