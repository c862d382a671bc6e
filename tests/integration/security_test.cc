// security_test.cc: the real `rlj` with the `security` section: a whole run whose learner, judge and actor talk
// over mutual TLS with a bearer token; a learner that refuses plaintext, certificate-less and token-less
// clients; and no API key or token in any file the run and `rlj logs` wrote, nor in any process's output,
// with a teacher that fails calls and echoes the key back.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/grpc_security.h"
#include "common/grpc_util.h"
#include "common/reward_log.h"
#include "common/run_dir.h"
#include "judge/teacher_server.h"
#include "rlj/v1/learner.grpc.pb.h"
#include "rlj_process.h"
#include "test_util.h"
#include "tls_test_util.h"

namespace rlj {
namespace {

using testing::Finished;
using testing::TestCertificates;

constexpr char kKeyVariable[] = "RLJ_TEST_OPENAI_KEY";
constexpr char kKey[] = "sk-rljleak-4b1d8e2f9a7c6350";
constexpr char kTokenVariable[] = "RLJ_TEST_RUN_TOKEN";
constexpr char kToken[] = "rlj-run-token-c0ffee5eed";

std::string SecuritySection(const TestCertificates& certs) {
  return absl::StrCat("security:\n  tls_cert: ", certs.server_cert, "\n  tls_key: ", certs.server_key,
                      "\n  tls_ca: ", certs.ca, "\n  require_client_cert: true\n  client_cert: ", certs.client_cert,
                      "\n  client_key: ", certs.client_key, "\n  token_env: ", kTokenVariable, "\n");
}

// Runs `rlj args...` with the key and the token in its environment, to completion.
Finished RunWithSecrets(const std::vector<std::string>& args, const std::string& output_path,
                        std::chrono::seconds timeout = std::chrono::seconds(600)) {
  Finished finished;
  std::vector<std::string> argv{testing::RljBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto process = Subprocess::Spawn(argv, output_path,
                                   {absl::StrCat(kKeyVariable, "=", kKey), absl::StrCat(kTokenVariable, "=", kToken)});
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return finished;
  auto exit = (*process)->Wait(timeout);
  EXPECT_TRUE(exit.has_value()) << "rlj " << args[0] << " did not finish within " << timeout.count() << " s";
  finished.exit = exit ? *exit : (*process)->Stop(std::chrono::seconds(5));
  finished.output = ReadFile(output_path).value_or("");
  return finished;
}

// Every regular file under `root` (binary ones too) that contains `needle`.
std::vector<std::string> FilesContaining(const std::string& root, const std::string& needle, int* files_read) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec); !ec && it != std::filesystem::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    absl::StatusOr<std::string> content = ReadFile(it->path().string());
    if (!content.ok()) continue;
    ++*files_read;
    if (content->find(needle) != std::string::npos) found.push_back(it->path().string());
  }
  return found;
}

TEST(SecureRun, MutualTlsAndTokenRunCompletesAndNoSecretLeaks) {
  testing::ScratchDir dir;
  testing::WriteTinyTask(dir.path());
  const TestCertificates certs = testing::MakeTestCertificates(dir.file("certs"));

  // The teacher: rubric answers, and every fifth call a 401, a 500 (both echoing the Authorization header, as
  // some proxies do) and an answer that quotes the key.
  testing::TeacherServer teacher;
  std::atomic<int> calls{0};
  teacher.SetHandler([&calls](const testing::TeacherRequest& request) {
    const int n = calls.fetch_add(1);
    const nlohmann::json echo = {
        {"error",
         {{"message", "Incorrect API key provided: " + request.authorization}, {"type", "invalid_request_error"}}}};
    if (n % 5 == 1) return testing::TeacherReply{401, echo.dump(), {}, false};
    if (n % 5 == 3) return testing::TeacherReply{500, echo.dump(), {}, false};
    if (n % 5 == 4) return testing::ChatReply("Score: 6. Authorized by " + request.authorization, 20, 5);
    return testing::ChatReply("Score: 7", 20, 3);
  });

  const std::string config = absl::StrCat(testing::TinyRunConfigHead(dir.path(), "secure"), R"(judge:
  backend: openai
  openai:
    base_url: )",
                                          teacher.base_url(), R"(
    model: fake-teacher
    api_key_env: )",
                                          kKeyVariable, R"(
    rubric: "Grade {completion} as an answer to {prompt}. Reply Score: N"
    max_retries: 1
    retry_base_ms: 10
    retry_cap_ms: 50
    breaker_failures: 0
    timeout_ms: 30000
