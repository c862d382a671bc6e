// backends_test.cc: every backend besides openai, each against a real counterpart: rule's regex, contains
// and length penalty; command with a real Python judge program (kept alive, restarted when it dies, times
// out, answers garbage or out of step); remote against a real in-process gRPC judge; anthropic against a
// real HTTP server speaking the Messages API; ensemble (weighted and group ranking in two orders) and
// failover through the registry.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "judge/backend_registry.h"
#include "judge/backends/command_backend.h"
#include "judge/judge_server.h"
#include "judge/judge_service.h"
#include "judge/line_process.h"
#include "nlohmann/json.hpp"
#include "teacher_server.h"
#include "test_util.h"

namespace rlj {
namespace {

using nlohmann::json;
using ::rlj::testing::ChatReply;
using ::rlj::testing::FailsWith;
using ::rlj::testing::ScratchDir;
using ::rlj::testing::TeacherReply;
using ::rlj::testing::TeacherRequest;
using ::rlj::testing::TeacherServer;

v1::Sample MakeSample(const std::string& id, const std::string& completion, const std::string& reference = "4") {
  v1::Sample sample;
  sample.set_id(id);
  sample.set_prompt("What is 2+2?");
  sample.set_completion(completion);
  sample.set_reference(reference);
  return sample;
}

std::unique_ptr<JudgeBackend> Make(const v1::JudgeConfig& config, JudgeBackendDeps deps = {}) {
  auto backend = MakeJudgeBackend(config, deps);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? std::move(backend).value() : nullptr;
}

v1::Verdict ScoreOne(JudgeBackend& backend, const v1::Sample& sample) {
  std::vector<Judgement> judgements = backend.Score({sample});
  EXPECT_EQ(judgements.size(), 1u);
  return judgements.empty() ? v1::Verdict{} : judgements[0].verdict;
}

// ---------------------------------------------------------------------------------------------- rule

TEST(RuleChecks, RegexContainsCombinedAndLengthPenalty) {
  v1::JudgeConfig config;
  config.set_backend("rule");
  v1::RuleJudgeConfig* rule = config.mutable_rule();
  rule->add_checks(v1::RuleJudgeConfig::regex);
  rule->add_checks(v1::RuleJudgeConfig::contains);
  rule->set_pattern(R"(answer is \(?{reference}\)?)");
  rule->set_case_sensitive(false);
  rule->set_length_penalty_per_char(0.01);
  rule->set_length_free_chars(10);
  rule->set_length_penalty_max(0.1);
  auto backend = Make(config);
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->model(), "regex+contains");

  // 16 characters: 6 over the free 10 → penalty 0.06.
  v1::Verdict verdict = ScoreOne(*backend, MakeSample("a", "the answer is 4.", "4"));
  ASSERT_FALSE(verdict.has_error()) << verdict.error().message();
  EXPECT_NEAR(verdict.reward(), 1.0 - 0.06, 1e-12);
  EXPECT_EQ(verdict.components().at("regex"), 1);
  EXPECT_EQ(verdict.components().at("contains"), 1);
  EXPECT_NEAR(verdict.components().at("length_penalty"), -0.06, 1e-12);

  // {reference} is quoted: "4.0" does not match "4x0". Contains passes, regex fails → wrong; penalty capped.
  verdict = ScoreOne(*backend, MakeSample("b", "THE ANSWER IS 4x0, so it contains 4.0 — a long tail here", "4.0"));
  ASSERT_FALSE(verdict.has_error());
  EXPECT_EQ(verdict.components().at("regex"), 0);
  EXPECT_EQ(verdict.components().at("contains"), 1);
  EXPECT_NEAR(verdict.reward(), 0.0 - 0.1, 1e-12);

  // Short and right: no penalty.
  verdict = ScoreOne(*backend, MakeSample("c", "answer is 4", "4"));
  EXPECT_NEAR(verdict.reward(), 1.0 - 0.01, 1e-12);  // 11 characters
}

TEST(RuleChecks, ContainsIsCaseSensitiveByDefaultAndBadPatternsAreInvalid) {
  v1::JudgeConfig config;
  config.set_backend("rule");
  config.mutable_rule()->set_mode(v1::RuleJudgeConfig::contains);
  auto backend = Make(config);
  EXPECT_EQ(ScoreOne(*backend, MakeSample("a", "It is Paris.", "Paris")).reward(), 1);
  EXPECT_EQ(ScoreOne(*backend, MakeSample("b", "it is paris.", "Paris")).reward(), 0);

  config.mutable_rule()->set_mode(v1::RuleJudgeConfig::regex);
  config.mutable_rule()->set_pattern("([unclosed");
  auto bad = MakeJudgeBackend(config);
  if (bad.ok()) {  // a pattern error may surface at construction or on each sample, never as a 0 reward
    const v1::Verdict verdict = ScoreOne(**bad, MakeSample("c", "x"));
    ASSERT_TRUE(verdict.has_error());
    EXPECT_EQ(verdict.error().kind(), "invalid");
  }
}

// ------------------------------------------------------------------------------------------- command

// A judge program in Python: behaviour chosen by the completion.
constexpr char kJudgeProgram[] = R"PY(
import json, os, sys, time
for line in sys.stdin:
    request = json.loads(line)
    c = request["completion"]
    if c == "die":
        sys.exit(3)
    if c == "slow":
        time.sleep(60)
    if c == "garbage":
        print("this is not json", flush=True)
        continue
    if c == "huge":
        print(json.dumps({"reward": 1, "rationale": "x" * 5000}), flush=True)
        continue
    if c == "wrong-id":
        print(json.dumps({"id": "somebody-else", "reward": 1}), flush=True)
        continue
    if c == "refuse":
        print(json.dumps({"id": request["id"], "error": "will not judge this", "kind": "refusal"}), flush=True)
        continue
    if c == "no-reward":
        print(json.dumps({"id": request["id"]}), flush=True)
        continue
    reward = 1.0 if c.strip() == request["reference"] else 0.0
    print(json.dumps({"id": request["id"], "reward": reward,
                      "components": {"pid": os.getpid(), "group_index": request["index_in_group"]},
                      "rationale": "argv " + sys.argv[1] + " meta " + request["metadata"].get("k", ""),
                      "tokens_in": 7, "tokens_out": 2, "cost_usd": 0.25}), flush=True)
)PY";

