// grpc_handler_fuzzer.cc: libFuzzer target for the gRPC request handlers of the Judge service: the input's bytes
// parsed as a ScoreRequest or JudgeStatusRequest and sent to a real JudgeService (the rule backend, a SQLite
// reward log) through an in-process channel. Any request gets an answer or an error status, never a crash; a
// Score answer has one verdict per sample with a finite reward or an error. (The Learner service needs
// LibTorch, which clang cannot compile here: see fuzz/CMakeLists.txt.)
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "common/grpc_util.h"
#include "common/log.h"
#include "common/reward_log.h"
#include "judge/backends/rule_backend.h"
#include "judge/judge_service.h"
#include "rlj/v1/judge.grpc.pb.h"

namespace {

constexpr std::chrono::milliseconds kCallTimeout{10000};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "grpc_handler_fuzzer: %s\n", what.c_str());
  std::abort();
}

// The Judge service as a judge replica runs it, behind an in-process server.
struct Services {
  std::unique_ptr<rlj::JudgeService> judge;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<rlj::v1::Judge::Stub> judge_stub;
};

Services* g_services = nullptr;

void Start() {
  auto* s = new Services();
  rlj::v1::RuleJudgeConfig rule;
  rule.add_checks(v1::RuleJudgeConfig::numeric);
  auto backend = rlj::RuleBackend::Create(rule);
  if (!backend.ok()) Fail("cannot make the rule backend: " + std::string(backend.status().message()));
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("rlj-grpc-fuzz-" + std::to_string(::getpid()));
  auto reward_log = rlj::RewardLogWriter::Open((dir / "rewards.sqlite").string());
  if (!reward_log.ok()) Fail("cannot open the reward log: " + std::string(reward_log.status().message()));
  s->judge = std::make_unique<rlj::JudgeService>(std::move(backend).value(), std::move(reward_log).value());

  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(rlj::kMaxMessageBytes);
  builder.SetMaxSendMessageSize(rlj::kMaxMessageBytes);
  builder.RegisterService(s->judge.get());
  s->server = builder.BuildAndStart();
  if (s->server == nullptr) Fail("cannot start the in-process server");
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(rlj::kMaxMessageBytes);
  arguments.SetMaxSendMessageSize(rlj::kMaxMessageBytes);
  s->judge_stub = rlj::v1::Judge::NewStub(s->server->InProcessChannel(arguments));
  g_services = s;
}

void Score(Services& s, const std::string& bytes) {
  rlj::v1::ScoreRequest request;
  if (!request.ParseFromString(bytes)) return;
  grpc::ClientContext context;
  rlj::SetDeadline(&context, kCallTimeout);
  rlj::v1::ScoreResponse response;
  const grpc::Status status = s.judge_stub->Score(&context, request, &response);
  if (!status.ok()) {
    // Bad requests are INVALID_ARGUMENT; UNAVAILABLE is judge.on_outage=pause; a deadline can pass on a loaded
    // machine (a real hang is libFuzzer's -timeout). Anything else is a handler that failed.
    if (status.error_code() != grpc::StatusCode::INVALID_ARGUMENT &&
        status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      Fail("Score failed with " + status.error_message());
    }
    return;
  }
  if (response.verdicts_size() != request.samples_size()) Fail("Score answered a different number of verdicts");
  for (const auto& verdict : response.verdicts()) {
    if (!verdict.has_error() && !std::isfinite(verdict.reward())) Fail("a verdict with a non-finite reward");
  }
}

void JudgeStatus(Services& s, const std::string& bytes) {
  rlj::v1::JudgeStatusRequest request;
  if (!request.ParseFromString(bytes)) return;
  grpc::ClientContext context;
  rlj::SetDeadline(&context, kCallTimeout);
  rlj::v1::JudgeStatus response;
  if (!s.judge_stub->Status(&context, request, &response).ok()) Fail("Judge.Status failed");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)rlj::log::Init("fuzz", "off");
  // Requests with ill-formed UTF-8 in string fields are refused by protobuf, which logs each one.
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  Start();
  return 0;
}

// The first byte picks the method (5 mod 6: Status, anything else: Score); the rest is its request message
// (bytes that do not parse as one are skipped: the server's own parser is gRPC's).
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  Services& s = *g_services;
  if (data[0] % 6 == 5) {
    JudgeStatus(s, bytes);
  } else {
    Score(s, bytes);
  }
  return 0;
}
