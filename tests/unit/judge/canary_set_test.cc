// canary_set_test.cc: reading quality.canary_path: every field, an empty completion (a student may answer
// nothing), blank lines, and each bad line named by path:line.
#include "judge/quality/canary_set.h"

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;
using ::rlj::testing::ScratchDir;

TEST(LoadCanaries, ReadsEveryFieldAndAnEmptyCompletion) {
  ScratchDir dir;
  const std::string path = dir.file("canaries.jsonl");
  ASSERT_TRUE(
      WriteFileAtomically(path, R"({"id":"g-0","prompt":"1+2=","completion":"3","reference":"3","expected_reward":1}

{"id":"g-1","prompt":"1+2=","completion":"","expected_reward":0.0}
)")
          .ok());
  RLJ_ASSERT_OK_AND_ASSIGN(const std::vector<Canary> canaries, LoadCanaries(path));
  ASSERT_EQ(canaries.size(), 2u);
  EXPECT_EQ(canaries[0].id, "g-0");
  EXPECT_EQ(canaries[0].prompt, "1+2=");
  EXPECT_EQ(canaries[0].completion, "3");
  EXPECT_EQ(canaries[0].reference, "3");
  EXPECT_EQ(canaries[0].expected_reward, 1.0);
  EXPECT_EQ(canaries[1].completion, "");
  EXPECT_EQ(canaries[1].reference, "");
  EXPECT_EQ(canaries[1].expected_reward, 0.0);
}

TEST(LoadCanaries, NamesTheLineAndTheField) {
  ScratchDir dir;
  const std::string good = R"({"id":"a","prompt":"p","completion":"c","expected_reward":1})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", ":2: not a JSON object"},
      {R"({"prompt":"p","completion":"c","expected_reward":1})", ":2: \"id\" must be a non-empty string"},
      {R"({"id":"b","prompt":"","completion":"c","expected_reward":1})", ":2: \"prompt\" must be a non-empty string"},
      {R"({"id":"b","prompt":"p","expected_reward":1})", ":2: \"completion\" must be a string"},
      {R"({"id":"b","prompt":"p","completion":7,"expected_reward":1})", ":2: \"completion\" must be a string"},
      {R"({"id":"b","prompt":"p","completion":"c","expected_reward":"high"})",
       ":2: \"expected_reward\" must be a finite number"},
      {R"({"id":"b","prompt":"p","completion":"c","reference":3,"expected_reward":1})",
       ":2: \"reference\" must be a string"},
      {good, ":2: duplicate id \"a\""},
  };
  for (const auto& [line, message] : cases) {
    const std::string path = dir.file("bad.jsonl");
    ASSERT_TRUE(WriteFileAtomically(path, good + "\n" + line + "\n").ok());
    EXPECT_TRUE(FailsWith(LoadCanaries(path), absl::StatusCode::kInvalidArgument, path + message)) << line;
  }
  const std::string empty = dir.file("empty.jsonl");
  ASSERT_TRUE(WriteFileAtomically(empty, "\n\n").ok());
  EXPECT_TRUE(FailsWith(LoadCanaries(empty), absl::StatusCode::kInvalidArgument, "has no canaries"));
  EXPECT_TRUE(FailsWith(LoadCanaries(dir.file("missing.jsonl")), absl::StatusCode::kNotFound, "cannot open"));
}

}  // namespace
}  // namespace rlj
