// openai_client_test.cc: the official OpenAI Node client (npm package `openai`, tests/openai_client/) runs
// unchanged against a teacher server; npm installs it on first use (into <tmp>/rlj-openai-client) and the
// test is skipped only when node or npm is missing or npm cannot reach its registry.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "common/file_util.h"
#include "npm_test_util.h"
#include "teacher/teacher_test_util.h"

namespace rlj {
namespace {

namespace fs = std::filesystem;
using ::rlj::testing::NpmInstall;

TEST(OpenAIClient, OfficialNodeClientWorksUnchanged) {
  // The client is installed outside the source tree from the checked-in package.json (an exact version, which
  // has no dependencies of its own), and the script runs from there.
  const fs::path project = fs::path(RLJ_SOURCE_DIR) / "tests" / "openai_client";
  const fs::path install = fs::temp_directory_path() / "rlj-openai-client";
  testing::ScratchDir scratch;
  const std::string npm_log = scratch.path() + "/npm.log";
  switch (testing::InstallNpmPackages(project / "package.json", install,
                                      install / "node_modules" / "openai" / "package.json", npm_log)) {
    case NpmInstall::kReady:
      break;
    case NpmInstall::kNoNpm:
      GTEST_SKIP() << "node or npm is not installed: the OpenAI Node client test is skipped";
    case NpmInstall::kNoNetwork:
      GTEST_SKIP() << "npm could not install the `openai` package (no network to the npm registry?); output:\n"
                   << ReadFile(npm_log).value_or("");
    case NpmInstall::kFailed:
      FAIL() << "npm install failed: " << ReadFile(npm_log).value_or("");
  }
  std::error_code ec;
  fs::copy_file(project / "client_test.mjs", install / "client_test.mjs", fs::copy_options::overwrite_existing, ec);
  ASSERT_FALSE(ec) << "client_test.mjs: " << ec.message();
  const std::string node = testing::FindOnPath("node");

  testing::TinyTeacher teacher;
  ASSERT_NE(teacher.server, nullptr);
  const std::string log = scratch.path() + "/node.log";
  auto exit = testing::RunToEnd({node, (install / "client_test.mjs").string()}, log, std::chrono::minutes(3),
                                {"RLJ_TEACHER_BASE_URL=" + teacher.server->base_url(), "RLJ_TEACHER_MODEL=teacher"});
  const std::string output = ReadFile(log).value_or("");
  ASSERT_TRUE(exit.has_value()) << "the Node client did not finish within 3 minutes; output:\n" << output;
  EXPECT_TRUE(exit->ok()) << exit->Describe() << "; output:\n" << output;
  EXPECT_NE(output.find("6 passed, 0 failed"), std::string::npos) << output;
}

}  // namespace
}  // namespace rlj
