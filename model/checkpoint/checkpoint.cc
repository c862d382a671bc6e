// checkpoint.cc: Hugging Face-style checkpoint directories (config.json for llama / qwen2 / mistral,
// model.safetensors or sharded weights, tokenizer files, rlj_state.json), written into a temporary sibling and
// swapped into place.
#include "model/checkpoint/checkpoint.h"

#include <fcntl.h>
#include <stdio.h>
#include <torch/nn/module.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/crc32c.h"
#include "common/file_util.h"
#include "common/status.h"
#include "model/tensor/torch_util.h"

namespace rlj {
namespace {

constexpr const char* kConfigFile = "config.json";
constexpr const char* kWeightsFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
constexpr const char* kStateFile = "rlj_state.json";

std::string ShapeText(at::IntArrayRef shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

absl::Status OsError(const std::string& what, int err) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(err)));
}

// Moves the finished temporary directory onto `dir`: an atomic exchange when `dir` exists (Linux
// renameat2), else a plain rename; the old contents end up in `tmp` for the caller to delete.
absl::Status SwapIntoPlace(const std::string& tmp, const std::string& dir) {
  if (::rename(tmp.c_str(), dir.c_str()) == 0) return absl::OkStatus();
  if (errno != ENOTEMPTY && errno != EEXIST) return OsError(absl::StrCat("cannot rename ", tmp, " to ", dir), errno);
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) return absl::OkStatus();
  if (errno != EINVAL && errno != ENOSYS) {
    return OsError(absl::StrCat("cannot exchange ", tmp, " with ", dir), errno);
  }
  // No atomic exchange on this filesystem: move the old one aside first (a reader may briefly miss `dir`).
  const std::string aside = absl::StrCat(tmp, ".old");
  if (::rename(dir.c_str(), aside.c_str()) != 0) return OsError(absl::StrCat("cannot move ", dir, " aside"), errno);
  if (::rename(tmp.c_str(), dir.c_str()) != 0) {
    const int err = errno;
    ::rename(aside.c_str(), dir.c_str());
    return OsError(absl::StrCat("cannot rename ", tmp, " to ", dir), err);
  }
  if (::rename(aside.c_str(), tmp.c_str()) != 0) return OsError(absl::StrCat("cannot rename ", aside), errno);
  return absl::OkStatus();
}

template <typename T>
absl::StatusOr<T> Field(const nlohmann::json& json, const char* key, std::string_view source) {
  const auto it = json.find(key);
  if (it == json.end() || it->is_null()) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": missing field '", key, "'"));
  }
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean())
      return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field '", key, "' must be a boolean"));
  } else if constexpr (std::is_integral_v<T>) {
    if (!it->is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field '", key, "' must be an integer"));
    }
    const int64_t value = it->get<int64_t>();
    if (std::is_same_v<T, int64_t> ? value < 0 : (value <= 0 || value > INT32_MAX)) {
      return absl::InvalidArgumentError(
          absl::StrCat(AsAbsl(source), ": field '", key, "' must be a ",
                       std::is_same_v<T, int64_t> ? "non-negative integer" : "positive int32", ", got ", value));
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!it->is_number())
      return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field '", key, "' must be a number"));
  } else {
    if (!it->is_string())
      return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field '", key, "' must be a string"));
  }
  return it->get<T>();
}

// Field, or `fallback` when the key is absent (Hugging Face's LlamaConfig defaults).
template <typename T>
absl::StatusOr<T> OptionalField(const nlohmann::json& json, const char* key, std::string_view source, T fallback) {
  const auto it = json.find(key);
  if (it == json.end() || it->is_null()) return fallback;
  return Field<T>(json, key, source);
}

// Size and CRC-32C of a file, read in 1 MiB pieces (bounded memory for multi-GB weights).
struct FileDigest {
  uint64_t bytes = 0;
  uint32_t crc32c = 0;
};

