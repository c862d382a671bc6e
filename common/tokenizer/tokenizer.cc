// tokenizer.cc: what every tokenizer shares (chat template, EncodePrompt) and the factory.
#include "common/tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "common/tokenizer/byte_tokenizer.h"
#include "common/tokenizer/hf_tokenizer.h"

namespace rlj {

absl::Status Tokenizer::SetChatTemplate(std::string_view spec) {
  RLJ_ASSIGN_OR_RETURN(chat_template_, ChatTemplate::Parse(spec));
  return absl::OkStatus();
}

std::vector<int32_t> Tokenizer::EncodePrompt(std::string_view prompt) const {
  const std::vector<int32_t> body = Encode(chat_template_.Render(prompt));
  std::vector<int32_t> ids = prefix_ids();
  if (!ids.empty() && body.size() >= ids.size() && std::equal(ids.begin(), ids.end(), body.begin())) ids.clear();
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

namespace {

absl::StatusOr<std::unique_ptr<Tokenizer>> Build(v1::TokenizerConfig::Kind kind, const std::string& path,
                                                 const std::string& chat_template) {
  std::unique_ptr<Tokenizer> tokenizer;
  if (kind == v1::TokenizerConfig::hf) {
    RLJ_ASSIGN_OR_RETURN(tokenizer, HfTokenizer::FromFile(path));
  } else {
    tokenizer = std::make_unique<ByteTokenizer>();
  }
  RLJ_RETURN_IF_ERROR(tokenizer->SetChatTemplate(chat_template));
  return tokenizer;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> MakeTokenizer(const v1::TokenizerConfig& config) {
  if (config.kind() == v1::TokenizerConfig::hf && config.path().empty()) {
    return absl::InvalidArgumentError(
        "tokenizer.path: required with tokenizer.kind: hf (or let it default to "
        "<model.init_checkpoint>/tokenizer.json)");
  }
  return Build(config.kind(), config.path(), config.chat_template());
}

absl::StatusOr<std::unique_ptr<Tokenizer>> MakeTokenizer(const v1::RunConfig& config) {
  v1::TokenizerConfig tokenizer = config.tokenizer();
  if (tokenizer.kind() == v1::TokenizerConfig::hf && tokenizer.path().empty() &&
      !config.model().init_checkpoint().empty()) {
    tokenizer.set_path(config.model().init_checkpoint() + "/tokenizer.json");
  }
  return MakeTokenizer(tokenizer);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path, std::string_view chat_template) {
  std::string file = path;
  std::error_code ec;
  if (path != "byte" && std::filesystem::is_directory(path, ec)) file = path + "/tokenizer.json";
  std::string spec(chat_template);
  if (spec == "auto") {
    spec.clear();
    const std::string config_path = (std::filesystem::path(file).parent_path() / "tokenizer_config.json").string();
    if (path != "byte" && std::filesystem::is_regular_file(config_path, ec)) {
      RLJ_ASSIGN_OR_RETURN(const std::string text, ReadFile(config_path));
      const nlohmann::json config = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (config.is_object() && config.contains("rlj_chat_template") && config["rlj_chat_template"].is_string()) {
        spec = config["rlj_chat_template"].get<std::string>();
      } else if (config.is_object() && config.contains("chat_template") && config["chat_template"].is_string()) {
        spec = ChatTemplate::PresetOfJinja(config["chat_template"].get<std::string>());
      }
    }
  }
  return Build(path == "byte" ? v1::TokenizerConfig::byte : v1::TokenizerConfig::hf, file, spec);
}

}  // namespace rlj
