// reward_log_test.cc: the SQLite reward log on real files: round trip of every field, reopen and append,
// replica directories merged by time, schema pragmas, concurrent appends, and errors that name the path.
#include "common/reward_log.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <thread>

#include "common/file_util.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;
using ::rlj::testing::ScratchDir;

RewardLogRow Row(double time, const std::string& sample_id, std::optional<double> reward) {
  RewardLogRow row;
  row.time_unix_s = time;
  row.run = "demo";
  row.policy_version = 7;
  row.actor = "actor-1";
  row.sample_id = sample_id;
  row.prompt_id = "p-" + sample_id;
  row.group_id = "g-3";
  row.index_in_group = 2;
  row.prompt = "What is 12+34?";
  row.completion = " 46 ✓";
  row.reference = "46";
  row.reward = reward;
  row.components_json = R"({"correct":1.0})";
  row.rationale = "expected 46, got 46";
  row.raw_response = "{\"score\": 10}";
  row.backend = "openai";
  row.model = "teacher-1";
  row.latency_ms = 12.5;
  row.tokens_in = 120;
  row.tokens_out = 9;
  row.cost_usd = 0.00125;
  row.cache_hit = true;
  if (!reward) {
    row.error_kind = "parse";
    row.error_message = "no score in the teacher's answer";
  }
  return row;
}

void ExpectSameRow(const RewardLogRow& got, const RewardLogRow& want) {
  EXPECT_EQ(got.time_unix_s, want.time_unix_s);
  EXPECT_EQ(got.run, want.run);
  EXPECT_EQ(got.policy_version, want.policy_version);
  EXPECT_EQ(got.actor, want.actor);
  EXPECT_EQ(got.sample_id, want.sample_id);
  EXPECT_EQ(got.prompt_id, want.prompt_id);
  EXPECT_EQ(got.group_id, want.group_id);
  EXPECT_EQ(got.index_in_group, want.index_in_group);
  EXPECT_EQ(got.prompt, want.prompt);
  EXPECT_EQ(got.completion, want.completion);
  EXPECT_EQ(got.reference, want.reference);
  EXPECT_EQ(got.reward, want.reward);
  EXPECT_EQ(got.components_json, want.components_json);
  EXPECT_EQ(got.rationale, want.rationale);
  EXPECT_EQ(got.raw_response, want.raw_response);
  EXPECT_EQ(got.backend, want.backend);
  EXPECT_EQ(got.model, want.model);
  EXPECT_EQ(got.latency_ms, want.latency_ms);
  EXPECT_EQ(got.tokens_in, want.tokens_in);
  EXPECT_EQ(got.tokens_out, want.tokens_out);
  EXPECT_EQ(got.cost_usd, want.cost_usd);
  EXPECT_EQ(got.cache_hit, want.cache_hit);
  EXPECT_EQ(got.error_kind, want.error_kind);
  EXPECT_EQ(got.error_message, want.error_message);
}

std::string QueryOne(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &statement, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::string value;
  if (sqlite3_step(statement) == SQLITE_ROW && sqlite3_column_text(statement, 0) != nullptr) {
    value = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
  }
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return value;
}

TEST(RewardLog, RowsOfADestroyedWriterAreAllReadBack) {
  ScratchDir dir;
  const std::string path = dir.file("judge-0.sqlite");
  const std::vector<RewardLogRow> first = {Row(100.25, "a/0/0", 1.0), Row(100.5, "a/0/1", std::nullopt)};
  const std::vector<RewardLogRow> second = {Row(101.0, "a/0/2", -0.5)};
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto writer, RewardLogWriter::Open(path));
    RLJ_ASSERT_OK(writer->Append(first));
    RLJ_ASSERT_OK(writer->Append(second));
    RLJ_ASSERT_OK(writer->Append({}));  // nothing to do
  }
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(path));
  ASSERT_EQ(rows.size(), 3u);
  ExpectSameRow(rows[0], first[0]);
  ExpectSameRow(rows[1], first[1]);
  ExpectSameRow(rows[2], second[0]);
  EXPECT_EQ(rows[1].reward, std::nullopt);  // a failed verdict has no reward, not 0
  EXPECT_EQ(rows[0].id, 1);
  EXPECT_EQ(rows[2].id, 3);
}

