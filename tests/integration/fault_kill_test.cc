// fault_kill_test.cc: kill -9, one after another, of an actor, a judge replica, the teacher and the learner of
// a running `rlj run` (local teacher, 2 judge replicas, 2 actors): each time the supervisor brings the process
// back and the run goes on; at the end the run exits 0 at version == learner.steps, the learner's version never
// went backwards (polled throughout, and no actor ever saw the learner behind it), the training ledger names
// every trained item once, and every reward-log row committed before a kill is still there, unchanged.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/grpc_util.h"
#include "common/reward_log.h"
#include "common/run_dir.h"
#include "rlj/v1/learner.grpc.pb.h"
#include "rlj_process.h"
#include "test_util.h"

namespace rlj {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using testing::ChildPid;
using testing::RunRlj;
using testing::StartRlj;

constexpr int kSteps = 600;
constexpr int kCheckpointEvery = 10;

// The tiny task, a tiny teacher trained on its grading rows and the run's config (teacher-judged, 2 judge
// replicas, 2 actors, frequent checkpoints). The learning rate is small: at 1e-3 the tiny student collapses
// within a few hundred steps to answers the teacher grades alike, and batches without a reward difference are
// not steps, so the 600 would never come; this test is about kills, not learning.
std::string WriteFaultRun(const std::string& dir) {
  testing::WriteTinyTask(dir);
  const std::string run_config = absl::StrCat(testing::TinyRunConfigHead(dir, "faults"), R"(eval:
  before_and_after: false
)",
                                              testing::TinyTeacherJudgeSections(dir, 2), R"(learner:
  steps: )",
                                              kSteps, R"(
  groups_per_step: 2
  lr: 1.0e-4
  max_staleness: 4
  checkpoint_every: )",
                                              kCheckpointEvery, R"(
  keep_checkpoints: 3
actor:
  count: 2
  prompts_per_batch: 2
)");
  EXPECT_TRUE(WriteFileAtomically(dir + "/faults.yaml", run_config).ok());
  return dir + "/faults.yaml";
}

int64_t NewestCheckpointStep(const RunDir& run_dir) {
  int64_t newest = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(run_dir.checkpoints_dir(), ec)) {
    const std::string name = entry.path().filename().string();
    int64_t step = 0;
    if (name.rfind("step-", 0) == 0 && absl::SimpleAtoi(name.substr(5), &step)) newest = std::max(newest, step);
  }
  return newest;
}

// Polls Learner.Status on the learner's (fixed) address in the background and records every version it
// answers with; `went_back` says whether one was ever lower than an earlier one.
class VersionWatcher {
 public:
  explicit VersionWatcher(const std::string& address)
      : stub_(v1::Learner::NewStub(MakeChannel(address))), thread_([this] { Loop(); }) {}
  ~VersionWatcher() {
    stop_.store(true);
    thread_.join();
  }

  int64_t latest() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return latest_;
  }
  int64_t polls() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return polls_;
  }
  std::string went_back() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return went_back_;
  }

 private:
  void Loop() {
    while (!stop_.load()) {
      grpc::ClientContext context;
      SetDeadline(&context, milliseconds(2000));
      v1::LearnerStatus status;
      if (stub_->Status(&context, v1::StatusRequest(), &status).ok()) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++polls_;
        if (status.version() < latest_ && went_back_.empty()) {
          went_back_ = absl::StrCat("v", latest_, " then v", status.version());
        }
        latest_ = std::max(latest_, status.version());
      }
      std::this_thread::sleep_for(milliseconds(20));  // the polling interval, not a synchronisation
    }
  }

  std::unique_ptr<v1::Learner::Stub> stub_;
  mutable std::mutex mutex_;
  int64_t latest_ = -1;
  int64_t polls_ = 0;
  std::string went_back_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Every column of a reward-log row, for "identical content".