absl::StatusOr<FileDigest> DigestFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string message = absl::StrCat("cannot open ", path, ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(message) : absl::UnavailableError(message);
  }
  FileDigest digest;
  std::vector<char> buffer(1 << 20);
  while (true) {
    const ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return absl::UnavailableError(absl::StrCat("cannot read ", path, ": ", std::strerror(err)));
    }
    if (got == 0) break;
    digest.crc32c = Crc32cExtend(digest.crc32c, buffer.data(), static_cast<size_t>(got));
    digest.bytes += static_cast<uint64_t>(got);
  }
  ::close(fd);
  return digest;
}

// The files rlj_state.json records (name → size and CRC-32C), checked before anything is parsed: a truncated
// or corrupted checkpoint is refused naming the file, not loaded as different weights.
absl::Status VerifyRecordedFiles(const std::string& dir, const nlohmann::json& files, const std::string& source) {
  if (!files.is_object()) return absl::DataLossError(absl::StrCat(source, ": field 'files' must be an object"));
  for (const auto& [name, entry] : files.items()) {
    if (name.empty() || name.find('/') != std::string::npos || !entry.is_object() || !entry.contains("bytes") ||
        !entry.contains("crc32c") || !entry.at("bytes").is_number_unsigned() ||
        !entry.at("crc32c").is_number_unsigned()) {
      return absl::DataLossError(absl::StrCat(source, ": files['", name, "'] must be {\"bytes\": N, \"crc32c\": N}"));
    }
    const std::string path = dir + "/" + name;
    RLJ_ASSIGN_OR_RETURN(const FileDigest digest, DigestFile(path));
    const uint64_t bytes = entry.at("bytes").get<uint64_t>();
    if (digest.bytes != bytes) {
      return absl::DataLossError(
          absl::StrCat(path, " has ", digest.bytes, " bytes; ", bytes, " were written (truncated or replaced)"));
    }
    if (digest.crc32c != entry.at("crc32c").get<uint32_t>()) {
      return absl::DataLossError(absl::StrCat(path, ": CRC-32C mismatch (the file is corrupt)"));
    }
  }
  return absl::OkStatus();
}

// Verifies the sizes and CRC-32C that rlj_state.json records for the other files of `dir` (checkpoints
// written before the checksums were added have none; unparsable text is left to ParseState).
absl::Status VerifyStateChecksums(std::string_view text, const std::string& source, const std::string& dir) {
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("files")) return absl::OkStatus();
  return VerifyRecordedFiles(dir, json.at("files"), source);
}

absl::StatusOr<CheckpointState> ParseState(std::string_view text, const std::string& source) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    return absl::DataLossError(absl::StrCat(source, ": not valid JSON: ", error.what()));
  }
  if (!json.is_object()) return absl::DataLossError(absl::StrCat(source, ": not a JSON object"));
  CheckpointState state;
  for (auto [key, target] : {std::pair{"step", &state.step}, std::pair{"policy_version", &state.policy_version}}) {
    const auto it = json.find(key);
    if (it == json.end() || !it->is_number_integer()) {
      return absl::DataLossError(absl::StrCat(source, ": field '", key, "' must be an integer"));
    }
    *target = it->get<int64_t>();
  }
  return state;
}

}  // namespace

