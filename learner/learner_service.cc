// learner_service.cc: Learner.PushRollouts (validate, drop stale, buffer with backpressure),
// Learner.GetPolicy (manifest + chunks, or "unchanged" after a wait) and Learner.Status.
#include "learner/learner_service.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "common/wire_bounds.h"

namespace rlj {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kSampleRateWindow = std::chrono::seconds(30);
// Blocking waits inside a call are cut into slices this long so a cancelled call is noticed.
constexpr milliseconds kWaitSlice{500};
// An RPC without a deadline waits at most this long for room in the buffer.
constexpr milliseconds kMaxPushWait{3600 * 1000};

absl::Status CheckTokenIds(const google::protobuf::RepeatedField<int32_t>& ids, int vocab_size, const char* field) {
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "] = ", ids[i], " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

std::string DescribeGroup(int index, const v1::RolloutGroup& group) {
  return absl::StrCat("group ", index, " (group_id '", group.group_id(), "')");
}

}  // namespace

absl::Status ValidateRolloutGroup(const v1::RolloutGroup& group, int vocab_size, int max_seq_len,
                                  int64_t current_version) {
  if (group.rollouts().empty()) return absl::InvalidArgumentError("rollouts is empty: the group has no rollouts");
  if (group.prompt_tokens().empty()) return absl::InvalidArgumentError("prompt_tokens is empty");
  RLJ_RETURN_IF_ERROR(CheckTokenIds(group.prompt_tokens(), vocab_size, "prompt_tokens"));
  if (group.policy_version() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("policy_version ", group.policy_version(), " is negative"));
  }
  if (group.policy_version() > current_version) {
    return absl::InvalidArgumentError(absl::StrCat("policy_version ", group.policy_version(),
                                                   " is newer than the learner's version ", current_version));
  }
  for (int r = 0; r < group.rollouts_size(); ++r) {
    const v1::Rollout& rollout = group.rollouts(r);
    const std::string where = absl::StrCat("rollout ", r, " (sample_id '", rollout.sample_id(), "'): ");
    if (rollout.completion_tokens_size() != rollout.behaviour_logprobs_size()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "completion_tokens has ", rollout.completion_tokens_size(),
                                                     " ids but behaviour_logprobs has ",
                                                     rollout.behaviour_logprobs_size(), " values"));
    }
    if (absl::Status s = CheckTokenIds(rollout.completion_tokens(), vocab_size, "completion_tokens"); !s.ok()) {
      return Annotate(s, where.substr(0, where.size() - 2));
    }
    const int64_t length = static_cast<int64_t>(group.prompt_tokens_size()) + rollout.completion_tokens_size();
    if (length > max_seq_len) {
      return absl::InvalidArgumentError(absl::StrCat(where, "prompt (", group.prompt_tokens_size(), ") + completion (",
                                                     rollout.completion_tokens_size(), ") = ", length,
                                                     " tokens exceed the model's max_seq_len ", max_seq_len));
    }
    for (int t = 0; t < rollout.behaviour_logprobs_size(); ++t) {
      const float logprob = rollout.behaviour_logprobs(t);
      if (!std::isfinite(logprob)) {
        return absl::InvalidArgumentError(absl::StrCat(where, "behaviour_logprobs[", t, "] is not finite"));
      }
      if (logprob < kMinBehaviourLogprob || logprob > kMaxBehaviourLogprob) {
        return absl::InvalidArgumentError(absl::StrCat(where, "behaviour_logprobs[", t, "] = ", logprob,
                                                       " is not a log-probability of a sampled token (outside [",
                                                       kMinBehaviourLogprob, ", 0])"));
      }
    }
    if (rollout.valid() && !std::isfinite(rollout.reward())) {
      return absl::InvalidArgumentError(absl::StrCat(where, "reward is not finite"));
    }
    if (rollout.valid() && std::abs(rollout.reward()) > kMaxAbsReward) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "reward ", rollout.reward(), " is outside [-", kMaxAbsReward, ", ", kMaxAbsReward, "]"));
    }
  }
  return absl::OkStatus();
}

LearnerService::LearnerService(LearnerServiceOptions options, RolloutBuffer* buffer, WeightPublisher* publisher,
                               PromptDispatcher* dispatcher)
    : options_(options), buffer_(buffer), publisher_(publisher), dispatcher_(dispatcher) {
  // GetPolicy is method 1 of rlj.v1.Learner (as in the generated WithSplitStreamingMethod_GetPolicy): its
  // handler reads the request itself and writes grpc::ByteBuffers, so every stream sends the snapshot's
  // chunks serialized once at publication instead of serializing ~MiB messages per client.
  constexpr int kGetPolicyMethodIndex = 1;
  MarkMethodStreamed(kGetPolicyMethodIndex,
                     new grpc::internal::SplitServerStreamingHandler<v1::GetPolicyRequest, grpc::ByteBuffer>(
                         [this](grpc::ServerContext* context,
                                grpc::ServerSplitStreamer<v1::GetPolicyRequest, grpc::ByteBuffer>* stream) {
                           return StreamPolicy(context, stream);
                         }));
}

