// training_ledger.cc: trained_groups.jsonl (appended and fsynced per step, cut back on resume) and the
// step_inputs/ files (atomic, CRC-checked) the learner replays after a kill past its last checkpoint.
#include "learner/training_ledger.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"

namespace rlj {
namespace {

constexpr const char* kStepInputsMagic = "rlj-step-inputs 1\n";

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

nlohmann::ordered_json LineJson(const StepInputs& inputs) {
  nlohmann::ordered_json line;
  line["step"] = inputs.step;
  line["version"] = inputs.version;
  line["update_applied"] = inputs.update_applied;
  nlohmann::ordered_json groups = nlohmann::ordered_json::array();
  for (const v1::RolloutGroup& group : inputs.groups) {
    nlohmann::ordered_json g;
    g["group_id"] = group.group_id();
    g["prompt_id"] = group.prompt_id();
    g["actor"] = group.actor();
    g["lease_id"] = group.lease_id();
    g["item_id"] = group.item_id();
    g["policy_version"] = group.policy_version();
    groups.push_back(std::move(g));
  }
  line["groups"] = std::move(groups);
  return line;
}

absl::StatusOr<LedgerLine> ParseLine(const std::string& text) {
  try {
    const nlohmann::json json = nlohmann::json::parse(text);
    LedgerLine line;
    line.step = json.at("step").get<int64_t>();
    line.version = json.at("version").get<int64_t>();
    line.update_applied = json.value("update_applied", true);
    for (const auto& g : json.at("groups")) {
      LedgerGroup group;
      group.group_id = g.at("group_id").get<std::string>();
      group.prompt_id = g.value("prompt_id", "");
      group.actor = g.value("actor", "");
      group.lease_id = g.value("lease_id", "");
      group.item_id = g.value("item_id", uint64_t{0});
      group.policy_version = g.value("policy_version", int64_t{0});
      line.groups.push_back(std::move(group));
    }
    return line;
  } catch (const nlohmann::json::exception& error) {
    return absl::DataLossError(error.what());
  }
}

// The complete lines of `path` ("" when it does not exist).
std::vector<std::string> CompleteLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // a torn last line: the kill came mid-write
    if (end > start) lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// step-N.bin files of `dir` by step.
std::map<int64_t, std::string> ListStepInputs(const std::string& dir) {
  std::map<int64_t, std::string> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    int64_t step = 0;
    if (name.size() > 9 && name.rfind("step-", 0) == 0 && name.substr(name.size() - 4) == ".bin" &&
        absl::SimpleAtoi(name.substr(5, name.size() - 9), &step)) {
      files.emplace(step, entry.path().string());
    }
  }
  return files;
}

}  // namespace

std::string StepInputsPath(const std::string& step_inputs_dir, int64_t step) {
  return absl::StrCat(step_inputs_dir, "/step-", step, ".bin");
}

std::string EncodeStepInputs(const StepInputs& inputs) {
  v1::RankWork work;
  work.set_kind(v1::RankWork::STEP);
  work.set_step(inputs.step);
  for (const v1::RolloutGroup& group : inputs.groups) *work.add_groups() = group;
  const std::string work_bytes = work.SerializeAsString();
  uint32_t crc = Crc32c(work_bytes);
  crc = Crc32cExtend(crc, inputs.dispatcher.data(), inputs.dispatcher.size());
  nlohmann::ordered_json header;
  header["step"] = inputs.step;
  header["version"] = inputs.version;
  header["update_applied"] = inputs.update_applied;
  header["work_bytes"] = work_bytes.size();
  header["dispatcher_bytes"] = inputs.dispatcher.size();
  header["crc32c"] = crc;
  return absl::StrCat(kStepInputsMagic, header.dump(), "\n", work_bytes, inputs.dispatcher);
}

absl::StatusOr<StepInputs> DecodeStepInputs(const std::string& bytes) {
  const std::string magic = kStepInputsMagic;
  if (bytes.compare(0, magic.size(), magic) != 0) return absl::DataLossError("not a step inputs file");
  const size_t header_end = bytes.find('\n', magic.size());
  if (header_end == std::string::npos) return absl::DataLossError("step inputs: no header");
  StepInputs inputs;
  uint64_t work_bytes = 0, dispatcher_bytes = 0;
  uint32_t crc = 0;
  try {
    const nlohmann::json header = nlohmann::json::parse(bytes.substr(magic.size(), header_end - magic.size()));
    inputs.step = header.at("step").get<int64_t>();
    inputs.version = header.at("version").get<int64_t>();
    inputs.update_applied = header.value("update_applied", true);
    work_bytes = header.at("work_bytes").get<uint64_t>();
    dispatcher_bytes = header.at("dispatcher_bytes").get<uint64_t>();
    crc = header.at("crc32c").get<uint32_t>();
  } catch (const nlohmann::json::exception& error) {
    return absl::DataLossError(absl::StrCat("step inputs header: ", error.what()));
  }
  const size_t payload = header_end + 1;
  if (bytes.size() - payload != work_bytes + dispatcher_bytes) {
    return absl::DataLossError(absl::StrCat("step inputs: ", bytes.size() - payload, " payload bytes, the header says ",
                                            work_bytes + dispatcher_bytes));
  }
  if (Crc32c(bytes.data() + payload, bytes.size() - payload) != crc) {
    return absl::DataLossError("step inputs: CRC-32C mismatch");
  }
  v1::RankWork work;
  if (!work.ParseFromArray(bytes.data() + payload, static_cast<int>(work_bytes)) || work.step() != inputs.step) {
    return absl::DataLossError("step inputs: unreadable groups");
  }
  inputs.groups.assign(work.groups().begin(), work.groups().end());
  inputs.dispatcher = bytes.substr(payload + work_bytes);
  return inputs;
}

