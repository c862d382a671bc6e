// sft_stop_test.cc: `rlj sft` on SIGTERM (as Ctrl-C): it stops within a step, says after which step, exits
// non-zero and leaves no checkpoint behind, so a half-trained model never stands in for a finished one.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "rlj_process.h"
#include "test_util.h"

namespace rlj {
namespace {

using testing::StartRlj;

TEST(SftStop, SigtermStopsWithinAStepWritesNothingAndExitsNonZero) {
  testing::ScratchDir dir;
  ASSERT_NO_FATAL_FAILURE(testing::WriteTinyTask(dir.path()));
  const std::string config = dir.file("sft.yaml");
  // Far more steps than the test waits for: only the signal can end it.
  RLJ_ASSERT_OK(WriteFileAtomically(config, absl::StrCat(testing::TinyRunConfigHead(dir.path(), "stopped"), R"(
sft:
  steps: 10000000
  batch_size: 8
)")));
  const std::string output = dir.file("sft.out");
  auto sft = StartRlj({"sft", config, "--output", dir.file("checkpoint")}, output);
  ASSERT_TRUE(sft);
  // Training has begun once the first step is logged.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
  while (ReadFile(output).value_or("").find("sft step 1/") == std::string::npos) {
    ASSERT_FALSE(sft->Poll().has_value()) << "rlj sft ended before training:\n" << ReadFile(output).value_or("");
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "rlj sft never logged its first step";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  sft->Signal(SIGTERM);
  const std::optional<ExitInfo> exit = sft->Wait(std::chrono::minutes(2));
  ASSERT_TRUE(exit.has_value()) << "rlj sft did not stop after SIGTERM";
  const std::string text = ReadFile(output).value_or("");
  EXPECT_EQ(exit->signal, 0) << exit->Describe();
  EXPECT_EQ(exit->exit_code, 1) << exit->Describe() << "\n" << text;
  EXPECT_NE(text.find("rlj sft: stopped after step "), std::string::npos) << text;
  EXPECT_NE(text.find("; no checkpoint written to " + dir.file("checkpoint")), std::string::npos) << text;
  EXPECT_FALSE(std::filesystem::exists(dir.file("checkpoint")));
}

}  // namespace
}  // namespace rlj
