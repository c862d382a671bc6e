// grpc_security_test.cc: TLS, mutual TLS and the bearer token on real in-process gRPC servers on 127.0.0.1:0
// with certificates openssl makes for the test; the config checks of the `security` section; loopback defaults.
#include "common/grpc_security.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>

#include "common/config_validate.h"
#include "common/grpc_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "rlj/v1/judge.grpc.pb.h"
#include "test_util.h"
#include "tls_test_util.h"

namespace rlj {
namespace {

using rlj::testing::FailsWith;
using rlj::testing::MakeTestCertificates;
using rlj::testing::ScratchDir;
using rlj::testing::TestCertificates;

constexpr char kTokenVariable[] = "RLJ_TEST_GRPC_TOKEN";
constexpr char kToken[] = "rlj-test-token-7f3a9c1e5b";

// A Judge service whose Status answers with the number of calls that reached it.
class CountingJudge final : public v1::Judge::Service {
 public:
  grpc::Status Status(grpc::ServerContext* context, const v1::JudgeStatusRequest*, v1::JudgeStatus* status) override {
    status->set_requests(++calls_);
    // The token is consumed by the server's check: handlers never see it.
    if (context->client_metadata().count("authorization") > 0) saw_token_ = true;
    return grpc::Status::OK;
  }
  std::atomic<int64_t> calls_{0};
  std::atomic<bool> saw_token_{false};
};

class GrpcSecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new ScratchDir();
    certs_ = new TestCertificates(MakeTestCertificates(scratch_->path()));
  }
  static void TearDownTestSuite() {
    delete certs_;
    delete scratch_;
  }
  void TearDown() override {
    RLJ_EXPECT_OK(InstallGrpcSecurity(v1::SecurityConfig()));  // back to plaintext for the next test
    unsetenv(kTokenVariable);
  }

  v1::SecurityConfig ServerTls() const {
    v1::SecurityConfig config;
    config.set_tls_cert(certs_->server_cert);
    config.set_tls_key(certs_->server_key);
    config.set_tls_ca(certs_->ca);
    return config;
  }

  // Starts the counting service with the security installed now.
  RunningServer Start() {
    auto running = StartServer(ServerOptions{}, {&service_});
    EXPECT_TRUE(running.ok()) << running.status();
    return running.ok() ? std::move(*running) : RunningServer{};
  }

  // Judge.Status through a channel made with the security installed now.
  grpc::Status CallStatus(const std::string& address, v1::JudgeStatus* status = nullptr) {
    auto stub = v1::Judge::NewStub(MakeChannel(address));
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::seconds(20));
    v1::JudgeStatus ignored;
    return stub->Status(&context, v1::JudgeStatusRequest(), status == nullptr ? &ignored : status);
  }

  grpc::health::v1::HealthCheckResponse::ServingStatus Health(const std::string& address, grpc::Status* rpc) {
    auto stub = grpc::health::v1::Health::NewStub(MakeChannel(address));
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::seconds(20));
    grpc::health::v1::HealthCheckResponse response;
    *rpc = stub->Check(&context, grpc::health::v1::HealthCheckRequest(), &response);
    return response.status();
  }

  static ScratchDir* scratch_;
  static TestCertificates* certs_;
  CountingJudge service_;
};

ScratchDir* GrpcSecurityTest::scratch_ = nullptr;
TestCertificates* GrpcSecurityTest::certs_ = nullptr;

TEST_F(GrpcSecurityTest, TlsCallSucceedsAndHealthChecksWork) {
  RLJ_ASSERT_OK(InstallGrpcSecurity(ServerTls()));
  EXPECT_EQ(DescribeGrpcSecurity(), "TLS");
  RunningServer server = Start();
  v1::JudgeStatus status;
  const grpc::Status rpc = CallStatus(server.address, &status);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_EQ(status.requests(), 1);
  RLJ_EXPECT_OK(WaitForHealthy(server.address, std::chrono::seconds(20)));
}

