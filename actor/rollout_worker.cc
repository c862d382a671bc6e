// rollout_worker.cc: the actor loop. Each sampled group is judged and pushed on its own, while the next
// batches are sampled (up to actor.max_batches_in_flight batches out at once).
#include "actor/rollout_worker.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <list>
#include <mutex>
#include <random>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "actor/judge_client.h"
#include "actor/policy_fetcher.h"
#include "actor/sampling_placement.h"
#include "common/config_validate.h"
#include "common/grpc_util.h"
#include "common/log.h"
#include "common/retry_policy.h"
#include "common/shutdown.h"
#include "common/status.h"
#include "common/telemetry/process_telemetry.h"
#include "common/tokenizer/tokenizer.h"
#include "model/checkpoint/checkpoint.h"
#include "model/sampler.h"
#include "model/tensor/torch_util.h"
#include "model/transformer.h"

namespace rlj {
namespace {

using Clock = std::chrono::steady_clock;

// The actor's backoff between attempts of a learner or judge call.
constexpr BackoffPolicy kActorBackoff{std::chrono::milliseconds(200), std::chrono::milliseconds(5000)};

// How long a learner push or a judge call may keep failing before the actor drops its group: a minute, or
// two of the judge's call deadlines when that is longer.
std::chrono::milliseconds RetryBudget(const v1::RunConfig& config) {
  return std::chrono::milliseconds(std::max<int64_t>(60000, 2 * int64_t{config.judge().timeout_ms()}));
}

// The groups out with the judge and the learner: each runs on its own thread; the loop waits for room
// before it samples more. Joins every task before it is destroyed.
class GroupsInFlight {
 public:
  ~GroupsInFlight() { WaitUntilAtMost(0); }

  void Launch(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++count_;
    }
    tasks_.push_back(std::async(std::launch::async, [this, task = std::move(task)] {
      task();
      std::lock_guard<std::mutex> lock(mutex_);
      --count_;
      changed_.notify_all();
    }));
  }

  // Waits until at most `n` groups are out, then reaps the finished tasks.
  void WaitUntilAtMost(int n) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return count_ <= n; });
    }
    for (auto it = tasks_.begin(); it != tasks_.end();) {
      if (it->wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
        it->get();
        it = tasks_.erase(it);
      } else {
        ++it;
      }
    }
  }

  int count() {
    std::lock_guard<std::mutex> lock(mutex_);
    return count_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int count_ = 0;
  std::list<std::future<void>> tasks_;  // touched by the loop's thread only
};

// The sampling options of an actor's `iteration`-th batch: sampling.*, with a seed of its own.
SamplingOptions BatchSamplingOptions(const v1::RunConfig& config, int actor_index, int64_t iteration) {
  const v1::SamplingConfig& sampling = config.sampling();
  SamplingOptions options;
  options.temperature = sampling.temperature();
  options.top_k = sampling.top_k();
  options.top_p = sampling.top_p();
  options.max_new_tokens = sampling.max_new_tokens();
  options.stop_strings.assign(sampling.stop().begin(), sampling.stop().end());
  // Spread, so that batch k's rows (seed + row) never reuse batch k + 1's streams.
  options.seed = SpreadSeed(config.seed() * 1000003ULL + static_cast<uint64_t>(actor_index) * 7919ULL +
                            static_cast<uint64_t>(iteration));
  return options;
}

// The leased prompts' tokens; a prompt too long to leave room for sampling.max_new_tokens is an error.
absl::StatusOr<std::vector<std::vector<int32_t>>> EncodeLeasedPrompts(const Tokenizer& tokenizer,
                                                                      const v1::LeasePromptsResponse& lease,
                                                                      int max_prompt_tokens) {
  std::vector<std::vector<int32_t>> prompt_tokens;
  for (const v1::LeasedPrompt& prompt : lease.prompts()) {
    prompt_tokens.push_back(tokenizer.EncodePrompt(prompt.prompt()));
    if (static_cast<int>(prompt_tokens.back().size()) > max_prompt_tokens) {
      return absl::InvalidArgumentError(absl::StrCat("leased prompt \"", prompt.prompt_id(), "\" is ",
                                                     prompt_tokens.back().size(), " tokens; at most ",
                                                     max_prompt_tokens, " fit with sampling.max_new_tokens"));
    }
  }
  return prompt_tokens;
}

