// export.cc: JSONL and CSV writers over reward log rows.
#include "logs/export.h"

#include <string>

#include "absl/strings/str_format.h"
#include "logs/run_logs.h"
#include "logs/step_series.h"

namespace rlj::logs {
namespace {

nlohmann::json Optional(const std::optional<double>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json();
}

std::string CsvField(const std::string& value) {
  if (value.find_first_of(",\"\r\n") == std::string::npos) return value;
  std::string quoted = "\"";
  for (char c : value) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

std::string CsvNumber(double value) { return absl::StrFormat("%.17g", value); }

}  // namespace

nlohmann::json RowToJson(const RewardLogRow& row) {
  nlohmann::json components = nlohmann::json::object();
  for (const auto& [name, value] : ParseComponents(row.components_json)) components[name] = value;
  return {{"row", RowKey(row)},
          {"replica", row.replica},
          {"id", row.id},
          {"time_unix_s", row.time_unix_s},
          {"run", row.run},
          {"step", row.policy_version},
          {"policy_version", row.policy_version},
          {"kind", row.kind},
          {"actor", row.actor},
          {"sample_id", row.sample_id},
          {"prompt_id", row.prompt_id},
          {"group_id", row.group_id},
          {"index_in_group", row.index_in_group},
          {"prompt", row.prompt},
          {"completion", row.completion},
          {"reference", row.reference},
          {"reward", Optional(row.reward)},
          {"components", components},
          {"rationale", row.rationale},
          {"raw_response", row.raw_response},
          {"backend", row.backend},
          {"model", row.model},
          {"latency_ms", row.latency_ms},
          {"tokens_in", row.tokens_in},
          {"tokens_out", row.tokens_out},
          {"cost_usd", row.cost_usd},
          {"cache_hit", row.cache_hit},
          {"error_kind", row.error_kind},
          {"error_message", row.error_message},
          {"expected_reward", Optional(row.expected_reward)},
          {"canary_pass", row.canary_pass ? nlohmann::json(*row.canary_pass) : nlohmann::json()},
          {"completion_chars", row.completion_chars}};
}

void WriteJsonl(const std::vector<RewardLogRow>& rows, std::ostream& out) {
  for (const RewardLogRow& row : rows) {
    out << RowToJson(row).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  }
}

void WriteCsv(const std::vector<RewardLogRow>& rows, std::ostream& out) {
  out << "row,replica,id,time_unix_s,run,step,kind,actor,sample_id,prompt_id,group_id,index_in_group,prompt,"
         "completion,reference,reward,components_json,rationale,raw_response,backend,model,latency_ms,tokens_in,"
         "tokens_out,cost_usd,cache_hit,error_kind,error_message,expected_reward,canary_pass,completion_chars\r\n";
  for (const RewardLogRow& row : rows) {
    const std::string fields[] = {CsvField(RowKey(row)),
                                  CsvField(row.replica),
                                  std::to_string(row.id),
                                  CsvNumber(row.time_unix_s),
                                  CsvField(row.run),
                                  std::to_string(row.policy_version),
                                  CsvField(row.kind),
                                  CsvField(row.actor),
                                  CsvField(row.sample_id),
                                  CsvField(row.prompt_id),
                                  CsvField(row.group_id),
                                  std::to_string(row.index_in_group),
                                  CsvField(row.prompt),
                                  CsvField(row.completion),
                                  CsvField(row.reference),
                                  row.reward ? CsvNumber(*row.reward) : "",
                                  CsvField(row.components_json),
                                  CsvField(row.rationale),
                                  CsvField(row.raw_response),
                                  CsvField(row.backend),
                                  CsvField(row.model),
                                  CsvNumber(row.latency_ms),
                                  std::to_string(row.tokens_in),
                                  std::to_string(row.tokens_out),
                                  CsvNumber(row.cost_usd),
                                  row.cache_hit ? "1" : "0",
                                  CsvField(row.error_kind),
                                  CsvField(row.error_message),
                                  row.expected_reward ? CsvNumber(*row.expected_reward) : "",
                                  row.canary_pass ? (*row.canary_pass ? "1" : "0") : "",
                                  std::to_string(row.completion_chars)};
    bool first = true;
    for (const std::string& field : fields) {
      if (!first) out << ',';
      out << field;
      first = false;
    }
    out << "\r\n";
  }
}

}  // namespace rlj::logs