std::string TransformerConfigToHfJson(const TransformerConfig& config, const HfConfigExtras& extras) {
  static const std::map<std::string, std::string> kClass = {
      {"llama", "LlamaForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}, {"mistral", "MistralForCausalLM"}};
  nlohmann::ordered_json json;
  json["architectures"] = {kClass.count(config.architecture) ? kClass.at(config.architecture) : "LlamaForCausalLM"};
  json["model_type"] = config.architecture;
  json["hidden_size"] = config.d_model;
  json["intermediate_size"] = config.ffn_hidden;
  json["num_attention_heads"] = config.n_heads;
  json["num_hidden_layers"] = config.n_layers;
  json["num_key_value_heads"] = config.n_kv_heads;
  json["head_dim"] = config.head_dim();
  json["rms_norm_eps"] = config.norm_eps;
  json["rope_theta"] = config.rope_theta;
  json["tie_word_embeddings"] = config.tie_embeddings;
  json["vocab_size"] = config.vocab_size;
  json["max_position_embeddings"] = config.max_seq_len;
  json["hidden_act"] = "silu";
  if (config.architecture == "llama") {
    json["attention_bias"] = config.attention_bias;
    json["mlp_bias"] = false;
  } else if (config.architecture == "qwen2") {
    // Layers from max_window_layers on use the window (Qwen2Attention): 0 puts it on every layer.
    json["use_sliding_window"] = config.sliding_window > 0;
    json["sliding_window"] = config.sliding_window > 0 ? nlohmann::ordered_json(config.sliding_window) : nullptr;
    json["max_window_layers"] = config.sliding_window > 0 ? 0 : config.n_layers;
  } else {
    json["sliding_window"] = config.sliding_window > 0 ? nlohmann::ordered_json(config.sliding_window) : nullptr;
  }
  const RopeScaling& scaling = config.rope_scaling;
  if (scaling.type == "linear") {
    json["rope_scaling"] = {{"rope_type", "linear"}, {"type", "linear"}, {"factor", scaling.factor}};
  } else if (scaling.type == "llama3") {
    json["rope_scaling"] = {{"rope_type", "llama3"},
                            {"factor", scaling.factor},
                            {"low_freq_factor", scaling.low_freq_factor},
                            {"high_freq_factor", scaling.high_freq_factor},
                            {"original_max_position_embeddings", scaling.original_max_position_embeddings}};
  } else {
    json["rope_scaling"] = nullptr;
  }
  json["initializer_range"] = 0.02;
  json["torch_dtype"] = extras.torch_dtype;
  if (extras.bos_token_id >= 0) json["bos_token_id"] = extras.bos_token_id;
  if (extras.eos_token_ids.size() == 1) json["eos_token_id"] = extras.eos_token_ids.front();
  if (extras.eos_token_ids.size() > 1) json["eos_token_id"] = extras.eos_token_ids;
  json["use_cache"] = true;
  return json.dump(2) + "\n";
}

namespace {

absl::Status Unsupported(std::string_view source, std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field '", AsAbsl(field), "' ", AsAbsl(what)));
}

// config.json's rope_scaling: null, "default", "linear" or "llama3"; anything else is refused.
absl::StatusOr<RopeScaling> ParseRopeScaling(const nlohmann::json& json, std::string_view source) {
  RopeScaling scaling;
  const auto it = json.find("rope_scaling");
  if (it == json.end() || it->is_null()) return scaling;
  if (!it->is_object()) return Unsupported(source, "rope_scaling", "must be an object or null");
  const nlohmann::json& object = *it;
  std::string type;
  for (const char* key : {"rope_type", "type"}) {
    if (const auto t = object.find(key); t != object.end() && t->is_string()) {
      type = t->get<std::string>();
      break;
    }
  }
  if (type.empty()) return Unsupported(source, "rope_scaling.rope_type", "is missing");
  if (type == "default") return scaling;
  if (type != "linear" && type != "llama3") {
    return Unsupported(source, "rope_scaling.rope_type",
                       absl::StrCat("is '", type, "'; only default, linear and llama3 are supported"));
  }
  scaling.type = type;
  RLJ_ASSIGN_OR_RETURN(scaling.factor, Field<double>(object, "factor", absl::StrCat(AsAbsl(source), ": rope_scaling")));
  if (!(scaling.factor >= 1)) return Unsupported(source, "rope_scaling.factor", "must be >= 1");
  if (type == "llama3") {
    const std::string where = absl::StrCat(AsAbsl(source), ": rope_scaling");
    RLJ_ASSIGN_OR_RETURN(scaling.low_freq_factor, Field<double>(object, "low_freq_factor", where));
    RLJ_ASSIGN_OR_RETURN(scaling.high_freq_factor, Field<double>(object, "high_freq_factor", where));
    RLJ_ASSIGN_OR_RETURN(scaling.original_max_position_embeddings,
                         Field<int>(object, "original_max_position_embeddings", where));
  }
  return scaling;
}

// The sliding window config.json asks for: Mistral's sliding_window (null = none); Qwen2's when
// use_sliding_window is true, which must then cover every layer (max_window_layers 0).
absl::StatusOr<int> ParseSlidingWindow(const nlohmann::json& json, const std::string& model_type, int n_layers,
                                       std::string_view source) {
  if (model_type == "llama") return 0;
  if (model_type == "qwen2") {
    RLJ_ASSIGN_OR_RETURN(const bool use, OptionalField<bool>(json, "use_sliding_window", source, false));
    if (!use) return 0;
    RLJ_ASSIGN_OR_RETURN(const int64_t window_layers, OptionalField<int64_t>(json, "max_window_layers", source, 0));
    if (window_layers >= n_layers) return 0;  // no layer reaches max_window_layers
    if (window_layers != 0) {
      return Unsupported(source, "max_window_layers",
                         absl::StrCat("is ", window_layers, ": a sliding window on only some layers is not supported"));
    }
  }
  const auto it = json.find("sliding_window");
  if (it == json.end() || it->is_null()) return 0;
  return Field<int>(json, "sliding_window", source);
}

}  // namespace

absl::StatusOr<TransformerConfig> TransformerConfigFromHfJson(std::string_view text, std::string_view source) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": not valid JSON: ", error.what()));
  }
  if (!json.is_object()) return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": not a JSON object"));
  RLJ_ASSIGN_OR_RETURN(const std::string model_type, Field<std::string>(json, "model_type", source));
  if (model_type != "llama" && model_type != "qwen2" && model_type != "mistral") {
    return Unsupported(source, "model_type", absl::StrCat("is '", model_type, "'; supported: llama, qwen2, mistral"));
  }
  RLJ_ASSIGN_OR_RETURN(const std::string hidden_act, OptionalField<std::string>(json, "hidden_act", source, "silu"));
  if (hidden_act != "silu") {
    return Unsupported(source, "hidden_act", absl::StrCat("is '", hidden_act, "'; only 'silu' is supported"));
  }
  RLJ_ASSIGN_OR_RETURN(const bool mlp_bias, OptionalField<bool>(json, "mlp_bias", source, false));
  if (mlp_bias) return Unsupported(source, "mlp_bias", "must be false");

  TransformerConfig config;
  config.architecture = model_type;
  if (model_type == "llama") {
    RLJ_ASSIGN_OR_RETURN(config.attention_bias, OptionalField<bool>(json, "attention_bias", source, false));
  } else if (model_type == "mistral") {
    RLJ_ASSIGN_OR_RETURN(const bool bias, OptionalField<bool>(json, "attention_bias", source, false));
    if (bias) return Unsupported(source, "attention_bias", "must be false for mistral");
  }
  RLJ_ASSIGN_OR_RETURN(config.d_model, Field<int>(json, "hidden_size", source));
  RLJ_ASSIGN_OR_RETURN(config.ffn_hidden, Field<int>(json, "intermediate_size", source));
  RLJ_ASSIGN_OR_RETURN(config.n_heads, Field<int>(json, "num_attention_heads", source));
  RLJ_ASSIGN_OR_RETURN(config.n_layers, Field<int>(json, "num_hidden_layers", source));
  RLJ_ASSIGN_OR_RETURN(config.vocab_size, Field<int>(json, "vocab_size", source));
  RLJ_ASSIGN_OR_RETURN(config.max_seq_len, Field<int>(json, "max_position_embeddings", source));
  RLJ_ASSIGN_OR_RETURN(config.norm_eps, Field<double>(json, "rms_norm_eps", source));
  RLJ_ASSIGN_OR_RETURN(config.n_kv_heads, OptionalField<int>(json, "num_key_value_heads", source, config.n_heads));
  RLJ_ASSIGN_OR_RETURN(config.rope_theta, OptionalField<double>(json, "rope_theta", source, 10000.0));
  RLJ_ASSIGN_OR_RETURN(config.tie_embeddings, OptionalField<bool>(json, "tie_word_embeddings", source, false));
  RLJ_ASSIGN_OR_RETURN(config.rope_scaling, ParseRopeScaling(json, source));
  RLJ_ASSIGN_OR_RETURN(config.sliding_window, ParseSlidingWindow(json, model_type, config.n_layers, source));
  if (config.d_model % config.n_heads == 0) {
    RLJ_ASSIGN_OR_RETURN(const int head_dim,
                         OptionalField<int>(json, "head_dim", source, config.d_model / config.n_heads));
    if (head_dim != config.d_model / config.n_heads) {
      return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field 'head_dim' (", head_dim,
                                                     ") must equal hidden_size / num_attention_heads"));
    }
  }
  if (absl::Status status = config.Validate(); !status.ok()) {
    // The rules are TransformerConfig's; say them in config.json's words.
    const std::string message = absl::StrReplaceAll(status.message(), {{"model.d_model", "hidden_size"},
                                                                       {"model.n_heads", "num_attention_heads"},
                                                                       {"model.n_kv_heads", "num_key_value_heads"},
                                                                       {"model.ffn_hidden", "intermediate_size"},
                                                                       {"model.n_layers", "num_hidden_layers"},
                                                                       {"model.vocab_size", "vocab_size"},
                                                                       {"model.max_seq_len", "max_position_embeddings"},
                                                                       {"model.rope_theta", "rope_theta"},
                                                                       {"model.norm_eps", "rms_norm_eps"},
                                                                       {"model.sliding_window", "sliding_window"},
                                                                       {"model.rope_scaling.", "rope_scaling."}});
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field ", message));
  }
  return config;
}

