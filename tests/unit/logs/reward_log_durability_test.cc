// reward_log_durability_test.cc: the reward log under a kill -9 of the writing process (every committed row
// is there, the file is intact), the columns added after schema 1 (an old file is upgraded in place and still
// read), the `step` alias, and partial reads (without text, after an id).
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "common/reward_log.h"
#include "logs_fixtures.h"
#include "test_util.h"

namespace rlj {
namespace {

using testing::MakeRow;
using testing::ScratchDir;

std::string QueryOne(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::string value;
  if (sqlite3_step(statement) == SQLITE_ROW && sqlite3_column_text(statement, 0) != nullptr) {
    value = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
  }
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return value;
}

// The child appends batches of 5 rows forever and reports each committed total on the pipe; the parent kills
// it with SIGKILL mid-stream and then finds every reported row in the file.
TEST(RewardLogDurability, KillNineLosesNoCommittedRow) {
  ScratchDir dir;
  const std::string path = dir.file("judge-0.sqlite");
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    auto writer = RewardLogWriter::Open(path);
    if (!writer.ok()) ::_exit(2);
    for (int64_t committed = 0;;) {
      std::vector<RewardLogRow> batch;
      for (int i = 0; i < 5; ++i) {
        RewardLogRow row = MakeRow(committed / 5, 0.5, std::string(200, 'x'));
        row.sample_id = "s" + std::to_string(committed + i);
        batch.push_back(row);
      }
      if (!(*writer)->Append(batch).ok()) ::_exit(3);
      committed += 5;
      const std::string report = std::to_string(committed) + "\n";
      if (::write(fds[1], report.data(), report.size()) != static_cast<ssize_t>(report.size())) ::_exit(4);
    }
  }
  ::close(fds[1]);
  // Read reports until at least 200 rows are committed, then kill while the child keeps writing.
  int64_t reported = 0;
  std::string pending;
  char buffer[256];
  while (reported < 200) {
    const ssize_t n = ::read(fds[0], buffer, sizeof(buffer));
    ASSERT_GT(n, 0) << "the writer child ended early";
    pending.append(buffer, static_cast<size_t>(n));
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      reported = std::stoll(pending.substr(0, newline));
      pending.erase(0, newline + 1);
    }
  }
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  ::close(fds[0]);

  EXPECT_EQ(QueryOne(path, "PRAGMA integrity_check"), "ok");
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(path));
  ASSERT_GE(static_cast<int64_t>(rows.size()), reported);
  EXPECT_EQ(rows.size() % 5, 0u) << "a batch is one transaction: all of it or none";
  for (int64_t i = 0; i < static_cast<int64_t>(rows.size()); ++i) {
    EXPECT_EQ(rows[static_cast<size_t>(i)].id, i + 1);
    EXPECT_EQ(rows[static_cast<size_t>(i)].sample_id, "s" + std::to_string(i));
    EXPECT_EQ(rows[static_cast<size_t>(i)].completion, std::string(200, 'x'));
  }
  EXPECT_EQ(QueryOne(path, "PRAGMA journal_mode"), "wal");
}

TEST(RewardLogDurability, SynchronousFullOnTheWritingConnection) {
  ScratchDir dir;
  const std::string path = dir.file("judge-0.sqlite");
  RLJ_ASSERT_OK_AND_ASSIGN(auto writer, RewardLogWriter::Open(path));
  RLJ_ASSERT_OK(writer->Append({MakeRow(1, 1.0)}));
  // synchronous is per connection, so check through the file: a WAL with the committed frame exists before
  // any checkpoint, and the row is readable by another connection while the writer is open.
  EXPECT_EQ(QueryOne(path, "SELECT count(*) FROM verdicts"), "1");
}