class CommandBackendTest : public ::testing::Test {
 protected:
  CommandBackendTest() {
    script_ = scratch_.file("judge.py");
    std::ofstream(script_) << kJudgeProgram;
    config_.set_backend("command");
    v1::CommandJudgeConfig* command = config_.mutable_command();
    command->add_argv("/usr/bin/python3");  // Debian's, whatever python3 the PATH finds first
    command->add_argv("-u");
    command->add_argv(script_);
    command->add_argv("$HOME;echo not-a-shell");  // passed as one argument: no shell
    command->set_timeout_ms(8000);                // includes the program's start-up on a loaded machine
    command->set_max_line_bytes(1024);
  }
  ScratchDir scratch_;
  std::string script_;
  v1::JudgeConfig config_;
};

TEST_F(CommandBackendTest, KeptAliveProgramScoresSamples) {
  UsageLedger ledger;
  JudgeBackendDeps deps;
  deps.ledger = &ledger;
  auto backend = Make(config_, deps);
  ASSERT_NE(backend, nullptr);
  v1::Sample sample = MakeSample("a", "4");
  sample.set_index_in_group(3);
  (*sample.mutable_metadata())["k"] = "v";
  const v1::Verdict first = ScoreOne(*backend, sample);
  ASSERT_FALSE(first.has_error()) << first.error().message();
  EXPECT_EQ(first.reward(), 1);
  EXPECT_EQ(first.components().at("group_index"), 3);
  EXPECT_EQ(first.rationale(), "argv $HOME;echo not-a-shell meta v");
  EXPECT_EQ(first.tokens_in(), 7);
  EXPECT_DOUBLE_EQ(first.cost_usd(), 0.25);
  const v1::Verdict second = ScoreOne(*backend, MakeSample("b", "5"));
  EXPECT_EQ(second.reward(), 0);
  EXPECT_EQ(second.components().at("pid"), first.components().at("pid"));  // the same process, kept alive
  EXPECT_DOUBLE_EQ(ledger.spent_usd(), 0.5);
}

TEST_F(CommandBackendTest, FailuresAreErrorsAndTheProgramIsReplaced) {
  auto made = CommandBackend::Create(config_.command(), JudgeBackendDeps{});
  ASSERT_TRUE(made.ok()) << made.status();
  CommandBackend& backend = **made;
  const v1::Verdict first = ScoreOne(backend, MakeSample("a", "4"));
  ASSERT_FALSE(first.has_error()) << first.error().message();
  const double pid = first.components().at("pid");

  struct Case {
    const char* completion;
    const char* kind;
    const char* says;
  };
  const Case cases[] = {
      {"garbage", "parse", "not a JSON object"},
      {"huge", "parse", "1024"},
      {"wrong-id", "parse", "somebody-else"},
      {"refuse", "refusal", "will not judge this"},
      {"no-reward", "parse", "reward"},
      {"slow", "timeout", ""},
      {"die", "unavailable", ""},
  };
  for (const Case& c : cases) {
    const v1::Verdict verdict = ScoreOne(backend, MakeSample(std::string("id-") + c.completion, c.completion));
    ASSERT_TRUE(verdict.has_error()) << c.completion;
    EXPECT_EQ(verdict.error().kind(), c.kind) << c.completion << ": " << verdict.error().message();
    EXPECT_NE(verdict.error().message().find(c.says), std::string::npos)
        << c.completion << ": " << verdict.error().message();
    EXPECT_EQ(verdict.reward(), 0) << c.completion;
    // Whatever happened, the next sample is scored correctly by a program in step.
    const v1::Verdict after = ScoreOne(backend, MakeSample(std::string("after-") + c.completion, "4"));
    ASSERT_FALSE(after.has_error()) << c.completion << ": " << after.error().message();
    EXPECT_EQ(after.reward(), 1) << c.completion;
  }
  // huge (line too long), wrong-id, slow and die (twice: it died again on the fresh copy) replaced it.
  EXPECT_GE(backend.restarts(), 4);
  const v1::Verdict last = ScoreOne(backend, MakeSample("z", "4"));
  ASSERT_FALSE(last.has_error()) << last.error().message();
  EXPECT_NE(last.components().at("pid"), pid);
}

