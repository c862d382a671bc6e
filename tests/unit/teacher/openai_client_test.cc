// openai_client_test.cc: the official OpenAI Node client (npm package `openai`, tests/openai_client/) runs
// unchanged against a teacher server; npm installs it on first use (into <tmp>/rlj-openai-client) and the
// test is skipped only when node or npm is missing or npm cannot reach its registry.
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
#include "teacher/teacher_test_util.h"

namespace rlj {
namespace {

namespace fs = std::filesystem;

// The executable `name` found on PATH, or "" when there is none.
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  const std::vector<std::string> dirs = absl::StrSplit(path, ':', absl::SkipEmpty());
  for (const std::string& dir : dirs) {
    const fs::path candidate = fs::path(dir) / name;
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

// Runs argv with output to `log`; the exit information, or nullopt when it did not end within `timeout`.
std::optional<ExitInfo> RunToEnd(const std::vector<std::string>& argv, const std::string& log,
                                 std::chrono::milliseconds timeout, const std::vector<std::string>& env = {}) {
  auto process = Subprocess::Spawn(argv, log, env);
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return ExitInfo{};
  auto exit = (*process)->Wait(timeout);
  if (!exit) (*process)->Stop(std::chrono::milliseconds(2000));
  return exit;
}

bool LooksLikeNoNetwork(const std::string& npm_output) {
  for (const char* sign : {"ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET", "ENETUNREACH",
                           "network", "getaddrinfo", "request to https"}) {
    if (npm_output.find(sign) != std::string::npos) return true;
  }
  return false;
}

TEST(OpenAIClient, OfficialNodeClientWorksUnchanged) {
  const std::string node = FindOnPath("node");
  const std::string npm = FindOnPath("npm");
  if (node.empty() || npm.empty()) GTEST_SKIP() << "node or npm is not installed: the OpenAI Node client test is skipped";
  // The client is installed outside the source tree (a folder kept between runs, so npm runs once per
  // machine) from the checked-in package.json (an exact version, which has no dependencies of its own), and
  // the script runs from there.
  const fs::path project = fs::path(RLJ_SOURCE_DIR) / "tests" / "openai_client";
  const fs::path install = fs::temp_directory_path() / "rlj-openai-client";
  testing::ScratchDir scratch;
  std::error_code ec;
  fs::create_directories(install, ec);
  ASSERT_FALSE(ec) << install << ": " << ec.message();
  for (const char* file : {"package.json", "client_test.mjs"}) {
    fs::copy_file(project / file, install / file, fs::copy_options::overwrite_existing, ec);
    ASSERT_FALSE(ec) << file << ": " << ec.message();
  }
  if (!fs::exists(install / "node_modules" / "openai" / "package.json")) {
    const std::string log = scratch.path() + "/npm.log";
    // npm runs in the install folder: argv through `sh -c` only to change directory.
    auto exit = RunToEnd({"/bin/sh", "-c", "cd \"$1\" && \"$2\" install --no-audit --no-fund --no-package-lock", "sh",
                          install.string(), npm},
                         log, std::chrono::minutes(5));
    const std::string output = ReadFile(log).value_or("");
    if (!exit || !exit->ok()) {
      if (LooksLikeNoNetwork(output) || !exit) {
        GTEST_SKIP() << "npm could not install the `openai` package (no network to the npm registry?); output:\n"
                     << output;
      }
      FAIL() << "npm install failed: " << output;
    }
  }

  testing::TinyTeacher teacher;
  ASSERT_NE(teacher.server, nullptr);
  const std::string log = scratch.path() + "/node.log";
  auto exit = RunToEnd({node, (install / "client_test.mjs").string()}, log, std::chrono::minutes(3),
                       {"RLJ_TEACHER_BASE_URL=" + teacher.server->base_url(), "RLJ_TEACHER_MODEL=teacher"});
  const std::string output = ReadFile(log).value_or("");
  ASSERT_TRUE(exit.has_value()) << "the Node client did not finish within 3 minutes; output:\n" << output;
  EXPECT_TRUE(exit->ok()) << exit->Describe() << "; output:\n" << output;
  EXPECT_NE(output.find("6 passed, 0 failed"), std::string::npos) << output;
}

}  // namespace
}  // namespace rlj
