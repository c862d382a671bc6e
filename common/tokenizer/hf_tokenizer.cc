// hf_tokenizer.cc: parsing tokenizer.json (refusing what is not byte-level BPE), encoding (added tokens, NFC,
// pre-tokenizer splits, heap-ordered BPE merges) and ByteLevel decoding.
#include "common/tokenizer/hf_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <queue>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "common/tokenizer/byte_level.h"
#include "common/tokenizer/split_regex.h"
#include "common/tokenizer/unicode_nfc.h"
#include "common/utf8.h"

namespace rlj {
namespace {

// GPT-2's pattern, which the ByteLevel pre-tokenizer applies when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

using Json = nlohmann::json;

// Ids must lie below this: the tables are indexed by id, so one huge id in a file would make them gigabytes.
// The largest real vocabularies have about 260 000 tokens.
constexpr int64_t kMaxTokenIds = int64_t{1} << 22;

absl::Status Bad(std::string_view source, std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": ", AsAbsl(field), ": ", AsAbsl(what)));
}

std::string TypeOf(const Json& node) {
  const auto it = node.find("type");
  return it != node.end() && it->is_string() ? it->get<std::string>() : "";
}

bool BoolOr(const Json& node, const char* key, bool fallback) {
  const auto it = node.find(key);
  return it != node.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

bool IsSpace(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool IsWordByte(unsigned char c) { return std::isalnum(c) != 0 || c == '_' || c >= 0x80; }

// A token named in tokenizer_config.json: a string, {"content": ...}, or null.
std::string TokenContent(const Json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return "";
}

// [begin, end) pieces of `length` bytes given the matches, per Hugging Face's SplitDelimiterBehavior.
template <typename Behavior>
std::vector<std::pair<size_t, size_t>> SplitPieces(const std::vector<std::pair<size_t, size_t>>& matches, size_t length,
                                                   Behavior behavior) {
  std::vector<std::tuple<size_t, size_t, bool>> parts;  // the whole text as gaps and matches
  size_t pos = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > pos) parts.emplace_back(pos, begin, false);
    parts.emplace_back(begin, end, true);
    pos = end;
  }
  if (pos < length) parts.emplace_back(pos, length, false);
  std::vector<std::pair<size_t, size_t>> pieces;
  using B = decltype(behavior);
  if (behavior == B::kIsolated || behavior == B::kRemoved) {
    for (const auto& [begin, end, is_match] : parts) {
      if (!(is_match && behavior == B::kRemoved)) pieces.emplace_back(begin, end);
    }
  } else if (behavior == B::kMergedWithPrevious || behavior == B::kContiguous) {
    bool previous_match = false;
    for (const auto& [begin, end, is_match] : parts) {
      const bool merge = behavior == B::kContiguous ? is_match == previous_match : is_match && !previous_match;
      if (merge && !pieces.empty()) {
        pieces.back().second = end;
      } else {
        pieces.emplace_back(begin, end);
      }
      previous_match = is_match;
    }
  } else {  // kMergedWithNext
    bool previous_match = false;
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
      const auto& [begin, end, is_match] = *it;
      if (is_match && !previous_match && !pieces.empty()) {
        pieces.back().first = begin;
      } else {
        pieces.emplace_back(begin, end);
      }
      previous_match = is_match;
    }
    std::reverse(pieces.begin(), pieces.end());
  }
  return pieces;
}

absl::StatusOr<std::string> ReadOptional(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::string();
  return ReadFile(path.string());
}

}  // namespace

HfTokenizer::HfTokenizer() = default;
HfTokenizer::~HfTokenizer() = default;

absl::StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::FromFile(const std::string& path) {
  RLJ_ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  RLJ_ASSIGN_OR_RETURN(const std::string config, ReadOptional(dir / "tokenizer_config.json"));
  RLJ_ASSIGN_OR_RETURN(const std::string generation, ReadOptional(dir / "generation_config.json"));
  return FromJson(text, path, config, generation);
}

absl::StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::FromJson(std::string_view tokenizer_json,
                                                                   std::string_view source,
                                                                   std::string_view tokenizer_config_json,
                                                                   std::string_view generation_config_json) {
  std::unique_ptr<HfTokenizer> tokenizer(new HfTokenizer());
  try {
    RLJ_RETURN_IF_ERROR(tokenizer->Parse(tokenizer_json, source, tokenizer_config_json, generation_config_json));
  } catch (const Json::exception& error) {  // a field of an unexpected JSON type that no check above named
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": unexpected JSON: ", error.what()));
  }
  return tokenizer;
}

