// bad_input_test.cc: bad configs, bad datasets, a taken port, a run directory that cannot be created,
// non-finite training steps and corrupt checkpoints end with a clear message and a non-zero exit from the real
// binary, never a crash, a stack trace or a restart loop.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "rlj_process.h"
#include "test_util.h"

namespace rlj {
namespace {

using testing::FailedCleanly;
using testing::RunRlj;

class BadInput : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_.file(name);
    EXPECT_TRUE(WriteFileAtomically(path, text).ok());
    return path;
  }
  std::string Config(const std::string& extra) {
    return Write("c.yaml", absl::StrCat("name: bad\nruns_root: ", dir_.path(), "/runs\n", extra));
  }
  testing::Finished Rlj(const std::vector<std::string>& args) {
    return RunRlj(args, dir_.file("out.txt"), std::chrono::seconds(300));
  }
  testing::ScratchDir dir_;
};

TEST_F(BadInput, UnknownConfigKeyNamesKeyAndLine) {
  const std::string config = Config("learner:\n  lrr: 0.1\n");
  EXPECT_TRUE(FailedCleanly(Rlj({"learner", config}), config + ":4:3: learner.lrr: unknown key (did you mean 'lr'?)"));
  EXPECT_TRUE(FailedCleanly(Rlj({"run", config}), "learner.lrr: unknown key"));
  EXPECT_TRUE(FailedCleanly(Rlj({"judge", config}), "learner.lrr: unknown key"));
}

TEST_F(BadInput, WrongTypeInOverrideNamesKey) {
  const std::string config = Config("");
  EXPECT_TRUE(FailedCleanly(Rlj({"learner", config, "--set", "learner.steps=ten"}),
                            "--set learner.steps=ten: learner.steps: expected an integer (32-bit), got 'ten'"));
}

TEST_F(BadInput, MissingConfigFile) {
  EXPECT_TRUE(
      FailedCleanly(Rlj({"run", dir_.file("nope.yaml")}), "config file " + dir_.file("nope.yaml") + ": cannot open"));
}

// An absurd group size used to be accepted and leave the run at step 0 without a message.
TEST_F(BadInput, AbsurdGroupSizeIsRefusedNamingTheKey) {
  const std::string config = Config("");
  EXPECT_TRUE(FailedCleanly(Rlj({"run", config, "--set", "sampling.group_size=100000000"}),
                            "sampling.group_size: 100000000 is out of range; must be 1..1024"));
  EXPECT_TRUE(
      FailedCleanly(Rlj({"actor", config, "--set", "sampling.group_size=1024", "--set", "actor.prompts_per_batch=5"}),
                    "actor.prompts_per_batch: times sampling.group_size must be at most 4096"));
}

TEST_F(BadInput, ContradictoryValuesNameKeys) {
  EXPECT_TRUE(FailedCleanly(Rlj({"run", Config("model:\n  d_model: 30\n  n_heads: 4\n")}),
                            "model.d_model: must be divisible by model.n_heads"));
}

TEST_F(BadInput, BadDatasetLineNamesFileAndLine) {
  const std::string train = Write("train.jsonl",
                                  "{\"id\":\"1\",\"prompt\":\"1+1=\",\"reference\":\"2\"}\n"
                                  "{\"id\":\"2\",\"prompt\":\"2+2=\",\"reference\":\"4\"}\n"
                                  "{\"id\":\"3\",\"prompt\":\"oops\n");
  const std::string config = Config(absl::StrCat("data:\n  train_path: ", train, "\n"));
  EXPECT_TRUE(FailedCleanly(Rlj({"run", config}), train + ":3: invalid JSON"));
  EXPECT_TRUE(FailedCleanly(Rlj({"sft", config}), train + ":3: invalid JSON"));
}

TEST_F(BadInput, MissingDatasetIsNamed) {
  const std::string config = Config(absl::StrCat("data:\n  train_path: ", dir_.file("absent.jsonl"), "\n"));
  EXPECT_TRUE(FailedCleanly(Rlj({"run", config}), dir_.file("absent.jsonl")));
}

// A loopback port held the way another program would hold it, for as long as this lives.
class HeldPort {
 public:
  HeldPort() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    const bool held = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                      ::listen(fd_, 1) == 0 && ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0;
    EXPECT_TRUE(held) << "could not hold a loopback port";
    address_ = absl::StrCat("127.0.0.1:", ntohs(address.sin_port));
  }
  ~HeldPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  HeldPort(const HeldPort&) = delete;
  HeldPort& operator=(const HeldPort&) = delete;
  const std::string& address() const { return address_; }

 private:
  int fd_;
  std::string address_;
};