// Puts the judge's verdicts on the group's rollouts: a failed or missing verdict makes its rollout invalid
// (masked), never reward 0.
void ApplyVerdicts(const v1::ScoreResponse& judged, v1::RolloutGroup* group, ActorStats* stats) {
  std::unordered_map<std::string, const v1::Verdict*> by_id;
  for (const v1::Verdict& verdict : judged.verdicts()) by_id[verdict.sample_id()] = &verdict;
  for (v1::Rollout& rollout : *group->mutable_rollouts()) {
    auto it = by_id.find(rollout.sample_id());
    const v1::Verdict* verdict = it == by_id.end() ? nullptr : it->second;
    stats->samples_judged.fetch_add(1);
    if (verdict == nullptr || verdict->has_error()) {
      rollout.set_valid(false);
      rollout.set_error(verdict == nullptr ? "no verdict for this sample" : verdict->error().message());
      stats->samples_failed.fetch_add(1);
    } else if (!verdict->token_logprobs().empty() &&
               verdict->token_logprobs_size() != rollout.completion_tokens_size()) {
      // A per-token signal that does not line up with the tokens would train the wrong tokens: masked.
      rollout.set_valid(false);
      rollout.set_error(absl::StrCat("the verdict has ", verdict->token_logprobs_size(), " token log-probs for ",
                                     rollout.completion_tokens_size(), " completion tokens"));
      stats->samples_failed.fetch_add(1);
    } else {
      rollout.set_valid(true);
      rollout.set_reward(verdict->reward());
      *rollout.mutable_teacher_logprobs() = verdict->token_logprobs();
    }
  }
}

}  // namespace

struct RolloutWorker::SampledGroup {
  v1::RolloutGroup group;
  v1::ScoreRequest request;  // one sample per rollout, in order
};

struct RolloutWorker::State {
  v1::RunConfig config;
  ActorOptions options;
  std::shared_ptr<v1::Learner::StubInterface> learner;
  std::shared_ptr<v1::Judge::StubInterface> judge;
  std::unique_ptr<JudgeClient> judge_client;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<PolicyFetcher> fetcher;
  Transformer model{nullptr};
  ModelPlacement placement;  // actor.device (else runtime.device), bf16 there on CUDA (actor.bf16)
  int64_t version = -1;
  std::string incarnation;  // random per process: group ids stay unique across actor restarts
  int64_t next_group = 0;
  int64_t iteration = 0;

  std::chrono::milliseconds rpc_timeout() const { return std::chrono::milliseconds(config.actor().rpc_timeout_ms()); }
};

RolloutWorker::RolloutWorker(std::unique_ptr<State> state) : state_(std::move(state)) {}
RolloutWorker::~RolloutWorker() = default;

const JudgeClientStats& RolloutWorker::judge_stats() const { return state_->judge_client->stats(); }

