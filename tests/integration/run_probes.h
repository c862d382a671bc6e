// run_probes.h: what integration tests read from a live `rlj run`: its learner's status over gRPC, a condition
// awaited while the run lives, and the files a process wrote under a directory (TensorBoard events).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/run_dir.h"
#include "common/subprocess.h"
#include "rlj/v1/learner.grpc.pb.h"

namespace rlj::testing {

// Learner.Status of the run's learner (nullopt while it is not reachable).
inline std::optional<v1::LearnerStatus> LearnerStatusOf(const RunDir& run_dir) {
  const std::string address = run_dir.ReadEndpoint("learner").value_or("");
  if (address.empty()) return std::nullopt;
  auto stub = v1::Learner::NewStub(MakeChannel(address));
  grpc::ClientContext context;
  SetDeadline(&context, std::chrono::seconds(5));
  v1::LearnerStatus status;
  if (!stub->Status(&context, v1::StatusRequest(), &status).ok()) return std::nullopt;
  return status;
}

// Polls `condition` every 50 ms until it holds (true) or `timeout` passes or the run ends (false).
inline bool AwaitWhileRunning(Subprocess* run, std::chrono::seconds timeout, const std::function<bool()>& condition) {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < give_up) {
    if (condition()) return true;
    if (run != nullptr && run->Poll().has_value()) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling other processes' state
  }
  return false;
}

// Every regular file under `dir`, concatenated ("" when there is no such directory).
inline std::string ReadFilesUnder(const std::string& dir) {
  std::string content;
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) return content;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) content += ReadFile(entry.path().string()).value_or("");
  }
  return content;
}

}  // namespace rlj::testing