std::string RowContent(const RewardLogRow& r) {
  return absl::StrFormat(
      "%.17g|%s|%d|%s|%s|%s|%s|%d|%s|%s|%s|%s|%s|%s|%s|%s|%s|%.17g|%d|%d|%.17g|%d|%s|%s|%s|%s|%s", r.time_unix_s, r.run,
      r.policy_version, r.actor, r.sample_id, r.prompt_id, r.group_id, r.index_in_group, r.prompt, r.completion,
      r.reference, r.reward ? absl::StrFormat("%.17g", *r.reward) : "-", r.components_json, r.rationale, r.raw_response,
      r.backend, r.model, r.latency_ms, r.tokens_in, r.tokens_out, r.cost_usd, r.cache_hit ? 1 : 0, r.error_kind,
      r.error_message, r.kind, r.expected_reward ? absl::StrFormat("%.17g", *r.expected_reward) : "-",
      r.canary_pass ? (*r.canary_pass ? "pass" : "fail") : "-");
}

// (replica, id) → content of every row committed so far.
std::map<std::pair<std::string, int64_t>, std::string> CommittedRows(const RunDir& run_dir) {
  std::map<std::pair<std::string, int64_t>, std::string> rows;
  auto read = ReadRewardLog(run_dir.reward_log_dir());
  EXPECT_TRUE(read.ok()) << read.status();
  if (read.ok()) {
    for (const RewardLogRow& row : *read) rows[{row.replica, row.id}] = RowContent(row);
  }
  return rows;
}

// Rows written after `since_unix_s` that satisfy `match`.
int64_t RowsSince(const RunDir& run_dir, double since_unix_s, const std::function<bool(const RewardLogRow&)>& match) {
  auto read = ReadRewardLog(run_dir.reward_log_dir());
  if (!read.ok()) return 0;
  return std::count_if(read->begin(), read->end(),
                       [&](const RewardLogRow& row) { return row.time_unix_s > since_unix_s && match(row); });
}

double NowUnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class FaultKill : public ::testing::Test {
 protected:
  // Waits (up to 4 minutes; polling files and the watcher) until `done()`; fails if the run ends first.
  void AwaitCondition(const std::string& what, const std::function<bool()>& done) {
    const auto give_up = Clock::now() + std::chrono::minutes(4);
    while (!done()) {
      ASSERT_FALSE(run_->Poll().has_value()) << "the run ended while waiting for " << what << ":\n"
                                             << ReadFile(dir_.file("run.out")).value_or("");
      ASSERT_LT(Clock::now(), give_up) << "timed out waiting for " << what << " (learner at v" << watcher_->latest()
                                       << ")\n"
                                       << ReadFile(run_dir_->log_path("run")).value_or("");
      std::this_thread::sleep_for(milliseconds(50));  // polling what other processes write
    }
  }

  // kill -9 of `child`; snapshots the reward log just before, and calls `on_stopped` (when given) while the
  // child is stopped, just before the kill. Returns the learner version polled then and the kill's time.
  std::pair<int64_t, double> Kill(const std::string& child, const std::function<void()>& on_stopped = nullptr) {
    committed_before_kills_.push_back(CommittedRows(*run_dir_));
    const pid_t pid = ChildPid(*run_dir_, child);
    EXPECT_GT(pid, 0) << child;
    // Stopped first, so that what the test reads next (the version, the newest checkpoint) is the state the
    // killed process left: a bare SIGKILL can return before the target is gone.
    EXPECT_TRUE(testing::StopAndAwaitStopped(pid)) << child;
    const int64_t version = watcher_->latest();
    const double at = NowUnixSeconds();
    if (on_stopped) on_stopped();
    EXPECT_LT(version, kSteps) << "the run got to the end before " << child << " could be killed";
    EXPECT_EQ(::kill(pid, SIGKILL), 0) << child;
    killed_pids_[child] = pid;
    kills_ += absl::StrFormat(" %s at v%d (%.0f s),", child, version,
                              std::chrono::duration<double>(Clock::now() - start_).count());
    return {version, at};
  }

  // The supervisor started `child` again (a new pid in run.log).
  bool Restarted(const std::string& child) {
    const pid_t pid = ChildPid(*run_dir_, child);
    return pid != 0 && pid != killed_pids_[child];
  }

  testing::ScratchDir dir_;
  std::optional<RunDir> run_dir_;
  std::unique_ptr<Subprocess> run_;
  std::unique_ptr<VersionWatcher> watcher_;
  std::vector<std::map<std::pair<std::string, int64_t>, std::string>> committed_before_kills_;
  std::map<std::string, pid_t> killed_pids_;
  const Clock::time_point start_ = Clock::now();
  std::string kills_;  // for the closing line: what was killed when
};

