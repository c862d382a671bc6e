// learner_request_fuzzer.cc: libFuzzer target for the gRPC request handlers of the Learner service. The learner
// needs LibTorch, which clang cannot compile here (fuzz/CMakeLists.txt), so it runs as a real `rlj learner`
// process (the gcc build named by $RLJ_BINARY) and this target sends it the input's bytes over gRPC: parsed as
// a PushRollouts stream, a LeasePrompts, GetPolicy or Status request. The learner trains on what it accepts.
// Checked on every input: each call ends with a status a client may get for bad input or load (never
// UNKNOWN/INTERNAL/UNIMPLEMENTED, never a dead learner); a rejected push changed no counter; Status answers.
// Coverage feedback comes from this side only (the learner is not instrumented): libFuzzer mutates the seeds
// (fuzz/corpus/learner_request, valid messages) structure-blind.
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/arithmetic_task.h"
#include "common/dataset.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/log.h"
#include "common/run_dir.h"
#include "common/subprocess.h"
#include "rlj/v1/learner.grpc.pb.h"

namespace {

constexpr std::chrono::milliseconds kCallTimeout{10000};
constexpr std::chrono::milliseconds kPolicyCallTimeout{3000};  // GetPolicy may wait for a newer version

struct Learner {
  std::string dir;
  std::unique_ptr<rlj::Subprocess> process;
  std::unique_ptr<rlj::v1::Learner::Stub> stub;
};

Learner* g_learner = nullptr;
// Calls that reached the learner, by method and answer ("PushRollouts INVALID_ARGUMENT" -> count): printed at
// exit, so that a run shows the inputs got past protobuf's parser and what the learner made of them.
std::map<std::string, int64_t>* g_answers = nullptr;

[[noreturn]] void Fail(const std::string& what) {
  std::string tail;
  if (g_learner != nullptr) tail = rlj::TailOfFile(g_learner->dir + "/learner.out", 30);
  std::fprintf(stderr, "learner_request_fuzzer: %s\n--- the learner's output (last lines) ---\n%s\n", what.c_str(),
               tail.c_str());
  std::abort();
}

void Check(const absl::Status& status, const std::string& what) {
  if (!status.ok()) Fail(what + ": " + std::string(status.message()));
}

// A tiny learner: the integration tests' model and arithmetic task, steps enough never to finish.
void Start() {
  const char* binary = std::getenv("RLJ_BINARY");
  if (binary == nullptr || *binary == '\0') {
    Fail("set RLJ_BINARY to a (gcc) build of rlj, e.g. RLJ_BINARY=build/rlj (tools/fuzz.sh does)");
  }
  auto* learner = new Learner();
  learner->dir = (std::filesystem::temp_directory_path() / ("rlj-learner-fuzz-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(learner->dir);
  rlj::ArithmeticTaskOptions task;
  task.train_size = 200;
  task.eval_size = 20;
  task.max_operand = 20;
  auto split = rlj::MakeArithmeticTask(task);
  if (!split.ok()) Fail(std::string(split.status().message()));
  Check(rlj::WritePromptDataset(learner->dir + "/train.jsonl", split->train), "train.jsonl");
  Check(rlj::WritePromptDataset(learner->dir + "/eval.jsonl", split->eval), "eval.jsonl");
  const std::string config = absl::StrCat("name: fuzz\nruns_root: ", learner->dir, R"(/runs
runtime:
  threads: 1
model:
  d_model: 32
  n_layers: 2
  n_heads: 2
  ffn_hidden: 64
  max_seq_len: 24
data:
  train_path: )",
                                          learner->dir, R"(/train.jsonl
  eval_path: )",
                                          learner->dir, R"(/eval.jsonl
sampling:
  group_size: 4
  max_new_tokens: 4
learner:
  steps: 100000000
  groups_per_step: 2
  buffer_groups: 64
  max_staleness: 4
  checkpoint_every: 0
)");
  Check(rlj::WriteFileAtomically(learner->dir + "/fuzz.yaml", config), "fuzz.yaml");
  auto process = rlj::Subprocess::Spawn({binary, "learner", learner->dir + "/fuzz.yaml"}, learner->dir + "/learner.out",
                                        {"OMP_NUM_THREADS=1"});
  if (!process.ok()) Fail(absl::StrCat("cannot start ", binary, ": ", process.status().message()));
  learner->process = std::move(process).value();
  g_learner = learner;

  const rlj::RunDir run_dir(learner->dir + "/runs/fuzz");
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  absl::StatusOr<std::string> address = run_dir.ReadEndpoint("learner");
  while (!address.ok()) {
    if (learner->process->Poll().has_value()) Fail("the learner ended before it served");
    if (std::chrono::steady_clock::now() > give_up) Fail("the learner did not serve within 2 minutes");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a file another process writes
    address = run_dir.ReadEndpoint("learner");
  }
  learner->stub = rlj::v1::Learner::NewStub(rlj::MakeChannel(*address));
}

// A status a learner may answer a client with: bad input, load, or a call that ran out of time on a loaded
// machine. UNAVAILABLE only if the learner is still alive (a transient connection problem).
const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    default:
      return "other";
  }
}

