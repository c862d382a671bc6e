// hf_tokenizer_test.cc: tokenizer.json features one by one (added tokens, NFC, split regex emulation, BPE
// merge order, chat templates and stop ids) and the refusal of what is not byte-level BPE.
#include "common/tokenizer/hf_tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/tokenizer/byte_level.h"
#include "common/tokenizer/byte_tokenizer.h"
#include "common/tokenizer/split_regex.h"
#include "common/tokenizer/unicode_nfc.h"
#include "common/utf8.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;
using Json = nlohmann::json;

const std::string kDir = std::string(RLJ_SOURCE_DIR) + "/tests/golden/tokenizers";

// A small byte-level BPE: the 256 bytes, merges "a b" → "ab", "ab c" → "abc", "Ġ t" → "Ġt", two added tokens.
Json TinyTokenizer() {
  Json vocab = Json::object();
  const auto& chars = ByteLevelChars();
  for (int b = 0; b < 256; ++b) vocab[chars[b]] = b;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  vocab["Ġt"] = 258;
  vocab["bc"] = 259;
  Json json;
  json["added_tokens"] = Json::array({
      {{"id", 300}, {"content", "<|end|>"}, {"special", true}},
      {{"id", 301}, {"content", "<tool>"}, {"special", false}},
      {{"id", 302}, {"content", "<|end|>x"}, {"special", true}},
  });
  json["normalizer"] = {{"type", "NFC"}};
  json["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  json["decoder"] = {{"type", "ByteLevel"}};
  json["model"] = {
      {"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array({"a b", Json::array({"ab", "c"}), "Ġ t", "b c"})}};
  return json;
}

std::unique_ptr<HfTokenizer> Make(const Json& json, const std::string& config = R"({"eos_token": "<|end|>"})") {
  auto tokenizer = HfTokenizer::FromJson(json.dump(), "tiny.json", config);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(*tokenizer) : nullptr;
}

TEST(HfTokenizer, MergesByRankAndAddedTokensLeftmostLongest) {
  auto tokenizer = Make(TinyTokenizer());
  ASSERT_NE(tokenizer, nullptr);
  // "abc": a+b (rank 0) before b+c (rank 3), then ab+c.
  EXPECT_EQ(tokenizer->Encode("abc"), (std::vector<int32_t>{257}));
  EXPECT_EQ(tokenizer->Encode("bc"), (std::vector<int32_t>{259}));
  // " t" is one pre-token; "<|end|>x" wins over "<|end|>" (longest), "<tool>" is matched too.
  EXPECT_EQ(tokenizer->Encode("ab t<|end|>x<tool><|end|>"), (std::vector<int32_t>{256, 258, 302, 301, 300}));
  // Special tokens are dropped when decoding; non-special added tokens are kept as text.
  EXPECT_EQ(tokenizer->Decode(std::vector<int32_t>{256, 258, 302, 301, 300}).value(), "ab t<tool>");
  EXPECT_EQ(tokenizer->vocab_size(), 303);
  EXPECT_EQ(tokenizer->eos_id(), 300);  // tokenizer_config.json's eos_token
  // Ids in a gap of the vocabulary decode to nothing (as in Hugging Face); beyond it they are errors.
  EXPECT_EQ(tokenizer->Decode(std::vector<int32_t>{280, 97}).value(), "a");
  EXPECT_TRUE(
      FailsWith(tokenizer->Decode(std::vector<int32_t>{303}), absl::StatusCode::kInvalidArgument, "token id 303"));
  // Bytes that are not UTF-8 become U+FFFD.
  EXPECT_EQ(tokenizer->Decode(std::vector<int32_t>{'o', 'k', 0xff}).value(), "ok\xef\xbf\xbd");
}

TEST(HfTokenizer, NfcNormalizerComposesBeforeMerging) {
  auto tokenizer = Make(TinyTokenizer());
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->Encode("e\xcc\x81"), tokenizer->Encode("\xc3\xa9"));  // e + U+0301 = é
  EXPECT_EQ(NormalizeNfc("e\u0301"), "\u00e9");
  EXPECT_EQ(NormalizeNfc("q\u0307\u0323"), "q\u0323\u0307");  // canonical order
  EXPECT_EQ(NormalizeNfc("\u1100\u1161\u11a8"), "\uac01");    // Hangul jamo → syllable
  EXPECT_EQ(NormalizeNfc("a\u0308\u0301"), "\u00e4\u0301");
  EXPECT_EQ(NormalizeNfc("\u212b"), "\u00c5");  // singleton: Angstrom sign → Å
  EXPECT_EQ(NormalizeNfc("e\u0301\u0301"), "\u00e9\u0301");
  EXPECT_EQ(NormalizeNfc("plain ascii"), "plain ascii");
  EXPECT_EQ(NormalizeNfc("bad \xff byte e\u0301"), "bad \xff byte \u00e9");
}

TEST(SplitRegex, EmulatesTheTrailingSpaceLookaheadAndUnicodeSpaces) {
  RLJ_ASSERT_OK_AND_ASSIGN(auto gpt2,
                           SplitRegex::Compile(R"('s|'t| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", "t"));
  auto pieces = [&](std::string_view text) {
    std::vector<std::string> out;
    for (const auto& [begin, end] : gpt2->Matches(text)) out.emplace_back(text.substr(begin, end - begin));
    return out;
  };
  EXPECT_EQ(pieces("a   b"), (std::vector<std::string>{"a", "  ", " b"}));  // the last space joins the word
  EXPECT_EQ(pieces("a b"), (std::vector<std::string>{"a", " b"}));
  EXPECT_EQ(pieces("a \tb"), (std::vector<std::string>{"a", " ", "\t", "b"}));  // only ' ' may lead a word
  EXPECT_EQ(pieces("x   "), (std::vector<std::string>{"x", "   "}));            // at the end: all of it
  EXPECT_EQ(pieces("x\u3000\u3000y"), (std::vector<std::string>{"x", "\u3000", "\u3000", "y"}));  // Unicode \s
  EXPECT_TRUE(FailsWith(SplitRegex::Compile("a(?=b)", "where"), absl::StatusCode::kInvalidArgument, "lookaround"));
}

TEST(HfTokenizer, ChatTemplatesAndStopIdsOnRealTokenizers) {
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<HfTokenizer> qwen,
                           HfTokenizer::FromFile(kDir + "/qwen3-trimmed/tokenizer.json"));
  const int32_t im_start = qwen->TokenId("<|im_start|>").value();
  const int32_t im_end = qwen->TokenId("<|im_end|>").value();
  const int32_t end_of_text = qwen->TokenId("<|endoftext|>").value();
  EXPECT_EQ(im_start, 151644);
  EXPECT_EQ(qwen->bos_id(), -1);      // Qwen has none
  EXPECT_EQ(qwen->eos_id(), im_end);  // tokenizer_config.json's eos_token
  EXPECT_EQ(qwen->pad_id(), end_of_text);
  RLJ_ASSERT_OK(qwen->SetChatTemplate("chatml"));
  const std::vector<int32_t> prompt = qwen->EncodePrompt("2+2?");
  EXPECT_EQ(prompt, qwen->Encode("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"));
  EXPECT_EQ(prompt.front(), im_start);
  EXPECT_EQ(std::count(prompt.begin(), prompt.end(), im_start), 2);
  EXPECT_EQ(qwen->eos_id(), im_end);
  EXPECT_TRUE(FailsWith(qwen->SetChatTemplate("llama3"), absl::StatusCode::kInvalidArgument, "<|eot_id|>"));

  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<HfTokenizer> llama,
                           HfTokenizer::FromFile(kDir + "/llama3-trimmed/tokenizer.json"));
  EXPECT_EQ(llama->bos_id(), 128000);
  EXPECT_EQ(llama->prefix_ids(), (std::vector<int32_t>{128000}));
  EXPECT_EQ(llama->EncodePrompt("Hi").front(), 128000);
  RLJ_ASSERT_OK(llama->SetChatTemplate("llama3"));
  const std::vector<int32_t> chat = llama->EncodePrompt("Hi");
  EXPECT_EQ(chat[0], 128000);
  EXPECT_NE(chat[1], 128000);          // the template's <|begin_of_text|> is not repeated
  EXPECT_EQ(llama->eos_id(), 128009);  // <|eot_id|>
  const std::vector<int32_t> stops = llama->stop_ids();
  EXPECT_EQ(stops.front(), 128009);
  for (const int32_t id : {128001, 128008}) EXPECT_NE(std::find(stops.begin(), stops.end(), id), stops.end()) << id;

  RLJ_ASSERT_OK(llama->SetChatTemplate("Q: {prompt}\nA:"));
  EXPECT_EQ(llama->EncodePrompt("x"), [&] {
    std::vector<int32_t> ids{128000};
    for (const int32_t id : llama->Encode("Q: x\nA:")) ids.push_back(id);
    return ids;
  }());
  EXPECT_EQ(llama->eos_id(), 128001);  // no end-of-turn token: the tokenizer's <eos>
  EXPECT_TRUE(
      FailsWith(llama->SetChatTemplate("no slot"), absl::StatusCode::kInvalidArgument, "tokenizer.chat_template"));
}

