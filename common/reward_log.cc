// reward_log.cc: the reward log on SQLite (WAL journal, one `verdicts` table, schema version in
// PRAGMA user_version; columns added later are added in place, so older readers keep working): writer with
// one transaction per Append, and a reader that merges replica files.
#include "common/reward_log.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace rlj {
namespace {

// Bump when the table changes; a reader refuses files written by a newer schema.
constexpr int kSchemaVersion = 1;

constexpr char kCreateSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS verdicts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time_unix_s REAL NOT NULL,
  run TEXT NOT NULL,
  policy_version INTEGER NOT NULL,
  actor TEXT NOT NULL,
  sample_id TEXT NOT NULL,
  prompt_id TEXT NOT NULL,
  group_id TEXT NOT NULL,
  index_in_group INTEGER NOT NULL,
  prompt TEXT NOT NULL,
  completion TEXT NOT NULL,
  reference TEXT NOT NULL,
  reward REAL,
  components_json TEXT NOT NULL,
  rationale TEXT NOT NULL,
  raw_response TEXT NOT NULL,
  backend TEXT NOT NULL,
  model TEXT NOT NULL,
  latency_ms REAL NOT NULL,
  tokens_in INTEGER NOT NULL,
  tokens_out INTEGER NOT NULL,
  cost_usd REAL NOT NULL,
  cache_hit INTEGER NOT NULL,
  error_kind TEXT NOT NULL,
  error_message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS verdicts_by_time ON verdicts(time_unix_s);
CREATE INDEX IF NOT EXISTS verdicts_by_prompt_id ON verdicts(prompt_id);
)sql";

// Columns added after schema version 1, each with the SQL that adds it to an older file. A reader treats a
// missing one as its default.
struct AddedColumn {
  const char* name;
  const char* definition;
};
constexpr AddedColumn kAddedColumns[] = {
    {"kind", "kind TEXT NOT NULL DEFAULT 'train'"},
    {"expected_reward", "expected_reward REAL"},
    {"canary_pass", "canary_pass INTEGER"},
    // The learner's step of a row: the policy version that sampled it (an alias, not stored).
    {"step", "step INTEGER GENERATED ALWAYS AS (policy_version) VIRTUAL"},
};

// Column order shared by the INSERT and the SELECT (id first, assigned by SQLite on insert).
constexpr char kColumns[] =
    "time_unix_s, run, policy_version, actor, sample_id, prompt_id, group_id, index_in_group, prompt, completion, "
    "reference, reward, components_json, rationale, raw_response, backend, model, latency_ms, tokens_in, tokens_out, "
    "cost_usd, cache_hit, error_kind, error_message, kind, expected_reward, canary_pass";
constexpr int kColumnCount = 27;

absl::Status SqliteError(const std::string& path, sqlite3* db, std::string_view what) {
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
  return absl::InternalError(absl::StrCat("reward log ", path, ": ", AsAbsl(what), ": ", detail));
}

absl::Status Exec(const std::string& path, sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    absl::Status status =
        absl::InternalError(absl::StrCat("reward log ", path, ": ", sql, ": ", error ? error : "unknown error"));
    sqlite3_free(error);
    return status;
  }
  return absl::OkStatus();
}

// The first column of the first row of `sql` as text ("" when there is no row).
absl::StatusOr<std::string> QueryText(const std::string& path, sqlite3* db, const char* sql) {
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &statement, nullptr) != SQLITE_OK) return SqliteError(path, db, sql);
  std::string value;
  const int rc = sqlite3_step(statement);
  if (rc == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(statement, 0);
    if (text != nullptr) value = reinterpret_cast<const char*>(text);
  }
  sqlite3_finalize(statement);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqliteError(path, db, sql);
  return value;
}

absl::StatusOr<int> SchemaVersion(const std::string& path, sqlite3* db) {
  RLJ_ASSIGN_OR_RETURN(std::string text, QueryText(path, db, "PRAGMA user_version"));
  return std::atoi(text.c_str());
}