NamedTensors NamedParameters(Transformer& model) {
  NamedTensors named;
  for (const auto& item : model->named_parameters(/*recurse=*/true)) named.emplace_back(item.key(), item.value());
  return named;
}

absl::Status LoadNamedTensors(Transformer& model, const NamedTensors& tensors) {
  std::map<std::string, const at::Tensor*> by_name;
  for (const auto& [name, tensor] : tensors) {
    if (!by_name.emplace(name, &tensor).second) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' is given twice"));
    }
  }
  const NamedTensors parameters = NamedParameters(model);
  std::set<std::string> used;
  for (const auto& [name, parameter] : parameters) {
    const auto it = by_name.find(name);
    if (it == by_name.end()) return absl::NotFoundError(absl::StrCat("missing tensor '", name, "'"));
    if (it->second->sizes() != parameter.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has shape ", ShapeText(it->second->sizes()),
                                                     ", the model expects ", ShapeText(parameter.sizes())));
    }
    used.insert(name);
  }
  for (const auto& [name, tensor] : by_name) {
    if (used.count(name) != 0) continue;
    // Hugging Face files may carry RoPE's inverse frequencies (recomputed here) and, for tied embeddings,
    // a copy of the embedding as lm_head.weight; anything else is unknown.
    if (name.ends_with(".rotary_emb.inv_freq")) continue;
    if (name == "lm_head.weight" && model->config().tie_embeddings) {
      const at::Tensor* embedding =
          by_name.count("model.embed_tokens.weight") ? by_name["model.embed_tokens.weight"] : nullptr;
      bool same = false;
      RLJ_RETURN_IF_ERROR(TorchCall("comparing lm_head.weight", [&] {
        same = embedding != nullptr && embedding->sizes() == tensor->sizes() && at::equal(*embedding, *tensor);
      }));
      if (same) continue;
      return absl::InvalidArgumentError(
          "tensor 'lm_head.weight' differs from model.embed_tokens.weight, but the model ties them");
    }
    return absl::InvalidArgumentError(absl::StrCat("unknown tensor '", name, "'"));
  }
  return TorchCall("loading parameters", [&] {
    torch::NoGradGuard no_grad;
    for (const auto& [name, parameter] : parameters) {
      at::Tensor target = parameter;
      const at::Tensor& source = *by_name.at(name);
      // From pinned memory to a GPU the copy is asynchronous: later work on the GPU's stream sees it done.
      target.copy_(source, /*non_blocking=*/target.is_cuda() && source.is_pinned());
    }
  });
}

