// npm_test_util.h: tests that need an npm package install it on first use into a folder under the temp
// directory (kept between runs, so npm runs once per machine) and are skipped only when node or npm is missing
// or npm cannot reach its registry.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/subprocess.h"

namespace rlj::testing {

// The executable `name` found on PATH, or "" when there is none.
inline std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  const std::vector<std::string> dirs = absl::StrSplit(path, ':', absl::SkipEmpty());
  for (const std::string& dir : dirs) {
    const std::filesystem::path candidate = std::filesystem::path(dir) / name;
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) {
      return candidate.string();
    }
  }
  return "";
}

// Runs argv with output to `log`; the exit information, or nullopt when it did not end within `timeout`.
inline std::optional<ExitInfo> RunToEnd(const std::vector<std::string>& argv, const std::string& log,
                                        std::chrono::milliseconds timeout, const std::vector<std::string>& env = {}) {
  auto process = Subprocess::Spawn(argv, log, env);
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return ExitInfo{};
  auto exit = (*process)->Wait(timeout);
  if (!exit) (*process)->Stop(std::chrono::milliseconds(2000));
  return exit;
}

inline bool LooksLikeNoNetwork(const std::string& npm_output) {
  for (const char* sign : {"ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET", "ENETUNREACH",
                           "network", "getaddrinfo", "request to https"}) {
    if (npm_output.find(sign) != std::string::npos) return true;
  }
  return false;
}

enum class NpmInstall { kReady, kNoNpm, kNoNetwork, kFailed };

// Copies `package_json` into `install` and runs `npm install` there unless `ready_file` (a path inside
// `install`) already exists. What happened; npm's output goes to `log` (read it on kFailed / kNoNetwork).
inline NpmInstall InstallNpmPackages(const std::filesystem::path& package_json, const std::filesystem::path& install,
                                     const std::filesystem::path& ready_file, const std::string& log) {
  const std::string npm = FindOnPath("npm");
  if (FindOnPath("node").empty() || npm.empty()) return NpmInstall::kNoNpm;
  std::error_code ec;
  std::filesystem::create_directories(install, ec);
  if (ec) return NpmInstall::kFailed;
  std::filesystem::copy_file(package_json, install / "package.json", std::filesystem::copy_options::overwrite_existing,
                             ec);
  if (ec) return NpmInstall::kFailed;
  if (std::filesystem::exists(ready_file)) return NpmInstall::kReady;
  // npm runs in the install folder: argv through `sh -c` only to change directory.
  auto exit = RunToEnd({"/bin/sh", "-c", "cd \"$1\" && \"$2\" install --no-audit --no-fund --no-package-lock", "sh",
                        install.string(), npm},
                       log, std::chrono::minutes(5));
  if (exit && exit->ok()) return NpmInstall::kReady;
  return !exit || LooksLikeNoNetwork(ReadFile(log).value_or("")) ? NpmInstall::kNoNetwork : NpmInstall::kFailed;
}

}  // namespace rlj::testing