TEST_F(FaultKill, ActorJudgeTeacherAndLearnerKilledInTurnTheRunRecoversAndKeepsItsInvariants) {
  const auto test_start = Clock::now();
  const std::string config = WriteFaultRun(dir_.path());
  const std::string teacher_failure = testing::MakeTinyTeacher(dir_.path());
  ASSERT_EQ(teacher_failure, "");
  const double setup_s = std::chrono::duration<double>(Clock::now() - test_start).count();

  run_dir_.emplace(dir_.path() + "/runs/faults");
  run_ = StartRlj({"run", config}, dir_.file("run.out"));
  ASSERT_TRUE(run_);
  std::string learner_address;
  ASSERT_NO_FATAL_FAILURE(AwaitCondition("the learner's address", [&] {
    auto address = run_dir_->ReadEndpoint("learner");
    if (address.ok()) learner_address = *address;
    return address.ok();
  }));
  watcher_ = std::make_unique<VersionWatcher>(learner_address);
  ASSERT_NO_FATAL_FAILURE(AwaitCondition("v3", [&] { return watcher_->latest() >= 3; }));

  // 1. An actor: restarted, and its new incarnation's samples are judged and the learner moves on.
  {
    const auto [version, at] = Kill("actor-0");
    ASSERT_NO_FATAL_FAILURE(AwaitCondition("actor-0 back and v+2", [&, version = version, at = at] {
      return Restarted("actor-0") && watcher_->latest() >= version + 2 &&
             RowsSince(*run_dir_, at, [](const RewardLogRow& row) { return row.actor == "actor-0"; }) > 0;
    }));
  }
  // 2. A judge replica: restarted on its address; actor-1 (its client) is judged by it again.
  {
    const auto [version, at] = Kill("judge-1");
    ASSERT_NO_FATAL_FAILURE(AwaitCondition("judge-1 back and v+2", [&, version = version, at = at] {
      return Restarted("judge-1") && watcher_->latest() >= version + 2 &&
             RowsSince(*run_dir_, at, [](const RewardLogRow& row) { return row.replica == "judge-1"; }) > 0;
    }));
  }
  // 3. The teacher: restarted on its address; verdicts with a reward come from it again.
  {
    const auto [version, at] = Kill("teacher");
    ASSERT_NO_FATAL_FAILURE(AwaitCondition("the teacher back and v+2", [&, version = version, at = at] {
      return Restarted("teacher") && watcher_->latest() >= version + 2 &&
             RowsSince(*run_dir_, at, [](const RewardLogRow& row) { return row.reward.has_value(); }) > 0;
    }));
  }
  // 4. The learner, between two checkpoints when the timing allows: it resumes from its newest checkpoint,
  //    takes the steps recorded after it again and serves the version it had already published.
  int64_t learner_killed_at = 0;
  int64_t checkpoint_at_kill = 0;
  {
    ASSERT_NO_FATAL_FAILURE(AwaitCondition("a version half-way between two checkpoints", [&] {
      const int64_t version = watcher_->latest();
      const int64_t since_checkpoint = version % kCheckpointEvery;
      return since_checkpoint >= 3 && since_checkpoint <= 7 && version > NewestCheckpointStep(*run_dir_);
    }));
    const auto [version, at] = Kill("learner", [&] { checkpoint_at_kill = NewestCheckpointStep(*run_dir_); });
    (void)at;
    learner_killed_at = version;
    ASSERT_NO_FATAL_FAILURE(AwaitCondition("the learner back and v+2", [&, version = version] {
      return Restarted("learner") && watcher_->latest() >= version + 2;
    }));
  }

  const std::optional<ExitInfo> exit = run_->Wait(std::chrono::minutes(8));
  ASSERT_TRUE(exit.has_value()) << "the run did not finish after the kills";
  const std::string output = ReadFile(dir_.file("run.out")).value_or("");
  ASSERT_TRUE(exit->ok()) << exit->Describe() << "\n" << output;
  const int64_t polls = watcher_->polls();
  const std::string went_back = watcher_->went_back();
  watcher_.reset();

  // The run completed at the configured number of steps and versions.
  RLJ_ASSERT_OK_AND_ASSIGN(std::string summary_text, ReadFile(run_dir_->summary_path()));
  const nlohmann::json summary = nlohmann::json::parse(summary_text);
  EXPECT_EQ(summary["steps"], kSteps);
  EXPECT_EQ(summary["policy_version"], kSteps);
  const std::string run_log = ReadFile(run_dir_->log_path("run")).value_or("");
  for (const char* child : {"actor-0", "judge-1", "teacher", "learner"}) {
    EXPECT_NE(run_log.find(absl::StrCat(child, " ended (killed by signal 9")), std::string::npos) << child << "\n"
                                                                                                  << run_log;
  }

  // Versions never went backwards: not in what the learner answered, not in what any actor saw.
  EXPECT_GT(polls, 50);
  EXPECT_EQ(went_back, "") << "Learner.Status went backwards";
  for (const std::string actor : {"actor-0", "actor-1"}) {
    const std::string log = ReadFile(run_dir_->log_path(actor)).value_or("");
    EXPECT_EQ(log.find("(learner restarted); refetching"), std::string::npos) << actor << " saw the learner go back";
  }
  const std::string learner_log = ReadFile(run_dir_->log_path("learner")).value_or("");
  EXPECT_NE(learner_log.find(absl::StrCat("resumed from ", run_dir_->checkpoints_dir(), "/step-", checkpoint_at_kill)),
            std::string::npos)
      << learner_log;
  if (checkpoint_at_kill < learner_killed_at) {
    EXPECT_NE(learner_log.find(absl::StrCat("replayed steps ", checkpoint_at_kill + 1, "..")), std::string::npos)
        << "killed at v" << learner_killed_at << " past checkpoint " << checkpoint_at_kill << ":\n"
        << learner_log;
  }

  // The training ledger: steps 1..kSteps once each, in order, version = step; no item (and no lease's group)
  // trained twice.
  RLJ_ASSERT_OK_AND_ASSIGN(std::string ledger, ReadFile(run_dir_->root() + "/trained_groups.jsonl"));
  std::istringstream lines(ledger);
  std::string line;
  int64_t expected_step = 1;
  std::set<uint64_t> items;
  std::set<std::pair<std::string, std::string>> groups;
  int64_t group_count = 0;
  while (std::getline(lines, line)) {
    const nlohmann::json json = nlohmann::json::parse(line);
    EXPECT_EQ(json["step"].get<int64_t>(), expected_step);
    EXPECT_EQ(json["version"].get<int64_t>(), expected_step);
    EXPECT_EQ(json["groups"].size(), 2u);
    for (const auto& group : json["groups"]) {
      ++group_count;
      EXPECT_FALSE(group["lease_id"].get<std::string>().empty());
      EXPECT_TRUE(items.insert(group["item_id"].get<uint64_t>()).second) << "item " << group["item_id"] << " twice";
      EXPECT_TRUE(groups.emplace(group["lease_id"].get<std::string>(), group["group_id"].get<std::string>()).second)
          << "group " << group["group_id"] << " of lease " << group["lease_id"] << " twice";
    }
    ++expected_step;
  }
  EXPECT_EQ(expected_step, kSteps + 1);
  EXPECT_EQ(group_count, 2 * kSteps);

  // Every reward-log row committed before each kill is there, unchanged.
  const auto final_rows = CommittedRows(*run_dir_);
  ASSERT_EQ(committed_before_kills_.size(), 4u);
  for (size_t k = 0; k < committed_before_kills_.size(); ++k) {
    EXPECT_FALSE(committed_before_kills_[k].empty()) << "kill " << k;
    for (const auto& [key, content] : committed_before_kills_[k]) {
      auto it = final_rows.find(key);
      ASSERT_NE(it, final_rows.end()) << key.first << " row " << key.second << " (committed before kill " << k
                                      << ") is gone";
      EXPECT_EQ(it->second, content) << key.first << " row " << key.second << " changed";
    }
  }
  std::fprintf(stderr,
               "fault_kill_test: setup %.0f s, whole test %.0f s, killed:%s learner past checkpoint %lld, %lld polls\n",
               setup_s, std::chrono::duration<double>(Clock::now() - test_start).count(), kills_.c_str(),
               static_cast<long long>(checkpoint_at_kill), static_cast<long long>(polls));
}

}  // namespace
}  // namespace rlj