absl::Status CheckNotNewer(const std::string& path, int version) {
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("reward log ", path, ": schema version ", version,
                                                      " was written by a newer rlj (this build knows ", kSchemaVersion,
                                                      ")"));
  }
  return absl::OkStatus();
}

std::string ColumnText(sqlite3_stmt* statement, int column) {
  const unsigned char* text = sqlite3_column_text(statement, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(statement, column));
}

// The names of the verdicts table's columns.
absl::StatusOr<std::set<std::string>> TableColumns(const std::string& path, sqlite3* db) {
  sqlite3_stmt* statement = nullptr;
  // table_xinfo lists generated columns too.
  if (sqlite3_prepare_v2(db, "PRAGMA table_xinfo(verdicts)", -1, &statement, nullptr) != SQLITE_OK) {
    return SqliteError(path, db, "cannot list the verdicts columns");
  }
  std::set<std::string> names;
  int rc;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) names.insert(ColumnText(statement, 1));
  sqlite3_finalize(statement);
  if (rc != SQLITE_DONE) return SqliteError(path, db, "cannot list the verdicts columns");
  return names;
}

// Adds the columns of kAddedColumns a file written by an older rlj lacks (inside the caller's transaction).
absl::Status AddMissingColumns(const std::string& path, sqlite3* db) {
  RLJ_ASSIGN_OR_RETURN(std::set<std::string> present, TableColumns(path, db));
  for (const AddedColumn& column : kAddedColumns) {
    if (present.count(column.name) > 0) continue;
    RLJ_RETURN_IF_ERROR(Exec(path, db, absl::StrCat("ALTER TABLE verdicts ADD COLUMN ", column.definition).c_str()));
  }
  return absl::OkStatus();
}

std::string ReplicaOf(const std::string& path) { return std::filesystem::path(path).stem().string(); }

