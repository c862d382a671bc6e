// grpc_util.cc: server start-up, channels and health probes shared by every rlj process.
#include "common/grpc_util.h"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/server_builder.h>

#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_security.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace rlj {

absl::Status CheckListenAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", address, "': expected HOST:PORT with PORT in 0..65535"));
  }
  return absl::OkStatus();
}

absl::StatusOr<RunningServer> StartServer(const ServerOptions& options, const std::vector<grpc::Service*>& services) {
  if (absl::Status s = CheckListenAddress(options.listen); !s.ok()) return s;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int selected_port = 0;
  // TLS and the bearer-token check when the run config's `security` section asks for them (grpc_security).
  builder.AddListeningPort(options.listen, ServerTransportCredentials(), &selected_port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a taken port must fail, not be shared
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  // The quota counts gRPC's own polling threads as well as the threads running handlers; leave room for
  // them, or calls fail with "Server Threadpool Exhausted" below the intended concurrency.
  constexpr int kPollerThreads = 2;
  grpc::ResourceQuota quota("rlj-server");
  quota.SetMaxThreads(std::max(1, options.max_concurrent_rpcs) + kPollerThreads);
  builder.SetResourceQuota(quota);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || selected_port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (address in use, or not an address of this host)"));
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  return RunningServer{std::move(server), absl::StrCat(host, ":", selected_port)};
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, int max_message_bytes, bool own_connection) {
  grpc::ChannelArguments args;
  if (own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(max_message_bytes);
  args.SetMaxSendMessageSize(max_message_bytes);
  // Reconnect quickly after a peer restarts instead of waiting out gRPC's default backoff (up to 120 s).
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  return MakeSecureChannel(address, std::move(args));
}

absl::Status WaitForHealthy(const std::string& address, std::chrono::milliseconds timeout) {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  auto stub = grpc::health::v1::Health::NewStub(MakeChannel(address));
  grpc::Status last;
  while (true) {
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::milliseconds(1000));
    context.set_wait_for_ready(true);
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    last = stub->Check(&context, request, &response);
    if (last.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING) return absl::OkStatus();
    if (std::chrono::steady_clock::now() >= give_up) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling interval between probes
  }
  return absl::DeadlineExceededError(
      absl::StrCat(address, " did not become healthy within ", timeout.count(), " ms: ", last.error_message()));
}

}  // namespace rlj
