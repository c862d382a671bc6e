// reward_log.h: every verdict, as a row of an SQLite file (WAL journal, synchronous=FULL) in the run
// directory; one file per judge replica, read together by `rlj logs`. Committed rows survive a kill of the
// writing process (and a power loss). The learner's step of a row is its policy_version: version v is the
// policy the learner published after step v, so a row's `step` column (a generated alias) equals it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rlj/v1/judge.pb.h"

namespace rlj {

// One row: the sample, its verdict, and what the judge saw of the teacher.
// What a row is: a sample an actor sent ("train"), a canary the judge mixed in (never trained on), or the
// second scoring of a train sample for self-consistency (same sample_id, cache bypassed).
namespace row_kind {
inline constexpr char kTrain[] = "train";
inline constexpr char kCanary[] = "canary";
inline constexpr char kConsistency[] = "consistency";
}  // namespace row_kind

struct RewardLogRow {
  int64_t id = 0;       // assigned by the log; unique within one replica's file
  std::string replica;  // the file's stem (judge-0); filled by the reader
  double time_unix_s = 0;
  std::string run;
  int64_t policy_version = 0;
  std::string actor;
  std::string sample_id;
  std::string prompt_id;
  std::string group_id;
  int32_t index_in_group = 0;
  std::string prompt;
  std::string completion;
  std::string reference;
  std::optional<double> reward;  // empty when the verdict failed
  std::string components_json;   // {"name": value, …}
  std::string rationale;
  std::string raw_response;
  std::string backend;
  std::string model;
  double latency_ms = 0;
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  double cost_usd = 0;
  bool cache_hit = false;
  std::string error_kind;  // empty when the verdict succeeded
  std::string error_message;
  std::string kind = row_kind::kTrain;    // row_kind::*
  std::optional<double> expected_reward;  // canaries: the known answer
  std::optional<bool> canary_pass;        // canaries: |reward - expected| within the tolerance
  int64_t completion_chars = 0;           // filled by the reader (Unicode characters of the completion)
};

// Builds a row from a request sample and the judge's verdict.
RewardLogRow MakeRewardLogRow(const v1::Sample& sample, const v1::Verdict& verdict, const std::string& raw_response);

class RewardLogWriter {
 public:
  // Creates the file (and its directory) and schema when missing; appends otherwise. `busy_timeout`: how long
  // an Append waits for another connection's write lock before failing.
  static absl::StatusOr<std::unique_ptr<RewardLogWriter>> Open(
      const std::string& path, std::chrono::milliseconds busy_timeout = std::chrono::seconds(5));
  ~RewardLogWriter();

  // Appends rows in one transaction; thread-safe.
  absl::Status Append(const std::vector<RewardLogRow>& rows);

 private:
  struct State;
  explicit RewardLogWriter(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

struct RewardLogReadOptions {
  // false: prompt, completion, reference, rationale, raw_response and error_message are left empty (the
  // summaries need none of them; completion_chars is filled either way).
  bool with_text = true;
  // Only rows whose id is larger than this, per replica (`tail -f` reads what is new).
  std::map<std::string, int64_t> after_id;
};

// Reads every row of one file, or of every *.sqlite file in a directory, ordered by time.
absl::StatusOr<std::vector<RewardLogRow>> ReadRewardLog(const std::string& file_or_dir,
                                                        const RewardLogReadOptions& options = {});

// The *.sqlite files ReadRewardLog reads for `file_or_dir`, sorted.
absl::StatusOr<std::vector<std::string>> RewardLogFiles(const std::string& file_or_dir);

}  // namespace rlj
