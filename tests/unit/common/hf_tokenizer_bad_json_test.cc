// hf_tokenizer_bad_json_test.cc: tokenizer.json files with fields of the wrong JSON type or absurd ids are
// refused with an error naming the field, never a thrown exception (a crash) or a gigabyte-sized table.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "common/tokenizer/byte_tokenizer.h"
#include "common/tokenizer/hf_tokenizer.h"
#include "test_util.h"

namespace rlj {
namespace {

using nlohmann::json;
using ::rlj::testing::FailsWith;

json ByteJson() { return json::parse(ByteTokenizerJson()); }

TEST(HfTokenizerBadJsonTest, TheByteTokenizerJsonLoads) {
  RLJ_ASSERT_OK_AND_ASSIGN(auto tokenizer, HfTokenizer::FromJson(ByteJson().dump(), "byte.json"));
  EXPECT_EQ(tokenizer->vocab_size(), 259);
  EXPECT_EQ(tokenizer->prefix_ids(), std::vector<int32_t>{256});
}

TEST(HfTokenizerBadJsonTest, SplitBehaviorOfTheWrongTypeIsAnError) {
  json root = ByteJson();
  root["pre_tokenizer"] = {{"type", "Sequence"},
                           {"pretokenizers",
                            {{{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", 3}},
                             {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  EXPECT_TRUE(FailsWith(HfTokenizer::FromJson(root.dump(), "t.json"), absl::StatusCode::kInvalidArgument,
                        "pre_tokenizer[0] (Split): behavior must be a string"));
}

TEST(HfTokenizerBadJsonTest, PostProcessorSpecialTokenThatIsNotAnObjectIsAnError) {
  json root = ByteJson();
  root["post_processor"]["single"][0]["SpecialToken"] = "<bos>";
  EXPECT_TRUE(FailsWith(HfTokenizer::FromJson(root.dump(), "t.json"), absl::StatusCode::kInvalidArgument,
                        "post_processor.single: has a SpecialToken without a string id"));
}

TEST(HfTokenizerBadJsonTest, PostProcessorIdsOutsideTheVocabularyAreAnError) {
  json root = ByteJson();
  root["post_processor"]["special_tokens"]["<bos>"]["ids"] = {100000};
  EXPECT_TRUE(FailsWith(HfTokenizer::FromJson(root.dump(), "t.json"), absl::StatusCode::kInvalidArgument,
                        "an id of '<bos>' is not a token id of this vocabulary (0..258)"));
  root["post_processor"]["special_tokens"]["<bos>"]["ids"] = {"256"};
  EXPECT_TRUE(
      FailsWith(HfTokenizer::FromJson(root.dump(), "t.json"), absl::StatusCode::kInvalidArgument, "is not a token id"));
}

TEST(HfTokenizerBadJsonTest, AHugeIdIsRefusedInsteadOfAllocatingATableForIt) {
  json root = ByteJson();
  root["added_tokens"].push_back({{"id", (1 << 30) - 1}, {"content", "<huge>"}, {"special", true}});
  EXPECT_TRUE(FailsWith(HfTokenizer::FromJson(root.dump(), "t.json"), absl::StatusCode::kInvalidArgument,
                        "added_tokens: every entry needs an integer id in [0, 4194304)"));
  root = ByteJson();
  root["model"]["vocab"]["<far>"] = 5000000;
  EXPECT_TRUE(FailsWith(HfTokenizer::FromJson(root.dump(), "t.json"), absl::StatusCode::kInvalidArgument,
                        "model.vocab: id of '<far>' must be an integer in [0, 4194304)"));
}

TEST(HfTokenizerBadJsonTest, GenerationConfigEosIdsOutsideTheVocabularyAreIgnoredBeforeNarrowing) {
  // 2^32 + 5 narrowed to int32 is 5, a real id: it must not become a stop id.
  RLJ_ASSERT_OK_AND_ASSIGN(auto tokenizer, HfTokenizer::FromJson(ByteJson().dump(), "t.json", "",
                                                                 R"({"eos_token_id": [4294967301, -1, 257]})"));
  const std::vector<int32_t> stops = tokenizer->stop_ids();
  EXPECT_EQ(std::count(stops.begin(), stops.end(), 5), 0);
  EXPECT_EQ(std::count(stops.begin(), stops.end(), 257), 1);
}

TEST(HfTokenizerBadJsonTest, AnyOtherFieldOfTheWrongTypeIsAnErrorNotAnException) {
  json root = ByteJson();
  root["post_processor"]["single"][0]["SpecialToken"] = {{"id", "<bos>"}};
  root["post_processor"]["special_tokens"] = "not an object";
  EXPECT_FALSE(HfTokenizer::FromJson(root.dump(), "t.json").ok());
}

}  // namespace
}  // namespace rlj
