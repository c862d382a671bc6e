// run_preflight.cc: `rlj run`'s checks before any work: learner ranks this build can form, every input path
// readable, bindable addresses.
#include "tools/run_preflight.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "learner/rank_group.h"
#include "model/tensor/torch_util.h"

namespace rlj::tools {

absl::Status CheckListenAddress(const std::string& key, const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": '", address, "' is not host:port (a port in 0..65535; 0 picks a free one)"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": '", address, "': host '", host, "' does not resolve (", ::gai_strerror(rc), ")"));
  }
  std::string error;
  bool bound = false;
  for (const addrinfo* a = found; a != nullptr && !bound; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0) {
      bound = true;
    } else {
      error = std::strerror(errno);
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (!bound) {
    return absl::FailedPreconditionError(
        absl::StrCat(key, ": cannot listen on '", address, "' (", error.empty() ? "no usable address" : error, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckInputPaths(const v1::RunConfig& config) {
  const auto file = [](const char* key, const std::string& path) {
    return path.empty() ? absl::OkStatus() : CheckReadableFile(path, key);
  };
  const auto directory = [](const char* key, const std::string& path) {
    return path.empty() ? absl::OkStatus() : CheckReadableDirectory(path, key);
  };
  RLJ_RETURN_IF_ERROR(CheckReadableFile(config.data().train_path(), "data.train_path"));
  RLJ_RETURN_IF_ERROR(file("data.eval_path", config.data().eval_path()));
  RLJ_RETURN_IF_ERROR(directory("model.init_checkpoint", config.model().init_checkpoint()));
  RLJ_RETURN_IF_ERROR(file("tokenizer.path", config.tokenizer().path()));
  RLJ_RETURN_IF_ERROR(file("quality.canary_path", config.quality().canary_path()));
  if (config.has_teacher()) {
    RLJ_RETURN_IF_ERROR(directory("teacher.model", config.teacher().model()));
    RLJ_RETURN_IF_ERROR(file("teacher.tokenizer.path", config.teacher().tokenizer().path()));
  }
  const v1::SecurityConfig& sec = config.security();
  RLJ_RETURN_IF_ERROR(file("security.tls_cert", sec.tls_cert()));
  RLJ_RETURN_IF_ERROR(file("security.tls_key", sec.tls_key()));
  RLJ_RETURN_IF_ERROR(file("security.tls_ca", sec.tls_ca()));
  RLJ_RETURN_IF_ERROR(file("security.client_cert", sec.client_cert()));
  RLJ_RETURN_IF_ERROR(file("security.client_key", sec.client_key()));
  return absl::OkStatus();
}

absl::Status CheckRunCanStart(const v1::RunConfig& config) {
  RLJ_RETURN_IF_ERROR(CheckInputPaths(config));
  const v1::LearnerConfig& l = config.learner();
  if (l.ranks() > 1) {
    RLJ_ASSIGN_OR_RETURN(const c10::Device device,
                         ResolveDevice(l.has_device() ? l.device() : config.runtime().device()));
    const std::string kind = device.is_cuda() ? "cuda" : "cpu";
    if (!RankGroupAvailable(kind)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "learner.ranks: ", l.ranks(), " data-parallel ranks on ", kind,
          " need a c10d process group this build does not have (Gloo's headers at build time: Debian's "
          "libgloo-dev, which tools/install-deps.sh installs; then rebuild). Set learner.ranks: 1 to train on one."));
    }
  }
  RLJ_RETURN_IF_ERROR(CheckListenAddress("learner.listen", l.listen()));
  RLJ_RETURN_IF_ERROR(CheckListenAddress("judge.listen", config.judge().listen()));
  if (config.has_teacher()) RLJ_RETURN_IF_ERROR(CheckListenAddress("teacher.listen", config.teacher().listen()));
  const v1::TelemetryConfig& t = config.telemetry();
  if (t.metrics()) {
    RLJ_RETURN_IF_ERROR(CheckListenAddress("telemetry.metrics_listen", t.metrics_listen()));
    if (t.has_learner_metrics_listen()) {
      RLJ_RETURN_IF_ERROR(CheckListenAddress("telemetry.learner_metrics_listen", t.learner_metrics_listen()));
    }
    if (t.has_judge_metrics_listen()) {
      RLJ_RETURN_IF_ERROR(CheckListenAddress("telemetry.judge_metrics_listen", t.judge_metrics_listen()));
    }
    if (t.has_actor_metrics_listen()) {
      RLJ_RETURN_IF_ERROR(CheckListenAddress("telemetry.actor_metrics_listen", t.actor_metrics_listen()));
    }
    if (t.has_teacher_metrics_listen()) {
      RLJ_RETURN_IF_ERROR(CheckListenAddress("telemetry.teacher_metrics_listen", t.teacher_metrics_listen()));
    }
  }
  return absl::OkStatus();
}

}  // namespace rlj::tools
