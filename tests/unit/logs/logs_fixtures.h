// logs_fixtures.h: reward log rows and run directories for the logs tests, with values simple enough to
// compute the expected statistics by hand.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/metrics_log.h"
#include "common/reward_log.h"
#include "common/run_dir.h"
#include "test_util.h"

namespace rlj::testing {

inline RewardLogRow MakeRow(int64_t step, std::optional<double> reward, const std::string& completion = "42",
                            double time = 0) {
  static int counter = 0;
  ++counter;
  RewardLogRow row;
  row.time_unix_s = time > 0 ? time : 1.7e9 + counter;
  row.run = "demo";
  row.policy_version = step;
  row.actor = "actor-0";
  row.sample_id = absl::StrCat("actor-0/", counter);
  row.prompt_id = absl::StrCat("p", counter);
  row.group_id = absl::StrCat("g", step);
  row.prompt = absl::StrCat("What is ", counter, "+1?");
  row.completion = completion;
  row.reference = "42";
  row.reward = reward;
  row.components_json = reward ? absl::StrCat("{\"correct\":", *reward, "}") : "{}";
  row.rationale = reward ? absl::StrCat("rationale ", counter) : "";
  row.raw_response = absl::StrCat("{\"score\": ", reward.value_or(-1), "}");
  row.backend = "rule";
  row.model = "numeric";
  row.latency_ms = 10;
  row.tokens_in = 5;
  row.tokens_out = 2;
  row.cost_usd = 0.001;
  if (!reward) {
    row.error_kind = "parse";
    row.error_message = "no score";
  }
  return row;
}

// Writes `rows` to <dir>/reward_log/<replica>.sqlite.
inline void WriteRows(const std::string& run_dir, const std::string& replica, const std::vector<RewardLogRow>& rows) {
  auto writer = RewardLogWriter::Open(RunDir(run_dir).reward_log_path(replica));
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Append(rows).ok());
}

inline void WriteMetrics(const std::string& run_dir, const std::vector<v1::StepMetrics>& steps) {
  auto writer = MetricsLogWriter::Open(RunDir(run_dir).metrics_path());
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (const auto& step : steps) ASSERT_TRUE((*writer)->Append(step).ok());
}

}  // namespace rlj::testing