absl::Status HfTokenizer::Parse(std::string_view text, std::string_view source, std::string_view config_text,
                                std::string_view generation_text) {
  Json root;
  try {
    root = Json::parse(text);
  } catch (const Json::exception& error) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": not valid JSON: ", error.what()));
  }
  if (!root.is_object()) return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": not a JSON object"));

  // The model: byte-level BPE.
  const Json& model = root.contains("model") ? root["model"] : Json();
  if (!model.is_object()) return Bad(source, "model", "missing");
  if (TypeOf(model) != "BPE" && !(TypeOf(model).empty() && model.contains("merges"))) {
    return Bad(source, "model.type", absl::StrCat("is '", TypeOf(model), "'; only BPE is supported"));
  }
  if (BoolOr(model, "byte_fallback", false)) {
    return Bad(source, "model.byte_fallback", "is true (a SentencePiece-style BPE); only byte-level BPE is supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto it = model.find(key);
    if (it != model.end() && it->is_string() && !it->get<std::string>().empty()) {
      return Bad(source, absl::StrCat("model.", key), "is set; only byte-level BPE without affixes is supported");
    }
  }
  if (const auto dropout = model.find("dropout");
      dropout != model.end() && dropout->is_number() && dropout->get<double>() > 0) {
    return Bad(source, "model.dropout", "must be null or 0 (BPE dropout is for training)");
  }
  ignore_merges_ = BoolOr(model, "ignore_merges", false);
  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) return Bad(source, "model.vocab", "must be an object of token → id");
  int64_t max_id = -1;
  vocab_.reserve(vocab->size());
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxTokenIds) {
      return Bad(source, "model.vocab",
                 absl::StrCat("id of '", token, "' must be an integer in [0, ", kMaxTokenIds, ")"));
    }
    vocab_[token] = static_cast<int32_t>(id.get<int64_t>());
    max_id = std::max(max_id, id.get<int64_t>());
  }
  const auto added_tokens = root.find("added_tokens");
  if (added_tokens != root.end() && !added_tokens->is_null()) {
    if (!added_tokens->is_array()) return Bad(source, "added_tokens", "must be an array");
    for (const Json& entry : *added_tokens) {
      if (!entry.is_object() || !entry.contains("id") || !entry["id"].is_number_integer() ||
          !entry.contains("content") || !entry["content"].is_string() || entry["content"].get<std::string>().empty() ||
          entry["id"].get<int64_t>() < 0 || entry["id"].get<int64_t>() >= kMaxTokenIds) {
        return Bad(source, "added_tokens",
                   absl::StrCat("every entry needs an integer id in [0, ", kMaxTokenIds, ") and a non-empty content"));
      }
      AddedToken token{entry["content"].get<std::string>(), static_cast<int32_t>(entry["id"].get<int64_t>()),
                       BoolOr(entry, "special", false),     BoolOr(entry, "lstrip", false),
                       BoolOr(entry, "rstrip", false),      BoolOr(entry, "single_word", false)};
      max_id = std::max<int64_t>(max_id, token.id);
      added_by_content_[token.content] = token.id;
      added_.push_back(std::move(token));
    }
  }
  std::stable_sort(added_.begin(), added_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  for (size_t i = 0; i < added_.size(); ++i) {
    added_by_first_byte_[static_cast<unsigned char>(added_[i].content[0])].push_back(i);
  }
  token_of_id_.assign(static_cast<size_t>(max_id + 1), "");
  special_.assign(token_of_id_.size(), false);
  for (const auto& [token, id] : vocab_) token_of_id_[static_cast<size_t>(id)] = token;
  for (const AddedToken& token : added_) {
    token_of_id_[static_cast<size_t>(token.id)] = token.content;
    special_[static_cast<size_t>(token.id)] = token.special;
  }
  // The ByteLevel decoder: a token whose characters all stand for bytes becomes those bytes, any other token
  // its own UTF-8.
  bytes_of_id_.resize(token_of_id_.size());
  for (size_t id = 0; id < token_of_id_.size(); ++id) {
    const std::string& token = token_of_id_[id];
    std::string bytes;
    bool mapped = true;
    for (size_t i = 0; i < token.size() && mapped;) {
      const auto b0 = static_cast<unsigned char>(token[i]);
      char32_t cp = b0;
      size_t length = 1;
      if (b0 >= 0xC0 && b0 < 0xE0 && i + 1 < token.size()) {
        cp = ((b0 & 0x1F) << 6) | (static_cast<unsigned char>(token[i + 1]) & 0x3F);
        length = 2;
      } else if (b0 >= 0x80) {
        mapped = false;  // three- and four-byte characters never stand for bytes
        break;
      }
      const int byte = ByteOfByteLevelChar(cp);
      if (byte < 0) {
        mapped = false;
        break;
      }
      bytes.push_back(static_cast<char>(byte));
      i += length;
    }
    bytes_of_id_[id] = mapped ? bytes : token;
  }
  const auto& byte_chars = ByteLevelChars();
  for (int b = 0; b < 256; ++b) {
    const auto it = vocab_.find(byte_chars[b]);
    if (it == vocab_.end()) {
      return Bad(source, "model.vocab",
                 absl::StrCat("has no token for byte 0x", absl::Hex(b, absl::kZeroPad2), " ('", byte_chars[b],
                              "'): not a byte-level BPE vocabulary (GPT-2, Llama 3, Qwen2 style)"));
    }
    id_of_byte_[b] = it->second;
  }
  const auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) return Bad(source, "model.merges", "must be an array");
  merges_.reserve(merges->size());
  int32_t rank = 0;
  for (const Json& merge : *merges) {
    std::string left, right;
    if (merge.is_string()) {  // "left right"
      const std::string pair = merge.get<std::string>();
      const size_t space = pair.find(' ', 1);
      if (space == std::string::npos)
        return Bad(source, "model.merges", absl::StrCat("entry ", rank, " '", pair, "' is not 'a b'"));
      left = pair.substr(0, space);
      right = pair.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      return Bad(source, "model.merges", absl::StrCat("entry ", rank, " is neither \"a b\" nor [\"a\", \"b\"]"));
    }
    const auto l = vocab_.find(left), r = vocab_.find(right), m = vocab_.find(left + right);
    if (l == vocab_.end() || r == vocab_.end() || m == vocab_.end()) {
      return Bad(
          source, "model.merges",
          absl::StrCat("entry ", rank, " ('", left, "', '", right, "') uses or makes a token not in the vocabulary"));
    }
    const uint64_t key = (static_cast<uint64_t>(l->second) << 32) | static_cast<uint32_t>(r->second);
    merges_.insert_or_assign(key,
                             std::pair{rank, m->second});  // a repeated pair: the last rank wins, as in Hugging Face
    ++rank;
  }

  // Normalizer: none or NFC.
  std::vector<const Json*> normalizers;
  if (const auto it = root.find("normalizer"); it != root.end() && !it->is_null()) {
    if (TypeOf(*it) == "Sequence") {
      for (const Json& n : (*it)["normalizers"]) normalizers.push_back(&n);
    } else {
      normalizers.push_back(&*it);
    }
  }
  for (const Json* n : normalizers) {
    if (TypeOf(*n) != "NFC")
      return Bad(source, "normalizer", absl::StrCat("type '", TypeOf(*n), "' is not supported (only NFC)"));
    nfc_ = true;
  }

  // Pre-tokenizers: Split, ByteLevel, Digits, in a Sequence or alone; ByteLevel must come last.
  std::vector<const Json*> steps;
  if (const auto it = root.find("pre_tokenizer"); it != root.end() && !it->is_null()) {
    if (TypeOf(*it) == "Sequence") {
      for (const Json& p : (*it)["pretokenizers"]) steps.push_back(&p);
    } else {
      steps.push_back(&*it);
    }
  }
  bool byte_level = false;
  for (size_t i = 0; i < steps.size(); ++i) {
    const Json& step = *steps[i];
    const std::string type = TypeOf(step);
    const std::string field = absl::StrCat("pre_tokenizer[", i, "] (", type, ")");
    PreTokenizerStep parsed;
    if (byte_level) return Bad(source, field, "follows ByteLevel, which must be the last pre-tokenizer");
    if (type == "ByteLevel") {
      byte_level = true;
      parsed.add_prefix_space = BoolOr(step, "add_prefix_space", true);
      if (BoolOr(step, "use_regex", true)) {
        RLJ_ASSIGN_OR_RETURN(parsed.regex,
                             SplitRegex::Compile(kGpt2Pattern, absl::StrCat(AsAbsl(source), ": ", field)));
      }
    } else if (type == "Split") {
      if (BoolOr(step, "invert", false)) return Bad(source, field, "invert: true is not supported");
      const Json& pattern = step.contains("pattern") ? step["pattern"] : Json();
      std::string regex;
      if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
        regex = pattern["Regex"].get<std::string>();
      } else if (pattern.contains("String") && pattern["String"].is_string()) {
        regex = QuoteRegex(pattern["String"].get<std::string>());
      } else {
        return Bad(source, field, "pattern must be {\"Regex\": ...} or {\"String\": ...}");
      }
      RLJ_ASSIGN_OR_RETURN(parsed.regex, SplitRegex::Compile(regex, absl::StrCat(AsAbsl(source), ": ", field)));
      const auto behavior_field = step.find("behavior");
      if (behavior_field != step.end() && !behavior_field->is_string())
        return Bad(source, field, "behavior must be a string");
      const std::string behavior = behavior_field != step.end() ? behavior_field->get<std::string>() : "Isolated";
      if (behavior == "Isolated") {
        parsed.behavior = SplitBehavior::kIsolated;
      } else if (behavior == "Removed") {
        parsed.behavior = SplitBehavior::kRemoved;
      } else if (behavior == "MergedWithPrevious") {
        parsed.behavior = SplitBehavior::kMergedWithPrevious;
      } else if (behavior == "MergedWithNext") {
        parsed.behavior = SplitBehavior::kMergedWithNext;
      } else if (behavior == "Contiguous") {
        parsed.behavior = SplitBehavior::kContiguous;
      } else {
        return Bad(source, field, absl::StrCat("behavior '", behavior, "' is not supported"));
      }
    } else if (type == "Digits") {
      RLJ_ASSIGN_OR_RETURN(parsed.regex,
                           SplitRegex::Compile(BoolOr(step, "individual_digits", false) ? "[0-9]" : "[0-9]+",
                                               absl::StrCat(AsAbsl(source), ": ", field)));
    } else {
      return Bad(source, field, "is not supported (Split, ByteLevel and Digits are)");
    }
    pre_tokenizers_.push_back(std::move(parsed));
  }
  if (!byte_level) return Bad(source, "pre_tokenizer", "has no ByteLevel step: not a byte-level BPE tokenizer");

  // Decoder: ByteLevel.
  if (const auto it = root.find("decoder"); it != root.end() && !it->is_null()) {
    std::vector<const Json*> decoders;
    if (TypeOf(*it) == "Sequence") {
      for (const Json& d : (*it)["decoders"]) decoders.push_back(&d);
    } else {
      decoders.push_back(&*it);
    }
    for (const Json* d : decoders) {
      if (TypeOf(*d) != "ByteLevel")
        return Bad(source, "decoder", absl::StrCat("type '", TypeOf(*d), "' is not supported (only ByteLevel)"));
    }
  }

  // Post-processor: ByteLevel (no ids) and TemplateProcessing (the special tokens before $A).
  if (const auto it = root.find("post_processor"); it != root.end() && !it->is_null()) {
    std::vector<const Json*> processors;
    if (TypeOf(*it) == "Sequence") {
      for (const Json& p : (*it)["processors"]) processors.push_back(&p);
    } else {
      processors.push_back(&*it);
    }
    for (const Json* p : processors) {
      const std::string type = TypeOf(*p);
      if (type == "ByteLevel") continue;
      if (type != "TemplateProcessing") {
        return Bad(source, "post_processor",
                   absl::StrCat("type '", type, "' is not supported (ByteLevel, TemplateProcessing)"));
      }
      if (!p->contains("single") || !(*p)["single"].is_array()) return Bad(source, "post_processor.single", "missing");
      for (const Json& item : (*p)["single"]) {
        if (item.contains("Sequence")) break;  // what follows $A is not a prompt's business
        if (!item.contains("SpecialToken"))
          return Bad(source, "post_processor.single", "has an item that is neither SpecialToken nor Sequence");
        const Json& special_token = item["SpecialToken"];
        if (!special_token.is_object() || !special_token.contains("id") || !special_token["id"].is_string()) {
          return Bad(source, "post_processor.single", "has a SpecialToken without a string id");
        }
        const std::string name = special_token["id"].get<std::string>();
        const Json& specials = p->contains("special_tokens") ? (*p)["special_tokens"] : Json();
        if (!specials.contains(name) || !specials[name].contains("ids") || !specials[name]["ids"].is_array()) {
          return Bad(source, "post_processor.special_tokens", absl::StrCat("has no ids for '", name, "'"));
        }
        for (const Json& id : specials[name]["ids"]) {
          if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > max_id) {
            return Bad(source, "post_processor.special_tokens",
                       absl::StrCat("an id of '", name, "' is not a token id of this vocabulary (0..", max_id, ")"));
          }
          prefix_ids_.push_back(static_cast<int32_t>(id.get<int64_t>()));
        }
      }
    }
  }

  // <bos>/<eos>/<pad>: tokenizer_config.json, generation_config.json, the post-processor, the usual names.
  Json config = Json::object(), generation = Json::object();
  try {
    if (!config_text.empty()) config = Json::parse(config_text);
    if (!generation_text.empty()) generation = Json::parse(generation_text);
  } catch (const Json::exception& error) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": tokenizer_config.json or generation_config.json ",
                                                   "beside it is not valid JSON: ", error.what()));
  }
  auto resolve = [&](const char* key, int32_t* target) -> absl::Status {
    const std::string content = config.is_object() ? TokenContent(config, key) : "";
    if (content.empty()) return absl::OkStatus();
    const std::optional<int32_t> id = TokenId(content);
    if (!id)
      return Bad(source, absl::StrCat("tokenizer_config.json ", key), absl::StrCat("'", content, "' is not a token"));
    *target = *id;
    return absl::OkStatus();
  };
  RLJ_RETURN_IF_ERROR(resolve("bos_token", &bos_id_));
  RLJ_RETURN_IF_ERROR(resolve("eos_token", &eos_id_));
  RLJ_RETURN_IF_ERROR(resolve("pad_token", &pad_id_));
  if (generation.is_object() && generation.contains("eos_token_id")) {
    const Json& eos = generation["eos_token_id"];
    auto add_stop_id = [&](const Json& id) {  // ids outside the vocabulary are ignored, before any narrowing
      if (id.is_number_unsigned()
              ? id.get<uint64_t>() < static_cast<uint64_t>(vocab_size())
              : id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < vocab_size()) {
        extra_stop_ids_.push_back(static_cast<int32_t>(id.get<int64_t>()));
      }
    };
    if (eos.is_array()) {
      for (const Json& id : eos) add_stop_id(id);
    } else {
      add_stop_id(eos);
    }
  }
  if (bos_id_ < 0 && !prefix_ids_.empty()) bos_id_ = prefix_ids_.front();
  if (eos_id_ < 0 && !extra_stop_ids_.empty()) eos_id_ = extra_stop_ids_.front();
  for (const char* name : {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"}) {
    if (eos_id_ < 0) eos_id_ = TokenId(name).value_or(-1);
  }
  if (eos_id_ < 0) {
    return Bad(source, "eos",
               "no end-of-sequence token: give tokenizer_config.json with eos_token beside tokenizer.json");
  }
  return absl::OkStatus();
}