// Reads one file (read-only) in time order.
absl::Status ReadOneFile(const std::string& path, const RewardLogReadOptions& options,
                         std::vector<RewardLogRow>* rows) {
  sqlite3* db = nullptr;
  const int open_rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  // The connection is closed on every return below.
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> closer(db, sqlite3_close);
  if (open_rc != SQLITE_OK) return SqliteError(path, db, "cannot open");
  sqlite3_busy_timeout(db, 5000);
  RLJ_ASSIGN_OR_RETURN(int version, SchemaVersion(path, db));
  RLJ_RETURN_IF_ERROR(CheckNotNewer(path, version));
  RLJ_ASSIGN_OR_RETURN(std::string table,
                       QueryText(path, db, "SELECT name FROM sqlite_master WHERE type='table' AND name='verdicts'"));
  if (version == 0 || table.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("reward log ", path, ": not a reward log (no verdicts table)"));
  }
  RLJ_ASSIGN_OR_RETURN(std::set<std::string> present, TableColumns(path, db));
  // Text columns become '' without with_text; columns an older file lacks read as their defaults.
  const auto text = [&](const char* column) { return options.with_text ? std::string(column) : std::string("''"); };
  const auto added = [&](const char* column, const char* fallback) {
    return present.count(column) > 0 ? std::string(column) : std::string(fallback);
  };
  const std::string columns = absl::StrCat(
      "id, time_unix_s, run, policy_version, actor, sample_id, prompt_id, group_id, index_in_group, ", text("prompt"),
      ", ", text("completion"), ", ", text("reference"), ", reward, components_json, ", text("rationale"), ", ",
      text("raw_response"), ", backend, model, latency_ms, tokens_in, tokens_out, cost_usd, cache_hit, error_kind, ",
      text("error_message"), ", ", added("kind", "'train'"), ", ", added("expected_reward", "NULL"), ", ",
      added("canary_pass", "NULL"), ", length(completion)");
  const std::string replica = ReplicaOf(path);
  const auto after = options.after_id.find(replica);
  const int64_t after_id = after == options.after_id.end() ? 0 : after->second;
  const std::string sql =
      absl::StrCat("SELECT ", columns, " FROM verdicts WHERE id > ", after_id, " ORDER BY time_unix_s, id");
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) {
    return SqliteError(path, db, "cannot read the verdicts table");
  }
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> finalizer(statement, sqlite3_finalize);
  int rc;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
    RewardLogRow row;
    int c = 0;
    row.id = sqlite3_column_int64(statement, c++);
    row.replica = replica;
    row.time_unix_s = sqlite3_column_double(statement, c++);
    row.run = ColumnText(statement, c++);
    row.policy_version = sqlite3_column_int64(statement, c++);
    row.actor = ColumnText(statement, c++);
    row.sample_id = ColumnText(statement, c++);
    row.prompt_id = ColumnText(statement, c++);
    row.group_id = ColumnText(statement, c++);
    row.index_in_group = sqlite3_column_int(statement, c++);
    row.prompt = ColumnText(statement, c++);
    row.completion = ColumnText(statement, c++);
    row.reference = ColumnText(statement, c++);
    if (sqlite3_column_type(statement, c) != SQLITE_NULL) row.reward = sqlite3_column_double(statement, c);
    ++c;
    row.components_json = ColumnText(statement, c++);
    row.rationale = ColumnText(statement, c++);
    row.raw_response = ColumnText(statement, c++);
    row.backend = ColumnText(statement, c++);
    row.model = ColumnText(statement, c++);
    row.latency_ms = sqlite3_column_double(statement, c++);
    row.tokens_in = sqlite3_column_int64(statement, c++);
    row.tokens_out = sqlite3_column_int64(statement, c++);
    row.cost_usd = sqlite3_column_double(statement, c++);
    row.cache_hit = sqlite3_column_int(statement, c++) != 0;
    row.error_kind = ColumnText(statement, c++);
    row.error_message = ColumnText(statement, c++);
    row.kind = ColumnText(statement, c++);
    if (sqlite3_column_type(statement, c) != SQLITE_NULL) row.expected_reward = sqlite3_column_double(statement, c);
    ++c;
    if (sqlite3_column_type(statement, c) != SQLITE_NULL) row.canary_pass = sqlite3_column_int(statement, c) != 0;
    ++c;
    row.completion_chars = sqlite3_column_int64(statement, c++);
    rows->push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return SqliteError(path, db, "reading rows");
  return absl::OkStatus();
}

}  // namespace

RewardLogRow MakeRewardLogRow(const v1::Sample& sample, const v1::Verdict& verdict, const std::string& raw_response) {
  RewardLogRow row;
  row.time_unix_s = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  row.run = sample.run();
  row.policy_version = sample.policy_version();
  row.actor = sample.actor();
  row.sample_id = sample.id();
  row.prompt_id = sample.prompt_id();
  row.group_id = sample.group_id();
  row.index_in_group = sample.index_in_group();
  row.prompt = sample.prompt();
  row.completion = sample.completion();
  row.reference = sample.reference();
  if (!verdict.has_error()) row.reward = verdict.reward();
  nlohmann::json components = nlohmann::json::object();
  for (const auto& [name, value] : verdict.components()) components[name] = value;
  row.components_json = components.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  row.rationale = verdict.rationale();
  row.raw_response = raw_response;
  row.backend = verdict.backend();
  row.model = verdict.model();
  row.latency_ms = verdict.latency_ms();
  row.tokens_in = verdict.tokens_in();
  row.tokens_out = verdict.tokens_out();
  row.cost_usd = verdict.cost_usd();
  row.cache_hit = verdict.cache_hit();
  if (verdict.has_error()) {
    row.error_kind = verdict.error().kind();
    row.error_message = verdict.error().message();
  }
  return row;
}