const std::vector<std::string>& TokenizerFileNames() {
  static const std::vector<std::string> names = {"tokenizer.json", "tokenizer_config.json", "generation_config.json",
                                                 "special_tokens_map.json"};
  return names;
}

absl::Status SaveCheckpoint(const std::string& dir, Transformer& model, const CheckpointState& state) {
  static std::atomic<int> counter{0};
  const std::filesystem::path target = std::filesystem::path(dir).lexically_normal();
  const std::string clean = target.has_filename() ? target.string() : target.parent_path().string();
  const std::string parent = std::filesystem::path(clean).parent_path().string();
  if (!parent.empty()) RLJ_RETURN_IF_ERROR(MakeDirectories(parent));
  const std::string tmp = absl::StrCat(clean, ".tmp-", ::getpid(), "-", counter.fetch_add(1));
  std::error_code ec;
  std::filesystem::remove_all(tmp, ec);
  if (!std::filesystem::create_directory(tmp, ec)) {
    return absl::UnavailableError(absl::StrCat("cannot create ", tmp, ": ", ec.message()));
  }
  auto write_all = [&]() -> absl::Status {
    RLJ_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/" + kConfigFile, TransformerConfigToHfJson(model->config())));
    RLJ_RETURN_IF_ERROR(WriteSafetensors(tmp + "/" + kWeightsFile, NamedParameters(model), {{"format", "pt"}}));
    if (!model->source_dir().empty()) {  // the tokenizer travels with the weights
      for (const std::string& name : TokenizerFileNames()) {
        const std::string from = model->source_dir() + "/" + name;
        if (!std::filesystem::is_regular_file(from, ec)) continue;
        RLJ_ASSIGN_OR_RETURN(const std::string content, ReadFile(from));
        RLJ_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/" + name, content));
      }
    }
    nlohmann::ordered_json json;
    json["step"] = state.step;
    json["policy_version"] = state.policy_version;
    nlohmann::ordered_json files = nlohmann::ordered_json::object();
    for (const auto& entry : std::filesystem::directory_iterator(tmp)) {
      const std::string name = entry.path().filename().string();
      RLJ_ASSIGN_OR_RETURN(const FileDigest digest, DigestFile(entry.path().string()));
      files[name] = {{"bytes", digest.bytes}, {"crc32c", digest.crc32c}};
    }
    json["files"] = std::move(files);
    RLJ_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/" + kStateFile, json.dump(2) + "\n"));
    RLJ_RETURN_IF_ERROR(SyncDirectory(tmp));
    RLJ_RETURN_IF_ERROR(SwapIntoPlace(tmp, clean));
    return SyncDirectory(parent.empty() ? "." : parent);
  };
  const absl::Status status = write_all();
  std::filesystem::remove_all(tmp, ec);  // the partial write, or the replaced checkpoint
  return Annotate(status, absl::StrCat("saving checkpoint ", clean));
}

