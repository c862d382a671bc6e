// learner_checkpoint.cc: resumable learner checkpoints: model directory + optimiser + learner_state.json
// with file checksums, atomic rename, keep-last-K, and verification newest-first on resume.
#include "learner/learner_checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crc32c.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"
#include "model/checkpoint/checkpoint.h"

namespace rlj {
namespace {

namespace fs = std::filesystem;

constexpr const char* kLatestFile = "latest";

std::string ToHex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

absl::StatusOr<std::string> FromHex(const std::string& hex) {
  if (hex.size() % 2 != 0) return absl::DataLossError("odd-length hex string");
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int value = 0;
    for (int k = 0; k < 2; ++k) {
      const char c = hex[2 * i + k];
      const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (digit < 0) return absl::DataLossError("bad hex digit");
      value = value * 16 + digit;
    }
    out[i] = static_cast<char>(value);
  }
  return out;
}

absl::Status RemoveTree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot remove ", path, ": ", ec.message()));
  return absl::OkStatus();
}

// Verifies one checkpoint directory and reads everything a resume needs.
absl::StatusOr<ResumePoint> ReadVerified(const std::string& dir) {
  const std::string state_path = dir + "/" + kLearnerStateFile;
  if (!fs::exists(state_path)) {
    return absl::NotFoundError(absl::StrCat("no ", kLearnerStateFile, " (not a learner checkpoint)"));
  }
  RLJ_ASSIGN_OR_RETURN(const std::string text, ReadFile(state_path));
  ResumePoint point;
  point.dir = dir;
  std::string rng_hex;
  std::vector<std::pair<std::string, std::pair<uint64_t, uint32_t>>> files;
  try {
    const nlohmann::json json = nlohmann::json::parse(text);
    LearnerCheckpointContents& c = point.contents;
    c.step = json.at("step").get<int64_t>();
    c.version = json.at("policy_version").get<int64_t>();
    const nlohmann::json& trainer = json.at("trainer");
    c.trainer.steps = trainer.at("steps").get<int64_t>();
    c.trainer.optimizer_steps = trainer.at("optimizer_steps").get<int64_t>();
    c.trainer.nonfinite_steps_skipped = trainer.at("nonfinite_steps_skipped").get<int64_t>();
    c.trainer.groups_skipped_no_signal = trainer.at("groups_skipped_no_signal").get<int64_t>();
    c.trainer.samples_masked = trainer.at("samples_masked").get<int64_t>();
    // Checkpoints written before skipped batches were counted have neither key.
    c.trainer.batches_skipped_all_masked = trainer.value("batches_skipped_all_masked", int64_t{0});
    c.trainer.batches_skipped_no_signal = trainer.value("batches_skipped_no_signal", int64_t{0});
    rng_hex = trainer.at("rng").get<std::string>();
    if (json.contains("dispatcher") && !json.at("dispatcher").is_null()) c.dispatcher = json.at("dispatcher").dump();
    for (const auto& [name, entry] : json.at("files").items()) {
      files.push_back({name, {entry.at("bytes").get<uint64_t>(), entry.at("crc32c").get<uint32_t>()}});
    }
  } catch (const nlohmann::json::exception& error) {
    return absl::DataLossError(absl::StrCat(kLearnerStateFile, " is unreadable (", error.what(), ")"));
  }
  std::set<std::string> required{"model.safetensors", kOptimizerFile, "config.json"};
  for (const auto& [name, expected] : files) {
    RLJ_ASSIGN_OR_RETURN(const std::string bytes, ReadFile(dir + "/" + name));
    if (bytes.size() != expected.first) {
      return absl::DataLossError(absl::StrCat(name, " has ", bytes.size(), " bytes, ", expected.first,
                                              " were written (truncated or replaced)"));
    }
    if (Crc32c(bytes) != expected.second)
      return absl::DataLossError(absl::StrCat(name, ": CRC-32C mismatch (corrupt)"));
    if (name == kOptimizerFile) point.contents.trainer.optimizer = bytes;
    required.erase(name);
  }
  if (!required.empty()) {
    return absl::DataLossError(absl::StrCat("no checksum recorded for ", absl::StrJoin(required, ", ")));
  }
  RLJ_ASSIGN_OR_RETURN(point.contents.trainer.rng, FromHex(rng_hex));
  RLJ_ASSIGN_OR_RETURN(point.weights, ReadSafetensors(dir + "/model.safetensors"));
  return point;
}

}  // namespace

std::vector<std::pair<int64_t, std::string>> ListStepCheckpoints(const std::string& checkpoints_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(checkpoints_dir, ec)) {
    const std::string name = entry.path().filename().string();
    int64_t step = 0;
    if (!entry.is_directory() || name.rfind("step-", 0) != 0 || !absl::SimpleAtoi(name.substr(5), &step)) continue;
    found.emplace_back(step, entry.path().string());
  }
  std::sort(found.begin(), found.end());
  return found;
}