absl::StatusOr<std::vector<LedgerLine>> ReadTrainedGroups(const std::string& path) {
  RLJ_ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  std::vector<LedgerLine> lines;
  const std::vector<std::string> raw = CompleteLines(text);
  for (size_t i = 0; i < raw.size(); ++i) {
    absl::StatusOr<LedgerLine> line = ParseLine(raw[i]);
    if (!line.ok()) return Annotate(line.status(), absl::StrCat(path, ": line ", i + 1));
    lines.push_back(*std::move(line));
  }
  return lines;
}

TrainingLedger::TrainingLedger(std::string trained_groups_path, std::string step_inputs_dir, int fd)
    : trained_groups_path_(std::move(trained_groups_path)), step_inputs_dir_(std::move(step_inputs_dir)), fd_(fd) {}

TrainingLedger::~TrainingLedger() {
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<std::unique_ptr<TrainingLedger>> TrainingLedger::Open(const std::string& run_dir) {
  const std::string path = absl::StrCat(run_dir, "/", kTrainedGroupsFile);
  const std::string inputs_dir = absl::StrCat(run_dir, "/", kStepInputsDir);
  RLJ_RETURN_IF_ERROR(MakeDirectories(inputs_dir));
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("opening", path);
  return std::unique_ptr<TrainingLedger>(new TrainingLedger(path, inputs_dir, fd));
}

absl::StatusOr<std::unique_ptr<TrainingLedger>> TrainingLedger::StartFresh(const std::string& run_dir) {
  const std::string inputs_dir = absl::StrCat(run_dir, "/", kStepInputsDir);
  std::error_code ec;
  std::filesystem::remove_all(inputs_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("removing ", inputs_dir, ": ", ec.message()));
  RLJ_RETURN_IF_ERROR(WriteFileAtomically(absl::StrCat(run_dir, "/", kTrainedGroupsFile), ""));
  return Open(run_dir);
}

absl::StatusOr<std::unique_ptr<TrainingLedger>> TrainingLedger::Resume(const std::string& run_dir,
                                                                       int64_t checkpoint_step,
                                                                       int64_t checkpoint_version,
                                                                       std::vector<StepInputs>* replay) {
  replay->clear();
  const std::string path = absl::StrCat(run_dir, "/", kTrainedGroupsFile);
  const std::string inputs_dir = absl::StrCat(run_dir, "/", kStepInputsDir);
  // The recorded steps after the checkpoint, while they follow on from it.
  const std::map<int64_t, std::string> files = ListStepInputs(inputs_dir);
  int64_t next = checkpoint_step + 1;
  for (auto it = files.upper_bound(checkpoint_step); it != files.end(); ++it) {
    if (it->first != next) break;
    absl::StatusOr<std::string> bytes = ReadFile(it->second);
    absl::StatusOr<StepInputs> inputs = bytes.ok() ? DecodeStepInputs(*bytes) : bytes.status();
    const int64_t expected_version = checkpoint_version + (next - checkpoint_step);
    if (!inputs.ok() || inputs->step != next || inputs->version != expected_version) {
      log::Warn("step inputs {} refused ({}); resuming at step {}", it->second,
                inputs.ok() ? absl::StrCat("step ", inputs->step, " v", inputs->version, ", expected step ", next, " v",
                                           expected_version)
                            : std::string(inputs.status().message()),
                next - 1);
      break;
    }
    replay->push_back(*std::move(inputs));
    ++next;
  }
  // Anything later belongs to no history this learner can reach: drop it before new steps reuse the names.
  for (auto it = files.lower_bound(next); it != files.end(); ++it) {
    std::error_code ec;
    std::filesystem::remove(it->second, ec);
  }
  // The ledger keeps the steps of the checkpoint; the replayed steps are recorded again as they are taken.
  std::string kept;
  int64_t dropped = 0;
  if (absl::StatusOr<std::string> text = ReadFile(path); text.ok()) {
    for (const std::string& raw : CompleteLines(*text)) {
      absl::StatusOr<LedgerLine> line = ParseLine(raw);
      if (!line.ok() || line->step > checkpoint_step) {
        ++dropped;
        continue;
      }
      kept += raw + "\n";
    }
  }
  RLJ_RETURN_IF_ERROR(WriteFileAtomically(path, kept));
  if (dropped > 0 || !replay->empty()) {
    log::Info("training ledger: {} lines past step {} cut; {} recorded steps to take again", dropped, checkpoint_step,
              replay->size());
  }
  return Open(run_dir);
}

absl::Status TrainingLedger::Record(const StepInputs& inputs, bool inputs_on_disk) {
  if (!inputs_on_disk) {
    RLJ_RETURN_IF_ERROR(WriteFileAtomically(StepInputsPath(step_inputs_dir_, inputs.step), EncodeStepInputs(inputs)));
  }
  const std::string line = LineJson(inputs).dump() + "\n";
  size_t written = 0;
  while (written < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError("appending to", trained_groups_path_);
    written += static_cast<size_t>(n);
  }
  if (::fdatasync(fd_) != 0) return ErrnoError("fsync of", trained_groups_path_);
  return absl::OkStatus();
}

void TrainingLedger::Prune(int64_t step) {
  for (const auto& [recorded, file] : ListStepInputs(step_inputs_dir_)) {
    if (recorded > step) break;
    std::error_code ec;
    std::filesystem::remove(file, ec);
  }
}

}  // namespace rlj
