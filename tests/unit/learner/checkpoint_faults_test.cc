// checkpoint_faults_test.cc: checkpoints under bad disks and bad bytes: a write that fails (file size limit →
// EFBIG, a parent that is a regular file → ENOTDIR) names the path and the errno text and leaves the previous
// checkpoint intact and loadable; truncated or corrupted files of any rlj checkpoint are refused naming the
// file; the learner keeps training past a failed periodic checkpoint and fails naming a failed final one.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/run_dir.h"
#include "learner/grpo_trainer.h"
#include "learner/learner_checkpoint.h"
#include "learner/learner_server.h"
#include "learner_fixtures.h"
#include "model/checkpoint/checkpoint.h"
#include "model/transformer.h"
#include "rlj/v1/learner.grpc.pb.h"
#include "test_util.h"

namespace rlj {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using testing::FailsWith;

Transformer TinyModel(const v1::RunConfig& config, uint64_t seed) {
  at::manual_seed(seed);
  return Transformer(TransformerConfig::FromProto(config.model()).value());
}

bool SameTensors(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first || !at::equal(a[i].second.cpu(), b[i].second.cpu())) return false;
  }
  return true;
}

void FlipByte(const std::string& path, size_t offset) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  file.get(c);
  file.seekp(static_cast<std::streamoff>(offset));
  file.put(static_cast<char>(c ^ 0x5a));
}

// While alive, no file of this process may grow past `bytes`: writes beyond fail with EFBIG (SIGXFSZ is
// ignored), as on a full disk. Works as root too, unlike chmod.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    previous_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    EXPECT_EQ(getrlimit(RLIMIT_FSIZE, &previous_), 0);
    rlimit limited = previous_;
    limited.rlim_cur = bytes;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  }
  ~FileSizeLimit() {
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &previous_), 0);
    std::signal(SIGXFSZ, previous_handler_);
  }

 private:
  rlimit previous_{};
  void (*previous_handler_)(int) = nullptr;
};

// Names under `dir` that look like leftovers of an interrupted write.
std::vector<std::string> Leftovers(const std::string& dir) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".tmp") != std::string::npos) found.push_back(name);
  }
  return found;
}

TEST(CheckpointFaults, DiskFullLearnerCheckpointNamesPathAndErrnoAndKeepsThePreviousOne) {
  testing::ScratchDir dir;
  const std::string checkpoints = dir.file("checkpoints");
  const v1::RunConfig config = testing::TinyLearnerConfig();
  Transformer model = TinyModel(config, 3);
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, GrpoTrainer::Create(config, model));
  RLJ_ASSERT_OK_AND_ASSIGN(TrainerState state, trainer->ExportState());
  LearnerCheckpointContents contents;
  contents.step = 1;
  contents.version = 1;
  contents.trainer = state;
  RLJ_ASSERT_OK(WriteLearnerCheckpoint(checkpoints, model, contents, 3));
  NamedTensors step1;
  for (const auto& [name, tensor] : NamedParameters(model)) step1.emplace_back(name, tensor.detach().clone());
  {
    at::NoGradGuard no_grad;
    for (at::Tensor parameter : model->parameters()) parameter.add_(1.0f);  // step 2 would differ
  }
  contents.step = 2;
  absl::StatusOr<std::string> written;
  {
    FileSizeLimit full(4096);  // the weights (~17 KB) cannot be written
    written = WriteLearnerCheckpoint(checkpoints, model, contents, 3);
  }
  ASSERT_FALSE(written.ok());
  const std::string message(written.status().message());
  EXPECT_NE(message.find("writing checkpoint " + checkpoints + "/step-2"), std::string::npos) << message;
  EXPECT_NE(message.find("File too large"), std::string::npos) << message;  // strerror(EFBIG)
  EXPECT_FALSE(fs::exists(checkpoints + "/step-2"));
  EXPECT_TRUE(Leftovers(checkpoints).empty());
  RLJ_ASSERT_OK_AND_ASSIGN(std::string latest, ReadFile(checkpoints + "/latest"));
  EXPECT_EQ(latest, "step-1\n");
  RLJ_ASSERT_OK_AND_ASSIGN(std::optional<ResumePoint> point, FindResumePoint(checkpoints));
  ASSERT_TRUE(point.has_value());
  EXPECT_EQ(point->contents.step, 1);
  EXPECT_TRUE(point->refused.empty());
  RLJ_ASSERT_OK_AND_ASSIGN(LoadedCheckpoint loaded, LoadCheckpoint(checkpoints + "/step-1"));
  EXPECT_TRUE(SameTensors(NamedParameters(loaded.model), step1));
}

