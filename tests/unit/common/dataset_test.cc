// dataset_test.cc: JSONL prompt datasets: good rows load, every kind of bad line is named by file:line.
#include "common/dataset.h"

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;

class DatasetTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& text) {
    const std::string path = dir_.file("d.jsonl");
    EXPECT_TRUE(WriteFileAtomically(path, text).ok());
    return path;
  }
  testing::ScratchDir dir_;
};

TEST_F(DatasetTest, LoadsRowsAndSkipsBlankLines) {
  const std::string path =
      Write("{\"id\":\"a\",\"prompt\":\"1+1=\",\"reference\":\"2\"}\n\n{\"id\":7,\"prompt\":\"hi\"}\r\n");
  RLJ_ASSERT_OK_AND_ASSIGN(auto rows, LoadPromptDataset(path));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].reference, "2");
  EXPECT_EQ(rows[1].id, "7");
  EXPECT_EQ(rows[1].reference, "");
}

TEST_F(DatasetTest, BadLinesNameFileAndLine) {
  const std::string path = Write(
      "{\"id\":\"a\",\"prompt\":\"ok\"}\n"
      "{not json}\n"
      "{\"id\":\"b\"}\n"
      "{\"id\":\"c\",\"prompt\":\"\"}\n"
      "{\"id\":\"d\",\"prompt\":5}\n"
      "{\"id\":\"a\",\"prompt\":\"dup\"}\n"
      "{\"id\":\"e\",\"prompt\":\"x\xff\"}\n"
      "[1,2]\n"
      "{\"id\":\"f\",\"prompt\":\"x\",\"reference\":3}\n");
  const absl::Status status = LoadPromptDataset(path).status();
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const std::string message(status.message());
  EXPECT_NE(message.find(path + ":2: invalid JSON"), std::string::npos) << message;
  EXPECT_NE(message.find(path + ":3: missing field \"prompt\""), std::string::npos) << message;
  EXPECT_NE(message.find(path + ":4: field \"prompt\" is empty"), std::string::npos) << message;
  EXPECT_NE(message.find(path + ":5: field \"prompt\" must be a string"), std::string::npos) << message;
  EXPECT_NE(message.find(path + ":6: duplicate id \"a\""), std::string::npos) << message;
  EXPECT_NE(message.find(path + ":7: invalid UTF-8"), std::string::npos) << message;
  EXPECT_NE(message.find(path + ":8: expected a JSON object"), std::string::npos) << message;
  EXPECT_NE(message.find(path + ":9: field \"reference\" must be a string"), std::string::npos) << message;
}

TEST_F(DatasetTest, OverlongLineIsRejectedNotTruncated) {
  const std::string path = Write("{\"id\":\"a\",\"prompt\":\"" + std::string(2000, 'x') + "\"}\n");
  DatasetLimits limits;
  limits.max_line_bytes = 1000;
  EXPECT_TRUE(FailsWith(LoadPromptDataset(path, limits), absl::StatusCode::kInvalidArgument,
                        ":1: line is 2022 bytes; the limit is 1000"));
}

TEST_F(DatasetTest, EmptyAndMissingFiles) {
  EXPECT_TRUE(FailsWith(LoadPromptDataset(Write("\n\n")), absl::StatusCode::kInvalidArgument, "no rows"));
  EXPECT_TRUE(FailsWith(LoadPromptDataset(dir_.file("missing.jsonl")), absl::StatusCode::kNotFound, "missing.jsonl"));
}

TEST_F(DatasetTest, WriteThenLoadRoundTrips) {
  const std::vector<PromptRow> rows = {{"1", "héllo \"q\"\n", "ref"}, {"2", "b", ""}};
  RLJ_ASSERT_OK(WritePromptDataset(dir_.file("o.jsonl"), rows));
  RLJ_ASSERT_OK_AND_ASSIGN(auto loaded, LoadPromptDataset(dir_.file("o.jsonl")));
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded[0].prompt, rows[0].prompt);
}

}  // namespace
}  // namespace rlj