TEST_F(CommandBackendTest, SeveralProcessesAnswerInParallelInOrder) {
  config_.mutable_command()->set_processes(3);
  auto backend = Make(config_);
  ASSERT_NE(backend, nullptr);
  std::vector<v1::Sample> samples;
  for (int i = 0; i < 30; ++i) samples.push_back(MakeSample(absl::StrCat("s", i), i % 2 == 0 ? "4" : "5"));
  const std::vector<Judgement> judgements = backend->Score(samples);
  ASSERT_EQ(judgements.size(), 30u);
  std::set<double> pids;
  for (int i = 0; i < 30; ++i) {
    ASSERT_FALSE(judgements[i].verdict.has_error()) << judgements[i].verdict.error().message();
    EXPECT_EQ(judgements[i].verdict.sample_id(), absl::StrCat("s", i));
    EXPECT_EQ(judgements[i].verdict.reward(), i % 2 == 0 ? 1 : 0);
    pids.insert(judgements[i].verdict.components().at("pid"));
  }
  EXPECT_LE(pids.size(), 3u);
}

TEST(CommandBackendConfig, MissingOrUnrunnableProgramIsAnError) {
  v1::JudgeConfig config;
  config.set_backend("command");
  EXPECT_TRUE(FailsWith(MakeJudgeBackend(config), absl::StatusCode::kInvalidArgument, "judge.command.argv"));
  config.mutable_command()->add_argv("/nonexistent/judge-program");
  auto made = MakeJudgeBackend(config);
  ASSERT_FALSE(made.ok());
  EXPECT_NE(std::string(made.status().message()).find("/nonexistent/judge-program"), std::string::npos);
}

// The three promises of the command backend: no shell, a timeout that kills, bounded output.

TEST(CommandBackendSafety, ProgramNamesWithShellMetacharactersAreNotInterpreted) {
  ScratchDir scratch;
  const std::string marker = scratch.file("pwned");
  v1::JudgeConfig config;
  config.set_backend("command");
  for (const std::string& program : {"true; touch " + marker, "$(touch " + marker + ")", "`touch " + marker + "`",
                                     "true && touch " + marker + " | cat"}) {
    config.mutable_command()->clear_argv();
    config.mutable_command()->add_argv(program);
    auto made = MakeJudgeBackend(config);
    EXPECT_TRUE(FailsWith(made, absl::StatusCode::kFailedPrecondition, "cannot run '" + program + "'")) << program;
  }
  EXPECT_FALSE(std::filesystem::exists(marker)) << "a shell ran the program name";
  // A real program whose path is full of metacharacters runs, found by that literal path.
  const std::string dir = scratch.file("a b;touch ${HOME}|&$(x)");
  std::filesystem::create_directories(dir);
  const std::string program = dir + "/judge";
  std::ofstream(program) << "#!/bin/sh\nwhile read line; do echo '{\"reward\": 0.5}'; done\n";
  std::filesystem::permissions(program, std::filesystem::perms::owner_all);
  config.mutable_command()->clear_argv();
  config.mutable_command()->add_argv(program);
  config.mutable_command()->add_argv("; touch " + marker);  // an argument, passed as it is
  auto backend = Make(config);
  ASSERT_NE(backend, nullptr);
  const v1::Verdict verdict = ScoreOne(*backend, MakeSample("a", "4"));
  ASSERT_FALSE(verdict.has_error()) << verdict.error().message();
  EXPECT_EQ(verdict.reward(), 0.5);
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(CommandBackendSafety, ASleepingProgramIsKilledAtTheTimeoutAndItsSampleMasked) {
  ScratchDir scratch;
  const std::string pid_file = scratch.file("pid");
  v1::JudgeConfig config;
  config.set_backend("command");
  // Writes its pid, then takes its input but never answers.
  config.mutable_command()->add_argv("/bin/sh");
  config.mutable_command()->add_argv("-c");
  config.mutable_command()->add_argv("echo $$ > '" + pid_file + ".tmp' && mv '" + pid_file + ".tmp' '" + pid_file +
                                     "' && exec sleep 600");
  config.mutable_command()->set_timeout_ms(4000);
  auto made = CommandBackend::Create(config.command(), JudgeBackendDeps{});
  ASSERT_TRUE(made.ok()) << made.status();
  const auto start = std::chrono::steady_clock::now();
  const v1::Verdict verdict = ScoreOne(**made, MakeSample("slow", "4"));
  const double waited_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(verdict.has_error());
  EXPECT_EQ(verdict.error().kind(), "timeout");
  EXPECT_NE(verdict.error().message().find("timeout: the program did not answer within 4000 ms"), std::string::npos)
      << verdict.error().message();
  EXPECT_EQ(verdict.reward(), 0);
  EXPECT_GE(waited_s, 3.9);
  EXPECT_LT(waited_s, 300) << "waited for the program instead of its timeout";
  // The program is gone (killed and reaped), not left sleeping.
  RLJ_ASSERT_OK_AND_ASSIGN(std::string pid_text, ReadFile(pid_file));
  const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
  EXPECT_EQ(kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH) << "process " << pid << " still exists";
}

// Peak resident memory of this process since the last ResetPeakMemory, in KiB.
int64_t PeakMemoryKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}
bool ResetPeakMemory() { return static_cast<bool>(std::ofstream("/proc/self/clear_refs") << "5"); }