grpc::Status LearnerService::PushRollouts(grpc::ServerContext* context, grpc::ServerReader<v1::RolloutBatch>* reader,
                                          v1::PushRolloutsResponse* response) {
  // Give up on a full buffer a little before the call's deadline, so the caller hears RESOURCE_EXHAUSTED
  // rather than its own DEADLINE_EXCEEDED.
  const Clock::time_point rpc_deadline = SteadyDeadline(context->deadline(), kMaxPushWait);
  const Clock::time_point deadline =
      rpc_deadline - std::min<Clock::duration>((rpc_deadline - Clock::now()) / 10, std::chrono::seconds(1));
  int64_t accepted = 0;
  int64_t stale = 0;
  int64_t duplicates = 0;
  int batch_index = 0;
  v1::RolloutBatch batch;
  while (reader->Read(&batch)) {
    const int64_t current_version = publisher_->latest_version();
    for (int g = 0; g < batch.groups_size(); ++g) {
      const absl::Status valid =
          ValidateRolloutGroup(batch.groups(g), options_.vocab_size, options_.max_seq_len, current_version);
      if (!valid.ok()) {
        const std::string message = absl::StrCat("batch ", batch_index, ", ", DescribeGroup(g, batch.groups(g)), ": ",
                                                 valid.message(), " (nothing of this batch was applied)");
        RLJ_EVERY(5, log::Warn("PushRollouts from {}: {}", context->peer(), message));
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
      }
    }
    int64_t batch_tokens = 0;
    int64_t batch_stale = 0;
    int64_t batch_duplicates = 0;
    const bool done = TrainingDone();
    // Exactly-once bookkeeping of leased items: a duplicate is dropped here; an accepted item that will
    // not be buffered (stale) is handed out again.
    std::vector<bool> keep(batch.groups_size(), true);
    for (int g = 0; g < batch.groups_size(); ++g) {
      const v1::RolloutGroup& group = batch.groups(g);
      for (const v1::Rollout& rollout : group.rollouts()) batch_tokens += rollout.completion_tokens_size();
      const bool is_stale = group.policy_version() < current_version - options_.max_staleness;
      if (dispatcher_ != nullptr && !group.lease_id().empty() && !done) {
        const PromptDispatcher::Receipt receipt = dispatcher_->Receive(group.lease_id(), group.item_id(), Clock::now());
        if (receipt != PromptDispatcher::Receipt::kAccepted) {
          keep[g] = false;
          ++batch_duplicates;
          continue;
        }
        if (is_stale) dispatcher_->Return(group.item_id());
      }
      if (is_stale) {
        keep[g] = false;
        ++batch_stale;
      }
    }
    RecordReceivedTokens(batch_tokens);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      groups_received_ += batch.groups_size();
      groups_stale_on_arrival_ += batch_stale;
      groups_duplicate_ += batch_duplicates;
    }
    stale += batch_stale;
    duplicates += batch_duplicates;
    for (int g = 0; g < batch.groups_size(); ++g) {
      v1::RolloutGroup& group = *batch.mutable_groups(g);
      if (!keep[g]) continue;
      if (done || TrainingDone()) break;  // acknowledged, not buffered: no step will take it
      const bool leased = dispatcher_ != nullptr && !group.lease_id().empty();
      const uint64_t item_id = group.item_id();
      // Hands the item out again when this call gives up on buffering it.
      auto give_back = [&] {
        if (leased) dispatcher_->Return(item_id);
      };
      bool pushed = false;
      while (true) {
        if (context->IsCancelled()) {
          give_back();
          return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the push");
        }
        const Clock::time_point slice_end = std::min(deadline, Clock::now() + kWaitSlice);
        if (buffer_->Push(std::move(group), slice_end)) {
          pushed = true;
          break;
        }
        if (TrainingDone()) break;
        if (buffer_->closed()) {
          give_back();
          return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the learner is shutting down");
        }
        if (Clock::now() >= deadline) {
          give_back();
          return grpc::Status(
              grpc::StatusCode::RESOURCE_EXHAUSTED,
              absl::StrCat("the rollout buffer stayed full (", buffer_->capacity(),
                           " groups) until the call's deadline; ", accepted, " groups of this call were accepted"));
        }
      }
      if (pushed) ++accepted;
    }
    ++batch_index;
  }
  response->set_accepted_groups(accepted);
  response->set_rejected_stale_groups(stale);
  response->set_rejected_duplicate_groups(duplicates);
  response->set_learner_version(publisher_->latest_version());
  return grpc::Status::OK;
}

namespace {

// Serializes a (small) PolicyMessage and writes it; false when the client went away.
bool WritePolicyMessage(const v1::PolicyMessage& message,
                        grpc::ServerSplitStreamer<v1::GetPolicyRequest, grpc::ByteBuffer>* stream) {
  grpc::ByteBuffer buffer;
  bool own_buffer = false;
  if (!grpc::SerializationTraits<v1::PolicyMessage>::Serialize(message, &buffer, &own_buffer).ok()) return false;
  return stream->Write(buffer);
}

}  // namespace