learner:
  steps: 3
  groups_per_step: 2
  lr: 1.0e-3
  max_staleness: 4
actor:
  count: 1
  prompts_per_batch: 2
)",
                                          SecuritySection(certs));
  ASSERT_TRUE(WriteFileAtomically(dir.file("secure.yaml"), config).ok());

  const Finished run = RunWithSecrets({"run", dir.file("secure.yaml")}, dir.file("run.out"));
  ASSERT_TRUE(run.exit.ok()) << run.exit.Describe() << "\n" << run.output;
  const RunDir run_dir(dir.path() + "/runs/secure");
  RLJ_ASSERT_OK_AND_ASSIGN(std::string summary_text, ReadFile(run_dir.summary_path()));
  EXPECT_EQ(nlohmann::json::parse(summary_text)["steps"], 3) << summary_text;
  // Every role spoke mutual TLS with the token.
  for (const std::string process : {"run", "learner", "judge-0", "actor-0"}) {
    RLJ_ASSERT_OK_AND_ASSIGN(std::string log, ReadFile(run_dir.log_path(process)));
    EXPECT_NE(log.find("gRPC transport security: mutual TLS, bearer token"), std::string::npos) << process << ":\n"
                                                                                                << log;
  }
  // The teacher got the key, answered and failed: both paths ran.
  int with_key = 0;
  for (const testing::TeacherRequest& request : teacher.received())
    with_key += request.authorization == absl::StrCat("Bearer ", kKey);
  EXPECT_GE(with_key, 10);
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(run_dir.reward_log_dir()));
  int errors = 0, rewarded = 0;
  for (const RewardLogRow& row : rows) (row.reward.has_value() ? rewarded : errors) += 1;
  EXPECT_GT(errors, 0);
  EXPECT_GT(rewarded, 0);

  // Everything rlj logs shows about the run, and an offline rescoring through the same failing teacher.
  const std::string run_path = run_dir.root();
  const std::vector<std::vector<std::string>> views = {
      {"logs", run_path, "summary"},
      {"logs", run_path, "summary", "--json"},
      {"logs", run_path, "errors"},
      {"logs", run_path, "tail", "-n", "1000"},
      {"logs", run_path, "top", "50"},
      {"logs", run_path, "bottom", "50"},
      {"logs", run_path, "grep", "."},
      {"logs", run_path, "export", "-o", dir.file("export.jsonl")},
      {"logs", run_path, "export", "--format", "csv", "-o", dir.file("export.csv")},
      {"logs", run_path, "report", "-o", dir.file("report.html")},
      {"logs", run_path, "rescore", "--judge", dir.file("secure.yaml"), "--limit", "20"},
  };
  for (size_t i = 0; i < views.size(); ++i) {
    const Finished view =
        RunWithSecrets(views[i], dir.file(absl::StrCat("view-", i, ".out")), std::chrono::seconds(300));
    EXPECT_TRUE(view.exit.ok()) << absl::StrJoin(views[i], " ") << ": " << view.exit.Describe() << "\n" << view.output;
  }
  EXPECT_TRUE(std::filesystem::exists(dir.file("report.html")));

  // No file anywhere under the scratch directory (the run directory with its logs, consoles, reward logs,
  // judge cache, metrics and TensorBoard files; every command's captured output) holds the key or the token.
  for (const std::string& secret : {std::string(kKey), std::string(kToken)}) {
    int files_read = 0;
    const std::vector<std::string> leaks = FilesContaining(dir.path(), secret, &files_read);
    EXPECT_TRUE(leaks.empty()) << "'" << secret << "' found in:\n" << absl::StrJoin(leaks, "\n");
    EXPECT_GE(files_read, 20);
  }
}