TEST(CommandBackendSafety, AProgramPrintingHundredsOfMegabytesIsAnErrorWithBoundedMemory) {
  ScratchDir scratch;
  const std::string script = scratch.file("flood.py");
  // 256 MiB on one line, 1 MiB per write.
  std::ofstream(script) << "import sys\nfor line in sys.stdin:\n    chunk = 'x' * (1 << 20)\n"
                           "    for _ in range(256):\n        sys.stdout.write(chunk)\n        sys.stdout.flush()\n";
  v1::JudgeConfig config;
  config.set_backend("command");
  config.mutable_command()->add_argv("/usr/bin/python3");
  config.mutable_command()->add_argv(script);
  config.mutable_command()->set_timeout_ms(60000);
  config.mutable_command()->set_max_line_bytes(65536);
  auto backend = Make(config);
  ASSERT_NE(backend, nullptr);
  ASSERT_TRUE(ResetPeakMemory()) << "cannot reset the peak memory counter (/proc/self/clear_refs)";
  const int64_t before_kib = PeakMemoryKib();
  const v1::Verdict verdict = ScoreOne(*backend, MakeSample("flood", "4"));
  const int64_t peak_kib = PeakMemoryKib();
  ASSERT_TRUE(verdict.has_error());
  EXPECT_EQ(verdict.error().kind(), "parse");
  EXPECT_NE(verdict.error().message().find("longer than 65536 bytes"), std::string::npos) << verdict.error().message();
  // The judge read a little past the limit and stopped: far less than the 256 MiB the program wrote.
  EXPECT_LT(peak_kib - before_kib, 32 * 1024) << "peak grew from " << before_kib << " KiB to " << peak_kib << " KiB";
}

TEST(LineProcess, AProgramThatDoesNotReadItsInputTimesOutInsteadOfBlockingTheJudge) {
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<LineProcess> process, LineProcess::Start({"sleep", "600"}));
  // 16 MiB: far more than the socket buffers, so writing it blocks unless the writer has a deadline.
  const absl::StatusOr<std::string> answer =
      process->Exchange(std::string(16 << 20, 'x'), std::chrono::milliseconds(2000), 1024);
  EXPECT_TRUE(FailsWith(answer, absl::StatusCode::kDeadlineExceeded,
                        "timeout: the program did not read its input within 2000 ms"));
}

// -------------------------------------------------------------------------------------------- remote

// A backend that waits (up to 20 s) before answering, behind the JudgeBackend interface.
class StallingBackend final : public JudgeBackend {
 public:
  std::string name() const override { return "stalling"; }
  std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) override {
    release_.WaitForNotificationWithTimeout(absl::Seconds(20));
    std::vector<Judgement> out(samples.size());
    for (size_t i = 0; i < samples.size(); ++i) out[i].verdict.set_sample_id(samples[i].id());
    return out;
  }
  absl::Notification release_;
};

TEST(RemoteBackend, ForwardsToARealJudgeInBatches) {
  ScratchDir scratch;
  v1::RunConfig run;
  run.mutable_judge()->set_backend("rule");
  JudgeServerOptions options;
  options.listen = "127.0.0.1:0";
  options.run_dir = scratch.file("remote-run");
  JudgeServer remote(run, options);
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string address, remote.Start());

  v1::JudgeConfig config;
  config.set_backend("remote");
  config.mutable_remote()->set_address(address);
  config.mutable_remote()->set_max_batch(2);
  UsageLedger ledger;
  JudgeBackendDeps deps;
  deps.ledger = &ledger;
  auto backend = Make(config, deps);
  ASSERT_NE(backend, nullptr);
  std::vector<v1::Sample> samples = {MakeSample("a", "4"), MakeSample("b", "5"), MakeSample("c", "4"),
                                     MakeSample("d", "x", ""), MakeSample("e", "2+2=4")};
  const std::vector<Judgement> judgements = backend->Score(samples);
  ASSERT_EQ(judgements.size(), 5u);
  const double expected[] = {1, 0, 1, -1, 1};
  for (int i = 0; i < 5; ++i) {
    const v1::Verdict& verdict = judgements[i].verdict;
    EXPECT_EQ(verdict.sample_id(), samples[i].id());
    if (expected[i] < 0) {
      ASSERT_TRUE(verdict.has_error());
      EXPECT_EQ(verdict.error().kind(), "invalid");  // the remote judge's own error comes through
    } else {
      ASSERT_FALSE(verdict.has_error()) << verdict.error().message();
      EXPECT_EQ(verdict.reward(), expected[i]) << i;
    }
  }
  EXPECT_EQ(remote.service()->counters().requests, 3);  // 5 samples in batches of 2
  EXPECT_EQ(remote.service()->counters().samples, 5);
  remote.Stop();
}

