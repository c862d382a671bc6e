// config_loader_fuzz_regressions_test.cc: inputs the config_loader fuzzer found (fuzz/corpus/config_loader/
// regression-*), each now a clear error or a config whose resolved YAML reads back as the same config.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <string>

#include "common/config_loader.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;

TEST(ConfigLoaderFuzzRegressionsTest, AStringThatIsNotUtf8IsAnErrorNamingTheKey) {
  // Read as is, the byte 0xB3 came back from the resolved YAML as U+FFFD: a resumed run would have used a
  // different rubric than the one it started with.
  const std::string yaml = "judge:\n  openai:\n    rubric: \"grade {completion\xB3}\"\n";
  EXPECT_TRUE(FailsWith(ParseRunConfig(yaml, "bad.yaml"), absl::StatusCode::kInvalidArgument,
                        "bad.yaml:3:13: judge.openai.rubric: expected UTF-8 text"));
  EXPECT_TRUE(FailsWith(ParseRunConfig("", "bad.yaml", {"judge.openai.model=gpt\xFF"}),
                        absl::StatusCode::kInvalidArgument, "judge.openai.model: expected UTF-8 text"));
}

TEST(ConfigLoaderFuzzRegressionsTest, UnicodeStringsReadBackFromTheResolvedYaml) {
  const std::string yaml =
      "judge:\n  openai:\n    rubric: \"note \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 {completion}\"\n";
  RLJ_ASSERT_OK_AND_ASSIGN(const v1::RunConfig config, ParseRunConfig(yaml, "good.yaml"));
  EXPECT_EQ(config.judge().openai().rubric(), "note \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 {completion}");
  RLJ_ASSERT_OK_AND_ASSIGN(const v1::RunConfig reread, ParseRunConfig(MessageToYaml(config), "resolved.yaml"));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(config, reread));
}

TEST(ConfigLoaderFuzzRegressionsTest, AStringSpellingTheDefaultCommentMarkerReadsBack) {
  // MessageToYaml moves "  # default: " comments onto their own lines; it used to split inside a quoted value
  // too, so the resolved YAML of this config did not load.
  const std::string yaml = "judge:\n  openai:\n    rubric: \"Grade  # default: {completion}\"\n";
  RLJ_ASSERT_OK_AND_ASSIGN(const v1::RunConfig config, ParseRunConfig(yaml, "good.yaml"));
  const std::string resolved = MessageToYaml(config);
  RLJ_ASSERT_OK_AND_ASSIGN(const v1::RunConfig reread, ParseRunConfig(resolved, "resolved.yaml"));
  EXPECT_EQ(reread.judge().openai().rubric(), "Grade  # default: {completion}");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(config, reread));
}

}  // namespace
}  // namespace rlj