TEST(HfTokenizer, LoadTokenizerFindsTheTemplateACheckpointRecorded) {
  ::rlj::testing::ScratchDir dir;
  RLJ_ASSERT_OK(WriteFileAtomically(dir.file("tokenizer.json"), ByteTokenizerJson()));
  RLJ_ASSERT_OK(WriteFileAtomically(dir.file("tokenizer_config.json"),
                                    R"({"eos_token": "<eos>", "rlj_chat_template": "plain"})"));
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Tokenizer> tokenizer, LoadTokenizer(dir.path(), "auto"));
  EXPECT_EQ(tokenizer->chat_template().spec(), "plain");
  ByteTokenizer bytes;
  EXPECT_EQ(tokenizer->EncodePrompt("1+1"), bytes.EncodePrompt("User: 1+1\nAssistant:"));
  // A Jinja chat_template recognised as a preset (the tokens it needs must exist: Qwen's do, the byte one's not).
  RLJ_ASSERT_OK(WriteFileAtomically(dir.file("tokenizer_config.json"), R"({"chat_template": "{{ '<|im_start|>' }}"})"));
  EXPECT_TRUE(FailsWith(LoadTokenizer(dir.path(), "auto"), absl::StatusCode::kInvalidArgument,
                        "chatml needs the token <|im_end|>"));
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string qwen_json, ReadFile(kDir + "/qwen3-trimmed/tokenizer.json"));
  RLJ_ASSERT_OK(WriteFileAtomically(dir.file("tokenizer.json"), qwen_json));
  RLJ_ASSERT_OK(WriteFileAtomically(dir.file("tokenizer_config.json"),
                                    R"({"eos_token": "<|im_end|>", "chat_template": "{{ '<|im_start|>' }}"})"));
  RLJ_ASSERT_OK_AND_ASSIGN(tokenizer, LoadTokenizer(dir.path(), "auto"));
  EXPECT_EQ(tokenizer->chat_template().spec(), "chatml");
  EXPECT_EQ(tokenizer->EncodePrompt("hi").front(), 151644);  // <|im_start|>
  RLJ_ASSERT_OK_AND_ASSIGN(tokenizer, LoadTokenizer("byte", ""));
  EXPECT_EQ(tokenizer->EncodePrompt("a"), bytes.EncodePrompt("a"));
}

