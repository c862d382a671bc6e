// ensemble_backend.cc: weighted sums of component verdicts, and group ranking in two orders.
#include "judge/backends/ensemble_backend.h"

#include <cmath>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "judge/group_ranking.h"
#include "judge/score_parser.h"

namespace rlj {
namespace {

std::string Ordinal(int n) {
  const int last = n % 10;
  const char* suffix = (n % 100 >= 11 && n % 100 <= 13) ? "th"
                       : last == 1                      ? "st"
                       : last == 2                      ? "nd"
                       : last == 3                      ? "rd"
                                                        : "th";
  return absl::StrCat(n, suffix);
}

using Component = EnsembleBackend::Component;

// The groups worth ranking: groups in order of first appearance, members in sampled order (index_in_group).
// Samples without a group_id, and groups of one, get their error here.
std::vector<std::vector<size_t>> RankableGroups(const std::vector<v1::Sample>& samples,
                                                std::vector<Judgement>* judgements) {
  std::vector<std::vector<size_t>> groups;
  std::map<std::string, size_t> group_of;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (samples[i].group_id().empty()) {
      SetVerdictError(&(*judgements)[i].verdict, absl::StatusCode::kInvalidArgument, error_kind::kInvalid,
                      "group_rank needs samples with a group_id (the completions of one prompt)");
      continue;
    }
    auto [it, added] = group_of.try_emplace(samples[i].group_id(), groups.size());
    if (added) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  std::vector<std::vector<size_t>> ranked;  // groups big enough to rank
  for (std::vector<size_t>& group : groups) {
    std::stable_sort(group.begin(), group.end(),
                     [&](size_t a, size_t b) { return samples[a].index_in_group() < samples[b].index_in_group(); });
    if (group.size() < 2) {
      for (size_t i : group) {
        SetVerdictError(&(*judgements)[i].verdict, absl::StatusCode::kInvalidArgument, error_kind::kInvalid,
                        "group_rank needs at least 2 completions of the group in one request");
      }
    } else {
      ranked.push_back(std::move(group));
    }
  }
  return ranked;
}

// Questions: for each group, the forward and the reversed presentation.
std::vector<ChatQuestion> RankQuestions(const std::string& rank_template, const std::vector<v1::Sample>& samples,
                                        const std::vector<std::vector<size_t>>& groups) {
  std::vector<ChatQuestion> questions;
  for (const std::vector<size_t>& members : groups) {
    std::vector<std::string_view> forward, reversed;
    for (size_t i : members) forward.push_back(samples[i].completion());
    reversed.assign(forward.rbegin(), forward.rend());
    const v1::Sample& first = samples[members[0]];
    questions.push_back({"", RenderRankQuestion(rank_template, first.prompt(), first.reference(), forward)});
    questions.push_back({"", RenderRankQuestion(rank_template, first.prompt(), first.reference(), reversed)});
  }
  return questions;
}

// Every component's teacher answers every question; the components ask concurrently.
std::vector<ChatReplies> AskComponents(const std::vector<Component>& components,
                                       const std::vector<ChatQuestion>& questions, SteadyTime deadline) {
  std::vector<ChatReplies> replies(components.size());
  std::vector<std::thread> threads;
  for (size_t c = 1; c < components.size(); ++c) {
    threads.emplace_back([&, c] { replies[c] = components[c].teacher->AskChat(questions, deadline); });
  }
  replies[0] = components[0].teacher->AskChat(questions, deadline);
  for (std::thread& thread : threads) thread.join();
  return replies;
}

// A component's two answers about a group: their spend shared by the group's members, and their raw text.
void ShareGroupSpend(const std::string& name, const ChatAnswer& forward, const ChatAnswer& reversed,
                     const std::vector<size_t>& members, std::vector<Judgement>* judgements) {
  const int64_t n = static_cast<int64_t>(members.size());
  const int64_t tokens_in = forward.tokens_in + reversed.tokens_in;
  const int64_t tokens_out = forward.tokens_out + reversed.tokens_out;
  for (size_t m = 0; m < members.size(); ++m) {
    Judgement& judgement = (*judgements)[members[m]];
    v1::Verdict& verdict = judgement.verdict;
    verdict.set_tokens_in(verdict.tokens_in() + tokens_in / n + (m == 0 ? tokens_in % n : 0));
    verdict.set_tokens_out(verdict.tokens_out() + tokens_out / n + (m == 0 ? tokens_out % n : 0));
    verdict.set_cost_usd(verdict.cost_usd() + (forward.cost_usd + reversed.cost_usd) / static_cast<double>(n));
    verdict.set_cache_hit(verdict.cache_hit() || (forward.cache_hit && reversed.cache_hit));
    verdict.set_latency_ms(std::max({verdict.latency_ms(), forward.latency_ms, reversed.latency_ms}));
    judgement.raw_response +=
        absl::StrCat(name, " forward: ", forward.raw, "\n", name, " reversed: ", reversed.raw, "\n");
  }
}

// A component's ranking of one group: each member's positions, or why it could not rank the group.
struct GroupRanking {
  std::string failure;  // empty: ranked
  absl::StatusCode code = absl::StatusCode::kInternal;
  std::string kind = error_kind::kParse;
  ItemPositions positions;
};

// Ranks group `k` (questions 2k and 2k + 1) of `n` members from a component's `replies`, and remembers the
// answers it could use (an unusable one is asked again next time).
GroupRanking RankGroup(const ChatReplies& replies, size_t k, int n, const std::string& rank_key) {
  const ChatAnswer& forward = replies.answers[2 * k];
  const ChatAnswer& reversed = replies.answers[2 * k + 1];
  GroupRanking ranking;
  const ChatAnswer* bad = !forward.ok ? &forward : !reversed.ok ? &reversed : nullptr;
  absl::StatusOr<std::vector<int>> forward_ranking = absl::UnknownError("");
  absl::StatusOr<std::vector<int>> reversed_ranking = absl::UnknownError("");
  if (bad != nullptr) {
    ranking.failure = bad->message.empty() ? "the teacher's answer failed" : bad->message;  // never empty: failed
    ranking.code = bad->code;
    ranking.kind = bad->kind;
  } else {
    forward_ranking = ParseRanking(forward.content, rank_key, n);
    reversed_ranking = ParseRanking(reversed.content, rank_key, n);
    if (!forward_ranking.ok()) {
      ranking.failure = absl::StrCat("forward order: ", forward_ranking.status().message());
    } else if (!reversed_ranking.ok()) {
      ranking.failure = absl::StrCat("reversed order: ", reversed_ranking.status().message());
    }
  }
  std::vector<size_t> usable;
  if (forward.ok && forward_ranking.ok()) usable.push_back(2 * k);
  if (reversed.ok && reversed_ranking.ok()) usable.push_back(2 * k + 1);
  replies.Remember(usable);
  if (ranking.failure.empty() && forward_ranking.ok() && reversed_ranking.ok()) {
    ranking.positions = PositionsFromRankings(*forward_ranking, *reversed_ranking);
  }
  return ranking;
}

// What a group's members have gathered so far: their weighted rewards and rationales.
struct GroupScores {
  std::vector<double> rewards;
  std::vector<std::string> rationales;
};

// Adds a component's ranking of a group to its members' scores and verdict components.
void AddRanking(const v1::EnsembleJudgeConfig& config, const Component& component, const ItemPositions& positions,
                const std::vector<size_t>& members, GroupScores* scores, std::vector<Judgement>* judgements) {
  const size_t n = members.size();
  const std::vector<double> component_rewards =
      RewardsFromPositions(positions, config.rank_reward_best(), config.rank_reward_worst());
  for (size_t m = 0; m < n; ++m) {
    v1::Verdict& verdict = (*judgements)[members[m]].verdict;
    scores->rewards[m] += component.weight * component_rewards[m];
    auto& parts = *verdict.mutable_components();
    parts[component.name] = component_rewards[m];
    parts[absl::StrCat(component.name, ".position_forward")] = positions.forward[m] + 1;
    parts[absl::StrCat(component.name, ".position_reversed")] = positions.reversed[m] + 1;
    std::string& rationale = scores->rationales[m];
    if (!rationale.empty()) rationale += " | ";
    absl::StrAppend(&rationale, component.name, ": ranked ", Ordinal(positions.forward[m] + 1), " of ", n,
                    " in sampled order, ", Ordinal(positions.reversed[m] + 1), " reversed");
  }
}

// The verdicts of ranked group `k`: reward = Σ weight · the component's rank reward; the first component that
// cannot rank the group fails every member.
void ScoreRankedGroup(const v1::EnsembleJudgeConfig& config, const std::vector<Component>& components,
                      const std::vector<ChatReplies>& replies, size_t k, const std::vector<size_t>& members,
                      std::vector<Judgement>* judgements) {
  const size_t n = members.size();
  GroupScores scores{std::vector<double>(n, 0.0), std::vector<std::string>(n)};
  for (size_t c = 0; c < components.size(); ++c) {
    const Component& component = components[c];
    ShareGroupSpend(component.name, replies[c].answers[2 * k], replies[c].answers[2 * k + 1], members, judgements);
    const GroupRanking ranking = RankGroup(replies[c], k, static_cast<int>(n), config.rank_key());
    if (!ranking.failure.empty()) {
      for (size_t i : members) {
        SetVerdictError(&(*judgements)[i].verdict, ranking.code, ranking.kind,
                        absl::StrCat("component '", component.name, "': ", ranking.failure));
      }
      return;
    }
    AddRanking(config, component, ranking.positions, members, &scores, judgements);
  }
  for (size_t m = 0; m < n; ++m) {
    (*judgements)[members[m]].verdict.set_reward(scores.rewards[m]);
    (*judgements)[members[m]].verdict.set_rationale(scores.rationales[m]);
  }
}

}  // namespace

absl::Status EnsembleBackend::Validate(const v1::JudgeConfig& config, const std::string& section) {
  const v1::EnsembleJudgeConfig& e = config.ensemble();
  if (e.components().empty())
    return absl::InvalidArgumentError(absl::StrCat(section, ".components must list at least one backend"));
  std::set<std::string> names;
  for (int i = 0; i < e.components_size(); ++i) {
    const v1::EnsembleComponentConfig& c = e.components(i);
    const std::string path = absl::StrCat(section, ".components[", i, "]");
    if (c.backend().empty()) return absl::InvalidArgumentError(absl::StrCat(path, ".backend is required"));
    if (!std::isfinite(c.weight())) return absl::InvalidArgumentError(absl::StrCat(path, ".weight must be finite"));
    const std::string name = c.name().empty() ? c.backend() : c.name();
    if (!names.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": two components are named '", name, "'"));
    }
    RLJ_RETURN_IF_ERROR(Annotate(ValidateNamedJudgeBackend(config, c.backend(), /*allow_ensemble=*/false), path));
  }
  if (e.mode() == v1::EnsembleJudgeConfig::group_rank) {
    if (e.rank_template().find("{completions}") == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(section, ".rank_template must contain {completions}"));
    }
    if (e.rank_key().empty()) return absl::InvalidArgumentError(absl::StrCat(section, ".rank_key must not be empty"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<EnsembleBackend>> EnsembleBackend::Create(const v1::JudgeConfig& config,
                                                                         const JudgeBackendDeps& deps) {
  const v1::EnsembleJudgeConfig& e = config.ensemble();
  RLJ_RETURN_IF_ERROR(Validate(config, deps.section.empty() ? "judge.ensemble" : deps.section));
  std::vector<Component> components;
  for (int i = 0; i < e.components_size(); ++i) {
    const v1::EnsembleComponentConfig& c = e.components(i);
    const std::string path = absl::StrCat("judge.ensemble.components[", i, "]");
    Component component;
    component.name = c.name().empty() ? c.backend() : c.name();
    component.weight = c.weight();
    auto made = MakeNamedJudgeBackend(config, c.backend(), component.name, deps, /*allow_ensemble=*/false);
    if (!made.ok()) return Annotate(made.status(), path);
    component.backend = std::move(made).value();
    if (e.mode() == v1::EnsembleJudgeConfig::group_rank) {
      component.teacher = dynamic_cast<ChatTeacher*>(component.backend.get());
      if (component.teacher == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(path,
                                                       ": group_rank needs a chat teacher (openai in rubric mode, "
                                                       "anthropic); '",
                                                       c.backend(), "' is not one"));
      }
    }
    components.push_back(std::move(component));
  }
  const int64_t call_ms = config.timeout_ms();
  return std::make_unique<EnsembleBackend>(e, std::move(components), deps.label.empty() ? "ensemble" : deps.label,
                                           std::chrono::milliseconds(call_ms - std::min<int64_t>(1000, call_ms / 10)));
}

EnsembleBackend::EnsembleBackend(const v1::EnsembleJudgeConfig& config, std::vector<Component> components,
                                 std::string label, std::chrono::milliseconds call_timeout)
    : config_(config), components_(std::move(components)), label_(std::move(label)), call_timeout_(call_timeout) {
  std::vector<std::string> terms;
  for (const Component& c : components_) terms.push_back(absl::StrFormat("%g·%s", c.weight, c.name));
  model_ = absl::StrJoin(terms, " + ");
  if (config_.mode() == v1::EnsembleJudgeConfig::group_rank) model_ = absl::StrCat("rank(", model_, ")");
}

EnsembleBackend::~EnsembleBackend() = default;

void EnsembleBackend::CollectStatus(v1::JudgeStatus* status) const {
  for (const Component& c : components_) c.backend->CollectStatus(status);
}

std::vector<Judgement> EnsembleBackend::Score(const std::vector<v1::Sample>& samples) {
  if (config_.mode() == v1::EnsembleJudgeConfig::group_rank) return ScoreGroupRank(samples);
  return ScoreWeighted(samples);
}

std::vector<Judgement> EnsembleBackend::ScoreWeighted(const std::vector<v1::Sample>& samples) {
  // Components score concurrently: the slowest one sets the latency, not their sum.
  std::vector<std::vector<Judgement>> parts(components_.size());
  std::vector<std::thread> threads;
  for (size_t c = 1; c < components_.size(); ++c) {
    threads.emplace_back([&, c] { parts[c] = components_[c].backend->Score(samples); });
  }
  parts[0] = components_[0].backend->Score(samples);
  for (std::thread& thread : threads) thread.join();

  std::vector<Judgement> judgements(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    Judgement& judgement = judgements[i];
    v1::Verdict& verdict = judgement.verdict;
    verdict.set_sample_id(samples[i].id());
    verdict.set_model(model_);
    double reward = 0;
    std::vector<std::string> rationales;
    std::vector<std::string> raws;
    const v1::Verdict* failed = nullptr;
    std::string failed_name;
    for (size_t c = 0; c < components_.size(); ++c) {
      const Component& component = components_[c];
      if (parts[c].size() != samples.size()) {
        SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kBackend,
                        absl::StrCat("component '", component.name, "' returned ", parts[c].size(), " verdicts for ",
                                     samples.size(), " samples"));
        failed = &verdict;
        break;
      }
      const Judgement& part = parts[c][i];
      const v1::Verdict& v = part.verdict;
      verdict.set_tokens_in(verdict.tokens_in() + v.tokens_in());
      verdict.set_tokens_out(verdict.tokens_out() + v.tokens_out());
      verdict.set_cost_usd(verdict.cost_usd() + v.cost_usd());
      verdict.set_cache_hit(verdict.cache_hit() || v.cache_hit());
      verdict.set_latency_ms(std::max(verdict.latency_ms(), v.latency_ms()));
      if (!v.rationale().empty()) rationales.push_back(absl::StrCat(component.name, ": ", v.rationale()));
      if (!part.raw_response.empty()) raws.push_back(absl::StrCat(component.name, ": ", part.raw_response));
      if (v.has_error()) {
        if (failed == nullptr) {
          failed = &v;
          failed_name = component.name;
        }
        continue;
      }
      reward += component.weight * v.reward();
      (*verdict.mutable_components())[component.name] = v.reward();
      for (const auto& [key, value] : v.components()) {
        (*verdict.mutable_components())[absl::StrCat(component.name, ".", key)] = value;
      }
      // A per-token teacher signal (distill mode) passes through: the learner adds it to the weighted reward.
      if (!v.token_logprobs().empty() && verdict.token_logprobs().empty()) {
        *verdict.mutable_token_logprobs() = v.token_logprobs();
        if (auto kl = v.components().find("reverse_kl"); kl != v.components().end()) {
          (*verdict.mutable_components())["reverse_kl"] = kl->second;
        }
      }
    }
    verdict.set_rationale(TruncateUtf8(absl::StrJoin(rationales, " | "), kMaxRationaleBytes));
    judgement.raw_response = absl::StrJoin(raws, "\n");
    if (failed == &verdict) continue;
    if (failed != nullptr) {
      SetVerdictError(&verdict, static_cast<absl::StatusCode>(failed->error().code()), failed->error().kind(),
                      absl::StrCat("component '", failed_name, "': ", failed->error().message()));
      verdict.clear_components();
      verdict.clear_token_logprobs();
      continue;
    }
    verdict.set_reward(reward);
  }
  return judgements;
}

std::vector<Judgement> EnsembleBackend::ScoreGroupRank(const std::vector<v1::Sample>& samples) {
  const SteadyTime deadline = std::chrono::steady_clock::now() + call_timeout_;
  std::vector<Judgement> judgements(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    judgements[i].verdict.set_sample_id(samples[i].id());
    judgements[i].verdict.set_model(model_);
  }
  const std::vector<std::vector<size_t>> groups = RankableGroups(samples, &judgements);
  if (groups.empty()) return judgements;
  const std::vector<ChatReplies> replies =
      AskComponents(components_, RankQuestions(config_.rank_template(), samples, groups), deadline);
  for (size_t k = 0; k < groups.size(); ++k) ScoreRankedGroup(config_, components_, replies, k, groups[k], &judgements);
  return judgements;
}

absl::Status EnsembleBackend::CheckAtStart(const JudgeStartContext& context) {
  for (Component& component : components_) {
    RLJ_RETURN_IF_ERROR(Annotate(component.backend->CheckAtStart(context), absl::StrCat("component ", component.name)));
  }
  return absl::OkStatus();
}

}  // namespace rlj
