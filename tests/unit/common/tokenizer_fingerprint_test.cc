// tokenizer_fingerprint_test.cc: the fingerprint is stable for equal vocabularies and changes with any id's
// bytes, the byte tokenizer agrees with its own tokenizer.json, and TokenBytes keeps bytes Decode repairs.
#include "common/tokenizer/tokenizer_fingerprint.h"

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/tokenizer/byte_level.h"
#include "common/tokenizer/byte_tokenizer.h"
#include "common/tokenizer/hf_tokenizer.h"

namespace rlj {
namespace {

using Json = nlohmann::json;

// A byte-level BPE: the 256 bytes, "ab" and "abc" from two merges, <|end|> as a special added token.
Json SmallTokenizerJson() {
  Json vocab = Json::object();
  const auto& chars = ByteLevelChars();
  for (int b = 0; b < 256; ++b) vocab[chars[b]] = b;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  Json json;
  json["added_tokens"] = Json::array({{{"id", 258}, {"content", "<|end|>"}, {"special", true}}});
  json["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  json["decoder"] = {{"type", "ByteLevel"}};
  json["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array({"a b", "ab c"})}};
  return json;
}

std::unique_ptr<HfTokenizer> MakeHf(const Json& json, const std::string& config = R"({"eos_token": "<|end|>"})") {
  auto tokenizer = HfTokenizer::FromJson(json.dump(), "small.json", config);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

TEST(TokenizerFingerprint, ByteTokenizerIsStableAndHex) {
  const std::string fingerprint = TokenizerFingerprint(ByteTokenizer());
  EXPECT_EQ(fingerprint, TokenizerFingerprint(ByteTokenizer()));
  ASSERT_EQ(fingerprint.size(), 64u);
  EXPECT_EQ(fingerprint.find_first_not_of("0123456789abcdef"), std::string::npos) << fingerprint;
  EXPECT_EQ(TokenizerKind(ByteTokenizer()), "byte");
}

TEST(TokenizerFingerprint, HfTokenizerDiffersFromByteTokenizer) {
  auto hf = MakeHf(SmallTokenizerJson());
  ASSERT_NE(hf, nullptr);
  EXPECT_EQ(TokenizerKind(*hf), "hf");
  EXPECT_NE(TokenizerFingerprint(*hf), TokenizerFingerprint(ByteTokenizer()));
  EXPECT_EQ(TokenizerFingerprint(*hf), TokenizerFingerprint(*MakeHf(SmallTokenizerJson())));
}

TEST(TokenizerFingerprint, OneTokenSpelledDifferentlyChangesIt) {
  Json other = SmallTokenizerJson();
  other["model"]["vocab"].erase("abc");
  other["model"]["vocab"]["abd"] = 257;
  other["model"]["merges"] = Json::array({"a b", "ab d"});
  auto hf = MakeHf(SmallTokenizerJson());
  auto changed = MakeHf(other);
  ASSERT_NE(hf, nullptr);
  ASSERT_NE(changed, nullptr);
  EXPECT_NE(TokenizerFingerprint(*hf), TokenizerFingerprint(*changed));
  // A special token's spelling counts too.
  Json renamed = SmallTokenizerJson();
  renamed["added_tokens"][0]["content"] = "<|eot|>";
  auto respelled = MakeHf(renamed, R"({"eos_token": "<|eot|>"})");
  ASSERT_NE(respelled, nullptr);
  EXPECT_NE(TokenizerFingerprint(*hf), TokenizerFingerprint(*respelled));
}

TEST(TokenizerFingerprint, SpecialIdsChangeIt) {
  auto end = MakeHf(SmallTokenizerJson());
  auto abc = MakeHf(SmallTokenizerJson(), R"({"eos_token": "<|end|>", "pad_token": "abc"})");
  ASSERT_NE(end, nullptr);
  ASSERT_NE(abc, nullptr);
  EXPECT_NE(TokenizerFingerprint(*end), TokenizerFingerprint(*abc));
}

TEST(TokenizerFingerprint, ByteTokenizerAgreesWithItsTokenizerJson) {
  auto exported = HfTokenizer::FromJson(ByteTokenizerJson(), "byte.json", ByteTokenizerConfigJson());
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ(TokenizerFingerprint(**exported), TokenizerFingerprint(ByteTokenizer()));
}

TEST(TokenizerFingerprint, TokenBytesAreExact) {
  const ByteTokenizer byte;
  // Decode repairs a lone continuation byte to U+FFFD; TokenBytes keeps it, so 0x80 and 0x81 stay distinct.
  EXPECT_EQ(byte.TokenBytes(0x80), "\x80");
  EXPECT_EQ(byte.TokenBytes(ByteTokenizer::kEos), "<eos>");
  EXPECT_TRUE(byte.IsSpecial(ByteTokenizer::kEos));
  EXPECT_FALSE(byte.IsSpecial('a'));
  EXPECT_EQ(byte.TokenBytes(ByteTokenizer::kVocabSize), "");
  auto hf = MakeHf(SmallTokenizerJson());
  ASSERT_NE(hf, nullptr);
  EXPECT_EQ(hf->TokenBytes(0x81), "\x81");
  EXPECT_EQ(hf->TokenBytes(257), "abc");
  EXPECT_EQ(hf->TokenBytes(258), "<|end|>");
  EXPECT_TRUE(hf->IsSpecial(258));
  EXPECT_FALSE(hf->IsSpecial(257));
  EXPECT_EQ(hf->TokenBytes(-1), "");
}

}  // namespace
}  // namespace rlj
