// judge_budget_test.cc: a run judged by a priced teacher stops cleanly when judge.budget_usd is spent: the
// judge fails new samples with kind "budget", `rlj run` sees it through Judge.Status, stops like on Ctrl-C
// (the learner checkpoints) and says why in its output and summary.json. The teacher is a small Python HTTP
// server answering every chat completion with a score and a usage of 1000 prompt tokens. Once the budget is
// spent every sample fails at once and its batch is skipped: the skipped-batch limit is off, so the budget
// stop is what ends the run, however fast the actor is.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/arithmetic_task.h"
#include "common/dataset.h"
#include "common/file_util.h"
#include "rlj_process.h"
#include "test_util.h"

namespace rlj {
namespace {

constexpr char kTeacher[] = R"PY(
import http.server, json, sys
class Teacher(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        request = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        score = sum(request) % 11  # differs from answer to answer: steps are real updates
        body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "{\"score\": %d}" % score},
                                        "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 1000, "completion_tokens": 0}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Teacher)
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(str(server.server_address[1]))
import os
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
)PY";

TEST(JudgeBudget, RunStopsCleanlyWhenTheBudgetIsSpent) {
  testing::ScratchDir dir;
  ASSERT_TRUE(WriteFileAtomically(dir.file("teacher.py"), kTeacher).ok());
  auto teacher = Subprocess::Spawn({"/usr/bin/python3", dir.file("teacher.py"), dir.file("teacher.port")},
                                   dir.file("teacher.out"));
  ASSERT_TRUE(teacher.ok()) << teacher.status();
  std::string port;
  for (int i = 0; i < 600 && port.empty(); ++i) {
    std::ifstream in(dir.file("teacher.port"));
    if (!(in >> port)) {
      port.clear();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling a file the teacher writes
    }
  }
  ASSERT_FALSE(port.empty()) << ReadFile(dir.file("teacher.out")).value_or("");

  testing::WriteTinyTask(dir.path());
  // Each teacher answer costs $1 (1000 prompt tokens at $1 per 1000); the budget is $20 of a run that
  // would otherwise take 100000 steps.
  const std::string config = dir.file("budget.yaml");
  ASSERT_TRUE(WriteFileAtomically(config, absl::StrCat(testing::TinyRunConfigHead(dir.path(), "budget"), R"(learner:
  steps: 100000
  groups_per_step: 2
  max_skipped_batches_in_a_row: 0
actor:
  count: 1
  prompts_per_batch: 2
judge:
  backend: openai
  budget_usd: 20
  openai:
    base_url: http://127.0.0.1:)",
                                                       port, R"(/v1
    model: priced-teacher
    rubric: "Q: {prompt} A: {completion} Reply {\"score\": 0-10}"
    price_input_per_1k: 1.0
    max_retries: 0
)"))
                  .ok());
  const testing::Finished finished = testing::RunRlj({"run", config}, dir.file("run.out"), std::chrono::seconds(600));
  (*teacher)->Stop(std::chrono::seconds(5));
  EXPECT_EQ(finished.exit.exit_code, 0) << finished.output;
  EXPECT_NE(finished.output.find("the judge's budget is spent"), std::string::npos) << finished.output;
  auto summary_text = ReadFile(dir.path() + "/runs/budget/summary.json");
  ASSERT_TRUE(summary_text.ok()) << finished.output;
  const nlohmann::json summary = nlohmann::json::parse(*summary_text);
  EXPECT_TRUE(summary["interrupted"].get<bool>());
  EXPECT_NE(summary["stop_reason"].get<std::string>().find("budget"), std::string::npos);
  EXPECT_LT(summary["steps"].get<int64_t>(), 100000);
  EXPECT_TRUE(summary.contains("checkpoint")) << summary.dump();  // the learner checkpointed on the way out
}

}  // namespace
}  // namespace rlj