TEST(RemoteBackend, UnreachableAndSlowRemotesAreErrorsPerSample) {
  int port = 0;
  {
    TeacherServer placeholder;  // a port that was free a moment ago, now closed
    port = placeholder.port();
  }
  v1::JudgeConfig config;
  config.set_backend("remote");
  config.mutable_remote()->set_address(absl::StrCat("127.0.0.1:", port));
  config.mutable_remote()->set_timeout_ms(1500);
  auto unreachable = Make(config);
  v1::Verdict verdict = ScoreOne(*unreachable, MakeSample("a", "4"));
  ASSERT_TRUE(verdict.has_error());
  EXPECT_TRUE(verdict.error().kind() == "unavailable" || verdict.error().kind() == "timeout") << verdict.error().kind();

  auto stalling = std::make_unique<StallingBackend>();
  StallingBackend* stall = stalling.get();
  JudgeService service(std::move(stalling), nullptr);
  RLJ_ASSERT_OK_AND_ASSIGN(RunningServer running, StartServer(ServerOptions{}, {&service}));
  config.mutable_remote()->set_address(running.address);
  config.mutable_remote()->set_timeout_ms(300);
  auto slow = Make(config);
  verdict = ScoreOne(*slow, MakeSample("b", "4"));
  ASSERT_TRUE(verdict.has_error());
  EXPECT_EQ(verdict.error().kind(), "timeout");
  EXPECT_EQ(verdict.reward(), 0);
  stall->release_.Notify();
  running.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

// The Python judge of examples/python_judge, a real process, as the remote backend.
TEST(RemoteBackend, ThePythonExampleJudgeServesAsTheRemoteBackend) {
  ScratchDir scratch;
  const std::string port_file = scratch.file("python_judge.port");
  const std::string script = std::string(RLJ_SOURCE_DIR) + "/examples/python_judge/judge.py";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/usr/bin/python3", "python3", script.c_str(), "--listen", "127.0.0.1:0", "--port-file", port_file.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  struct Reap {
    pid_t pid;
    ~Reap() {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } reap{pid};
  // Wait (up to 60 s: it generates its stubs first) for the port file it writes once serving.
  std::string port;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (port.empty() && std::chrono::steady_clock::now() < give_up) {
    std::ifstream in(port_file);
    if (!(in >> port)) {
      port.clear();
      int status = 0;
      ASSERT_EQ(waitpid(pid, &status, WNOHANG), 0) << "the python judge exited early";
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a file: no event to wait on
    }
  }
  ASSERT_FALSE(port.empty()) << "the python judge did not start";

  v1::JudgeConfig config;
  config.set_backend("remote");
  config.mutable_remote()->set_address("127.0.0.1:" + port);
  config.mutable_remote()->set_timeout_ms(30000);
  auto backend = Make(config);
  ASSERT_NE(backend, nullptr);
  const std::vector<Judgement> judgements =
      backend->Score({MakeSample("a", "4"), MakeSample("b", "I think it is 5, definitely"), MakeSample("c", "4", "")});
  ASSERT_EQ(judgements.size(), 3u);
  ASSERT_FALSE(judgements[0].verdict.has_error()) << judgements[0].verdict.error().message();
  EXPECT_NEAR(judgements[0].verdict.reward(), 1.1, 1e-12);  // correct + brevity
  EXPECT_EQ(judgements[0].verdict.components().at("correct"), 1);
  EXPECT_EQ(judgements[0].verdict.rationale(), "expected 4, got 4");
  EXPECT_NEAR(judgements[1].verdict.reward(), 0.0, 1e-12);
  EXPECT_EQ(judgements[1].verdict.rationale(), "expected 4, got 5");
  ASSERT_TRUE(judgements[2].verdict.has_error());
  EXPECT_EQ(judgements[2].verdict.error().kind(), "invalid");
}

// ----------------------------------------------------------------------------------------- anthropic

std::string AnthropicBody(const std::string& text, const std::string& stop_reason = "end_turn") {
  json body = {{"id", "msg_1"},
               {"type", "message"},
               {"role", "assistant"},
               {"content", json::array({{{"type", "text"}, {"text", text}}})},
               {"stop_reason", stop_reason},
               {"usage", {{"input_tokens", 80}, {"output_tokens", 12}}}};
  return body.dump();
}

class AnthropicBackendTest : public ::testing::Test {
 protected:
  AnthropicBackendTest() {
    config_.set_backend("anthropic");
    v1::AnthropicJudgeConfig* a = config_.mutable_anthropic();
    a->set_base_url(server_.base_url());
    a->set_model("claude-test");
    a->set_api_key_env("RLJ_TEST_ANTHROPIC_KEY");
    a->set_rubric("Q: {prompt}\nA: {completion}\nRef: {reference}\nScore 0-10 as {\"score\": n}.");
    a->set_system_prompt("You grade.");
    a->set_max_retries(1);
    a->set_retry_base_ms(1);
    a->set_retry_cap_ms(5);
    a->set_price_input_per_1k(3);
    a->set_price_output_per_1k(15);
  }
  std::unique_ptr<JudgeBackend> MakeWithKey() {
    JudgeBackendDeps deps;
    deps.env = [](const std::string& name) -> std::optional<std::string> {
      if (name == "RLJ_TEST_ANTHROPIC_KEY") return std::string("sk-ant-secret-123");
      return std::nullopt;
    };
    return Make(config_, deps);
  }
  TeacherServer server_;
  v1::JudgeConfig config_;
};

TEST_F(AnthropicBackendTest, MessagesApiRequestAndScore) {
  server_.Push(TeacherReply{200, AnthropicBody("Looks right. {\"score\": 9}"), {}, false});
  auto backend = MakeWithKey();
  ASSERT_NE(backend, nullptr);
  const v1::Verdict verdict = ScoreOne(*backend, MakeSample("a", "4"));
  ASSERT_FALSE(verdict.has_error()) << verdict.error().message();
  EXPECT_NEAR(verdict.reward(), 0.9, 1e-12);
  EXPECT_EQ(verdict.tokens_in(), 80);
  EXPECT_EQ(verdict.tokens_out(), 12);
  EXPECT_NEAR(verdict.cost_usd(), 0.08 * 3 + 0.012 * 15, 1e-12);
  EXPECT_EQ(verdict.model(), "claude-test");

  ASSERT_EQ(server_.received().size(), 1u);
  const TeacherRequest request = server_.received()[0];
  EXPECT_EQ(request.path, "/v1/messages");
  EXPECT_EQ(request.headers.at("x-api-key"), "sk-ant-secret-123");
  EXPECT_EQ(request.headers.at("anthropic-version"), "2023-06-01");
  EXPECT_FALSE(request.has_authorization);
  const json body = json::parse(request.body);
  EXPECT_EQ(body["model"], "claude-test");
  EXPECT_EQ(body["system"], "You grade.");
  EXPECT_EQ(body["messages"][0]["role"], "user");
  EXPECT_EQ(body["messages"][0]["content"], "Q: What is 2+2?\nA: 4\nRef: 4\nScore 0-10 as {\"score\": n}.");
  EXPECT_EQ(body["max_tokens"], 256);
}

TEST_F(AnthropicBackendTest, FaultsAreErrorsAndTheKeyNeverLeaks) {
  server_.Push(TeacherReply{200, AnthropicBody("I won't grade this.", "refusal"), {}, false});
  server_.Push(TeacherReply{200, R"({"type":"message","content":"oops"})", {}, false});  // content not an array
  server_.Push(TeacherReply{200, AnthropicBody("{\"score\": 11}"), {}, false});          // out of range
  server_.Push(TeacherReply{529, R"({"error":"overloaded, key sk-ant-secret-123"})", {}, false});
  server_.Push(TeacherReply{529, R"({"error":"overloaded, key sk-ant-secret-123"})", {}, false});
  auto backend = MakeWithKey();
  ASSERT_NE(backend, nullptr);
  const char* kinds[] = {"refusal", "parse", "out_of_range", "http_error"};
  for (const char* kind : kinds) {
    const v1::Verdict verdict = ScoreOne(*backend, MakeSample(kind, "4"));
    ASSERT_TRUE(verdict.has_error()) << kind;
    EXPECT_EQ(verdict.error().kind(), kind) << verdict.error().message();
    EXPECT_EQ(verdict.error().message().find("sk-ant-secret-123"), std::string::npos) << verdict.error().message();
    EXPECT_EQ(verdict.rationale().find("sk-ant-secret-123"), std::string::npos);
  }
  EXPECT_EQ(server_.received().size(), 5u);  // the 529 was retried once
}

TEST_F(AnthropicBackendTest, MissingKeyFailsConstructionNamingTheVariable) {
  JudgeBackendDeps deps;
  deps.env = [](const std::string&) { return std::optional<std::string>(); };
  EXPECT_TRUE(
      FailsWith(MakeJudgeBackend(config_, deps), absl::StatusCode::kFailedPrecondition, "RLJ_TEST_ANTHROPIC_KEY"));
}

// ------------------------------------------------------------------------------------------ ensemble

TEST(EnsembleBackend, WeightedSumOfNamedComponents) {
  v1::JudgeConfig config;
  config.set_backend("ensemble");
  v1::JudgeBackendConfig exact;
  exact.set_backend("rule");
  exact.mutable_rule()->set_mode(v1::RuleJudgeConfig::exact);
  (*config.mutable_backends())["exact"] = exact;
  v1::JudgeBackendConfig numeric;
  numeric.set_backend("rule");
  numeric.mutable_rule()->set_mode(v1::RuleJudgeConfig::numeric);
  (*config.mutable_backends())["numeric"] = numeric;
  v1::EnsembleComponentConfig* c1 = config.mutable_ensemble()->add_components();
  c1->set_name("strict");
  c1->set_backend("exact");
  c1->set_weight(0.7);
  v1::EnsembleComponentConfig* c2 = config.mutable_ensemble()->add_components();
  c2->set_backend("numeric");
  c2->set_weight(0.3);
  auto backend = Make(config);
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->model(), "0.7·strict + 0.3·numeric");
  const std::vector<Judgement> judgements = backend->Score(
      {MakeSample("a", "4"), MakeSample("b", "it is 4"), MakeSample("c", "5"), MakeSample("d", "4", "")});
  ASSERT_EQ(judgements.size(), 4u);
  EXPECT_NEAR(judgements[0].verdict.reward(), 1.0, 1e-12);
  EXPECT_NEAR(judgements[1].verdict.reward(), 0.3, 1e-12);  // only numeric passes
  EXPECT_EQ(judgements[1].verdict.components().at("strict"), 0);
  EXPECT_EQ(judgements[1].verdict.components().at("numeric"), 1);
  EXPECT_NEAR(judgements[2].verdict.reward(), 0.0, 1e-12);
  // A component that fails fails the sample (never a partial sum).
  ASSERT_TRUE(judgements[3].verdict.has_error());
  EXPECT_EQ(judgements[3].verdict.error().kind(), "invalid");
  EXPECT_NE(judgements[3].verdict.error().message().find("component 'strict'"), std::string::npos);
}

