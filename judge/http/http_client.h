// http_client.h: the HTTP edge of the judge: an interface (so tests and other transports can stand in) and
// CurlHttpClient, a thread-safe libcurl client that reuses connections.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace rlj {

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // may hold secrets: never logged or echoed
  std::string body;
  std::chrono::milliseconds timeout{60000};  // the whole exchange, connect included
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased; repeated headers joined with ", "
  std::string body;

  // The value of header `lower_case_name`, or "" when absent.
  std::string Header(const std::string& lower_case_name) const;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;

  // Any HTTP status is a response (OK); only transport failures are errors: DeadlineExceeded when the
  // request's timeout passed, Unavailable when the server could not be reached or the connection broke,
  // InvalidArgument for a malformed URL. Messages name the method and URL, never a header. Thread-safe.
  virtual absl::StatusOr<HttpResponse> Send(const HttpRequest& request) = 0;
};

// libcurl: keeps a pool of easy handles (each keeps its connections alive), so requests to one host reuse
// connections across calls and threads.
class CurlHttpClient final : public HttpClient {
 public:
  struct Options {
    int max_idle_handles = 64;                         // handles (with their connections) kept between calls
    std::chrono::milliseconds connect_timeout{10000};  // capped by each request's timeout
  };

  CurlHttpClient();
  explicit CurlHttpClient(Options options);
  ~CurlHttpClient() override;
  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;

  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override;

 private:
  struct Pool;
  Options options_;
  std::unique_ptr<Pool> pool_;
};

}  // namespace rlj
