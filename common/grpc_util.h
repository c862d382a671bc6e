// grpc_util.h: how every rlj server starts (health service, thread cap, port reporting, no port sharing)
// and how every client makes channels, deadlines and health probes.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/server.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlj {

inline constexpr int kMaxMessageBytes = 64 << 20;

struct ServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free one
  int max_concurrent_rpcs = 16;        // synchronous RPCs served at once (gRPC's polling threads come on top)
  int max_message_bytes = kMaxMessageBytes;
};

struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  std::string address;  // host:port actually bound (port resolved when 0 was asked for)
};

// Builds and starts a server with `services` and the standard health service (reporting SERVING), with the
// installed transport security (TLS, client certificates, bearer token: InstallGrpcSecurity).
// A taken port is an error naming the address, not a silent second listener.
absl::StatusOr<RunningServer> StartServer(const ServerOptions& options, const std::vector<grpc::Service*>& services);

// A channel to host:port with rlj's message size limits and the installed transport security (TLS, client
// certificate, bearer token: InstallGrpcSecurity); channels are made once and reused.
// `own_connection`: a TCP connection of its own instead of the one channels to `address` share (benchmarks).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, int max_message_bytes = kMaxMessageBytes,
                                           bool own_connection = false);

// Sets a deadline `timeout` from now on a client context. Every rlj client call goes through this.
inline void SetDeadline(grpc::ClientContext* context, std::chrono::milliseconds timeout) {
  context->set_deadline(std::chrono::system_clock::now() + timeout);
}

// Asks grpc.health.v1.Health/Check until it answers SERVING or `timeout` passes.
absl::Status WaitForHealthy(const std::string& address, std::chrono::milliseconds timeout);

// Splits "host:port"; the port must be a number in [0, 65535].
absl::Status CheckListenAddress(const std::string& address);

}  // namespace rlj
