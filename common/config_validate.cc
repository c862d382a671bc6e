// config_validate.cc: range and consistency checks over a parsed RunConfig.
#include "common/config_validate.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace rlj {
namespace {

absl::Status Invalid(std::string_view path, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(AsAbsl(path), ": ", AsAbsl(what)));
}

}  // namespace

#define RLJ_REQUIRE(cond, path, what) \
  do {                                \
    if (!(cond)) return Invalid(path, what); \
  } while (0)

absl::Status ValidateRunConfig(const v1::RunConfig& c) {
  if (c.has_name()) {
    RLJ_REQUIRE(!c.name().empty() && c.name().find('/') == std::string::npos && c.name() != "." && c.name() != "..",
                "name", "must be a non-empty name without '/'");
  }
  const auto& rt = c.runtime();
  RLJ_REQUIRE(rt.threads() >= 0, "runtime.threads", "must be >= 0 (0 = all cores)");
  RLJ_REQUIRE(rt.device() == "auto" || rt.device() == "cpu" || rt.device() == "cuda", "runtime.device",
              "must be auto, cpu or cuda");

  const auto& m = c.model();
  RLJ_REQUIRE(m.architecture() == "llama", "model.architecture", "must be llama");
  RLJ_REQUIRE(m.vocab_size() > 0, "model.vocab_size", "must be > 0");
  RLJ_REQUIRE(m.d_model() > 0, "model.d_model", "must be > 0");
  RLJ_REQUIRE(m.n_layers() > 0, "model.n_layers", "must be > 0");
  RLJ_REQUIRE(m.n_heads() > 0, "model.n_heads", "must be > 0");
  RLJ_REQUIRE(m.d_model() % m.n_heads() == 0, "model.d_model", absl::StrCat("must be divisible by model.n_heads (", m.n_heads(), ")"));
  RLJ_REQUIRE((m.d_model() / m.n_heads()) % 2 == 0, "model.d_model", "head size (d_model / n_heads) must be even for RoPE");
  const int kv_heads = m.n_kv_heads() == 0 ? m.n_heads() : m.n_kv_heads();
  RLJ_REQUIRE(kv_heads > 0 && m.n_heads() % kv_heads == 0, "model.n_kv_heads", "must divide model.n_heads");
  RLJ_REQUIRE(m.ffn_hidden() > 0, "model.ffn_hidden", "must be > 0");
  RLJ_REQUIRE(m.max_seq_len() > 1, "model.max_seq_len", "must be > 1");
  RLJ_REQUIRE(m.rope_theta() > 0, "model.rope_theta", "must be > 0");
  RLJ_REQUIRE(m.norm_eps() > 0, "model.norm_eps", "must be > 0");

  RLJ_REQUIRE(c.tokenizer().kind() == "byte", "tokenizer.kind", "must be byte");

  const auto& s = c.sampling();
  RLJ_REQUIRE(s.group_size() >= 1, "sampling.group_size", "must be >= 1");
  RLJ_REQUIRE(s.max_new_tokens() >= 1, "sampling.max_new_tokens", "must be >= 1");
  RLJ_REQUIRE(s.max_new_tokens() < m.max_seq_len(), "sampling.max_new_tokens", "must be < model.max_seq_len");
  RLJ_REQUIRE(s.temperature() > 0, "sampling.temperature", "must be > 0 (greedy decoding is for eval)");
  RLJ_REQUIRE(s.top_k() >= 0, "sampling.top_k", "must be >= 0 (0 = off)");
  RLJ_REQUIRE(s.top_p() > 0 && s.top_p() <= 1, "sampling.top_p", "must be in (0, 1]");
  for (int i = 0; i < s.stop_size(); ++i) {
    RLJ_REQUIRE(!s.stop(i).empty(), absl::StrCat("sampling.stop[", i, "]"), "must not be empty");
  }

  const auto& j = c.judge();
  RLJ_REQUIRE(j.backend() == "rule" || j.backend() == "openai", "judge.backend", "must be rule or openai");
  RLJ_REQUIRE(j.rule().mode() == "exact" || j.rule().mode() == "numeric", "judge.rule.mode", "must be exact or numeric");
  RLJ_REQUIRE(j.rule().tolerance() >= 0, "judge.rule.tolerance", "must be >= 0");
  RLJ_REQUIRE(j.threads() >= 1, "judge.threads", "must be >= 1");
  RLJ_REQUIRE(j.timeout_ms() > 0, "judge.timeout_ms", "must be > 0");
  if (j.backend() == "openai") {
    const auto& o = j.openai();
    RLJ_REQUIRE(!o.model().empty(), "judge.openai.model", "is required with judge.backend: openai");
    RLJ_REQUIRE(!o.rubric().empty(), "judge.openai.rubric", "is required with judge.backend: openai");
    RLJ_REQUIRE(o.score_max() > o.score_min(), "judge.openai.score_max", "must be > judge.openai.score_min");
    RLJ_REQUIRE(o.timeout_ms() > 0, "judge.openai.timeout_ms", "must be > 0");
    RLJ_REQUIRE(o.max_retries() >= 0, "judge.openai.max_retries", "must be >= 0");
    RLJ_REQUIRE(o.max_concurrency() >= 1, "judge.openai.max_concurrency", "must be >= 1");
  }

  const auto& l = c.learner();
  RLJ_REQUIRE(l.algorithm() == "grpo", "learner.algorithm", "must be grpo");
  RLJ_REQUIRE(l.steps() >= 0, "learner.steps", "must be >= 0");
  RLJ_REQUIRE(l.groups_per_step() >= 1, "learner.groups_per_step", "must be >= 1");
  RLJ_REQUIRE(l.lr() > 0, "learner.lr", "must be > 0");
  RLJ_REQUIRE(l.weight_decay() >= 0, "learner.weight_decay", "must be >= 0");
  RLJ_REQUIRE(l.adam_beta1() >= 0 && l.adam_beta1() < 1, "learner.adam_beta1", "must be in [0, 1)");
  RLJ_REQUIRE(l.adam_beta2() >= 0 && l.adam_beta2() < 1, "learner.adam_beta2", "must be in [0, 1)");
  RLJ_REQUIRE(l.adam_eps() > 0, "learner.adam_eps", "must be > 0");
  RLJ_REQUIRE(l.grad_clip() >= 0, "learner.grad_clip", "must be >= 0 (0 = off)");
  RLJ_REQUIRE(l.clip_eps() > 0 && l.clip_eps() < 1, "learner.clip_eps", "must be in (0, 1)");
  RLJ_REQUIRE(l.kl_coef() >= 0, "learner.kl_coef", "must be >= 0");
  RLJ_REQUIRE(l.max_staleness() >= 0, "learner.max_staleness", "must be >= 0");
  RLJ_REQUIRE(l.buffer_groups() >= l.groups_per_step(), "learner.buffer_groups", "must be >= learner.groups_per_step");
  RLJ_REQUIRE(l.checkpoint_every() >= 0, "learner.checkpoint_every", "must be >= 0");
  RLJ_REQUIRE(l.threads() >= 0, "learner.threads", "must be >= 0");
  RLJ_REQUIRE(!l.has_device() || l.device() == "auto" || l.device() == "cpu" || l.device() == "cuda",
              "learner.device", "must be auto, cpu or cuda");
  RLJ_REQUIRE(l.ppo_epochs() >= 1, "learner.ppo_epochs", "must be >= 1");

  const auto& a = c.actor();
  RLJ_REQUIRE(a.count() >= 0, "actor.count", "must be >= 0");
  RLJ_REQUIRE(a.prompts_per_batch() >= 1, "actor.prompts_per_batch", "must be >= 1");
  RLJ_REQUIRE(a.threads() >= 0, "actor.threads", "must be >= 0");
  RLJ_REQUIRE(a.rpc_timeout_ms() > 0, "actor.rpc_timeout_ms", "must be > 0");

  const auto& f = c.sft();
  RLJ_REQUIRE(f.steps() >= 0, "sft.steps", "must be >= 0");
  RLJ_REQUIRE(f.batch_size() >= 1, "sft.batch_size", "must be >= 1");
  RLJ_REQUIRE(f.lr() > 0, "sft.lr", "must be > 0");
  RLJ_REQUIRE(f.warmup_steps() >= 0, "sft.warmup_steps", "must be >= 0");

  const auto& e = c.eval();
  RLJ_REQUIRE(e.max_prompts() >= 0, "eval.max_prompts", "must be >= 0");
  RLJ_REQUIRE(e.max_new_tokens() >= 0, "eval.max_new_tokens", "must be >= 0");
  RLJ_REQUIRE(e.batch_size() >= 1, "eval.batch_size", "must be >= 1");
  return absl::OkStatus();
}

#undef RLJ_REQUIRE

int ResolveThreads(const v1::RunConfig& config, int role_threads) {
  if (role_threads > 0) return role_threads;
  if (config.runtime().threads() > 0) return config.runtime().threads();
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace rlj
