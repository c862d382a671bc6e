// eval_curve.cc: the eval_curve.jsonl lines, written and read.
#include "logs/eval_curve.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace rlj::logs {

nlohmann::json EvalPointToJson(const EvalPoint& p) {
  const auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"kind", p.kind},
          {"step", p.step},
          {"accuracy", number(p.accuracy)},
          {"reward", number(p.reward)},
          {"prompts", p.prompts},
          {"seconds", number(p.seconds)},
          {"cost_usd", number(p.cost_usd)},
          {"unix_s", number(p.unix_s)}};
}

absl::Status AppendEvalPoint(const std::string& path, const EvalPoint& point) {
  const std::string line = EvalPointToJson(point).dump() + "\n";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  const ssize_t written = ::write(fd, line.data(), line.size());
  const int write_errno = errno;
  const int synced = ::fsync(fd);
  ::close(fd);
  if (written != static_cast<ssize_t>(line.size())) {
    return absl::UnavailableError(absl::StrCat("cannot append to ", path, ": ", std::strerror(write_errno)));
  }
  if (synced != 0) return absl::UnavailableError(absl::StrCat("cannot sync ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<EvalPoint>> ReadEvalCurve(const std::string& path) {
  std::vector<EvalPoint> curve;
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return curve;
  std::ifstream in(path);
  if (!in) return absl::UnavailableError(absl::StrCat("cannot open ", path));
  const auto number = [](const nlohmann::json& j, const char* key) {
    return j.contains(key) && j[key].is_number() ? j[key].get<double>() : std::nan("");
  };
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer()) continue;
    EvalPoint p;
    p.kind = j.value("kind", std::string("periodic"));
    p.step = j["step"].get<int64_t>();
    p.accuracy = number(j, "accuracy");
    p.reward = number(j, "reward");
    p.prompts = j.contains("prompts") && j["prompts"].is_number_integer() ? j["prompts"].get<int64_t>() : 0;
    p.seconds = number(j, "seconds");
    p.cost_usd = number(j, "cost_usd");
    p.unix_s = number(j, "unix_s");
    curve.push_back(std::move(p));
  }
  return curve;
}

const EvalPoint* BestPeriodicPoint(const std::vector<EvalPoint>& curve) {
  const EvalPoint* best = nullptr;
  for (const EvalPoint& p : curve) {
    if (p.kind != "periodic" || std::isnan(p.accuracy)) continue;
    if (best == nullptr || p.accuracy > best->accuracy) best = &p;
  }
  return best;
}

}  // namespace rlj::logs
