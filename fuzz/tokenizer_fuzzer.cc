// tokenizer_fuzzer.cc: libFuzzer target for the tokenizers (byte, and the Hugging Face BPE tokenizers of
// tests/golden/tokenizers): encoding arbitrary bytes, decoding arbitrary ids (out of range included) and
// parsing arbitrary tokenizer.json text, with the round trip each tokenizer promises checked.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/file_util.h"
#include "common/log.h"
#include "common/tokenizer/byte_tokenizer.h"
#include "common/tokenizer/hf_tokenizer.h"
#include "common/tokenizer/unicode_nfc.h"
#include "common/utf8.h"

namespace {

// How decode(encode(text)) relates to text, for text without added-token spellings.
enum class RoundTrip {
  kExact,        // the bytes come back (as valid UTF-8: ill-formed bytes become U+FFFD)
  kPrefixSpace,  // ByteLevel add_prefix_space: a leading space is added when the text has none
  kNfc,          // the NFC normalizer: the NFC of the text comes back
};

struct LoadedTokenizer {
  std::string name;
  std::unique_ptr<rlj::Tokenizer> tokenizer;
  RoundTrip round_trip;
  std::vector<std::string> added_contents;  // texts that encode to an added token
};

std::vector<LoadedTokenizer>* g_tokenizers = nullptr;

[[noreturn]] void Fail(const std::string& what, std::string_view input) {
  std::fprintf(stderr, "tokenizer_fuzzer: %s\ninput (%zu bytes): ", what.c_str(), input.size());
  for (const unsigned char c : input) std::fprintf(stderr, "%02x", c);
  std::fprintf(stderr, "\n");
  std::abort();
}

std::vector<std::string> AddedContents(const std::string& path) {
  std::vector<std::string> contents;
  const absl::StatusOr<std::string> text = rlj::ReadFile(path);
  if (!text.ok()) return contents;
  const nlohmann::json json = nlohmann::json::parse(*text, nullptr, false);
  if (!json.is_object() || !json.contains("added_tokens")) return contents;
  for (const auto& token : json["added_tokens"]) contents.push_back(token["content"].get<std::string>());
  return contents;
}

void Load() {
  g_tokenizers = new std::vector<LoadedTokenizer>();
  g_tokenizers->push_back({"byte", std::make_unique<rlj::ByteTokenizer>(), RoundTrip::kExact, {}});
  const std::string golden = std::string(RLJ_SOURCE_DIR) + "/tests/golden/tokenizers/";
  for (const auto& [name, round_trip] :
       {std::pair{"gpt2-style", RoundTrip::kPrefixSpace}, std::pair{"llama3-trimmed", RoundTrip::kExact},
        std::pair{"qwen3-trimmed", RoundTrip::kNfc}}) {
    const std::string path = golden + name + "/tokenizer.json";
    auto tokenizer = rlj::HfTokenizer::FromFile(path);
    if (!tokenizer.ok()) {
      std::fprintf(stderr, "tokenizer_fuzzer: cannot load %s: %s\n", path.c_str(),
                   std::string(tokenizer.status().message()).c_str());
      std::abort();
    }
    g_tokenizers->push_back({name, std::move(tokenizer).value(), round_trip, AddedContents(path)});
  }
}

void CheckEncode(const LoadedTokenizer& loaded, std::string_view text) {
  const rlj::Tokenizer& tokenizer = *loaded.tokenizer;
  const std::vector<int32_t> ids = tokenizer.Encode(text);
  for (const int32_t id : ids) {
    if (id < 0 || id >= tokenizer.vocab_size()) Fail(loaded.name + ": Encode gave an id outside the vocabulary", text);
  }
  const absl::StatusOr<std::string> decoded = tokenizer.Decode(ids);
  if (!decoded.ok())
    Fail(loaded.name + ": Decode refused Encode's ids: " + std::string(decoded.status().message()), text);
  if (!rlj::IsValidUtf8(*decoded)) Fail(loaded.name + ": Decode gave ill-formed UTF-8", text);
  (void)tokenizer.EncodePrompt(text);

  for (const std::string& added : loaded.added_contents) {
    if (text.find(added) != std::string_view::npos) return;  // an added token: special ones do not decode
  }
  std::string expected;
  switch (loaded.round_trip) {
    case RoundTrip::kExact:
      expected = rlj::ToValidUtf8(text);
      break;
    case RoundTrip::kPrefixSpace:
      expected = rlj::ToValidUtf8(text.empty() || text[0] == ' ' ? std::string(text) : " " + std::string(text));
      break;
    case RoundTrip::kNfc:
      expected = rlj::ToValidUtf8(rlj::NormalizeNfc(text));
      break;
  }
  if (*decoded != expected) Fail(loaded.name + ": decode(encode(text)) is not the text: got '" + *decoded + "'", text);
}

void CheckDecode(const LoadedTokenizer& loaded, std::string_view bytes) {
  const rlj::Tokenizer& tokenizer = *loaded.tokenizer;
  std::vector<int32_t> ids(bytes.size() / 4);
  if (!ids.empty()) std::memcpy(ids.data(), bytes.data(), ids.size() * 4);
  bool in_range = true;
  for (int32_t& id : ids) {
    // Mostly ids near the vocabulary, so decoding gets past the range check; the rest as they come.
    if (id >= 0 && (id & 0x40000000) == 0) id %= tokenizer.vocab_size() + 2;
    in_range = in_range && id >= 0 && id < tokenizer.vocab_size();
  }
  const absl::StatusOr<std::string> decoded = tokenizer.Decode(ids);
  if (decoded.ok() != in_range) Fail(loaded.name + ": Decode's verdict on out-of-range ids is wrong", bytes);
  if (decoded.ok() && !rlj::IsValidUtf8(*decoded)) Fail(loaded.name + ": Decode gave ill-formed UTF-8", bytes);
}

void CheckTokenizerJson(std::string_view text) {
  auto tokenizer = rlj::HfTokenizer::FromJson(text, "<fuzz>");
  if (!tokenizer.ok()) return;
  const std::string sample = "Hello, world! 123 <|endoftext|> \xE2\x82\xAC\xFF";
  const std::vector<int32_t> ids = (*tokenizer)->Encode(sample);
  for (const int32_t id : ids) {
    if (id < 0 || id >= (*tokenizer)->vocab_size())
      Fail("a parsed tokenizer.json encodes outside its vocabulary", text);
  }
  (void)(*tokenizer)->Decode(ids);
  (void)(*tokenizer)->stop_ids();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)rlj::log::Init("fuzz", "off");
  Load();
  return 0;
}

// The first byte picks what the rest is: 0-3 text for tokenizer n, 4-7 little-endian int32 ids for
// tokenizer n-4, 8 a tokenizer.json.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const int mode = data[0] % 9;
  if (mode < 4) {
    CheckEncode((*g_tokenizers)[mode], rest);
  } else if (mode < 8) {
    CheckDecode((*g_tokenizers)[mode - 4], rest);
  } else {
    CheckTokenizerJson(rest);
  }
  return 0;
}