TEST(RewardLog, SchemaUsesWalVersionAndIndexes) {
  ScratchDir dir;
  const std::string path = dir.file("judge-0.sqlite");
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto writer, RewardLogWriter::Open(path));
    RLJ_ASSERT_OK(writer->Append({Row(1, "s", 0.5)}));
  }
  EXPECT_EQ(QueryOne(path, "PRAGMA user_version"), "1");
  EXPECT_EQ(QueryOne(path, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(QueryOne(path,
                     "SELECT count(*) FROM sqlite_master WHERE type='index' AND tbl_name='verdicts' AND "
                     "(sql LIKE '%(time_unix_s)%' OR sql LIKE '%(prompt_id)%')"),
            "2");
  EXPECT_EQ(QueryOne(path, "SELECT typeof(reward) FROM verdicts"), "real");
}

TEST(RewardLog, ReopeningAppends) {
  ScratchDir dir;
  const std::string path = dir.file("r.sqlite");
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto writer, RewardLogWriter::Open(path));
    RLJ_ASSERT_OK(writer->Append({Row(1, "x", 1.0)}));
  }
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto writer, RewardLogWriter::Open(path));
    RLJ_ASSERT_OK(writer->Append({Row(2, "y", 0.0)}));
    // Readable while the writer is still open.
    RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> live, ReadRewardLog(path));
    EXPECT_EQ(live.size(), 2u);
  }
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(path));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].sample_id, "x");
  EXPECT_EQ(rows[1].sample_id, "y");
  EXPECT_EQ(rows[1].reward, 0.0);
}

TEST(RewardLog, DirectoryOfReplicasIsMergedByTime) {
  ScratchDir dir;
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto judge0, RewardLogWriter::Open(dir.file("judge-0.sqlite")));
    RLJ_ASSERT_OK_AND_ASSIGN(auto judge1, RewardLogWriter::Open(dir.file("judge-1.sqlite")));
    RLJ_ASSERT_OK(judge0->Append({Row(10, "j0-first", 1.0), Row(30, "j0-second", 1.0)}));
    RLJ_ASSERT_OK(judge1->Append({Row(20, "j1-first", 0.0), Row(40, "j1-second", std::nullopt)}));
  }
  RLJ_ASSERT_OK(WriteFileAtomically(dir.file("notes.txt"), "not a reward log"));  // ignored: not *.sqlite
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(dir.path()));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].sample_id, "j0-first");
  EXPECT_EQ(rows[1].sample_id, "j1-first");
  EXPECT_EQ(rows[2].sample_id, "j0-second");
  EXPECT_EQ(rows[3].sample_id, "j1-second");
  EXPECT_EQ(rows[3].reward, std::nullopt);
}

TEST(RewardLog, ConcurrentAppendsAreAllKept) {
  ScratchDir dir;
  const std::string path = dir.file("judge-0.sqlite");
  RLJ_ASSERT_OK_AND_ASSIGN(auto writer, RewardLogWriter::Open(path));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const std::string id = std::to_string(t) + "/" + std::to_string(i);
        if (!writer->Append({Row(t * 100 + i, id, 1.0), Row(t * 100 + i + 0.5, id + "b", 0.0)}).ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(path));
  EXPECT_EQ(rows.size(), 200u);
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_LE(rows[i - 1].time_unix_s, rows[i].time_unix_s);
}

TEST(RewardLog, UnwritablePathIsAnErrorNamingIt) {
  ScratchDir dir;
  RLJ_ASSERT_OK(WriteFileAtomically(dir.file("plain-file"), "x"));
  const std::string path = dir.file("plain-file") + "/reward_log/judge-0.sqlite";  // under a regular file
  auto writer = RewardLogWriter::Open(path);
  ASSERT_FALSE(writer.ok());
  EXPECT_NE(std::string(writer.status().message()).find(path), std::string::npos) << writer.status();
}