struct RewardLogWriter::State {
  std::string path;
  absl::Mutex mutex;
  sqlite3* db ABSL_GUARDED_BY(mutex) = nullptr;
  sqlite3_stmt* insert ABSL_GUARDED_BY(mutex) = nullptr;

  ~State() {
    absl::MutexLock lock(&mutex);
    if (insert != nullptr) sqlite3_finalize(insert);
    if (db != nullptr) sqlite3_close(db);  // the last connection also checkpoints the WAL into the file
  }
};

RewardLogWriter::RewardLogWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
RewardLogWriter::~RewardLogWriter() = default;

absl::StatusOr<std::unique_ptr<RewardLogWriter>> RewardLogWriter::Open(const std::string& path,
                                                                       std::chrono::milliseconds busy_timeout) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    RLJ_RETURN_IF_ERROR(Annotate(MakeDirectories(parent.string()), absl::StrCat("reward log ", path)));
  }
  auto state = std::make_unique<State>();
  state->path = path;
  absl::MutexLock lock(&state->mutex);
  const int open_rc = sqlite3_open_v2(path.c_str(), &state->db,
                                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (open_rc != SQLITE_OK) return SqliteError(path, state->db, "cannot open for writing");
  sqlite3* db = state->db;
  sqlite3_busy_timeout(db, static_cast<int>(busy_timeout.count()));
  RLJ_ASSIGN_OR_RETURN(std::string journal, QueryText(path, db, "PRAGMA journal_mode=WAL"));
  if (journal != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat("reward log ", path, ": cannot use the WAL journal here (got '", journal, "')"));
  }
  // FULL: every commit is on disk when Append returns (NORMAL would survive a process kill but not a power loss).
  RLJ_RETURN_IF_ERROR(Exec(path, db, "PRAGMA synchronous=FULL"));
  RLJ_RETURN_IF_ERROR(Exec(path, db, "BEGIN IMMEDIATE"));
  absl::Status schema = [&]() -> absl::Status {
    RLJ_ASSIGN_OR_RETURN(int version, SchemaVersion(path, db));
    RLJ_RETURN_IF_ERROR(CheckNotNewer(path, version));
    RLJ_RETURN_IF_ERROR(Exec(path, db, kCreateSchema));
    RLJ_RETURN_IF_ERROR(AddMissingColumns(path, db));
    if (version < kSchemaVersion) {
      RLJ_RETURN_IF_ERROR(Exec(path, db, absl::StrCat("PRAGMA user_version=", kSchemaVersion).c_str()));
    }
    return absl::OkStatus();
  }();
  if (!schema.ok()) {
    Exec(path, db, "ROLLBACK").IgnoreError();
    return schema;
  }
  RLJ_RETURN_IF_ERROR(Exec(path, db, "COMMIT"));

  std::string placeholders = "?";
  for (int i = 1; i < kColumnCount; ++i) placeholders += ", ?";
  const std::string sql = absl::StrCat("INSERT INTO verdicts (", kColumns, ") VALUES (", placeholders, ")");
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &state->insert, nullptr) != SQLITE_OK) {
    return SqliteError(path, db, "cannot prepare the insert");
  }
  return std::unique_ptr<RewardLogWriter>(new RewardLogWriter(std::move(state)));
}

