// hf_export.cc: ExportHuggingFaceModel: checkpoint → plain Hugging Face directory (config.json, model.safetensors,
// tokenizer files, generation_config.json).
#include "model/checkpoint/hf_export.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "common/tokenizer/byte_tokenizer.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/tokenizer.h"
#include "model/checkpoint/checkpoint.h"
#include "model/tensor/torch_util.h"

namespace rlj {
namespace {

absl::StatusOr<c10::ScalarType> ExportDtype(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float16") return at::kHalf;
  return absl::InvalidArgumentError(absl::StrCat("dtype '", name, "': must be float32, bfloat16 or float16"));
}

bool IsFile(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

// The directory holding the tokenizer files to copy ("" = write the byte tokenizer's).
absl::StatusOr<std::string> TokenizerSourceDir(const std::string& checkpoint_dir, const std::string& tokenizer) {
  if (tokenizer.empty()) return IsFile(checkpoint_dir + "/tokenizer.json") ? checkpoint_dir : std::string();
  if (tokenizer == "byte") return std::string();
  std::error_code ec;
  if (std::filesystem::is_directory(tokenizer, ec)) {
    if (!IsFile(tokenizer + "/tokenizer.json"))
      return absl::NotFoundError(absl::StrCat(tokenizer, " has no tokenizer.json"));
    return tokenizer;
  }
  if (!IsFile(tokenizer)) return absl::NotFoundError(absl::StrCat("tokenizer ", tokenizer, " does not exist"));
  return std::filesystem::path(tokenizer).parent_path().string();
}

// tokenizer_config.json with the Jinja `chat_template` Hugging Face's apply_chat_template and vLLM's chat endpoint
// read, when it names only rlj's template (rlj_chat_template) and no Jinja one; otherwise as it is.
absl::StatusOr<std::string> WithJinjaChatTemplate(const std::string& content, bool adds_bos) {
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(content, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object() || config.contains("chat_template") || !config.contains("rlj_chat_template") ||
      !config["rlj_chat_template"].is_string()) {
    return content;
  }
  RLJ_ASSIGN_OR_RETURN(const ChatTemplate chat_template,
                       ChatTemplate::Parse(config["rlj_chat_template"].get<std::string>(), "rlj_chat_template"));
  if (chat_template.empty()) return content;
  // rlj puts <bos> before the rendered prompt when the tokenizer adds one; Hugging Face's templates say so
  // themselves (apply_chat_template adds no special tokens).
  const bool bos_first = adds_bos && chat_template.spec() != "llama3";  // llama3's text holds <|begin_of_text|>
  config["chat_template"] = (bos_first ? "{{ bos_token }}" : "") + chat_template.ToJinja();
  return config.dump(2) + "\n";
}

}  // namespace

absl::Status ExportHuggingFaceModel(const std::string& checkpoint_dir, const std::string& out_dir,
                                    const HfExportOptions& options) {
  RLJ_ASSIGN_OR_RETURN(const c10::ScalarType dtype, ExportDtype(options.dtype));
  if (IsFile(out_dir + "/config.json")) {
    return absl::AlreadyExistsError(absl::StrCat(out_dir, " already holds a model (config.json)"));
  }
  RLJ_ASSIGN_OR_RETURN(LoadedCheckpoint loaded, LoadCheckpoint(checkpoint_dir));
  RLJ_ASSIGN_OR_RETURN(const std::string tokenizer_dir, TokenizerSourceDir(checkpoint_dir, options.tokenizer));
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                       LoadTokenizer(tokenizer_dir.empty() ? "byte" : tokenizer_dir));
  if (tokenizer->vocab_size() > loaded.config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("the tokenizer's vocabulary (", tokenizer->vocab_size(),
                                                   ") is larger than the model's (", loaded.config.vocab_size, ")"));
  }
  RLJ_RETURN_IF_ERROR(MakeDirectories(out_dir));

  // Tokenizer files first: copied as they are, or the byte tokenizer's.
  if (tokenizer_dir.empty()) {
    RLJ_RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/tokenizer.json", ByteTokenizerJson()));
    RLJ_RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/tokenizer_config.json", ByteTokenizerConfigJson()));
  } else {
    for (const std::string& name : TokenizerFileNames()) {
      if (!IsFile(tokenizer_dir + "/" + name)) continue;
      RLJ_ASSIGN_OR_RETURN(std::string content, ReadFile(tokenizer_dir + "/" + name));
      if (name == "tokenizer_config.json") {
        const std::vector<int32_t> prefix = tokenizer->prefix_ids();
        const bool adds_bos = !prefix.empty() && prefix.front() == tokenizer->bos_id();
        RLJ_ASSIGN_OR_RETURN(content, WithJinjaChatTemplate(content, adds_bos));
      }
      RLJ_RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/" + name, content));
    }
  }
  const std::vector<int32_t> stop_ids = tokenizer->stop_ids();
  if (!IsFile(out_dir + "/generation_config.json")) {
    nlohmann::ordered_json generation;
    if (tokenizer->bos_id() >= 0) generation["bos_token_id"] = tokenizer->bos_id();
    if (stop_ids.size() == 1) generation["eos_token_id"] = stop_ids.front();
    if (stop_ids.size() > 1) generation["eos_token_id"] = stop_ids;
    if (tokenizer->pad_id() >= 0) generation["pad_token_id"] = tokenizer->pad_id();
    RLJ_RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/generation_config.json", generation.dump(2) + "\n"));
  }

  HfConfigExtras extras;
  extras.torch_dtype = options.dtype;
  extras.bos_token_id = tokenizer->bos_id();
  for (const int32_t id : stop_ids) extras.eos_token_ids.push_back(id);
  RLJ_RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/config.json", TransformerConfigToHfJson(loaded.config, extras)));
  NamedTensors tensors;
  RLJ_RETURN_IF_ERROR(TorchCall("converting weights", [&] {
    for (auto& [name, tensor] : NamedParameters(loaded.model)) tensors.emplace_back(name, tensor.detach().to(dtype));
  }));
  return Annotate(WriteSafetensors(out_dir + "/model.safetensors", tensors, {{"format", "pt"}}),
                  absl::StrCat("exporting ", checkpoint_dir, " to ", out_dir));
}

}  // namespace rlj