TEST(EnsembleBackend, ConfigurationErrors) {
  v1::JudgeConfig config;
  config.set_backend("ensemble");
  EXPECT_TRUE(FailsWith(MakeJudgeBackend(config), absl::StatusCode::kInvalidArgument, "at least one"));
  config.mutable_ensemble()->add_components()->set_backend("ensemble");
  EXPECT_FALSE(MakeJudgeBackend(config).ok());  // no ensemble inside an ensemble
  config.mutable_ensemble()->clear_components();
  config.mutable_ensemble()->add_components()->set_backend("rule");
  config.mutable_ensemble()->set_mode(v1::EnsembleJudgeConfig::group_rank);
  EXPECT_TRUE(FailsWith(MakeJudgeBackend(config), absl::StatusCode::kInvalidArgument, "chat teacher"));
}

// The judge section checks itself through the registry: every name it uses, every section those select,
// without making a backend.
TEST(ValidateJudgeConfig, NamesAndSectionsThroughTheRegistry) {
  v1::JudgeConfig config;
  RLJ_EXPECT_OK(ValidateJudgeConfig(config));  // the defaults: the rule backend
  config.set_backend("oracle");
  EXPECT_TRUE(FailsWith(ValidateJudgeConfig(config), absl::StatusCode::kInvalidArgument,
                        "judge backend 'oracle' is unknown; known backends: rule, openai, anthropic, command"));
  config.set_backend("openai");
  EXPECT_TRUE(
      FailsWith(ValidateJudgeConfig(config), absl::StatusCode::kInvalidArgument, "judge.openai.model is required"));
  config.set_backend("rule");
  config.set_failover("ensemble");
  EXPECT_TRUE(FailsWith(ValidateJudgeConfig(config), absl::StatusCode::kInvalidArgument, "judge.failover"));
  config.set_failover("rule");
  EXPECT_TRUE(FailsWith(ValidateJudgeConfig(config), absl::StatusCode::kInvalidArgument, "a different backend"));
  config.clear_failover();
  // An entry of judge.backends is checked even when nothing uses it, under its own path.
  v1::JudgeBackendConfig& spare = (*config.mutable_backends())["spare"];
  spare.set_backend("command");
  EXPECT_TRUE(FailsWith(ValidateJudgeConfig(config), absl::StatusCode::kInvalidArgument,
                        "judge.backends.spare.command.argv is required"));
  spare.set_backend("ensemble");
  EXPECT_TRUE(FailsWith(ValidateJudgeConfig(config), absl::StatusCode::kInvalidArgument,
                        "judge.backends.spare.backend 'ensemble' must be one of"));
  spare.set_backend("rule");
  spare.mutable_rule()->set_mode(v1::RuleJudgeConfig::regex);
  EXPECT_TRUE(FailsWith(ValidateJudgeConfig(config), absl::StatusCode::kInvalidArgument,
                        "judge.backends.spare.rule: the regex check needs a pattern"));
  spare.mutable_rule()->set_pattern("{reference}");
  RLJ_EXPECT_OK(ValidateJudgeConfig(config));
  // Ensemble components are checked through their own kinds, without starting the command judge.
  config.set_backend("ensemble");
  config.mutable_ensemble()->add_components()->set_backend("spare");
  config.mutable_ensemble()->add_components()->set_backend("command");
  EXPECT_TRUE(FailsWith(ValidateJudgeConfig(config), absl::StatusCode::kInvalidArgument,
                        "judge.ensemble.components[1]: judge.command.argv is required"));
  config.mutable_command()->add_argv("/nonexistent/judge-program");
  RLJ_EXPECT_OK(ValidateJudgeConfig(config));
}