TEST(RewardLogSchema, OldFilesAreUpgradedInPlaceAndStillRead) {
  ScratchDir dir;
  const std::string path = dir.file("judge-0.sqlite");
  // A file as the first rlj wrote it: schema 1 without kind / expected_reward / canary_pass / step.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const char* old_schema = R"sql(
PRAGMA journal_mode=WAL;
CREATE TABLE verdicts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time_unix_s REAL NOT NULL, run TEXT NOT NULL, policy_version INTEGER NOT NULL,
  actor TEXT NOT NULL, sample_id TEXT NOT NULL, prompt_id TEXT NOT NULL, group_id TEXT NOT NULL,
  index_in_group INTEGER NOT NULL, prompt TEXT NOT NULL, completion TEXT NOT NULL, reference TEXT NOT NULL, reward REAL,
  components_json TEXT NOT NULL, rationale TEXT NOT NULL, raw_response TEXT NOT NULL, backend TEXT NOT NULL,
  model TEXT NOT NULL, latency_ms REAL NOT NULL, tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL,
  cost_usd REAL NOT NULL, cache_hit INTEGER NOT NULL, error_kind TEXT NOT NULL, error_message TEXT NOT NULL);
INSERT INTO verdicts (time_unix_s, run, policy_version, actor, sample_id, prompt_id, group_id, index_in_group, prompt,
  completion, reference, reward, components_json, rationale, raw_response, backend, model, latency_ms, tokens_in,
  tokens_out, cost_usd, cache_hit, error_kind, error_message)
VALUES (5.0, 'old', 3, 'a', 'old-sample', 'p', 'g', 0, 'q', 'héllo', 'r', 0.25, '{}', '', '', 'rule', '', 1, 0, 0, 0, 0, '', '');
PRAGMA user_version=1;
)sql";
  ASSERT_EQ(sqlite3_exec(db, old_schema, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);

  // Read before any upgrade: the missing columns read as their defaults.
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> before, ReadRewardLog(path));
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before[0].kind, "train");
  EXPECT_EQ(before[0].expected_reward, std::nullopt);
  EXPECT_EQ(before[0].completion_chars, 5);  // characters, not bytes
  EXPECT_EQ(before[0].replica, "judge-0");

  // A writer upgrades the file and appends a canary row.
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto writer, RewardLogWriter::Open(path));
    RewardLogRow canary = MakeRow(4, 1.0, "x", 6.0);
    canary.kind = row_kind::kCanary;
    canary.expected_reward = 1.0;
    canary.canary_pass = true;
    RLJ_ASSERT_OK(writer->Append({canary}));
  }
  EXPECT_EQ(QueryOne(path, "PRAGMA user_version"), "1");  // additive columns keep the version
  EXPECT_EQ(QueryOne(path, "SELECT step FROM verdicts WHERE sample_id = 'old-sample'"), "3");
  EXPECT_EQ(QueryOne(path, "SELECT kind FROM verdicts WHERE sample_id = 'old-sample'"), "train");
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> after, ReadRewardLog(path));
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].sample_id, "old-sample");
  EXPECT_EQ(after[0].reward, 0.25);
  EXPECT_EQ(after[1].kind, "canary");
  EXPECT_EQ(after[1].expected_reward, 1.0);
  EXPECT_EQ(after[1].canary_pass, true);
  EXPECT_EQ(after[1].policy_version, 4);
}

TEST(RewardLogSchema, ReadsWithoutTextAndAfterAnId) {
  ScratchDir dir;
  testing::WriteRows(dir.path(), "judge-0", {MakeRow(1, 1.0, "abc"), MakeRow(1, 0.0, "de"), MakeRow(2, 0.5, "f")});
  testing::WriteRows(dir.path(), "judge-1", {MakeRow(1, 1.0, "ghij")});
  RewardLogReadOptions options;
  options.with_text = false;
  options.after_id["judge-0"] = 1;
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(dir.path() + "/reward_log", options));
  ASSERT_EQ(rows.size(), 3u);  // judge-0 ids 2 and 3, and judge-1 id 1
  for (const RewardLogRow& row : rows) {
    EXPECT_TRUE(row.completion.empty());
    EXPECT_TRUE(row.prompt.empty());
    EXPECT_FALSE(row.backend.empty());  // short columns are always read
  }
  EXPECT_EQ(rows[0].replica, "judge-0");
  EXPECT_EQ(rows[0].id, 2);
  EXPECT_EQ(rows[0].completion_chars, 2);
  EXPECT_EQ(rows[1].completion_chars, 1);
  EXPECT_EQ(rows[2].replica, "judge-1");
  EXPECT_EQ(rows[2].completion_chars, 4);
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<std::string> files, RewardLogFiles(dir.path() + "/reward_log"));
  EXPECT_EQ(files.size(), 2u);
}

}  // namespace
}  // namespace rlj
