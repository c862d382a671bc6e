// checkpoint.cc: Hugging Face-style checkpoint directories (config.json, model.safetensors,
// rlj_state.json), written into a temporary sibling and swapped into place.
#include "common/checkpoint/checkpoint.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <torch/nn/module.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/file_util.h"
#include "common/status.h"
#include "common/tensor/torch_util.h"

namespace rlj {
namespace {

constexpr const char* kConfigFile = "config.json";
constexpr const char* kWeightsFile = "model.safetensors";
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
    if (!it->is_boolean()) return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field '", key, "' must be a boolean"));
  } else if constexpr (std::is_integral_v<T>) {
    if (!it->is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field '", key, "' must be an integer"));
    }
    const int64_t value = it->get<int64_t>();
    if (value <= 0 || value > INT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field '", key, "' must be a positive int32, got ", value));
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!it->is_number()) return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field '", key, "' must be a number"));
  } else {
    if (!it->is_string()) return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field '", key, "' must be a string"));
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

absl::StatusOr<CheckpointState> ParseState(std::string_view text, const std::string& source) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    return absl::DataLossError(absl::StrCat(source, ": not valid JSON: ", error.what()));
  }
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

std::string TransformerConfigToHfJson(const TransformerConfig& config) {
  nlohmann::ordered_json json;
  json["architectures"] = {"LlamaForCausalLM"};
  json["model_type"] = "llama";
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
  json["attention_bias"] = false;
  json["mlp_bias"] = false;
  json["initializer_range"] = 0.02;
  json["torch_dtype"] = "float32";
  return json.dump(2) + "\n";
}

absl::StatusOr<TransformerConfig> TransformerConfigFromHfJson(std::string_view text, std::string_view source) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": not valid JSON: ", error.what()));
  }
  if (!json.is_object()) return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": not a JSON object"));
  RLJ_ASSIGN_OR_RETURN(const std::string model_type, Field<std::string>(json, "model_type", source));
  if (model_type != "llama") {
    return absl::InvalidArgumentError(
        absl::StrCat(AsAbsl(source), ": field 'model_type' is '", model_type, "'; only 'llama' is supported"));
  }
  RLJ_ASSIGN_OR_RETURN(const std::string hidden_act, OptionalField<std::string>(json, "hidden_act", source, "silu"));
  if (hidden_act != "silu") {
    return absl::InvalidArgumentError(
        absl::StrCat(AsAbsl(source), ": field 'hidden_act' is '", hidden_act, "'; only 'silu' is supported"));
  }
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    RLJ_ASSIGN_OR_RETURN(const bool has_bias, OptionalField<bool>(json, key, source, false));
    if (has_bias) return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field '", key, "' must be false"));
  }
  if (const auto scaling = json.find("rope_scaling"); scaling != json.end() && !scaling->is_null()) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field 'rope_scaling' is not supported"));
  }

  TransformerConfig config;
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
  if (config.d_model % config.n_heads == 0) {
    RLJ_ASSIGN_OR_RETURN(const int head_dim, OptionalField<int>(json, "head_dim", source, config.d_model / config.n_heads));
    if (head_dim != config.d_model / config.n_heads) {
      return absl::InvalidArgumentError(absl::StrCat(AsAbsl(source), ": field 'head_dim' (", head_dim,
                                                     ") must equal hidden_size / num_attention_heads"));
    }
  }
  if (absl::Status status = config.Validate(); !status.ok()) {
    // The rules are TransformerConfig's; say them in config.json's words.
    const std::string message = absl::StrReplaceAll(
        status.message(), {{"model.d_model", "hidden_size"}, {"model.n_heads", "num_attention_heads"},
                           {"model.n_kv_heads", "num_key_value_heads"}, {"model.ffn_hidden", "intermediate_size"},
                           {"model.n_layers", "num_hidden_layers"}, {"model.vocab_size", "vocab_size"},
                           {"model.max_seq_len", "max_position_embeddings"}, {"model.rope_theta", "rope_theta"},
                           {"model.norm_eps", "rms_norm_eps"}});
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
      const at::Tensor* embedding = by_name.count("model.embed_tokens.weight") ? by_name["model.embed_tokens.weight"] : nullptr;
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
      target.copy_(*by_name.at(name));
    }
  });
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
    nlohmann::ordered_json json;
    json["step"] = state.step;
    json["policy_version"] = state.policy_version;
    RLJ_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/" + kStateFile, json.dump(2) + "\n"));
    RLJ_RETURN_IF_ERROR(SyncDirectory(tmp));
    RLJ_RETURN_IF_ERROR(SwapIntoPlace(tmp, clean));
    return SyncDirectory(parent.empty() ? "." : parent);
  };
  const absl::Status status = write_all();
  std::filesystem::remove_all(tmp, ec);  // the partial write, or the replaced checkpoint
  return Annotate(status, absl::StrCat("saving checkpoint ", clean));
}

absl::StatusOr<LoadedCheckpoint> LoadCheckpoint(const std::string& dir) {
  const std::string config_path = dir + "/" + kConfigFile;
  RLJ_ASSIGN_OR_RETURN(const std::string config_text, ReadFile(config_path));
  RLJ_ASSIGN_OR_RETURN(const TransformerConfig config, TransformerConfigFromHfJson(config_text, config_path));
  const std::string weights_path = dir + "/" + kWeightsFile;
  if (!std::filesystem::exists(weights_path)) {
    return absl::NotFoundError(absl::StrCat(weights_path, " does not exist (sharded checkpoints are not supported)"));
  }
  RLJ_ASSIGN_OR_RETURN(const NamedTensors tensors, ReadSafetensors(weights_path));
  LoadedCheckpoint loaded;
  loaded.config = config;
  RLJ_ASSIGN_OR_RETURN(loaded.model, TorchCall("building the model", [&]() -> absl::StatusOr<Transformer> { return Transformer(config); }));
  RLJ_RETURN_IF_ERROR(Annotate(LoadNamedTensors(loaded.model, tensors), weights_path));
  const std::string state_path = dir + "/" + kStateFile;
  if (std::filesystem::exists(state_path)) {  // absent in a plain Hugging Face directory
    RLJ_ASSIGN_OR_RETURN(const std::string state_text, ReadFile(state_path));
    RLJ_ASSIGN_OR_RETURN(loaded.state, ParseState(state_text, state_path));
  }
  return loaded;
}

}  // namespace rlj
