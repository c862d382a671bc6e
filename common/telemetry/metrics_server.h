// metrics_server.h: a small HTTP server (cpp-httplib) answering GET /metrics with a registry's Prometheus
// text; binds host:port (port 0 picks a free one) and serves on its own thread until stopped.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/telemetry/metrics_registry.h"

namespace httplib {
class Server;
}

namespace rlj::telemetry {

class MetricsServer {
 public:
  // `registry` must outlive the server.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& listen,
                                                              const MetricsRegistry* registry);
  ~MetricsServer();  // stops

  void Stop();
  // host:port actually bound.
  const std::string& address() const { return address_; }

 private:
  MetricsServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::string address_;
};

// The Prometheus text of the /metrics at `address` (host:port), or an error (for tests and `rlj` tools).
absl::StatusOr<std::string> ScrapeMetrics(const std::string& address, int timeout_ms = 5000);

}  // namespace rlj::telemetry