std::optional<int32_t> HfTokenizer::TokenId(std::string_view token) const {
  if (const auto it = added_by_content_.find(std::string(token)); it != added_by_content_.end()) return it->second;
  if (const auto it = vocab_.find(ToByteLevel(token)); it != vocab_.end()) return it->second;
  return std::nullopt;
}

std::vector<int32_t> HfTokenizer::stop_ids() const {
  std::vector<int32_t> ids{eos_id()};
  for (const int32_t id : {eos_id_}) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  for (const int32_t id : extra_stop_ids_) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  return ids;
}

absl::Status HfTokenizer::SetChatTemplate(std::string_view spec) {
  RLJ_ASSIGN_OR_RETURN(ChatTemplate parsed, ChatTemplate::Parse(spec));
  int32_t end_of_turn = -1;
  if (!parsed.end_of_turn().empty()) {
    const auto it = added_by_content_.find(parsed.end_of_turn());
    if (it == added_by_content_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.chat_template: ", parsed.spec(), " needs the token ",
                                                     parsed.end_of_turn(), ", which this tokenizer does not have"));
    }
    end_of_turn = it->second;
  }
  chat_template_ = std::move(parsed);
  end_of_turn_id_ = end_of_turn;
  return absl::OkStatus();
}

std::vector<int32_t> HfTokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> ids;
  size_t segment_start = 0;  // start of the ordinary text before the next added token
  size_t i = 0;
  while (i < text.size()) {
    const AddedToken* found = nullptr;
    for (const size_t index : added_by_first_byte_[static_cast<unsigned char>(text[i])]) {
      const AddedToken& token = added_[index];
      if (text.compare(i, token.content.size(), token.content) != 0) continue;
      if (token.single_word) {
        const size_t end = i + token.content.size();
        if ((i > 0 && IsWordByte(static_cast<unsigned char>(text[i - 1]))) ||
            (end < text.size() && IsWordByte(static_cast<unsigned char>(text[end])))) {
          continue;
        }
      }
      found = &token;  // the longest at the leftmost position
      break;
    }
    if (found == nullptr) {
      ++i;
      continue;
    }
    size_t begin = i, end = i + found->content.size();
    if (found->lstrip) {
      while (begin > segment_start && IsSpace(static_cast<unsigned char>(text[begin - 1]))) --begin;
    }
    if (found->rstrip) {
      while (end < text.size() && IsSpace(static_cast<unsigned char>(text[end]))) ++end;
    }
    EncodeOrdinary(text.substr(segment_start, begin - segment_start), ids);
    ids.push_back(found->id);
    segment_start = i = end;
  }
  EncodeOrdinary(text.substr(segment_start), ids);
  return ids;
}