TEST_F(BadInput, TakenPortIsAClearError) {
  const HeldPort port;
  const std::string& taken = port.address();
  const std::string config = Config("");
  EXPECT_TRUE(FailedCleanly(Rlj({"learner", config, "--listen", taken}), "cannot listen on " + taken));
  EXPECT_TRUE(FailedCleanly(Rlj({"judge", config, "--listen", taken}), "cannot listen on " + taken));
}

// `rlj run` checks its listen addresses before any work: a taken port fails in seconds, naming the key, before
// the starting student is evaluated (it used to evaluate first, then fail).
TEST_F(BadInput, RunWithATakenListenAddressFailsBeforeEvaluating) {
  const HeldPort port;
  const std::string& taken = port.address();
  const std::string rows = "{\"id\":\"1\",\"prompt\":\"1+1=\",\"reference\":\"2\"}\n";
  const std::string config = Config(absl::StrCat("data:\n  train_path: ", Write("train.jsonl", rows),
                                                 "\n  eval_path: ", Write("eval.jsonl", rows), "\n"));
  for (const std::string key : {"learner.listen", "judge.listen", "telemetry.metrics_listen"}) {
    EXPECT_TRUE(FailedCleanly(Rlj({"run", config, "--overwrite", "--set", key + "=" + taken}),
                              key + ": cannot listen on '" + taken + "'"))
        << key;
    EXPECT_FALSE(std::filesystem::exists(dir_.file("runs/bad/eval_before.json"))) << key;
  }
  // An address that is not this machine's (TEST-NET-1; bind only, nothing is sent).
  EXPECT_TRUE(FailedCleanly(Rlj({"run", config, "--overwrite", "--set", "judge.listen=192.0.2.1:0"}),
                            "judge.listen: cannot listen on '192.0.2.1:0' (Cannot assign requested address)"));
}

// A directory where a file is expected is named as such; it used to spin at 100% CPU forever.
TEST_F(BadInput, ADirectoryGivenAsDataIsRefused) {
  std::filesystem::create_directories(dir_.file("data"));
  const std::string config = Config("");
  EXPECT_TRUE(FailedCleanly(Rlj({"eval", config, "--checkpoint", dir_.file("none"), "--data", dir_.file("data")}),
                            "dataset (" + dir_.file("data") + ") is a directory, not a file"));
  const std::string with_dir = Config(absl::StrCat("data:\n  train_path: ", dir_.file("data"), "\n"));
  EXPECT_TRUE(FailedCleanly(Rlj({"run", with_dir}), "is a directory, not a file"));
  EXPECT_TRUE(FailedCleanly(Rlj({"sft", with_dir}), "is a directory, not a file"));
}

// Every path a run reads is checked before any work (the starting student is not evaluated), naming the key.
TEST_F(BadInput, EveryInputPathIsCheckedBeforeAnyWork) {
  const std::string rows = "{\"id\":\"1\",\"prompt\":\"1+1=\",\"reference\":\"2\"}\n";
  const std::string train = Write("train.jsonl", rows);
  const std::string config =
      Config(absl::StrCat("data:\n  train_path: ", train, "\n  eval_path: ", Write("eval.jsonl", rows), "\n"));
  std::filesystem::create_directories(dir_.file("a_dir"));
  const std::string absent = dir_.file("absent");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"data.eval_path=" + dir_.file("a_dir")},
       "data.eval_path (" + dir_.file("a_dir") + ") is a directory, not a file"},
      {{"model.init_checkpoint=" + train}, "model.init_checkpoint (" + train + ") is a file, not a directory"},
      {{"model.init_checkpoint=" + absent}, "model.init_checkpoint (" + absent + "): No such file or directory"},
      {{"tokenizer.kind=hf", "tokenizer.path=" + absent}, "tokenizer.path (" + absent + "): No such file or directory"},
      {{"quality.canary_path=" + dir_.file("a_dir")},
       "quality.canary_path (" + dir_.file("a_dir") + ") is a directory"},
      {{"security.tls_ca=" + absent}, "security.tls_ca: cannot read '" + absent + "'"},
  };
  for (const auto& [overrides, expected] : cases) {
    std::vector<std::string> args = {"run", config, "--overwrite"};
    for (const std::string& assignment : overrides) {
      args.push_back("--set");
      args.push_back(assignment);
    }
    EXPECT_TRUE(FailedCleanly(Rlj(args), expected)) << overrides[0];
    EXPECT_FALSE(std::filesystem::exists(dir_.file("runs/bad/eval_before.json"))) << overrides[0];
  }
}