void CheckAnswer(const grpc::Status& status, const char* method) {
  ++(*g_answers)[absl::StrCat(method, " ", CodeName(status.error_code()))];
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return;
    default:
      break;
  }
  if (auto exit = g_learner->process->Poll(); exit.has_value()) {
    Fail(absl::StrCat(method, ": the learner died (", exit->Describe(), ")"));
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) return;
  Fail(absl::StrCat(method, " answered ", status.error_code(), ": ", status.error_message()));
}

rlj::v1::LearnerStatus CurrentStatus() {
  grpc::ClientContext context;
  rlj::SetDeadline(&context, kCallTimeout);
  rlj::v1::LearnerStatus status;
  const grpc::Status answer = g_learner->stub->Status(&context, rlj::v1::StatusRequest(), &status);
  CheckAnswer(answer, "Status");
  if (!answer.ok()) Fail("Status failed: " + answer.error_message());
  return status;
}

// `copies` copies of the batch on one PushRollouts stream.
void Push(const std::string& bytes, int copies) {
  rlj::v1::RolloutBatch batch;
  if (!batch.ParseFromString(bytes)) return;
  const int64_t received_before = CurrentStatus().groups_received();
  grpc::ClientContext context;
  rlj::SetDeadline(&context, kCallTimeout);
  rlj::v1::PushRolloutsResponse response;
  auto writer = g_learner->stub->PushRollouts(&context, &response);
  for (int i = 0; i < copies; ++i) {
    if (!writer->Write(batch)) break;
  }
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  CheckAnswer(status, "PushRollouts");
  // A batch refused as invalid on the first copy applied nothing: no group of it was counted.
  if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT && status.error_message().rfind("batch 0,", 0) == 0) {
    const int64_t received_after = CurrentStatus().groups_received();
    if (received_after != received_before) {
      Fail(absl::StrCat("a rejected batch changed groups_received from ", received_before, " to ", received_after, ": ",
                        status.error_message()));
    }
  }
}

void Lease(const std::string& bytes) {
  rlj::v1::LeasePromptsRequest request;
  if (!request.ParseFromString(bytes)) return;
  grpc::ClientContext context;
  rlj::SetDeadline(&context, kCallTimeout);
  rlj::v1::LeasePromptsResponse response;
  const grpc::Status status = g_learner->stub->LeasePrompts(&context, request, &response);
  CheckAnswer(status, "LeasePrompts");
  if (status.ok() && response.prompts_size() > request.count()) Fail("LeasePrompts handed out more than asked for");
}

void Policy(const std::string& bytes) {
  rlj::v1::GetPolicyRequest request;
  if (!request.ParseFromString(bytes)) return;
  grpc::ClientContext context;
  rlj::SetDeadline(&context, kPolicyCallTimeout);
  auto reader = g_learner->stub->GetPolicy(&context, request);
  rlj::v1::PolicyMessage message;
  int messages = 0;
  while (reader->Read(&message)) {
    if (messages == 0 && !message.has_manifest()) Fail("GetPolicy's first message is not a manifest");
    ++messages;
  }
  CheckAnswer(reader->Finish(), "GetPolicy");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)rlj::log::Init("fuzz", "off");
  // Messages with ill-formed UTF-8 in string fields are refused by protobuf, which logs each one.
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  g_answers = new std::map<std::string, int64_t>();
  Start();
  std::atexit([] {
    for (const auto& [answer, count] : *g_answers)
      std::fprintf(stderr, "learner_request_fuzzer: %s: %ld\n", answer.c_str(), static_cast<long>(count));
    if (g_learner == nullptr) return;
    g_learner->process->Stop(std::chrono::seconds(10));
    std::error_code ignored;
    std::filesystem::remove_all(g_learner->dir, ignored);
  });
  return 0;
}

// The first byte picks the method (mod 8: 0-3 PushRollouts with 1-4 copies of the batch, 4-5 LeasePrompts,
// 6 GetPolicy, 7 Status); the rest is its request message (bytes that do not parse as one are skipped: the
// server's own parser is protobuf's, fuzzed by its authors).
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const int method = data[0] % 8;
  if (method < 4) {
    Push(bytes, method + 1);
  } else if (method < 6) {
    Lease(bytes);
  } else if (method == 6) {
    Policy(bytes);
  } else {
    (void)CurrentStatus();
  }
  return 0;
}
