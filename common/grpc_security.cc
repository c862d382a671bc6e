// grpc_security.cc: TLS credentials from PEM files, the bearer-token check on servers (a core auth metadata
// processor, so a refused call never reaches a handler, with or without TLS) and the token on every client call.
#include "common/grpc_security.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>
#include <grpcpp/version_info.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"

namespace rlj {
namespace {

// Everything the installed `security` section resolved to (file contents, not paths).
struct TransportSecurity {
  bool server_tls = false;
  std::string server_cert_chain;
  std::string server_private_key;
  std::string ca_certs;  // servers verify client certificates with it, clients server certificates
  bool require_client_cert = false;
  bool client_tls = false;
  std::string client_cert_chain;
  std::string client_private_key;
  std::string server_name_override;
  std::string authorization;  // "Bearer <token>", empty without a token
};

ABSL_CONST_INIT absl::Mutex security_mutex(absl::kConstInit);
std::shared_ptr<const TransportSecurity>& InstalledSecurity() ABSL_EXCLUSIVE_LOCKS_REQUIRED(security_mutex) {
  static auto* installed = new std::shared_ptr<const TransportSecurity>(std::make_shared<TransportSecurity>());
  return *installed;
}

std::shared_ptr<const TransportSecurity> CurrentSecurity() {
  absl::MutexLock lock(&security_mutex);
  return InstalledSecurity();
}

absl::StatusOr<std::string> ReadPem(const std::string& key, const std::string& path) {
  absl::StatusOr<std::string> content = ReadFile(path);
  if (!content.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("security.", key, ": cannot read '", path, "': ", content.status().message()));
  }
  if (content->find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("security.", key, ": '", path, "' holds no PEM block"));
  }
  return content;
}

// Compares in time that depends only on the lengths, so a caller cannot find the token byte by byte.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  const size_t length = std::max(a.size(), b.size());
  for (size_t i = 0; i < length; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    difference |= static_cast<unsigned char>(x ^ y);
  }
  return difference == 0;
}

std::string_view SliceView(const grpc_slice& slice) {
  return std::string_view(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)), GRPC_SLICE_LENGTH(slice));
}

// The server side of the token: runs in gRPC core on every call's initial metadata, before any handler.
void CheckBearerToken(void* state, grpc_auth_context* /*context*/, const grpc_metadata* metadata, size_t count,
                      grpc_process_auth_metadata_done_cb done, void* user_data) {
  const std::string& expected = *static_cast<const std::string*>(state);
  bool health_check = false;
  const grpc_metadata* authorization = nullptr;
  for (size_t i = 0; i < count; ++i) {
    const std::string_view key = SliceView(metadata[i].key);
    if (key == ":path" && SliceView(metadata[i].value).substr(0, 23) == "/grpc.health.v1.Health/") health_check = true;
    if (key == "authorization") authorization = &metadata[i];
  }
  if (health_check || (authorization != nullptr && ConstantTimeEquals(SliceView(authorization->value), expected))) {
    // Consumed: handlers never see the token.
    done(user_data, authorization, authorization == nullptr ? 0 : 1, nullptr, 0, GRPC_STATUS_OK, nullptr);
    return;
  }
  done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_UNAUTHENTICATED,
       authorization == nullptr ? "this server requires a bearer token (security.token_env); the call carried none"
                                : "the call's bearer token is not this server's (security.token_env)");
}

void DestroyExpectedToken(void* state) { delete static_cast<std::string*>(state); }

// grpc::ServerCredentials over core credentials, so that plaintext servers can have an auth metadata
// processor too (grpc::InsecureServerCredentials() cannot take one in gRPC 1.51).
#if GRPC_CPP_VERSION_MAJOR == 1 && GRPC_CPP_VERSION_MINOR < 57
class CoreServerCredentials final : public grpc::ServerCredentials {
 public:
  explicit CoreServerCredentials(grpc_server_credentials* credentials) : credentials_(credentials) {}
  ~CoreServerCredentials() override { grpc_server_credentials_release(credentials_); }
  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>& /*processor*/) override {
    // rlj sets its token check on the core credentials (CheckBearerToken); nothing calls this.
    log::Error("CoreServerCredentials::SetAuthMetadataProcessor is not supported; the processor is ignored");
  }

 private:
  int AddPortToServer(const std::string& address, grpc_server* server) override {
    return grpc_server_add_http2_port(server, address.c_str(), credentials_);
  }
  grpc_server_credentials* credentials_;
};
#else
// Newer gRPC wraps core credentials in grpc::ServerCredentials itself.
class CoreServerCredentials final : public grpc::ServerCredentials {
 public:
  explicit CoreServerCredentials(grpc_server_credentials* credentials) : grpc::ServerCredentials(credentials) {}
};
#endif

// Adds `authorization: Bearer <token>` to every call of a channel (call credentials would be dropped on
// plaintext channels).
class BearerTokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(std::shared_ptr<const TransportSecurity> security) : security_(std::move(security)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", security_->authorization);
    }
    methods->Proceed();
  }

 private:
  std::shared_ptr<const TransportSecurity> security_;
};

class BearerTokenInterceptorFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenInterceptorFactory(std::shared_ptr<const TransportSecurity> security)
      : security_(std::move(security)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new BearerTokenInterceptor(security_);
  }

 private:
  std::shared_ptr<const TransportSecurity> security_;
};

}  // namespace

absl::Status InstallGrpcSecurity(const v1::SecurityConfig& config) {
  auto security = std::make_shared<TransportSecurity>();
  if (!config.tls_cert().empty()) {
    if (config.tls_key().empty())
      return absl::InvalidArgumentError("security.tls_key: required with security.tls_cert");
    RLJ_ASSIGN_OR_RETURN(security->server_cert_chain, ReadPem("tls_cert", config.tls_cert()));
    RLJ_ASSIGN_OR_RETURN(security->server_private_key, ReadPem("tls_key", config.tls_key()));
    security->server_tls = true;
  }
  if (!config.tls_ca().empty()) {
    RLJ_ASSIGN_OR_RETURN(security->ca_certs, ReadPem("tls_ca", config.tls_ca()));
  }
  if (config.require_client_cert() && (!security->server_tls || security->ca_certs.empty())) {
    return absl::InvalidArgumentError("security.require_client_cert: needs security.tls_cert and security.tls_ca");
  }
  security->require_client_cert = config.require_client_cert();
  if (!config.client_cert().empty() || !config.client_key().empty()) {
    if (config.client_cert().empty() || config.client_key().empty()) {
      return absl::InvalidArgumentError("security.client_cert and security.client_key: set both or neither");
    }
    RLJ_ASSIGN_OR_RETURN(security->client_cert_chain, ReadPem("client_cert", config.client_cert()));
    RLJ_ASSIGN_OR_RETURN(security->client_private_key, ReadPem("client_key", config.client_key()));
  }
  security->client_tls = security->server_tls || !security->ca_certs.empty() || !security->client_cert_chain.empty();
  security->server_name_override = config.tls_server_name();
  if (!config.token_env().empty()) {
    const char* value = std::getenv(config.token_env().c_str());
    const std::string token = value == nullptr ? std::string() : std::string(absl::StripAsciiWhitespace(value));
    if (token.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("security.token_env: the environment variable ", config.token_env(), " is not set or empty"));
    }
    for (const char c : token) {
      if (c < 0x21 || c > 0x7e) {  // a header value: printable ASCII without spaces
        return absl::InvalidArgumentError(absl::StrCat("security.token_env: the environment variable ",
                                                       config.token_env(),
                                                       " holds characters a bearer token cannot have (only printable "
                                                       "ASCII without spaces)"));
      }
    }
    security->authorization = absl::StrCat("Bearer ", token);
  }
  absl::MutexLock lock(&security_mutex);
  InstalledSecurity() = std::move(security);
  return absl::OkStatus();
}

std::string DescribeGrpcSecurity() {
  const std::shared_ptr<const TransportSecurity> security = CurrentSecurity();
  std::string description = security->server_tls && security->require_client_cert ? "mutual TLS"
                            : security->server_tls || security->client_tls        ? "TLS"
                                                                                  : "plaintext";
  if (!security->client_cert_chain.empty() && !security->require_client_cert)
    description += " with a client certificate";
  if (!security->authorization.empty()) description += ", bearer token";
  return description;
}

std::shared_ptr<grpc::ServerCredentials> ServerTransportCredentials() {
  const std::shared_ptr<const TransportSecurity> security = CurrentSecurity();
  if (!security->server_tls && security->authorization.empty()) return grpc::InsecureServerCredentials();
  grpc_server_credentials* credentials = nullptr;
  if (security->server_tls) {
    grpc_ssl_pem_key_cert_pair pair{security->server_private_key.c_str(), security->server_cert_chain.c_str()};
    const grpc_ssl_client_certificate_request_type request =
        security->require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
        : !security->ca_certs.empty() ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
                                      : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
    credentials = grpc_ssl_server_credentials_create_ex(
        security->ca_certs.empty() ? nullptr : security->ca_certs.c_str(), &pair, 1, request, nullptr);
  } else {
    credentials = grpc_insecure_server_credentials_create();
  }
  if (!security->authorization.empty()) {
    grpc_server_credentials_set_auth_metadata_processor(
        credentials,
        grpc_auth_metadata_processor{CheckBearerToken, DestroyExpectedToken, new std::string(security->authorization)});
  }
  return std::make_shared<CoreServerCredentials>(credentials);
}

std::shared_ptr<grpc::Channel> MakeSecureChannel(const std::string& address, grpc::ChannelArguments args) {
  const std::shared_ptr<const TransportSecurity> security = CurrentSecurity();
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (security->client_tls) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = security->ca_certs;
    options.pem_cert_chain = security->client_cert_chain;
    options.pem_private_key = security->client_private_key;
    credentials = grpc::SslCredentials(options);
    if (!security->server_name_override.empty()) args.SetSslTargetNameOverride(security->server_name_override);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  if (security->authorization.empty()) return grpc::CreateCustomChannel(address, credentials, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<BearerTokenInterceptorFactory>(security));
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, credentials, args, std::move(interceptors));
}

}  // namespace rlj
