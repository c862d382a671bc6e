// byte_tokenizer.cc: the byte-level tokenizer, and its tokenizer.json for Hugging Face.
#include "common/tokenizer/byte_tokenizer.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/byte_level.h"
#include "common/utf8.h"

namespace rlj {
namespace {

// The spellings of ids 256, 257, 258.
constexpr const char* kSpecialTokens[] = {"<bos>", "<eos>", "<pad>"};

}  // namespace

std::vector<int32_t> ByteTokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (unsigned char c : text) ids.push_back(static_cast<int32_t>(c));
  return ids;
}

absl::StatusOr<std::string> ByteTokenizer::Decode(std::span<const int32_t> ids) const {
  std::string text;
  text.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= kVocabSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " at position ", i, " is outside the vocabulary (0..", kVocabSize - 1, ")"));
    }
    if (id < 256) text.push_back(static_cast<char>(id));
  }
  return ToValidUtf8(text);
}

std::string ByteTokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || id >= kVocabSize) return "";
  return id < 256 ? std::string(1, static_cast<char>(id)) : kSpecialTokens[id - 256];
}

std::string ByteTokenizerJson() {
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  const auto& chars = ByteLevelChars();
  for (int b = 0; b < 256; ++b) vocab[chars[b]] = b;
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (const int32_t id : {ByteTokenizer::kBos, ByteTokenizer::kEos, ByteTokenizer::kPad}) {
    added.push_back({{"id", id},
                     {"content", kSpecialTokens[id - 256]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  nlohmann::ordered_json json;
  json["version"] = "1.0";
  json["truncation"] = nullptr;
  json["padding"] = nullptr;
  json["added_tokens"] = added;
  json["normalizer"] = nullptr;
  json["pre_tokenizer"] = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  json["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<bos>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair",
       {{{"SpecialToken", {{"id", "<bos>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
      {"special_tokens", {{"<bos>", {{"id", "<bos>"}, {"ids", {ByteTokenizer::kBos}}, {"tokens", {"<bos>"}}}}}}};
  json["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  json["model"] = {{"type", "BPE"},
                   {"dropout", nullptr},
                   {"unk_token", nullptr},
                   {"continuing_subword_prefix", nullptr},
                   {"end_of_word_suffix", nullptr},
                   {"fuse_unk", false},
                   {"byte_fallback", false},
                   {"ignore_merges", false},
                   {"vocab", vocab},
                   {"merges", nlohmann::ordered_json::array()}};
  return json.dump(2) + "\n";
}

std::string ByteTokenizerConfigJson(const std::string& chat_template_jinja) {
  nlohmann::ordered_json json;
  json["tokenizer_class"] = "PreTrainedTokenizerFast";
  json["bos_token"] = "<bos>";
  json["eos_token"] = "<eos>";
  json["pad_token"] = "<pad>";
  json["add_bos_token"] = true;
  json["clean_up_tokenization_spaces"] = false;
  json["model_max_length"] = 1000000;
  if (!chat_template_jinja.empty()) json["chat_template"] = chat_template_jinja;
  return json.dump(2) + "\n";
}

}  // namespace rlj