TEST(CheckpointFaults, DiskFullOverwriteKeepsTheOldCheckpointWhole) {
  testing::ScratchDir dir;
  const std::string target = dir.file("sft");
  const v1::RunConfig config = testing::TinyLearnerConfig();
  Transformer old_model = TinyModel(config, 4);
  RLJ_ASSERT_OK(SaveCheckpoint(target, old_model, {7, 7}));
  Transformer new_model = TinyModel(config, 5);
  absl::Status saved;
  {
    FileSizeLimit full(4096);
    saved = SaveCheckpoint(target, new_model, {8, 8});
  }
  EXPECT_EQ(saved.code(), absl::StatusCode::kUnavailable) << saved;
  EXPECT_NE(saved.message().find("saving checkpoint " + target), std::string::npos) << saved;
  EXPECT_NE(saved.message().find("model.safetensors"), std::string::npos) << saved;
  EXPECT_NE(saved.message().find("File too large"), std::string::npos) << saved;
  EXPECT_TRUE(Leftovers(dir.path()).empty());
  RLJ_ASSERT_OK_AND_ASSIGN(LoadedCheckpoint loaded, LoadCheckpoint(target));
  EXPECT_EQ(loaded.state.step, 7);
  EXPECT_TRUE(SameTensors(NamedParameters(loaded.model), NamedParameters(old_model)));
}

TEST(CheckpointFaults, CheckpointsUnderARegularFileAreENOTDIR) {
  testing::ScratchDir dir;
  RLJ_ASSERT_OK(WriteFileAtomically(dir.file("blocker"), "a file, not a directory\n"));
  const v1::RunConfig config = testing::TinyLearnerConfig();
  Transformer model = TinyModel(config, 3);
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, GrpoTrainer::Create(config, model));
  LearnerCheckpointContents contents;
  RLJ_ASSERT_OK_AND_ASSIGN(contents.trainer, trainer->ExportState());
  const std::string checkpoints = dir.file("blocker/checkpoints");
  EXPECT_TRUE(FailsWith(WriteLearnerCheckpoint(checkpoints, model, contents, 3), absl::StatusCode::kUnavailable,
                        "cannot create directory " + checkpoints + ": Not a directory"));
  EXPECT_TRUE(FailsWith(RunDir(dir.file("blocker/runs/x")).Create(), absl::StatusCode::kUnavailable,
                        "cannot create directory " + dir.file("blocker/runs/x") + ": Not a directory"));
}