// A learner started with the security section refuses plaintext clients, clients without a certificate the
// CA signed and calls without the token; health checks need only the certificate.
TEST(SecureRun, LearnerRefusesClientsWithoutCertificateOrToken) {
  testing::ScratchDir dir;
  testing::WriteTinyTask(dir.path());
  const TestCertificates certs = testing::MakeTestCertificates(dir.file("certs"));
  const std::string config = absl::StrCat(testing::TinyRunConfigHead(dir.path(), "guarded"), SecuritySection(certs));
  ASSERT_TRUE(WriteFileAtomically(dir.file("guarded.yaml"), config).ok());
  const RunDir run_dir(dir.path() + "/runs/guarded");
  auto learner =
      Subprocess::Spawn({testing::RljBinary(), "learner", dir.file("guarded.yaml"), "--run-dir", run_dir.root()},
                        dir.file("learner.out"), {absl::StrCat(kTokenVariable, "=", kToken)});
  ASSERT_TRUE(learner.ok()) << learner.status();
  std::string address;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(3);
  while (std::chrono::steady_clock::now() < give_up) {
    ASSERT_FALSE((*learner)->Poll().has_value()) << "the learner ended:\n"
                                                 << ReadFile(dir.file("learner.out")).value_or("");
    if (auto endpoint = run_dir.ReadEndpoint("learner"); endpoint.ok()) {
      address = *endpoint;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a file another process writes
  }
  ASSERT_FALSE(address.empty()) << "no learner endpoint within 3 minutes";

  const auto status_call = [&](const v1::SecurityConfig& client) {
    EXPECT_TRUE(InstallGrpcSecurity(client).ok());
    auto stub = v1::Learner::NewStub(MakeChannel(address));
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::seconds(30));
    v1::LearnerStatus status;
    return stub->Status(&context, v1::StatusRequest(), &status);
  };
  v1::SecurityConfig plaintext;
  EXPECT_EQ(status_call(plaintext).error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::SecurityConfig no_certificate;
  no_certificate.set_tls_ca(certs.ca);
  EXPECT_EQ(status_call(no_certificate).error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::SecurityConfig rogue = no_certificate;
  rogue.set_client_cert(certs.rogue_client_cert);
  rogue.set_client_key(certs.rogue_client_key);
  EXPECT_EQ(status_call(rogue).error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::SecurityConfig certificate = no_certificate;
  certificate.set_client_cert(certs.client_cert);
  certificate.set_client_key(certs.client_key);
  const grpc::Status no_token = status_call(certificate);
  EXPECT_EQ(no_token.error_code(), grpc::StatusCode::UNAUTHENTICATED) << no_token.error_message();
  EXPECT_TRUE(WaitForHealthy(address, std::chrono::seconds(30)).ok()) << "health checks need no token";
  setenv(kTokenVariable, "rlj-run-token-wrong", 1);
  v1::SecurityConfig full = certificate;
  full.set_token_env(kTokenVariable);
  EXPECT_EQ(status_call(full).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  setenv(kTokenVariable, kToken, 1);
  const grpc::Status served = status_call(full);
  EXPECT_TRUE(served.ok()) << served.error_message();
  unsetenv(kTokenVariable);
  EXPECT_TRUE(InstallGrpcSecurity(v1::SecurityConfig()).ok());

  const ExitInfo stopped = (*learner)->Stop(std::chrono::seconds(60));
  EXPECT_EQ(stopped.signal, 0) << stopped.Describe();
  int files_read = 0;
  EXPECT_TRUE(FilesContaining(dir.path(), kToken, &files_read).empty());
}

}  // namespace
}  // namespace rlj
