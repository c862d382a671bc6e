// run_dir.cc: creates run directories and reads/writes endpoint files.
#include "common/run_dir.h"

#include "absl/strings/ascii.h"
#include "common/file_util.h"
#include "common/status.h"

namespace rlj {

absl::Status RunDir::Create() const {
  for (const std::string& dir : {root_, checkpoints_dir(), logs_dir(), reward_log_dir(), endpoints_dir()}) {
    RLJ_RETURN_IF_ERROR(MakeDirectories(dir));
  }
  return absl::OkStatus();
}

absl::Status RunDir::WriteEndpoint(const std::string& service, const std::string& address) const {
  RLJ_RETURN_IF_ERROR(MakeDirectories(endpoints_dir()));
  return WriteFileAtomically(endpoint_path(service), address + "\n");
}

absl::StatusOr<std::string> RunDir::ReadEndpoint(const std::string& service) const {
  RLJ_ASSIGN_OR_RETURN(std::string text, ReadFile(endpoint_path(service)));
  return std::string(absl::StripAsciiWhitespace(text));
}

}  // namespace rlj