grpc::Status LearnerService::StreamPolicy(grpc::ServerContext* context,
                                          grpc::ServerSplitStreamer<v1::GetPolicyRequest, grpc::ByteBuffer>* stream) {
  v1::GetPolicyRequest request_message;
  if (!stream->Read(&request_message)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the call carried no GetPolicyRequest");
  }
  const v1::GetPolicyRequest* request = &request_message;
  std::shared_ptr<const PolicySnapshot> snapshot = publisher_->Latest();
  if (snapshot == nullptr) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no policy has been published yet");
  const int64_t have_version = request->have_version();
  if (snapshot->version() == have_version) {
    milliseconds wait = std::clamp(milliseconds(request->wait_ms()), milliseconds(0), options_.max_policy_wait);
    // Answer "unchanged" a little before the call's own deadline rather than letting it expire.
    const auto rpc_left =
        std::chrono::duration_cast<milliseconds>(context->deadline() - std::chrono::system_clock::now());
    wait = std::min(wait, std::max(milliseconds(0), rpc_left - rpc_left / 10));
    const Clock::time_point give_up = Clock::now() + wait;
    while (snapshot->version() == have_version && !publisher_->closed()) {
      if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled");
      const auto left = std::chrono::duration_cast<milliseconds>(give_up - Clock::now());
      if (left <= milliseconds(0)) break;
      snapshot = publisher_->WaitForNewer(have_version, std::min(left, kWaitSlice));
    }
    if (snapshot->version() == have_version) {
      v1::PolicyMessage message;
      message.mutable_manifest()->set_version(snapshot->version());
      message.mutable_manifest()->set_unchanged(true);
      WritePolicyMessage(message, stream);
      return grpc::Status::OK;
    }
  }
  v1::PolicyMessage message;
  *message.mutable_manifest() = snapshot->manifest();
  if (!WritePolicyMessage(message, stream)) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  for (size_t i = 0; i < snapshot->num_chunks(); ++i) {
    if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled");
    if (!stream->Write(snapshot->SerializedChunk(i))) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
    }
  }
  return grpc::Status::OK;
}

grpc::Status LearnerService::Status(grpc::ServerContext* /*context*/, const v1::StatusRequest* /*request*/,
                                    v1::LearnerStatus* response) {
  *response = CurrentStatus();
  return grpc::Status::OK;
}

grpc::Status LearnerService::LeasePrompts(grpc::ServerContext* /*context*/, const v1::LeasePromptsRequest* request,
                                          v1::LeasePromptsResponse* response) {
  if (dispatcher_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "this learner has no training set (data.train_path) to hand out");
  }
  if (request->count() < 1 || request->count() > 4096) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("count ", request->count(), " is outside 1..4096"));
  }
  if (!TrainingDone()) *response = dispatcher_->Lease(request->actor(), request->count(), Clock::now());
  response->set_done(TrainingDone());
  if (response->done()) response->clear_prompts();
  response->set_learner_version(publisher_->latest_version());
  return grpc::Status::OK;
}

void LearnerService::UpdateProgress(const std::function<void(v1::LearnerStatus*)>& update) {
  std::lock_guard<std::mutex> lock(mutex_);
  update(&progress_);
}

bool LearnerService::TrainingDone() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return progress_.done();
}

v1::LearnerStatus LearnerService::CurrentStatus() const {
  v1::LearnerStatus status;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    status = progress_;
    status.set_groups_received(groups_received_);
    status.set_groups_dropped_stale(groups_stale_on_arrival_ + buffer_->total_dropped_stale());
    status.set_groups_duplicate(groups_duplicate_);
  }
  if (dispatcher_ != nullptr) {
    status.set_prompts_leased(dispatcher_->prompts_leased());
    status.set_leases_expired(dispatcher_->leases_expired());
    status.set_epoch(dispatcher_->epoch());
  }
  if (!options_.version_from_progress) status.set_version(publisher_->latest_version());
  status.set_buffered_groups(buffer_->size());
  status.set_sample_tokens_per_s(SampleTokensPerSecond());
  return status;
}

void LearnerService::RecordReceivedTokens(int64_t tokens) {
  const Clock::time_point now = Clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  if (recent_tokens_.empty() && first_tokens_at_ == Clock::time_point{}) first_tokens_at_ = now;
  recent_tokens_.emplace_back(now, tokens);
  while (!recent_tokens_.empty() && now - recent_tokens_.front().first > kSampleRateWindow) recent_tokens_.pop_front();
}

double LearnerService::SampleTokensPerSecond() const {
  const Clock::time_point now = Clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  if (first_tokens_at_ == Clock::time_point{}) return 0;
  int64_t tokens = 0;
  for (const auto& [at, count] : recent_tokens_) {
    if (now - at <= kSampleRateWindow) tokens += count;
  }
  // Over the window, or over the time since the first push when that is shorter (at least a second).
  const double span = std::max(1.0, std::min(std::chrono::duration<double>(kSampleRateWindow).count(),
                                             std::chrono::duration<double>(now - first_tokens_at_).count()));
  return static_cast<double>(tokens) / span;
}

}  // namespace rlj