void HfTokenizer::EncodeOrdinary(std::string_view raw, std::vector<int32_t>& ids) const {
  if (raw.empty()) return;
  const std::string text = nfc_ ? NormalizeNfc(raw) : std::string(raw);
  std::vector<std::string> pieces{text};
  for (const PreTokenizerStep& step : pre_tokenizers_) {
    std::vector<std::string> next;
    for (std::string& piece : pieces) {
      if (step.add_prefix_space && !piece.starts_with(' ')) {
        std::string prefixed(1, ' ');
        prefixed += piece;
        piece = std::move(prefixed);
      }
      if (step.regex == nullptr) {
        next.push_back(std::move(piece));
        continue;
      }
      for (const auto& [begin, end] : SplitPieces(step.regex->Matches(piece), piece.size(), step.behavior)) {
        if (end > begin) next.push_back(piece.substr(begin, end - begin));
      }
    }
    pieces = std::move(next);
  }
  for (const std::string& piece : pieces) EncodeWord(piece, ids);
}

// Byte-pair merges on one pre-token, lowest rank first (leftmost among equal ranks), as Hugging Face's
// Word::merge_all.
void HfTokenizer::EncodeWord(std::string_view bytes, std::vector<int32_t>& ids) const {
  if (bytes.empty()) return;
  if (ignore_merges_) {
    if (const auto it = vocab_.find(ToByteLevel(bytes)); it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  struct Symbol {
    int32_t id;
    int prev, next;
    bool alive;
  };
  const int n = static_cast<int>(bytes.size());
  std::vector<Symbol> symbols(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    symbols[i] = {id_of_byte_[static_cast<unsigned char>(bytes[i])], i - 1, i + 1 < n ? i + 1 : -1, true};
  using Candidate = std::tuple<int32_t, int, int32_t>;  // rank, position, merged id
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push_pair = [&](int left) {
    const int right = symbols[left].next;
    if (right < 0) return;
    const uint64_t key = (static_cast<uint64_t>(symbols[left].id) << 32) | static_cast<uint32_t>(symbols[right].id);
    if (const auto it = merges_.find(key); it != merges_.end())
      queue.emplace(it->second.first, left, it->second.second);
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);
  while (!queue.empty()) {
    const auto [rank, left, merged] = queue.top();
    queue.pop();
    Symbol& symbol = symbols[left];
    if (!symbol.alive || symbol.next < 0) continue;
    const int right = symbol.next;
    const uint64_t key = (static_cast<uint64_t>(symbol.id) << 32) | static_cast<uint32_t>(symbols[right].id);
    const auto it = merges_.find(key);
    if (it == merges_.end() || it->second.second != merged) continue;  // stale: a neighbour changed
    symbol.id = merged;
    symbols[right].alive = false;
    symbol.next = symbols[right].next;
    if (symbol.next >= 0) symbols[symbol.next].prev = left;
    if (symbol.prev >= 0) push_pair(symbol.prev);
    push_pair(left);
  }
  for (int i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

absl::StatusOr<std::string> HfTokenizer::Decode(std::span<const int32_t> ids) const {
  std::string bytes;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " at position ", i, " is outside the vocabulary (0..", vocab_size() - 1, ")"));
    }
    if (special_[static_cast<size_t>(id)]) continue;
    bytes += bytes_of_id_[static_cast<size_t>(id)];
  }
  return ToValidUtf8(bytes);
}

}  // namespace rlj
