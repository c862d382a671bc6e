// log.cc: configures the process-wide spdlog logger.
#include "common/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <vector>

#include "absl/strings/str_cat.h"

namespace rlj::log {

absl::Status Init(std::string_view process_name, std::string_view level, const std::string& file_path) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("runtime.log_level: unknown level '", std::string(level), "' (trace|debug|info|warn|error|off)"));
  }
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  if (!file_path.empty()) {
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file_path));
    } catch (const spdlog::spdlog_ex& e) {
      return absl::UnavailableError(absl::StrCat("cannot open log file ", file_path, ": ", e.what()));
    }
  }
  auto logger = std::make_shared<spdlog::logger>(std::string(process_name), sinks.begin(), sinks.end());
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] [%n] %v");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

}  // namespace rlj::log