TEST(RewardLog, ReadErrorsNameThePath) {
  ScratchDir dir;
  const std::string missing = dir.file("nowhere.sqlite");
  EXPECT_TRUE(FailsWith(ReadRewardLog(missing), absl::StatusCode::kNotFound, missing));

  // An SQLite file that is not a reward log.
  const std::string other = dir.file("other.sqlite");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(other.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_TRUE(FailsWith(ReadRewardLog(other), absl::StatusCode::kInvalidArgument, other));

  // A log written by a newer schema is refused by both the reader and the writer.
  const std::string newer = dir.file("newer.sqlite");
  { RLJ_ASSERT_OK_AND_ASSIGN(auto writer, RewardLogWriter::Open(newer)); }
  ASSERT_EQ(sqlite3_open(newer.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_TRUE(FailsWith(ReadRewardLog(newer), absl::StatusCode::kFailedPrecondition, "schema version 99"));
  EXPECT_TRUE(FailsWith(RewardLogWriter::Open(newer), absl::StatusCode::kFailedPrecondition, newer));
}

TEST(RewardLog, MakeRowFromSampleAndVerdict) {
  v1::Sample sample;
  sample.set_id("actor-0/g7/1");
  sample.set_prompt_id("row-12");
  sample.set_prompt("2+2=");
  sample.set_completion("4");
  sample.set_reference("4");
  sample.set_group_id("g7");
  sample.set_index_in_group(1);
  sample.set_run("demo");
  sample.set_actor("actor-0");
  sample.set_policy_version(42);
  v1::Verdict verdict;
  verdict.set_sample_id(sample.id());
  verdict.set_reward(0.8);
  (*verdict.mutable_components())["score"] = 8;
  (*verdict.mutable_components())["correct"] = 1;
  verdict.set_rationale("right");
  verdict.set_backend("openai");
  verdict.set_model("m");
  verdict.set_latency_ms(33);
  verdict.set_tokens_in(5);
  verdict.set_tokens_out(6);
  verdict.set_cost_usd(0.5);
  verdict.set_cache_hit(true);

  const RewardLogRow row = MakeRewardLogRow(sample, verdict, "raw answer");
  EXPECT_GT(row.time_unix_s, 1.6e9);  // seconds since 1970, i.e. after 2020
  EXPECT_EQ(row.sample_id, "actor-0/g7/1");
  EXPECT_EQ(row.prompt_id, "row-12");
  EXPECT_EQ(row.prompt, "2+2=");
  EXPECT_EQ(row.completion, "4");
  EXPECT_EQ(row.reference, "4");
  EXPECT_EQ(row.group_id, "g7");
  EXPECT_EQ(row.index_in_group, 1);
  EXPECT_EQ(row.run, "demo");
  EXPECT_EQ(row.actor, "actor-0");
  EXPECT_EQ(row.policy_version, 42);
  EXPECT_EQ(row.reward, 0.8);
  EXPECT_EQ(nlohmann::json::parse(row.components_json), nlohmann::json({{"correct", 1.0}, {"score", 8.0}}));
  EXPECT_EQ(row.rationale, "right");
  EXPECT_EQ(row.raw_response, "raw answer");
  EXPECT_EQ(row.backend, "openai");
  EXPECT_EQ(row.model, "m");
  EXPECT_EQ(row.latency_ms, 33);
  EXPECT_EQ(row.tokens_in, 5);
  EXPECT_EQ(row.tokens_out, 6);
  EXPECT_EQ(row.cost_usd, 0.5);
  EXPECT_TRUE(row.cache_hit);
  EXPECT_EQ(row.error_kind, "");

  verdict.mutable_error()->set_code(4);
  verdict.mutable_error()->set_kind("timeout");
  verdict.mutable_error()->set_message("too slow");
  const RewardLogRow failed = MakeRewardLogRow(sample, verdict, "");
  EXPECT_EQ(failed.reward, std::nullopt);
  EXPECT_EQ(failed.error_kind, "timeout");
  EXPECT_EQ(failed.error_message, "too slow");
}

}  // namespace
}  // namespace rlj