// The answers listed in a rank question, in the order presented.
std::vector<std::string> PresentedAnswers(const std::string& question) {
  std::vector<std::string> answers;
  const std::regex answer(R"(Answer (\d+):\n([^\n]*)\n)");
  for (std::sregex_iterator it(question.begin(), question.end(), answer), end; it != end; ++it) {
    answers.push_back((*it)[2]);
  }
  return answers;
}

class GroupRankTest : public ::testing::Test {
 protected:
  GroupRankTest() {
    config_.set_backend("ensemble");
    v1::JudgeBackendConfig teacher;
    teacher.set_backend("openai");
    v1::OpenAIJudgeConfig* openai = teacher.mutable_openai();
    openai->set_base_url(server_.base_url());
    openai->set_model("ranker");
    openai->set_api_key_env("");
    openai->set_rubric("unused by group ranking {completion}");
    openai->set_max_retries(0);
    (*config_.mutable_backends())["ranker"] = teacher;
    config_.mutable_ensemble()->set_mode(v1::EnsembleJudgeConfig::group_rank);
    config_.mutable_ensemble()->add_components()->set_backend("ranker");
  }
  std::vector<v1::Sample> Group() {
    std::vector<v1::Sample> samples;
    const char* completions[] = {"5", "4", "banana"};  // sampled order
    for (int i = 0; i < 3; ++i) {
      v1::Sample sample = MakeSample(absl::StrCat("g/", i), completions[i]);
      sample.set_group_id("g");
      sample.set_index_in_group(i);
      samples.push_back(sample);
    }
    return samples;
  }
  TeacherServer server_;
  v1::JudgeConfig config_;
};

TEST_F(GroupRankTest, AConsistentTeacherGivesRewardsByRank) {
  // The teacher ranks by content: "4" best, then "5", then "banana", whatever the order shown.
  server_.SetHandler([](const TeacherRequest& request) {
    const json body = json::parse(request.body);
    const std::vector<std::string> shown = PresentedAnswers(body["messages"].back()["content"].get<std::string>());
    std::vector<int> ranking;
    for (const char* best : {"4", "5", "banana"}) {
      for (size_t k = 0; k < shown.size(); ++k) {
        if (shown[k] == best) ranking.push_back(static_cast<int>(k) + 1);
      }
    }
    return ChatReply(json{{"ranking", ranking}}.dump(), 100, 5);
  });
  auto backend = Make(config_);
  ASSERT_NE(backend, nullptr);
  const std::vector<Judgement> judgements = backend->Score(Group());
  ASSERT_EQ(judgements.size(), 3u);
  for (const Judgement& j : judgements) ASSERT_FALSE(j.verdict.has_error()) << j.verdict.error().message();
  EXPECT_NEAR(judgements[0].verdict.reward(), 0.5, 1e-12);  // "5": second of three
  EXPECT_NEAR(judgements[1].verdict.reward(), 1.0, 1e-12);  // "4": best
  EXPECT_NEAR(judgements[2].verdict.reward(), 0.0, 1e-12);  // "banana": worst
  EXPECT_EQ(server_.received().size(), 2u);                 // one group, asked in two orders
  // The group's 200 prompt tokens are shared by its three samples.
  EXPECT_EQ(judgements[0].verdict.tokens_in() + judgements[1].verdict.tokens_in() + judgements[2].verdict.tokens_in(),
            200);
}