absl::StatusOr<NamedTensors> ReadCheckpointTensors(const std::string& dir) {
  const std::string single = dir + "/" + kWeightsFile;
  const std::string index_path = dir + "/" + kIndexFile;
  std::error_code ec;
  if (std::filesystem::exists(single, ec)) return ReadSafetensors(single);
  if (!std::filesystem::exists(index_path, ec)) {
    return absl::NotFoundError(absl::StrCat(single, " does not exist (nor a sharded ", kIndexFile, ")"));
  }
  RLJ_ASSIGN_OR_RETURN(const std::string index_text, ReadFile(index_path));
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(index_text);
  } catch (const nlohmann::json::exception& error) {
    return absl::DataLossError(absl::StrCat(index_path, ": not valid JSON: ", error.what()));
  }
  const auto weight_map = index.is_object() ? index.find("weight_map") : index.end();
  if (weight_map == index.end() || !weight_map->is_object() || weight_map->empty()) {
    return absl::DataLossError(absl::StrCat(index_path, ": no 'weight_map' object of tensor name -> shard file"));
  }
  std::map<std::string, std::string> shard_of;  // tensor → shard file
  std::set<std::string> shards;
  for (const auto& [name, shard] : weight_map->items()) {
    if (!shard.is_string() || shard.get<std::string>().empty() ||
        shard.get<std::string>().find('/') != std::string::npos) {
      return absl::DataLossError(absl::StrCat(index_path, ": weight_map['", name, "'] must be a file name in ", dir));
    }
    shard_of[name] = shard.get<std::string>();
    shards.insert(shard.get<std::string>());
  }
  NamedTensors all;
  std::set<std::string> seen;
  for (const std::string& shard : shards) {  // each shard mapped once
    RLJ_ASSIGN_OR_RETURN(NamedTensors tensors, ReadSafetensors(dir + "/" + shard));
    for (auto& [name, tensor] : tensors) {
      const auto it = shard_of.find(name);
      if (it == shard_of.end()) {
        return absl::DataLossError(absl::StrCat(dir, "/", shard, ": tensor '", name, "' is not in ", kIndexFile));
      }
      if (it->second != shard) {
        return absl::DataLossError(absl::StrCat(dir, "/", shard, ": tensor '", name, "' belongs to ", it->second,
                                                " according to ", kIndexFile));
      }
      if (!seen.insert(name).second) {
        return absl::DataLossError(absl::StrCat(dir, "/", shard, ": tensor '", name, "' appears twice"));
      }
      all.emplace_back(std::move(name), std::move(tensor));
    }
  }
  for (const auto& [name, shard] : shard_of) {
    if (!seen.count(name)) {
      return absl::DataLossError(
          absl::StrCat(dir, "/", shard, ": missing tensor '", name, "' that ", kIndexFile, " places there"));
    }
  }
  return all;
}

