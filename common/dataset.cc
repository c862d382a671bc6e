// dataset.cc: JSONL prompt datasets with line-numbered errors.
#include "common/dataset.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/utf8.h"

namespace rlj {

namespace {

// Checks one line; on success fills `row`.
std::string ParseLine(const std::string& line, PromptRow* row) {
  if (!IsValidUtf8(line)) return "invalid UTF-8";
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    return absl::StrCat("invalid JSON: ", e.what());
  }
  if (!json.is_object()) return "expected a JSON object";
  const auto id = json.find("id");
  if (id == json.end()) return "missing field \"id\"";
  if (id->is_string()) {
    row->id = id->get<std::string>();
  } else if (id->is_number_integer()) {
    row->id = std::to_string(id->get<int64_t>());
  } else {
    return "field \"id\" must be a string or an integer";
  }
  if (row->id.empty()) return "field \"id\" is empty";
  const auto prompt = json.find("prompt");
  if (prompt == json.end()) return "missing field \"prompt\"";
  if (!prompt->is_string()) return "field \"prompt\" must be a string";
  row->prompt = prompt->get<std::string>();
  if (row->prompt.empty()) return "field \"prompt\" is empty";
  const auto reference = json.find("reference");
  if (reference != json.end() && !reference->is_null()) {
    if (!reference->is_string()) return "field \"reference\" must be a string";
    row->reference = reference->get<std::string>();
  }
  return "";
}

}  // namespace

absl::StatusOr<std::vector<PromptRow>> LoadPromptDataset(const std::string& path, const DatasetLimits& limits) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("dataset ", path, ": cannot open (", std::strerror(errno), ")"));
  std::vector<PromptRow> rows;
  std::vector<std::string> errors;
  std::unordered_set<std::string> ids;
  std::string line;
  size_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::string error;
    PromptRow row;
    if (line.size() > limits.max_line_bytes) {
      error = absl::StrCat("line is ", line.size(), " bytes; the limit is ", limits.max_line_bytes);
    } else {
      error = ParseLine(line, &row);
    }
    if (error.empty() && !ids.insert(row.id).second) error = absl::StrCat("duplicate id \"", row.id, "\"");
    if (!error.empty()) {
      if (errors.size() < limits.max_errors_reported) errors.push_back(absl::StrCat(path, ":", line_number, ": ", error));
      continue;
    }
    rows.push_back(std::move(row));
  }
  if (in.bad()) return absl::UnavailableError(absl::StrCat("dataset ", path, ": read error"));
  if (!errors.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("dataset ", path, " has invalid lines:\n  ", absl::StrJoin(errors, "\n  ")));
  }
  if (rows.empty()) return absl::InvalidArgumentError(absl::StrCat("dataset ", path, ": no rows"));
  return rows;
}

absl::Status WritePromptDataset(const std::string& path, const std::vector<PromptRow>& rows) {
  std::string text;
  for (const PromptRow& row : rows) {
    nlohmann::json json = {{"id", row.id}, {"prompt", row.prompt}, {"reference", row.reference}};
    text += json.dump();
    text += '\n';
  }
  return WriteFileAtomically(path, text);
}

}  // namespace rlj
