// metrics_server.cc: /metrics over cpp-httplib.
#include "common/telemetry/metrics_server.h"

#include <httplib.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/status.h"

namespace rlj::telemetry {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

bool SplitAddress(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  *port = std::atoi(address.substr(colon + 1).c_str());
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& listen,
                                                                    const MetricsRegistry* registry) {
  RLJ_RETURN_IF_ERROR(Annotate(CheckListenAddress(listen), "metrics server"));
  std::string host;
  int port = 0;
  SplitAddress(listen, &host, &port);
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->server_ = std::make_unique<httplib::Server>();
  server->server_->Get("/metrics", [registry](const httplib::Request&, httplib::Response& response) {
    response.set_content(registry->Render(), kContentType);
  });
  server->server_->Get("/", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("rlj metrics: GET /metrics\n", "text/plain");
  });
  int bound = port;
  if (port == 0) {
    bound = server->server_->bind_to_any_port(host);
  } else if (!server->server_->bind_to_port(host, port)) {
    bound = -1;
  }
  if (bound <= 0) return absl::UnavailableError(absl::StrCat("metrics server: cannot listen on ", listen));
  server->address_ = absl::StrCat(host.find(':') != std::string::npos ? "[" + host + "]" : host, ":", bound);
  httplib::Server* raw = server->server_.get();
  server->thread_ = std::thread([raw] { raw->listen_after_bind(); });
  // stop() is a no-op until the loop runs, so Start returns only once it does (a stop right after Start
  // must not leave the thread serving forever).
  for (int i = 0; i < 5000 && !raw->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return server;
}

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<std::string> ScrapeMetrics(const std::string& address, int timeout_ms) {
  std::string host;
  int port = 0;
  if (!SplitAddress(address, &host, &port) || port <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("not a HOST:PORT address: '", address, "'"));
  }
  httplib::Client client(host, port);
  client.set_connection_timeout(std::chrono::milliseconds(timeout_ms));
  client.set_read_timeout(std::chrono::milliseconds(timeout_ms));
  auto response = client.Get("/metrics");
  if (!response) {
    return absl::UnavailableError(
        absl::StrCat("GET http://", address, "/metrics: ", httplib::to_string(response.error())));
  }
  if (response->status != 200) {
    return absl::UnavailableError(absl::StrCat("GET http://", address, "/metrics: HTTP ", response->status));
  }
  return response->body;
}

}  // namespace rlj::telemetry