TEST(CheckpointFaults, TruncatedOrCorruptedFilesAreRefusedNamingTheFile) {
  testing::ScratchDir dir;
  const v1::RunConfig config = testing::TinyLearnerConfig();
  Transformer model = TinyModel(config, 6);
  const std::string original = dir.file("original");
  RLJ_ASSERT_OK(SaveCheckpoint(original, model, {3, 4}));
  RLJ_ASSERT_OK(LoadCheckpoint(original).status());
  const size_t weights_bytes = fs::file_size(original + "/model.safetensors");
  ASSERT_GT(weights_bytes, 4096u);

  struct Case {
    std::string what;
    std::function<void(const std::string&)> spoil;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"flipped byte in the tensor data",
       [&](const std::string& d) { FlipByte(d + "/model.safetensors", weights_bytes / 2); },
       "/model.safetensors: CRC-32C mismatch (the file is corrupt)"},
      {"truncated weights",
       [&](const std::string& d) { fs::resize_file(d + "/model.safetensors", weights_bytes - 1000); },
       "/model.safetensors has " + std::to_string(weights_bytes - 1000) + " bytes; " + std::to_string(weights_bytes) +
           " were written (truncated or replaced)"},
      {"corrupt config.json", [](const std::string& d) { FlipByte(d + "/config.json", 0); },
       "/config.json: CRC-32C mismatch"},
      {"weights deleted", [](const std::string& d) { fs::remove(d + "/model.safetensors"); },
       "/model.safetensors: No such file or directory"},
      {"corrupt rlj_state.json",
       [](const std::string& d) { std::ofstream(d + "/rlj_state.json", std::ios::trunc) << "{\"step\": 3, \"poli"; },
       "/rlj_state.json: not valid JSON"},
  };
  int index = 0;
  for (const Case& c : cases) {
    const std::string copy = dir.file("copy-" + std::to_string(index++));
    fs::copy(original, copy, fs::copy_options::recursive);
    c.spoil(copy);
    const absl::Status status = LoadCheckpoint(copy).status();
    EXPECT_FALSE(status.ok()) << c.what;
    EXPECT_NE(status.message().find(copy + c.needle), std::string::npos) << c.what << ": " << status;
  }
}

// The learner: a failed periodic checkpoint is logged and training goes on; a failed final one ends training
// with the path and errno text; the previous checkpoint still resumes.
TEST(CheckpointFaults, LearnerNamesAFailedFinalCheckpointAndTheLastGoodOneResumes) {
  testing::ScratchDir dir;
  v1::RunConfig config = testing::TinyLearnerConfig();
  config.set_seed(5);
  auto* learner = config.mutable_learner();
  learner->set_steps(3);
  learner->set_groups_per_step(1);
  learner->set_buffer_groups(8);
  learner->set_checkpoint_every(1);
  learner->set_max_staleness(100);
  learner->set_listen("127.0.0.1:0");
  LearnerServerOptions options;
  options.run_dir = dir.path();
  RLJ_ASSERT_OK_AND_ASSIGN(auto server, LearnerServer::Start(config, options));
  auto stub = v1::Learner::NewStub(MakeChannel(server->address()));
  auto push = [&](const std::string& id) {
    grpc::ClientContext context;
    SetDeadline(&context, milliseconds(60000));
    v1::PushRolloutsResponse response;
    auto writer = stub->PushRollouts(&context, &response);
    v1::RolloutBatch batch;
    *batch.add_groups() = testing::MakeTwoCompletionGroup(id, 0, -3.4f);
    writer->Write(batch);
    writer->WritesDone();
    const grpc::Status status = writer->Finish();
    ASSERT_TRUE(status.ok()) << status.error_message();
  };
  const RunDir run_dir(dir.path());
  push("first");
  // Step 1 is checkpointed (the status names the checkpoint once it is on disk).
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (server->status().checkpoint() != run_dir.checkpoints_dir() + "/step-1") {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "no checkpoint of step 1";
    std::this_thread::sleep_for(milliseconds(20));  // polling another thread's progress
  }
  {
    FileSizeLimit full(4096);
    push("second");
    push("third");
    ASSERT_TRUE(server->WaitForTraining(milliseconds(120000)));
  }
  const absl::Status status = server->training_status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_NE(status.message().find("writing checkpoint " + run_dir.checkpoints_dir() + "/step-3"), std::string::npos)
      << status;
  EXPECT_NE(status.message().find("File too large"), std::string::npos) << status;
  EXPECT_EQ(server->status().step(), 3);  // step 2's failed checkpoint did not stop training
  EXPECT_FALSE(fs::exists(run_dir.checkpoints_dir() + "/step-2"));
  EXPECT_FALSE(fs::exists(run_dir.checkpoints_dir() + "/step-3"));
  EXPECT_FALSE(server->Stop().ok());

  RLJ_ASSERT_OK_AND_ASSIGN(std::optional<ResumePoint> point, FindResumePoint(run_dir.checkpoints_dir()));
  ASSERT_TRUE(point.has_value());
  EXPECT_EQ(point->contents.step, 1);
  EXPECT_TRUE(point->refused.empty());
}

}  // namespace
}  // namespace rlj