TEST_F(BadInput, RunDirectoryThatCannotBeCreatedIsNamed) {
  Write("blocker", "a regular file where the runs directory should be\n");
  const std::string config = Write("c.yaml", absl::StrCat("name: bad\nruns_root: ", dir_.file("blocker/runs"), "\n"));
  const std::string message = "cannot create directory " + dir_.file("blocker/runs/bad") + ": Not a directory";
  EXPECT_TRUE(FailedCleanly(Rlj({"run", config}), message));
  EXPECT_TRUE(FailedCleanly(Rlj({"learner", config}), message));
}

// Non-finite steps in a row (forced with the trainer's fault-injection variable) stop `rlj run` with the
// learner's message and no restart; then the checkpoint it left, corrupted, is refused by eval and generate.
TEST_F(BadInput, NonFiniteStepsStopTheRunAndCorruptCheckpointsAreRefused) {
  testing::WriteTinyTask(dir_.path());
  const std::string config = Write("nan.yaml", absl::StrCat(testing::TinyRunConfigHead(dir_.path(), "nan"), R"(learner:
  steps: 20
  groups_per_step: 2
  checkpoint_every: 1
  max_staleness: 4
  max_nonfinite_steps_in_a_row: 2
actor:
  count: 1
  prompts_per_batch: 2
judge:
  rule:
    mode: regex
    pattern: "[0-9a-zA-Z]"
)"));
  std::vector<std::string> argv{testing::RljBinary(), "run", config};
  // The regex rule gives the untrained model's random bytes mixed rewards (a group with signal); the first
  // trained step trains, every later one gets a NaN loss.
  auto process = Subprocess::Spawn(argv, dir_.file("run.txt"), {"RLJ_FAULT_NONFINITE_LOSS_FROM_STEP=1"});
  ASSERT_TRUE(process.ok()) << process.status();
  const std::optional<ExitInfo> exit = (*process)->Wait(std::chrono::seconds(600));
  ASSERT_TRUE(exit.has_value()) << "rlj run did not end within 600 s";
  testing::Finished run{*exit, ReadFile(dir_.file("run.txt")).value_or("")};
  EXPECT_TRUE(FailedCleanly(run, "2 steps in a row had a non-finite loss or gradient norm and were skipped"));
  EXPECT_NE(run.output.find("learner.max_nonfinite_steps_in_a_row = 2"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("learner ended (exit code 3)"), std::string::npos) << run.output;
  const std::string run_dir = dir_.file("runs/nan");
  const std::string run_log = ReadFile(run_dir + "/logs/run.log").value_or("");
  EXPECT_EQ(run_log.find("restarting"), std::string::npos) << run_log;  // a run failure, not a crash

  // Checkpoints up to the step before the one that stopped the run (which step that is depends on how many
  // steps had no signal); `latest` names the newest.
  std::string latest = ReadFile(run_dir + "/checkpoints/latest").value_or("");
  ASSERT_FALSE(latest.empty()) << run.output;
  latest.pop_back();  // '\n'
  const std::string checkpoint = run_dir + "/checkpoints/" + latest;
  ASSERT_TRUE(std::filesystem::exists(checkpoint + "/model.safetensors")) << run.output;

  // One flipped byte in the middle of the tensor data.
  const std::string weights = checkpoint + "/model.safetensors";
  std::string bytes = ReadFile(weights).value();
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x20);
  ASSERT_TRUE(WriteFileAtomically(weights, bytes).ok());
  const std::string corrupt = weights + ": CRC-32C mismatch (the file is corrupt)";
  EXPECT_TRUE(FailedCleanly(Rlj({"eval", config, "--checkpoint", checkpoint}), corrupt));
  EXPECT_TRUE(FailedCleanly(Rlj({"generate", "--model", checkpoint, "--prompt-ids", "1,2"}), corrupt));
  EXPECT_TRUE(FailedCleanly(Rlj({"export", "--checkpoint", checkpoint, "--out", dir_.file("hf")}), corrupt));
  // Truncated.
  ASSERT_TRUE(WriteFileAtomically(weights, bytes.substr(0, bytes.size() - 100)).ok());
  EXPECT_TRUE(FailedCleanly(Rlj({"generate", "--model", checkpoint, "--prompt-ids", "1,2"}),
                            absl::StrCat(weights, " has ", bytes.size() - 100, " bytes; ", bytes.size(),
                                         " were written (truncated or replaced)")));
}

TEST_F(BadInput, MalformedListenAddress) {
  EXPECT_TRUE(FailedCleanly(Rlj({"learner", Config(""), "--listen", "localhost"}), "expected HOST:PORT"));
}

}  // namespace
}  // namespace rlj
