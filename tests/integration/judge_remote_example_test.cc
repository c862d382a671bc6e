// judge_remote_example_test.cc: the Python judge of examples/python_judge (a real process) serves as the
// `remote` backend of a real `rlj judge` process: actors' Score calls go through rlj's judge to Python and
// back, and Judge.Status counts them.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/run_dir.h"
#include "rlj/v1/judge.grpc.pb.h"
#include "rlj_process.h"
#include "test_util.h"

namespace rlj {
namespace {

using std::chrono::seconds;

// Polls `read` (a file another process writes once ready) for up to `limit`; "" when it never came.
std::string AwaitFile(const std::function<std::string()>& read, Subprocess* writer, seconds limit) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < give_up) {
    std::string value = read();
    if (!value.empty()) return value;
    if (writer->Poll().has_value()) return "";                    // it exited instead
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling a file: no event to wait on
  }
  return "";
}

v1::Sample MakeSample(const std::string& id, const std::string& completion, const std::string& reference) {
  v1::Sample sample;
  sample.set_id(id);
  sample.set_prompt("What is 2+2?");
  sample.set_completion(completion);
  sample.set_reference(reference);
  return sample;
}

TEST(JudgeRemoteExample, PythonJudgeBehindRljJudge) {
  testing::ScratchDir dir;
  const std::string port_file = dir.file("python.port");
  auto python = Subprocess::Spawn({"/usr/bin/python3", std::string(RLJ_SOURCE_DIR) + "/examples/python_judge/judge.py",
                                   "--listen", "127.0.0.1:0", "--port-file", port_file},
                                  dir.file("python.out"));
  ASSERT_TRUE(python.ok()) << python.status();
  const std::string port = AwaitFile(
      [&] {
        std::ifstream in(port_file);
        std::string text;
        return (in >> text) ? text : std::string();
      },
      python->get(), seconds(120));
  ASSERT_FALSE(port.empty()) << "the python judge did not start:\n" << ReadFile(dir.file("python.out")).value_or("");

  const std::string config = dir.file("c.yaml");
  ASSERT_TRUE(WriteFileAtomically(config, absl::StrCat("name: remote-example\nruns_root: ", dir.path(),
                                                       "/runs\njudge:\n  backend: remote\n  remote:\n    address: "
                                                       "127.0.0.1:",
                                                       port, "\n    timeout_ms: 30000\n"))
                  .ok());
  const std::string run_dir = dir.file("run");
  auto judge =
      testing::StartRlj({"judge", config, "--run-dir", run_dir, "--listen", "127.0.0.1:0"}, dir.file("judge.out"));
  ASSERT_NE(judge, nullptr);
  const RunDir run(run_dir);
  const std::string address =
      AwaitFile([&] { return run.ReadEndpoint("judge-0").value_or(""); }, judge.get(), seconds(120));
  ASSERT_FALSE(address.empty()) << "rlj judge did not start:\n" << ReadFile(dir.file("judge.out")).value_or("");

  auto stub = v1::Judge::NewStub(MakeChannel(address));
  v1::ScoreRequest request;
  *request.add_samples() = MakeSample("right", "4", "4");
  *request.add_samples() = MakeSample("wrong", "it is 5, surely", "4");
  *request.add_samples() = MakeSample("no-number", "4", "four");
  v1::ScoreResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, seconds(60));
  const grpc::Status status = stub->Score(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.verdicts_size(), 3);
  EXPECT_FALSE(response.verdicts(0).has_error()) << response.verdicts(0).error().message();
  EXPECT_NEAR(response.verdicts(0).reward(), 1.1, 1e-12);  // correct + brevity bonus
  EXPECT_EQ(response.verdicts(0).backend(), "remote");
  EXPECT_EQ(response.verdicts(0).rationale(), "expected 4, got 4");
  EXPECT_NEAR(response.verdicts(1).reward(), 0.0, 1e-12);
  ASSERT_TRUE(response.verdicts(2).has_error());  // the Python judge's own error, passed through
  EXPECT_EQ(response.verdicts(2).error().kind(), "invalid");

  v1::JudgeStatus judge_status;
  grpc::ClientContext status_context;
  SetDeadline(&status_context, seconds(30));
  ASSERT_TRUE(stub->Status(&status_context, v1::JudgeStatusRequest(), &judge_status).ok());
  EXPECT_EQ(judge_status.backend(), "remote");
  EXPECT_EQ(judge_status.samples(), 3);
  EXPECT_EQ(judge_status.errors(), 1);

  EXPECT_EQ(judge->Stop(seconds(15)).exit_code, 0);
  (*python)->Stop(seconds(5));
}

}  // namespace
}  // namespace rlj