TEST(HfTokenizer, RefusesWhatIsNotByteLevelBpeNamingTheField) {
  const auto code = absl::StatusCode::kInvalidArgument;
  auto with = [](auto change) {
    Json json = TinyTokenizer();
    change(json);
    return HfTokenizer::FromJson(json.dump(), "t.json");
  };
  EXPECT_TRUE(FailsWith(with([](Json& j) { j["model"]["type"] = "WordPiece"; }), code, "model.type: is 'WordPiece'"));
  EXPECT_TRUE(FailsWith(with([](Json& j) { j["model"]["byte_fallback"] = true; }), code, "model.byte_fallback"));
  EXPECT_TRUE(FailsWith(with([](Json& j) {
                          j["normalizer"] = {{"type", "Lowercase"}};
                        }),
                        code, "normalizer: type 'Lowercase'"));
  EXPECT_TRUE(FailsWith(with([](Json& j) {
                          j["decoder"] = {{"type", "Metaspace"}};
                        }),
                        code, "decoder: type 'Metaspace'"));
  EXPECT_TRUE(FailsWith(with([](Json& j) {
                          j["pre_tokenizer"] = {{"type", "Whitespace"}};
                        }),
                        code, "pre_tokenizer[0] (Whitespace)"));
  EXPECT_TRUE(FailsWith(with([](Json& j) { j["pre_tokenizer"] = nullptr; }), code, "no ByteLevel step"));
  EXPECT_TRUE(FailsWith(with([](Json& j) { j["model"]["vocab"].erase("a"); }), code, "no token for byte 0x61"));
  EXPECT_TRUE(FailsWith(with([](Json& j) { j["model"]["merges"].push_back("x yz"); }), code, "model.merges: entry 4"));
  EXPECT_TRUE(FailsWith(with([](Json& j) {
                          j["post_processor"] = {{"type", "BertProcessing"}};
                        }),
                        code, "BertProcessing"));
  EXPECT_TRUE(FailsWith(HfTokenizer::FromJson("{nope", "t.json"), code, "t.json: not valid JSON"));
  EXPECT_TRUE(FailsWith(HfTokenizer::FromJson(TinyTokenizer().dump(), "t.json", R"({"eos_token": "<nope>"})"), code,
                        "eos_token: '<nope>' is not a token"));
}

}  // namespace
}  // namespace rlj
