// dataset_bad_input_test.cc: hostile prompt files: a 100 MB line (bounded memory), every kind of invalid
// UTF-8, NUL bytes, missing fields and the count of invalid lines, each named by file:line.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <fstream>

#include "common/dataset.h"
#include "common/file_util.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;
using namespace std::string_literals;

// Peak resident memory of this process so far, in bytes.
int64_t PeakRssBytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

class DatasetBadInputTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& text) {
    const std::string path = dir_.file("d.jsonl");
    EXPECT_TRUE(WriteFileAtomically(path, text).ok());
    return path;
  }
  std::string Message(const std::string& path) {
    const absl::Status status = LoadPromptDataset(path).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    return std::string(status.message());
  }
  testing::ScratchDir dir_;
};

TEST_F(DatasetBadInputTest, HundredMegabyteLineIsRejectedWithBoundedMemory) {
  const std::string path = dir_.file("big.jsonl");
  constexpr size_t kBig = size_t{100} << 20;
  {
    std::ofstream out(path, std::ios::binary);
    out << "{\"id\":\"ok\",\"prompt\":\"1+1=\"}\n{\"id\":\"big\",\"prompt\":\"";
    const std::string block(1 << 20, 'x');
    for (size_t written = 0; written < kBig; written += block.size()) out << block;
    out << "\"}\n{\"id\":\"after\",\"prompt\":5}\n";
    ASSERT_TRUE(out.good());
  }
  const int64_t peak_before = PeakRssBytes();
  const std::string message = Message(path);
  const int64_t peak_growth = PeakRssBytes() - peak_before;
  // 24 bytes of JSON around the 100 MiB string.
  EXPECT_NE(message.find(path + ":2: line is 104857624 bytes; the limit is 16777216"), std::string::npos) << message;
  // Lines after the long one keep their numbers.
  EXPECT_NE(message.find(path + ":3: field \"prompt\" must be a string"), std::string::npos) << message;
  EXPECT_NE(message.find("has 2 invalid lines (nothing was loaded)"), std::string::npos) << message;
  // At most the 16 MiB limit (plus the read buffer) is ever held, never the 100 MiB line.
  EXPECT_LT(peak_growth, int64_t{40} << 20) << "peak RSS grew by " << peak_growth << " bytes";
}

TEST_F(DatasetBadInputTest, LongLineJustUnderTheLimitLoads) {
  DatasetLimits limits;
  limits.max_line_bytes = 200 * 1024;  // spans several 64 KiB reads
  const std::string prompt(200 * 1024 - 22, 'y');
  const std::string path = Write("{\"id\":\"a\",\"prompt\":\"" + prompt + "\"}\n{\"id\":\"b\",\"prompt\":\"z\"}");
  RLJ_ASSERT_OK_AND_ASSIGN(auto rows, LoadPromptDataset(path, limits));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].prompt, prompt);
  EXPECT_EQ(rows[1].prompt, "z");  // a last line without '\n'
  limits.max_line_bytes -= 1;
  EXPECT_TRUE(FailsWith(LoadPromptDataset(path, limits), absl::StatusCode::kInvalidArgument,
                        ":1: line is 204800 bytes; the limit is 204799"));
}

TEST_F(DatasetBadInputTest, EveryKindOfInvalidUtf8IsNamed) {
  const std::string path = Write(
      "{\"id\":\"overlong\",\"prompt\":\"\xc0\xaf\"}\n"
      "{\"id\":\"surrogate\",\"prompt\":\"\xed\xa0\x80\"}\n"
      "{\"id\":\"beyond\",\"prompt\":\"\xf4\x90\x80\x80\"}\n"
      "{\"id\":\"cut\",\"prompt\":\"ab\xe2\x82\"}\n"
      "{\"id\":\"lone\",\"prompt\":\"\x80\"}\n"
      "{\"id\":\"good\",\"prompt\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}\n");
  const std::string message = Message(path);
  for (int line = 1; line <= 5; ++line) {
    EXPECT_NE(message.find(path + ":" + std::to_string(line) + ": invalid UTF-8"), std::string::npos)
        << line << ": " << message;
  }
  EXPECT_EQ(message.find(path + ":6:"), std::string::npos) << message;
  EXPECT_NE(message.find("has 5 invalid lines"), std::string::npos) << message;
}

TEST_F(DatasetBadInputTest, MissingFieldsNullsAndNulBytes) {
  const std::string path = Write(std::string("{\"prompt\":\"no id\"}\n") +
                                 "{\"id\":\"n\",\"prompt\":null}\n"
                                 "{\"id\":\"\",\"prompt\":\"x\"}\n"
                                 "{\"id\":1.5,\"prompt\":\"x\"}\n" +
                                 "{\"id\":\"z\",\"prompt\":\"a\0b\"}\n"s + "   \t \n");
  const std::string message = Message(path);
  EXPECT_NE(message.find(path + ":1: missing field \"id\""), std::string::npos) << message;
  EXPECT_NE(message.find(path + ":2: field \"prompt\" must be a string"), std::string::npos) << message;
  EXPECT_NE(message.find(path + ":3: field \"id\" is empty"), std::string::npos) << message;
  EXPECT_NE(message.find(path + ":4: field \"id\" must be a string or an integer"), std::string::npos) << message;
  EXPECT_NE(message.find(path + ":5: invalid JSON"), std::string::npos) << message;  // a raw control character
}

TEST_F(DatasetBadInputTest, ManyBadLinesAreCountedAndTheFirstOnesShown) {
  std::string text;
  for (int i = 0; i < 25; ++i) text += "not json\n";
  const std::string message = Message(Write(text));
  EXPECT_NE(message.find("has 25 invalid lines (nothing was loaded)"), std::string::npos) << message;
  EXPECT_NE(message.find(":10: invalid JSON"), std::string::npos) << message;
  EXPECT_EQ(message.find(":11: invalid JSON"), std::string::npos) << message;
  EXPECT_NE(message.find("(15 more invalid lines not shown)"), std::string::npos) << message;
}

TEST_F(DatasetBadInputTest, InvalidJsonMessageStaysShortOnALongLine) {
  // A broken 1 MB token: the parser's message quotes it; the error keeps only its start.
  const std::string path = Write("{\"id\":\"a\",\"prompt\":" + std::string(1 << 20, 'q') + "}\n");
  const std::string message = Message(path);
  EXPECT_NE(message.find(path + ":1: invalid JSON"), std::string::npos) << message.substr(0, 400);
  EXPECT_LT(message.size(), 1000u);
}

}  // namespace
}  // namespace rlj
