// grpc_security.h: the process-wide transport security of rlj's gRPC servers and channels (TLS, client
// certificates, a bearer token), installed once at start-up from the run config's `security` section.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

// Reads the PEM files and the bearer token `config` names and makes them the transport security of every
// server StartServer starts and every channel MakeChannel makes from now on (servers and channels made
// before keep theirs). A missing or unreadable file is an error naming the key and the path; an unset or
// empty token variable is an error naming the variable. The token never appears in a message or a log.
// Called once per process (PrepareCommand); installing again replaces the setting (tests do).
// An empty config is plaintext without a token, what a process has before any install.
absl::Status InstallGrpcSecurity(const v1::SecurityConfig& config);

// The credentials StartServer listens with: TLS (asking for client certificates as configured) when
// security.tls_cert is set, plaintext otherwise; with a token, calls without `authorization: Bearer <token>`
// end UNAUTHENTICATED before any handler runs, except grpc.health.v1.Health (probes need no token).
std::shared_ptr<grpc::ServerCredentials> ServerTransportCredentials();

// A channel to `address` with the installed security: TLS when tls_cert, tls_ca or client_cert is set
// (presenting the client certificate, checking the server's against tls_ca or tls_server_name), and the
// bearer token on every call. `args` carries the caller's other channel settings.
std::shared_ptr<grpc::Channel> MakeSecureChannel(const std::string& address, grpc::ChannelArguments args);

// One line for logs: "plaintext", "TLS", "mutual TLS", each with ", bearer token" when one is set.
std::string DescribeGrpcSecurity();

}  // namespace rlj