TEST_F(GrpcSecurityTest, PlaintextClientCannotCallATlsServer) {
  RLJ_ASSERT_OK(InstallGrpcSecurity(ServerTls()));
  RunningServer server = Start();
  RLJ_ASSERT_OK(InstallGrpcSecurity(v1::SecurityConfig()));  // this client speaks plaintext
  EXPECT_EQ(DescribeGrpcSecurity(), "plaintext");
  const grpc::Status rpc = CallStatus(server.address);
  EXPECT_FALSE(rpc.ok());
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::UNAVAILABLE) << rpc.error_message();
  EXPECT_EQ(service_.calls_.load(), 0);
}

TEST_F(GrpcSecurityTest, TlsClientCannotCallAPlaintextServer) {
  RunningServer server = Start();  // nothing installed: plaintext
  RLJ_ASSERT_OK(InstallGrpcSecurity(ServerTls()));
  EXPECT_FALSE(CallStatus(server.address).ok());
  EXPECT_EQ(service_.calls_.load(), 0);
}

TEST_F(GrpcSecurityTest, ServerCertificateFromAnotherCaIsRefused) {
  RLJ_ASSERT_OK(InstallGrpcSecurity(ServerTls()));
  RunningServer server = Start();
  v1::SecurityConfig client;
  client.set_tls_ca(certs_->other_ca);  // trusts only the unrelated CA
  RLJ_ASSERT_OK(InstallGrpcSecurity(client));
  const grpc::Status rpc = CallStatus(server.address);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::UNAVAILABLE) << rpc.error_message();
  EXPECT_EQ(service_.calls_.load(), 0);
}