absl::StatusOr<LoadedCheckpoint> LoadCheckpoint(const std::string& dir) {
  // The state's checksums first: a truncated or corrupted file is refused by name before it is parsed.
  std::error_code ec;
  const std::string state_path = dir + "/" + kStateFile;
  std::optional<std::string> state_text;  // absent in a plain Hugging Face directory
  if (std::filesystem::exists(state_path, ec)) {
    RLJ_ASSIGN_OR_RETURN(state_text, ReadFile(state_path));
    RLJ_RETURN_IF_ERROR(VerifyStateChecksums(*state_text, state_path, dir));
  }
  const std::string config_path = dir + "/" + kConfigFile;
  RLJ_ASSIGN_OR_RETURN(const std::string config_text, ReadFile(config_path));
  RLJ_ASSIGN_OR_RETURN(const TransformerConfig config, TransformerConfigFromHfJson(config_text, config_path));
  RLJ_ASSIGN_OR_RETURN(const NamedTensors tensors, ReadCheckpointTensors(dir));
  LoadedCheckpoint loaded;
  loaded.config = config;
  RLJ_RETURN_IF_ERROR(TorchCall("building the model", [&] { loaded.model = Transformer(config); }));
  RLJ_RETURN_IF_ERROR(Annotate(LoadNamedTensors(loaded.model, tensors), dir));
  loaded.model->set_source_dir(dir);
  if (state_text) {
    RLJ_ASSIGN_OR_RETURN(loaded.state, ParseState(*state_text, state_path));
  }
  return loaded;
}

}  // namespace rlj