absl::Status RewardLogWriter::Append(const std::vector<RewardLogRow>& rows) {
  if (rows.empty()) return absl::OkStatus();
  State& s = *state_;
  absl::MutexLock lock(&s.mutex);
  RLJ_RETURN_IF_ERROR(Exec(s.path, s.db, "BEGIN IMMEDIATE"));
  sqlite3_stmt* insert = s.insert;
  auto text = [insert](int column, const std::string& value) {
    return sqlite3_bind_text(insert, column, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
  };
  for (const RewardLogRow& row : rows) {
    int c = 1;
    int rc = SQLITE_OK;
    auto check = [&rc](int result) {
      if (rc == SQLITE_OK) rc = result;
    };
    check(sqlite3_bind_double(insert, c++, row.time_unix_s));
    check(text(c++, row.run));
    check(sqlite3_bind_int64(insert, c++, row.policy_version));
    check(text(c++, row.actor));
    check(text(c++, row.sample_id));
    check(text(c++, row.prompt_id));
    check(text(c++, row.group_id));
    check(sqlite3_bind_int(insert, c++, row.index_in_group));
    check(text(c++, row.prompt));
    check(text(c++, row.completion));
    check(text(c++, row.reference));
    check(row.reward ? sqlite3_bind_double(insert, c++, *row.reward) : sqlite3_bind_null(insert, c++));
    check(text(c++, row.components_json));
    check(text(c++, row.rationale));
    check(text(c++, row.raw_response));
    check(text(c++, row.backend));
    check(text(c++, row.model));
    check(sqlite3_bind_double(insert, c++, row.latency_ms));
    check(sqlite3_bind_int64(insert, c++, row.tokens_in));
    check(sqlite3_bind_int64(insert, c++, row.tokens_out));
    check(sqlite3_bind_double(insert, c++, row.cost_usd));
    check(sqlite3_bind_int(insert, c++, row.cache_hit ? 1 : 0));
    check(text(c++, row.error_kind));
    check(text(c++, row.error_message));
    check(text(c++, row.kind));
    check(row.expected_reward ? sqlite3_bind_double(insert, c++, *row.expected_reward)
                              : sqlite3_bind_null(insert, c++));
    check(row.canary_pass ? sqlite3_bind_int(insert, c++, *row.canary_pass ? 1 : 0) : sqlite3_bind_null(insert, c++));
    if (rc == SQLITE_OK) {
      rc = sqlite3_step(insert);
      if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    absl::Status failure = rc == SQLITE_OK ? absl::OkStatus() : SqliteError(s.path, s.db, "cannot append a row");
    sqlite3_reset(insert);
    sqlite3_clear_bindings(insert);
    if (!failure.ok()) {
      Exec(s.path, s.db, "ROLLBACK").IgnoreError();
      return failure;
    }
  }
  if (absl::Status commit = Exec(s.path, s.db, "COMMIT"); !commit.ok()) {
    Exec(s.path, s.db, "ROLLBACK").IgnoreError();
    return commit;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> RewardLogFiles(const std::string& file_or_dir) {
  std::error_code error;
  const auto status = std::filesystem::status(file_or_dir, error);
  if (error || !std::filesystem::exists(status)) {
    return absl::NotFoundError(absl::StrCat("reward log ", file_or_dir, ": no such file or directory"));
  }
  std::vector<std::string> files;
  if (std::filesystem::is_directory(status)) {
    for (const auto& entry : std::filesystem::directory_iterator(file_or_dir, error)) {
      if (entry.path().extension() == ".sqlite" && entry.is_regular_file()) files.push_back(entry.path().string());
    }
    if (error) {
      return absl::InternalError(absl::StrCat("reward log ", file_or_dir, ": cannot list: ", error.message()));
    }
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(file_or_dir);
  }
  return files;
}

absl::StatusOr<std::vector<RewardLogRow>> ReadRewardLog(const std::string& file_or_dir,
                                                        const RewardLogReadOptions& options) {
  RLJ_ASSIGN_OR_RETURN(std::vector<std::string> files, RewardLogFiles(file_or_dir));
  std::vector<RewardLogRow> rows;
  for (const std::string& file : files) RLJ_RETURN_IF_ERROR(ReadOneFile(file, options, &rows));
  // Each file is in time order; a stable sort merges them and keeps a file's own order on equal times.
  std::stable_sort(rows.begin(), rows.end(),
                   [](const RewardLogRow& a, const RewardLogRow& b) { return a.time_unix_s < b.time_unix_s; });
  return rows;
}

}  // namespace rlj
