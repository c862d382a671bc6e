// dataset.cc: JSONL prompt datasets with line-numbered errors.
#include "common/dataset.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <istream>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status.h"
#include "common/utf8.h"

namespace rlj {

namespace {

constexpr size_t kMaxParseMessageBytes = 240;

// Reads the next line (without its '\n') into `line`, keeping at most `max_bytes + 1` of its bytes so an
// over-long line costs bounded memory; `line_bytes` gets the line's full length. False at the end of input.
bool ReadBoundedLine(std::istream& in, size_t max_bytes, std::string* line, size_t* line_bytes) {
  line->clear();
  *line_bytes = 0;
  bool any = false;
  char buffer[64 * 1024];
  while (true) {
    // getline stops at '\n' or when the buffer is full (failbit with no newline consumed).
    in.getline(buffer, sizeof(buffer));
    const size_t got = static_cast<size_t>(in.gcount());
    if (got == 0 && in.eof()) return any;
    any = true;
    const bool newline = !in.fail() && !in.eof();
    const size_t chunk = newline ? got - 1 : got;  // gcount counts the consumed '\n'
    if (line->size() <= max_bytes) line->append(buffer, std::min(chunk, max_bytes + 1 - line->size()));
    *line_bytes += chunk;
    if (newline) return true;
    if (in.eof()) {
      in.clear(std::ios::eofbit);
      return true;
    }
    in.clear();  // the buffer filled before the end of the line: keep reading it
  }
}

// Checks one line; on success fills `row`.
std::string ParseLine(const std::string& line, PromptRow* row) {
  if (!IsValidUtf8(line)) return "invalid UTF-8";
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    // The parser quotes the token it stopped at, which can be most of a long line: keep the message short.
    std::string what = e.what();
    if (what.size() > kMaxParseMessageBytes) what = ToValidUtf8(what.substr(0, kMaxParseMessageBytes)) + "...";
    return absl::StrCat("invalid JSON: ", what);
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
  RLJ_RETURN_IF_ERROR(CheckReadableFile(path, "dataset"));
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("dataset ", path, ": cannot open (", std::strerror(errno), ")"));
  std::vector<PromptRow> rows;
  std::vector<std::string> errors;
  size_t invalid_lines = 0;
  std::unordered_set<std::string> ids;
  std::string line;
  size_t line_bytes = 0;
  size_t line_number = 0;
  while (ReadBoundedLine(in, limits.max_line_bytes, &line, &line_bytes)) {
    ++line_number;
    std::string error;
    PromptRow row;
    if (line_bytes > limits.max_line_bytes) {
      error = absl::StrCat("line is ", line_bytes, " bytes; the limit is ", limits.max_line_bytes);
    } else {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      error = ParseLine(line, &row);
    }
    if (error.empty() && !ids.insert(row.id).second) error = absl::StrCat("duplicate id \"", row.id, "\"");
    if (!error.empty()) {
      ++invalid_lines;
      if (errors.size() < limits.max_errors_reported)
        errors.push_back(absl::StrCat(path, ":", line_number, ": ", error));
      continue;
    }
    rows.push_back(std::move(row));
  }
  if (in.bad()) return absl::UnavailableError(absl::StrCat("dataset ", path, ": read error"));
  if (!errors.empty()) {
    const std::string more = invalid_lines > errors.size() ? absl::StrCat("\n  (", invalid_lines - errors.size(),
                                                                          " more invalid lines not shown)")
                                                           : "";
    return absl::InvalidArgumentError(absl::StrCat("dataset ", path, " has ", invalid_lines, " invalid line",
                                                   invalid_lines == 1 ? "" : "s", " (nothing was loaded):\n  ",
                                                   absl::StrJoin(errors, "\n  "), more));
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