absl::StatusOr<std::string> WriteLearnerCheckpoint(const std::string& checkpoints_dir, Transformer& policy,
                                                   const LearnerCheckpointContents& contents, int keep) {
  RLJ_RETURN_IF_ERROR(MakeDirectories(checkpoints_dir));
  const std::string name = absl::StrCat("step-", contents.step);
  const std::string final_dir = checkpoints_dir + "/" + name;
  const std::string tmp = absl::StrCat(checkpoints_dir, "/.", name, ".tmp-", ::getpid());
  RLJ_RETURN_IF_ERROR(RemoveTree(tmp));
  auto write = [&]() -> absl::Status {
    RLJ_RETURN_IF_ERROR(SaveCheckpoint(tmp, policy, CheckpointState{contents.step, contents.version}));
    RLJ_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/" + kOptimizerFile, contents.trainer.optimizer));
    nlohmann::ordered_json json;
    json["step"] = contents.step;
    json["policy_version"] = contents.version;
    json["trainer"] = {{"steps", contents.trainer.steps},
                       {"optimizer_steps", contents.trainer.optimizer_steps},
                       {"nonfinite_steps_skipped", contents.trainer.nonfinite_steps_skipped},
                       {"groups_skipped_no_signal", contents.trainer.groups_skipped_no_signal},
                       {"samples_masked", contents.trainer.samples_masked},
                       {"batches_skipped_all_masked", contents.trainer.batches_skipped_all_masked},
                       {"batches_skipped_no_signal", contents.trainer.batches_skipped_no_signal},
                       {"rng", ToHex(contents.trainer.rng)}};
    json["dispatcher"] =
        contents.dispatcher.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json::parse(contents.dispatcher);
    nlohmann::ordered_json files = nlohmann::ordered_json::object();
    for (const char* file : {"config.json", "model.safetensors", "rlj_state.json", kOptimizerFile}) {
      RLJ_ASSIGN_OR_RETURN(const std::string bytes, ReadFile(tmp + "/" + file));
      files[file] = {{"bytes", bytes.size()}, {"crc32c", Crc32c(bytes)}};
    }
    json["files"] = files;
    RLJ_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/" + kLearnerStateFile, json.dump(2) + "\n"));
    RLJ_RETURN_IF_ERROR(SyncDirectory(tmp));
    if (fs::exists(final_dir))
      RLJ_RETURN_IF_ERROR(RemoveTree(final_dir));  // a leftover of a run that resumed before it
    if (std::rename(tmp.c_str(), final_dir.c_str()) != 0) {
      return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, " to ", final_dir));
    }
    RLJ_RETURN_IF_ERROR(SyncDirectory(checkpoints_dir));
    return WriteFileAtomically(checkpoints_dir + "/" + kLatestFile, name + "\n");
  };
  if (absl::Status status = write(); !status.ok()) {
    RemoveTree(tmp).IgnoreError();
    return Annotate(status, absl::StrCat("writing checkpoint ", final_dir));
  }
  if (keep > 0) {
    auto all = ListStepCheckpoints(checkpoints_dir);
    for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) {
      if (all[i].second == final_dir) continue;
      if (absl::Status removed = RemoveTree(all[i].second); !removed.ok()) {
        log::Warn("old checkpoint not removed: {}", std::string(removed.message()));
      }
    }
  }
  return final_dir;
}

absl::StatusOr<std::optional<ResumePoint>> FindResumePoint(const std::string& checkpoints_dir) {
  std::vector<std::string> candidates;
  auto steps = ListStepCheckpoints(checkpoints_dir);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) candidates.push_back(it->second);
  if (auto latest = ReadFile(checkpoints_dir + "/" + kLatestFile); latest.ok()) {
    std::string name = *latest;
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    const std::string dir = checkpoints_dir + "/" + name;
    if (!name.empty() && name.find('/') == std::string::npos && fs::is_directory(dir) &&
        std::find(candidates.begin(), candidates.end(), dir) == candidates.end()) {
      candidates.push_back(dir);
    }
  }
  if (candidates.empty()) return std::optional<ResumePoint>();
  std::vector<std::string> refused;
  for (const std::string& dir : candidates) {
    absl::StatusOr<ResumePoint> point = ReadVerified(dir);
    if (point.ok()) {
      point->refused = refused;
      return std::optional<ResumePoint>(*std::move(point));
    }
    refused.push_back(absl::StrCat(dir, ": ", std::string(point.status().message())));
    log::Warn("checkpoint refused: {}; trying the previous one", refused.back());
  }
  return absl::DataLossError(
      absl::StrCat("no checkpoint under ", checkpoints_dir, " can be resumed: ", absl::StrJoin(refused, "; ")));
}

}  // namespace rlj