absl::StatusOr<std::unique_ptr<RolloutWorker>> RolloutWorker::Create(
    const v1::RunConfig& config, const ActorOptions& options, std::shared_ptr<v1::Learner::StubInterface> learner,
    std::shared_ptr<v1::Judge::StubInterface> judge) {
  if (options.count < 1 || options.index < 0 || options.index >= options.count) {
    return absl::InvalidArgumentError(
        absl::StrCat("actor index ", options.index, " is outside 0..", options.count - 1));
  }
  auto state = std::make_unique<State>();
  state->config = config;
  state->options = options;
  state->incarnation = absl::StrFormat("%06x", std::random_device{}() & 0xffffff);
  state->learner = std::move(learner);
  state->judge = std::move(judge);
  RLJ_ASSIGN_OR_RETURN(state->tokenizer, MakeTokenizer(config.tokenizer()));
  RLJ_ASSIGN_OR_RETURN(state->placement, SamplingPlacement(config));
  state->fetcher =
      std::make_unique<PolicyFetcher>(state->learner, options.name, /*pinned=*/state->placement.device.is_cuda());
  JudgeClientOptions judge_options;
  judge_options.call_timeout = std::chrono::milliseconds(config.judge().timeout_ms());
  judge_options.retry_budget = RetryBudget(config);
  judge_options.backoff = kActorBackoff;
  judge_options.wait_out_outages = config.judge().on_outage() == v1::JudgeConfig::pause;
  state->judge_client = std::make_unique<JudgeClient>(state->judge, judge_options);
  return std::unique_ptr<RolloutWorker>(new RolloutWorker(std::move(state)));
}

absl::Status RolloutWorker::RefreshPolicy(std::chrono::milliseconds wait) {
  State& s = *state_;
  std::optional<FetchedPolicy> fetched;
  RLJ_RETURN_IF_ERROR(
      RetryWithBackoff("Learner.GetPolicy", std::chrono::hours(24 * 365), kActorBackoff, [&]() -> absl::Status {
        RLJ_ASSIGN_OR_RETURN(fetched, s.fetcher->Fetch(s.version, wait, s.rpc_timeout()));
        return absl::OkStatus();
      }));
  if (!fetched) return absl::OkStatus();
  const int64_t version = fetched->version;
  const uint64_t bytes = fetched->bytes;
  RLJ_RETURN_IF_ERROR(InstallPolicy(std::move(*fetched), s.tokenizer->vocab_size(), s.placement, &s.model));
  if (s.version < 0) {
    log::Info("{} got policy v{} ({} MB), sampling on {} in {}", s.options.name, version, bytes / 1e6,
              s.placement.device.str(), c10::toString(s.placement.dtype));
  }
  s.version = version;
  stats_.policy_updates.fetch_add(1);
  return absl::OkStatus();
}

void RolloutWorker::ScoreAndPush(SampledGroup sampled) {
  State& s = *state_;
  const auto judge_start = Clock::now();
  const int64_t paused_before = s.judge_client->stats().paused.load();
  absl::StatusOr<v1::ScoreResponse> judged = s.judge_client->Score(sampled.request);
  if (!judged.ok()) {
    stats_.groups_dropped.fetch_add(1);
    if (!absl::IsCancelled(judged.status())) {
      log::Error("dropping group {}: {}", sampled.group.group_id(), std::string(judged.status().message()));
    }
    return;
  }
  if (s.judge_client->stats().paused.load() != paused_before) stats_.groups_held.fetch_add(1);
  v1::RolloutGroup& group = sampled.group;
  group.set_judge_ms(std::chrono::duration<double, std::milli>(Clock::now() - judge_start).count());
  ApplyVerdicts(*judged, &group, &stats_);
  v1::RolloutBatch push;
  *push.add_groups() = std::move(group);
  v1::PushRolloutsResponse pushed;
  absl::Status status =
      RetryWithBackoff("Learner.PushRollouts", RetryBudget(s.config), kActorBackoff, [&]() -> absl::Status {
        grpc::ClientContext context;
        SetDeadline(&context, s.rpc_timeout());
        auto writer = s.learner->PushRollouts(&context, &pushed);
        writer->Write(push);
        writer->WritesDone();
        return FromGrpcStatus(writer->Finish(), "Learner.PushRollouts");
      });
  if (!status.ok()) {
    stats_.groups_dropped.fetch_add(1);
    if (!absl::IsCancelled(status)) {
      log::Error("dropping group {}: {}", push.groups(0).group_id(), std::string(status.message()));
    }
    return;
  }
  stats_.groups_pushed.fetch_add(pushed.accepted_groups());
}