TEST_F(GrpcSecurityTest, ServerNameOverrideChecksTheCertificateForThatName) {
  RLJ_ASSERT_OK(InstallGrpcSecurity(ServerTls()));
  RunningServer server = Start();
  v1::SecurityConfig client;
  client.set_tls_ca(certs_->ca);
  client.set_tls_server_name("rlj.internal");  // in the certificate's SAN
  RLJ_ASSERT_OK(InstallGrpcSecurity(client));
  EXPECT_TRUE(CallStatus(server.address).ok());
  client.set_tls_server_name("judge.example.com");  // not in it
  RLJ_ASSERT_OK(InstallGrpcSecurity(client));
  EXPECT_EQ(CallStatus(server.address).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(service_.calls_.load(), 1);
}

TEST_F(GrpcSecurityTest, MutualTlsRefusesClientsWithoutACertificateFromTheCa) {
  v1::SecurityConfig config = ServerTls();
  config.set_require_client_cert(true);
  RLJ_ASSERT_OK(InstallGrpcSecurity(config));
  RunningServer server = Start();

  // The server's own process has no client certificate configured: refused (handshake fails).
  EXPECT_EQ(CallStatus(server.address).error_code(), grpc::StatusCode::UNAVAILABLE);
  // A client certificate from another CA: refused.
  v1::SecurityConfig rogue = ServerTls();
  rogue.set_client_cert(certs_->rogue_client_cert);
  rogue.set_client_key(certs_->rogue_client_key);
  RLJ_ASSERT_OK(InstallGrpcSecurity(rogue));
  EXPECT_EQ(CallStatus(server.address).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(service_.calls_.load(), 0);
  // The right one: served.
  config.set_client_cert(certs_->client_cert);
  config.set_client_key(certs_->client_key);
  RLJ_ASSERT_OK(InstallGrpcSecurity(config));
  EXPECT_EQ(DescribeGrpcSecurity(), "mutual TLS");
  const grpc::Status rpc = CallStatus(server.address);
  EXPECT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_EQ(service_.calls_.load(), 1);
  RLJ_EXPECT_OK(WaitForHealthy(server.address, std::chrono::seconds(20)));
}

// The token over plaintext and over TLS: missing or wrong → UNAUTHENTICATED before the handler; right → OK;
// health checks without a token → SERVING.
class BearerTokenTest : public GrpcSecurityTest, public ::testing::WithParamInterface<bool> {};

TEST_P(BearerTokenTest, CallsWithoutTheTokenAreRefusedBeforeTheHandler) {
  const bool tls = GetParam();
  const v1::SecurityConfig transport = tls ? ServerTls() : v1::SecurityConfig();
  v1::SecurityConfig with_token = transport;
  with_token.set_token_env(kTokenVariable);
  setenv(kTokenVariable, kToken, 1);
  RLJ_ASSERT_OK(InstallGrpcSecurity(with_token));
  EXPECT_EQ(DescribeGrpcSecurity(), tls ? "TLS, bearer token" : "plaintext, bearer token");
  RunningServer server = Start();

  // Right token: served, and the handler never sees the token.
  v1::JudgeStatus status;
  grpc::Status rpc = CallStatus(server.address, &status);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_EQ(status.requests(), 1);
  EXPECT_FALSE(service_.saw_token_.load());

  // Missing token.
  RLJ_ASSERT_OK(InstallGrpcSecurity(transport));
  rpc = CallStatus(server.address);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::UNAUTHENTICATED) << rpc.error_message();
  EXPECT_NE(rpc.error_message().find("requires a bearer token"), std::string::npos) << rpc.error_message();
  // Health checks need none.
  grpc::Status health_rpc;
  EXPECT_EQ(Health(server.address, &health_rpc), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_TRUE(health_rpc.ok()) << health_rpc.error_message();
  RLJ_EXPECT_OK(WaitForHealthy(server.address, std::chrono::seconds(20)));

  // Wrong tokens: a different one, a prefix, the right one plus a character; none is echoed back.
  for (const std::string wrong : {"rlj-test-token-0000000000", "rlj-test-token", "rlj-test-token-7f3a9c1e5bX"}) {
    setenv(kTokenVariable, wrong.c_str(), 1);
    RLJ_ASSERT_OK(InstallGrpcSecurity(with_token));
    rpc = CallStatus(server.address);
    EXPECT_EQ(rpc.error_code(), grpc::StatusCode::UNAUTHENTICATED) << wrong << ": " << rpc.error_message();
    EXPECT_EQ(rpc.error_message().find(wrong), std::string::npos);
    EXPECT_EQ(rpc.error_message().find(kToken), std::string::npos);
  }
  EXPECT_EQ(service_.calls_.load(), 1);  // only the call with the right token reached the handler

  // And the right one again, with a trailing newline as a file read into the variable would have.
  setenv(kTokenVariable, (std::string(kToken) + "\n").c_str(), 1);
  RLJ_ASSERT_OK(InstallGrpcSecurity(with_token));
  rpc = CallStatus(server.address, &status);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_EQ(status.requests(), 2);
}

INSTANTIATE_TEST_SUITE_P(PlaintextAndTls, BearerTokenTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "Tls" : "Plaintext"; });

TEST_F(GrpcSecurityTest, InstallErrorsNameTheKeyThePathAndTheVariable) {
  v1::SecurityConfig config = ServerTls();
  config.set_tls_key(scratch_->file("no-such.key"));
  EXPECT_TRUE(FailsWith(InstallGrpcSecurity(config), absl::StatusCode::kFailedPrecondition,
                        "security.tls_key: cannot read '" + scratch_->file("no-such.key") + "'"));
  config = ServerTls();
  config.set_tls_ca(scratch_->file("server.ext"));  // a file, but no PEM
  EXPECT_TRUE(FailsWith(InstallGrpcSecurity(config), absl::StatusCode::kInvalidArgument,
                        "security.tls_ca: '" + scratch_->file("server.ext") + "' holds no PEM block"));
  config = v1::SecurityConfig();
  config.set_client_cert(scratch_->file("missing-client.pem"));
  config.set_client_key(certs_->client_key);
  EXPECT_TRUE(FailsWith(InstallGrpcSecurity(config), absl::StatusCode::kFailedPrecondition,
                        "security.client_cert: cannot read '" + scratch_->file("missing-client.pem") + "'"));

  config = v1::SecurityConfig();
  config.set_token_env(kTokenVariable);
  unsetenv(kTokenVariable);
  EXPECT_TRUE(FailsWith(InstallGrpcSecurity(config), absl::StatusCode::kFailedPrecondition,
                        "security.token_env: the environment variable RLJ_TEST_GRPC_TOKEN is not set or empty"));
  setenv(kTokenVariable, "  ", 1);
  EXPECT_TRUE(FailsWith(InstallGrpcSecurity(config), absl::StatusCode::kFailedPrecondition, "RLJ_TEST_GRPC_TOKEN"));
  setenv(kTokenVariable, "secret with spaces", 1);
  const absl::Status bad = InstallGrpcSecurity(config);
  EXPECT_TRUE(FailsWith(bad, absl::StatusCode::kInvalidArgument, "RLJ_TEST_GRPC_TOKEN"));
  EXPECT_EQ(std::string(bad.message()).find("secret"), std::string::npos) << bad.message();
  // A failed install leaves the previous setting in place.
  EXPECT_EQ(DescribeGrpcSecurity(), "plaintext");
}

TEST(SecurityConfigValidation, KeysThatBelongTogether) {
  const auto validate = [](const std::string& text) {
    v1::RunConfig config;
    v1::SecurityConfig* security = config.mutable_security();
    if (text == "cert-only") security->set_tls_cert("s.pem");
    if (text == "key-only") security->set_tls_key("s.key");
    if (text == "client-cert-only") security->set_client_cert("c.pem");
    if (text == "client-key-only") security->set_client_key("c.key");
    if (text == "require-without-ca") {
      security->set_tls_cert("s.pem");
      security->set_tls_key("s.key");
      security->set_require_client_cert(true);
    }
    if (text == "require-without-cert") {
      security->set_tls_ca("ca.pem");
      security->set_require_client_cert(true);
    }
    if (text == "empty-token-env") security->set_token_env("");
    if (text == "complete") {
      security->set_tls_cert("s.pem");
      security->set_tls_key("s.key");
      security->set_tls_ca("ca.pem");
      security->set_require_client_cert(true);
      security->set_client_cert("c.pem");
      security->set_client_key("c.key");
      security->set_token_env("RLJ_TOKEN");
    }
    return ValidateRunConfig(config);
  };
  EXPECT_TRUE(FailsWith(validate("cert-only"), absl::StatusCode::kInvalidArgument,
                        "security.tls_key: is required with security.tls_cert"));
  EXPECT_TRUE(FailsWith(validate("key-only"), absl::StatusCode::kInvalidArgument,
                        "security.tls_cert: is required with security.tls_key"));
  EXPECT_TRUE(FailsWith(validate("client-cert-only"), absl::StatusCode::kInvalidArgument,
                        "security.client_key: is required with security.client_cert"));
  EXPECT_TRUE(FailsWith(validate("client-key-only"), absl::StatusCode::kInvalidArgument,
                        "security.client_cert: is required with security.client_key"));
  EXPECT_TRUE(FailsWith(validate("require-without-ca"), absl::StatusCode::kInvalidArgument,
                        "security.require_client_cert: needs security.tls_cert and security.tls_ca"));
  EXPECT_TRUE(
      FailsWith(validate("require-without-cert"), absl::StatusCode::kInvalidArgument, "security.require_client_cert"));
  EXPECT_TRUE(FailsWith(validate("empty-token-env"), absl::StatusCode::kInvalidArgument, "security.token_env"));
  RLJ_EXPECT_OK(validate("complete"));
  RLJ_EXPECT_OK(validate("none"));
}

TEST(ListenDefaults, EveryServerListensOnLoopbackUnlessToldOtherwise) {
  EXPECT_EQ(ServerOptions().listen, "127.0.0.1:0");
  EXPECT_EQ(v1::LearnerConfig().listen(), "127.0.0.1:0");
  EXPECT_EQ(v1::JudgeConfig().listen(), "127.0.0.1:0");
  EXPECT_EQ(v1::TeacherConfig().listen(), "127.0.0.1:0");
  EXPECT_EQ(v1::TelemetryConfig().metrics_listen(), "127.0.0.1:0");
  // The per-role metrics overrides are unset, so they fall back to metrics_listen.
  const v1::TelemetryConfig telemetry;
  EXPECT_FALSE(telemetry.has_learner_metrics_listen() || telemetry.has_judge_metrics_listen() ||
               telemetry.has_actor_metrics_listen() || telemetry.has_teacher_metrics_listen());
  CountingJudge service;
  RLJ_ASSERT_OK_AND_ASSIGN(RunningServer server, StartServer(ServerOptions{}, {&service}));
  EXPECT_EQ(server.address.rfind("127.0.0.1:", 0), 0u) << server.address;
  EXPECT_NE(server.address, "127.0.0.1:0");
}

}  // namespace
}  // namespace rlj
