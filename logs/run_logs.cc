// run_logs.cc: loading a run's reward log and metrics, and picking rows by id, pattern or reward.
#include "logs/run_logs.h"

#include <re2/re2.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/metrics_log.h"
#include "common/run_dir.h"
#include "common/status.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace rlj::logs {

absl::StatusOr<std::string> RewardLogLocation(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such run directory or reward log"));
  }
  if (!std::filesystem::is_directory(path, error)) return path;  // one file
  const std::string inside = RunDir(path).reward_log_dir();
  if (std::filesystem::is_directory(inside, error)) return inside;
  for (const auto& entry : std::filesystem::directory_iterator(path, error)) {
    if (entry.path().extension() == ".sqlite") return path;  // a directory of replica files
  }
  return absl::NotFoundError(
      absl::StrCat(path, ": no reward log here (looked for ", inside, "/*.sqlite and ", path, "/*.sqlite)"));
}

absl::StatusOr<std::vector<v1::JudgeBackendStatus>> ReadJudgeBackends(const std::string& path) {
  RLJ_ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  const nlohmann::json file = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!file.is_object() || !file.contains("judges") || !file["judges"].is_array()) {
    return absl::DataLossError(absl::StrCat(path, ": not a judge backends file (no \"judges\" list)"));
  }
  std::vector<v1::JudgeBackendStatus> backends;
  for (const nlohmann::json& judge : file["judges"]) {
    if (!judge.is_object() || !judge.contains("backends") || !judge["backends"].is_array()) continue;
    for (const nlohmann::json& entry : judge["backends"]) {
      v1::JudgeBackendStatus backend;
      google::protobuf::util::JsonParseOptions options;
      options.ignore_unknown_fields = true;
      if (const auto parsed = google::protobuf::util::JsonStringToMessage(entry.dump(), &backend, options);
          !parsed.ok()) {
        return absl::DataLossError(absl::StrCat(path, ": a backend entry: ", std::string(parsed.message())));
      }
      backends.push_back(std::move(backend));
    }
  }
  return backends;
}

absl::StatusOr<RunLogs> LoadRunLogs(const std::string& path, const RewardLogReadOptions& options) {
  RunLogs logs;
  logs.run_dir = path;
  RLJ_ASSIGN_OR_RETURN(logs.reward_log, RewardLogLocation(path));
  RLJ_ASSIGN_OR_RETURN(logs.rows, ReadRewardLog(logs.reward_log, options));
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    const std::string metrics = RunDir(path).metrics_path();
    if (std::filesystem::exists(metrics, error)) {
      RLJ_ASSIGN_OR_RETURN(logs.steps, ReadMetricsLog(metrics));
    }
    RLJ_ASSIGN_OR_RETURN(logs.eval_curve, ReadEvalCurve(RunDir(path).eval_curve_path()));
    const std::string backends = RunDir(path).judge_backends_path();
    if (std::filesystem::exists(backends, error)) {
      RLJ_ASSIGN_OR_RETURN(logs.backends, ReadJudgeBackends(backends));
    }
  }
  return logs;
}

std::string RowKey(const RewardLogRow& row) { return absl::StrCat(row.replica, ":", row.id); }

absl::StatusOr<const RewardLogRow*> FindRow(const std::vector<RewardLogRow>& rows, const std::string& key) {
  const size_t colon = key.rfind(':');
  const std::string replica = colon == std::string::npos ? "" : key.substr(0, colon);
  const std::string number = colon == std::string::npos ? key : key.substr(colon + 1);
  int64_t id = 0;
  if (!absl::SimpleAtoi(number, &id) || id <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", key, "' is not a row id (REPLICA:ID or ID, e.g. judge-0:17)"));
  }
  std::vector<const RewardLogRow*> found;
  for (const RewardLogRow& row : rows) {
    if (row.id == id && (replica.empty() || row.replica == replica)) found.push_back(&row);
  }
  if (found.empty()) return absl::NotFoundError(absl::StrCat("no row ", key, " in the reward log"));
  if (found.size() > 1) {
    std::vector<std::string> keys;
    for (const RewardLogRow* row : found) keys.push_back(RowKey(*row));
    return absl::InvalidArgumentError(
        absl::StrCat("row id ", id, " is in several replicas; name one: ", absl::StrJoin(keys, ", ")));
  }
  return found.front();
}

absl::StatusOr<std::vector<const RewardLogRow*>> GrepRows(const std::vector<RewardLogRow>& rows,
                                                          const std::string& pattern) {
  RE2::Options options;
  options.set_log_errors(false);
  const RE2 re(pattern, options);
  if (!re.ok()) return absl::InvalidArgumentError(absl::StrCat("bad pattern '", pattern, "': ", re.error()));
  std::vector<const RewardLogRow*> matches;
  for (const RewardLogRow& row : rows) {
    for (const std::string* field :
         {&row.prompt, &row.completion, &row.reference, &row.rationale, &row.raw_response, &row.error_message}) {
      if (RE2::PartialMatch(*field, re)) {
        matches.push_back(&row);
        break;
      }
    }
  }
  return matches;
}

std::vector<const RewardLogRow*> RankByReward(const std::vector<RewardLogRow>& rows, size_t n, bool highest) {
  std::vector<const RewardLogRow*> scored;
  for (const RewardLogRow& row : rows) {
    if (row.reward.has_value() && row.kind == row_kind::kTrain) scored.push_back(&row);
  }
  std::stable_sort(scored.begin(), scored.end(), [highest](const RewardLogRow* a, const RewardLogRow* b) {
    return highest ? *a->reward > *b->reward : *a->reward < *b->reward;
  });
  if (scored.size() > n) scored.resize(n);
  return scored;
}

}  // namespace rlj::logs