absl::StatusOr<v1::LeasePromptsResponse> RolloutWorker::LeasePrompts() {
  State& s = *state_;
  v1::LeasePromptsResponse response;
  v1::LeasePromptsRequest request;
  request.set_actor(s.options.name);
  request.set_count(s.config.actor().prompts_per_batch());
  RLJ_RETURN_IF_ERROR(
      RetryWithBackoff("Learner.LeasePrompts", std::chrono::hours(24 * 365), kActorBackoff, [&]() -> absl::Status {
        grpc::ClientContext context;
        SetDeadline(&context, s.rpc_timeout());
        response.Clear();
        return FromGrpcStatus(s.learner->LeasePrompts(&context, request, &response), "Learner.LeasePrompts");
      }));
  return response;
}

absl::Status RolloutWorker::FollowLearner(int64_t learner_version) {
  State& s = *state_;
  if (learner_version < s.version) {
    log::Warn("{}: the learner is at v{} but this actor has v{} (learner restarted); refetching", s.options.name,
              learner_version, s.version);
    s.version = -1;
  }
  if (learner_version > s.version || s.version < 0) return RefreshPolicy(std::chrono::milliseconds(0));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RolloutWorker::SampledGroup>> RolloutWorker::SampleBatch(
    const v1::LeasePromptsResponse& lease) {
  State& s = *state_;
  const int group_size = s.config.sampling().group_size();
  const int max_prompt_tokens = s.config.model().max_seq_len() - s.config.sampling().max_new_tokens();
  RLJ_ASSIGN_OR_RETURN(const std::vector<std::vector<int32_t>> prompt_tokens,
                       EncodeLeasedPrompts(*s.tokenizer, lease, max_prompt_tokens));
  std::vector<std::vector<int32_t>> batch_prompts;
  for (const std::vector<int32_t>& tokens : prompt_tokens) {
    for (int g = 0; g < group_size; ++g) batch_prompts.push_back(tokens);
  }
  const SamplingOptions options = BatchSamplingOptions(s.config, s.options.index, s.iteration++);
  RLJ_ASSIGN_OR_RETURN(const std::vector<SampledCompletion> completions,
                       SampleCompletions(s.model, *s.tokenizer, batch_prompts, options));
  const double now_unix = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<SampledGroup> batch;
  for (int p = 0; p < lease.prompts_size(); ++p) {
    batch.push_back(MakeGroup(lease, p, prompt_tokens[static_cast<size_t>(p)], completions, now_unix));
  }
  return batch;
}

RolloutWorker::SampledGroup RolloutWorker::MakeGroup(const v1::LeasePromptsResponse& lease, int p,
                                                     const std::vector<int32_t>& prompt_tokens,
                                                     const std::vector<SampledCompletion>& completions,
                                                     double sampled_unix_s) {
  State& s = *state_;
  const int group_size = s.config.sampling().group_size();
  const v1::LeasedPrompt& row = lease.prompts(p);
  SampledGroup sampled;
  v1::RolloutGroup& group = sampled.group;
  group.set_group_id(absl::StrCat(s.options.name, "-", s.incarnation, "-g", s.next_group++));
  group.set_prompt_id(row.prompt_id());
  group.mutable_prompt_tokens()->Assign(prompt_tokens.begin(), prompt_tokens.end());
  group.set_lease_id(lease.lease_id());
  group.set_item_id(row.item_id());
  group.set_policy_version(s.version);
  group.set_actor(s.options.name);
  group.set_sampled_unix_s(sampled_unix_s);
  for (int g = 0; g < group_size; ++g) {
    const SampledCompletion& completion = completions[p * static_cast<size_t>(group_size) + static_cast<size_t>(g)];
    v1::Rollout* rollout = group.add_rollouts();
    rollout->set_sample_id(absl::StrCat(group.group_id(), "/", g));
    rollout->mutable_completion_tokens()->Assign(completion.tokens.begin(), completion.tokens.end());
    rollout->mutable_behaviour_logprobs()->Assign(completion.logprobs.begin(), completion.logprobs.end());
    rollout->set_truncated(completion.truncated());
    stats_.completion_tokens.fetch_add(static_cast<int64_t>(completion.tokens.size()));
    v1::Sample* sample = sampled.request.add_samples();
    sample->set_id(rollout->sample_id());
    sample->set_prompt_id(row.prompt_id());
    sample->set_prompt(row.prompt());
    sample->set_completion(completion.text);
    sample->set_reference(row.reference());
    sample->set_group_id(group.group_id());
    sample->set_index_in_group(g);
    sample->set_run(s.config.name());
    sample->set_actor(s.options.name);
    sample->set_policy_version(s.version);
    // The tokens themselves, for judges that score them (distill mode), with the sampler's log-probs.
    *sample->mutable_prompt_token_ids() = group.prompt_tokens();
    *sample->mutable_completion_token_ids() = rollout->completion_tokens();
    *sample->mutable_behaviour_logprobs() = rollout->behaviour_logprobs();
  }
  return sampled;
}

void RolloutWorker::LogProgress(int groups_out) const {
  const State& s = *state_;
  const JudgeClientStats& judge = s.judge_client->stats();
  log::Info(
      "{}: v{} batches {} groups pushed {} (out {}) samples failed {} dropped groups {} | judge retries {} "
      "(backpressure {}, paused {}, unavailable {})",
      s.options.name, s.version, stats_.batches.load(), stats_.groups_pushed.load(), groups_out,
      stats_.samples_failed.load(), stats_.groups_dropped.load(), judge.retries.load(), judge.backpressure.load(),
      judge.paused.load(), judge.unavailable.load());
}

absl::Status RolloutWorker::Run() {
  State& s = *state_;
  RLJ_RETURN_IF_ERROR(RefreshPolicy(std::chrono::milliseconds(0)));
  if (ShutdownRequested()) return absl::OkStatus();
  const int batch_groups = s.config.actor().prompts_per_batch();
  const int max_batches_in_flight = std::max(1, s.config.actor().max_batches_in_flight());
  GroupsInFlight in_flight;
  auto last_report = Clock::now();
  absl::Status result = absl::OkStatus();
  while (!ShutdownRequested()) {
    // While the judge waits out a teacher outage, lease nothing more: the held groups go first.
    if (in_flight.count() > 0 && s.judge_client->judge_paused()) {
      log::Warn("{}: the judge is paused by a teacher outage; holding the {} sampled groups, leasing no prompts",
                s.options.name, in_flight.count());
      const int64_t held_before = stats_.groups_held.load();
      in_flight.WaitUntilAtMost(0);
      log::Info("{}: the judge answers again; pushed the {} groups held through the teacher outage", s.options.name,
                stats_.groups_held.load() - held_before);
      continue;
    }
    // Room for one more batch: the earlier ones' slow verdicts hold back only their own groups.
    in_flight.WaitUntilAtMost((max_batches_in_flight - 1) * batch_groups);
    absl::StatusOr<v1::LeasePromptsResponse> lease = LeasePrompts();
    if (!lease.ok()) {
      if (!absl::IsCancelled(lease.status())) result = lease.status();
      break;
    }
    if (lease->done()) {
      log::Info("{}: the learner is done (v{}); stopping", s.options.name, lease->learner_version());
      break;
    }
    if (absl::Status followed = FollowLearner(lease->learner_version()); !followed.ok()) {
      result = followed;
      break;
    }
    if (lease->prompts().empty()) continue;
    absl::StatusOr<std::vector<SampledGroup>> batch = SampleBatch(*lease);
    if (!batch.ok()) {
      result = batch.status();
      break;
    }
    stats_.batches.fetch_add(1);
    for (SampledGroup& sampled : *batch) {
      in_flight.Launch([this, sampled = std::move(sampled)]() mutable { ScoreAndPush(std::move(sampled)); });
    }
    if (Clock::now() - last_report > std::chrono::seconds(10)) {
      last_report = Clock::now();
      LogProgress(in_flight.count());
    }
  }
  in_flight.WaitUntilAtMost(0);
  return result;
}

absl::Status RunActor(const v1::RunConfig& config, const ActorOptions& options, const std::string& learner_address,
                      const std::string& judge_address) {
  RLJ_RETURN_IF_ERROR(Annotate(CheckListenAddress(learner_address), "--learner"));
  RLJ_RETURN_IF_ERROR(Annotate(CheckListenAddress(judge_address), "--judge"));
  SetTorchThreads(ResolveThreads(config, config.actor().threads()));
  std::shared_ptr<v1::Learner::StubInterface> learner = v1::Learner::NewStub(MakeChannel(learner_address));
  std::shared_ptr<v1::Judge::StubInterface> judge = v1::Judge::NewStub(MakeChannel(judge_address));
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<RolloutWorker> worker, RolloutWorker::Create(config, options, learner, judge));
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<telemetry::ProcessTelemetry> telemetry,
                       telemetry::ProcessTelemetry::Start(config, options.run_dir, options.name, "actor", false));
  const ActorStats* stats = &worker->stats();
  const auto exported = telemetry->metrics().AddCollector([stats](telemetry::MetricsSnapshotWriter& out) {
    const auto counter = [&out](const char* name, const char* help, const std::atomic<int64_t>& value) {
      out.Counter(name, help, static_cast<double>(value.load()));
    };
    counter("rlj_actor_batches_total", "Batches of groups sampled", stats->batches);
    counter("rlj_actor_groups_pushed_total", "Groups pushed to the learner", stats->groups_pushed);
    counter("rlj_actor_samples_judged_total", "Completions judged", stats->samples_judged);
    counter("rlj_actor_samples_failed_total", "Completions whose verdict failed (pushed masked)",
            stats->samples_failed);
    counter("rlj_actor_groups_dropped_total", "Groups dropped: judge or learner unreachable", stats->groups_dropped);
    counter("rlj_actor_groups_held_total", "Groups held through a teacher outage (judge.on_outage pause)",
            stats->groups_held);
    counter("rlj_actor_completion_tokens_total", "Completion tokens sampled", stats->completion_tokens);
    counter("rlj_actor_policy_updates_total", "Policy versions loaded", stats->policy_updates);
  });
  const JudgeClientStats* judge_stats = &worker->judge_stats();
  const auto exported_judge = telemetry->metrics().AddCollector([judge_stats](telemetry::MetricsSnapshotWriter& out) {
    const auto counter = [&out](const char* name, const char* help, const std::atomic<int64_t>& value) {
      out.Counter(name, help, static_cast<double>(value.load()));
    };
    counter("rlj_actor_judge_calls_total", "Judge.Score calls", judge_stats->calls);
    counter("rlj_actor_judge_retries_total", "Judge.Score attempts after the first", judge_stats->retries);
    counter("rlj_actor_judge_backpressure_total", "Judge.Score answers: every judge thread busy (retried)",
            judge_stats->backpressure);
    counter("rlj_actor_judge_paused_total", "Judge.Score answers: paused by a teacher outage (retried)",
            judge_stats->paused);
    counter("rlj_actor_judge_unavailable_total", "Judge.Score failures: judge unreachable or late (retried)",
            judge_stats->unavailable);
  });
  log::Info("{} starting: learner {}, judge {}", options.name, learner_address, judge_address);
  return worker->Run();
}

}  // namespace rlj