TEST_F(GroupRankTest, PositionBiasCancels) {
  // A teacher that always prefers whatever is shown first: asked in both orders, nobody gains.
  server_.SetDefault(ChatReply(R"({"ranking": [1, 2, 3]})"));
  auto backend = Make(config_);
  ASSERT_NE(backend, nullptr);
  const std::vector<Judgement> judgements = backend->Score(Group());
  for (const Judgement& j : judgements) {
    ASSERT_FALSE(j.verdict.has_error()) << j.verdict.error().message();
    EXPECT_NEAR(j.verdict.reward(), 0.5, 1e-12);
  }
}

TEST_F(GroupRankTest, BadRankingsAndLoneSamplesAreErrors) {
  server_.SetDefault(ChatReply(R"({"ranking": [1, 1, 3]})"));
  auto backend = Make(config_);
  ASSERT_NE(backend, nullptr);
  std::vector<v1::Sample> samples = Group();
  v1::Sample lone = MakeSample("lone", "4");
  lone.set_group_id("other");
  samples.push_back(lone);
  v1::Sample ungrouped = MakeSample("ungrouped", "4");
  samples.push_back(ungrouped);
  const std::vector<Judgement> judgements = backend->Score(samples);
  ASSERT_EQ(judgements.size(), 5u);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(judgements[i].verdict.has_error());
    EXPECT_EQ(judgements[i].verdict.error().kind(), "parse");
    EXPECT_NE(judgements[i].verdict.error().message().find("twice"), std::string::npos)
        << judgements[i].verdict.error().message();
  }
  EXPECT_EQ(judgements[3].verdict.error().kind(), "invalid");
  EXPECT_EQ(judgements[4].verdict.error().kind(), "invalid");
}

// ------------------------------------------------------------------------------------------ failover

TEST(FailoverBackend, UnreachablePrimarySendsSamplesToTheSecondary) {
  TeacherServer down;
  down.SetDefault(TeacherReply{503, "down", {}, false});
  v1::JudgeConfig config;
  config.set_backend("openai");
  v1::OpenAIJudgeConfig* openai = config.mutable_openai();
  openai->set_base_url(down.base_url());
  openai->set_model("primary");
  openai->set_api_key_env("");
  openai->set_rubric("{completion}");
  openai->set_max_retries(0);
  openai->set_breaker_failures(2);
  openai->set_breaker_cooldown_ms(600000);
  v1::JudgeBackendConfig backup;
  backup.set_backend("rule");
  (*config.mutable_backends())["backup"] = backup;
  config.set_failover("backup");
  auto backend = Make(config);
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->name(), "openai");

  for (int round = 0; round < 3; ++round) {
    const std::vector<Judgement> judgements = backend->Score({MakeSample("a", "4"), MakeSample("b", "5")});
    ASSERT_EQ(judgements.size(), 2u);
    for (const Judgement& j : judgements) ASSERT_FALSE(j.verdict.has_error()) << j.verdict.error().message();
    EXPECT_EQ(judgements[0].verdict.reward(), 1);
    EXPECT_EQ(judgements[1].verdict.reward(), 0);
    EXPECT_EQ(judgements[0].verdict.backend(), "backup");
    EXPECT_EQ(judgements[0].verdict.components().at("failover"), 1);
  }
  // Two failures opened the breaker: later rounds never reached the dead primary.
  EXPECT_EQ(down.received().size(), 2u);
  v1::JudgeStatus status;
  backend->CollectStatus(&status);
  const v1::JudgeBackendStatus* primary = nullptr;
  for (const auto& entry : status.backends()) {
    if (entry.name() == "openai") primary = &entry;
  }
  ASSERT_NE(primary, nullptr);
  EXPECT_EQ(primary->circuit(), "open");
  EXPECT_EQ(primary->circuit_opened(), 1);
}

TEST(FailoverBackend, BadAnswersDoNotFailOver) {
  TeacherServer teacher;
  teacher.SetDefault(ChatReply("no score here"));
  v1::JudgeConfig config;
  config.set_backend("openai");
  v1::OpenAIJudgeConfig* openai = config.mutable_openai();
  openai->set_base_url(teacher.base_url());
  openai->set_model("primary");
  openai->set_api_key_env("");
  openai->set_rubric("{completion}");
  config.set_failover("rule");
  auto backend = Make(config);
  ASSERT_NE(backend, nullptr);
  const v1::Verdict verdict = ScoreOne(*backend, MakeSample("a", "4"));
  ASSERT_TRUE(verdict.has_error());
  EXPECT_EQ(verdict.error().kind(), "parse");
}

}  // namespace
}  // namespace rlj
