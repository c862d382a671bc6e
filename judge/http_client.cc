// http_client.cc: CurlHttpClient: a pool of libcurl easy handles, one request per handle at a time.
#include "judge/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"

namespace rlj {
namespace {

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

size_t AppendHeader(char* data, size_t size, size_t count, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  const std::string_view line(data, size * count);
  if (line.substr(0, 5) == "HTTP/") {
    headers->clear();  // a new response (after a 100 Continue): keep only the last one's headers
    return size * count;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * count;
  std::string name(absl::StripAsciiWhitespace(AsAbsl(line.substr(0, colon))));
  absl::AsciiStrToLower(&name);
  std::string value(absl::StripAsciiWhitespace(AsAbsl(line.substr(colon + 1))));
  auto [it, inserted] = headers->try_emplace(std::move(name), value);
  if (!inserted) absl::StrAppend(&it->second, ", ", value);
  return size * count;
}

absl::Status TransportError(CURLcode code, const HttpRequest& request, const char* detail) {
  const std::string message = absl::StrCat(request.method, " ", request.url, ": ", curl_easy_strerror(code),
                                           (detail != nullptr && detail[0] != '\0') ? absl::StrCat(" (", detail, ")") : "");
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return absl::DeadlineExceededError(message);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return absl::InvalidArgumentError(message);
    case CURLE_OUT_OF_MEMORY:
      return absl::ResourceExhaustedError(message);
    default:  // could not resolve / connect, connection reset, TLS handshake, empty reply, …
      return absl::UnavailableError(message);
  }
}

}  // namespace

std::string HttpResponse::Header(const std::string& lower_case_name) const {
  auto it = headers.find(lower_case_name);
  return it == headers.end() ? std::string() : it->second;
}

struct CurlHttpClient::Pool {
  absl::Mutex mutex;
  std::vector<CURL*> idle ABSL_GUARDED_BY(mutex);
};

CurlHttpClient::CurlHttpClient() : CurlHttpClient(Options{}) {}

CurlHttpClient::CurlHttpClient(Options options) : options_(options), pool_(std::make_unique<Pool>()) {
  GlobalInitOnce();
}

CurlHttpClient::~CurlHttpClient() {
  absl::MutexLock lock(&pool_->mutex);
  for (CURL* handle : pool_->idle) curl_easy_cleanup(handle);
  pool_->idle.clear();
}

absl::StatusOr<HttpResponse> CurlHttpClient::Send(const HttpRequest& request) {
  CURL* handle = nullptr;
  {
    absl::MutexLock lock(&pool_->mutex);
    if (!pool_->idle.empty()) {
      handle = pool_->idle.back();
      pool_->idle.pop_back();
    }
  }
  if (handle == nullptr) handle = curl_easy_init();
  if (handle == nullptr) return absl::ResourceExhaustedError(absl::StrCat(request.method, " ", request.url, ": curl_easy_init failed"));
  curl_easy_reset(handle);  // keeps the handle's live connections and caches, drops the last request's options

  HttpResponse response;
  char error_buffer[CURL_ERROR_SIZE] = {0};
  struct curl_slist* header_list = nullptr;
  for (const auto& [name, value] : request.headers) {
    header_list = curl_slist_append(header_list, absl::StrCat(name, ": ", value).c_str());
  }
  header_list = curl_slist_append(header_list, "Expect:");  // no 100-continue round trip for large bodies

  const long timeout_ms = std::max<long>(1, static_cast<long>(request.timeout.count()));
  const long connect_ms = std::min<long>(timeout_ms, static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(handle, CURLOPT_URL, request.url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500  // 7.85: CURLOPT_PROTOCOLS is deprecated in favour of the string form
  curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(handle, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
  curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl_easy_setopt(handle, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(handle, CURLOPT_ACCEPT_ENCODING, "");  // whatever this libcurl can decode
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, header_list);
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, AppendHeader);
  curl_easy_setopt(handle, CURLOPT_HEADERDATA, &response.headers);
  if (request.method == "GET") {
    curl_easy_setopt(handle, CURLOPT_HTTPGET, 1L);
  } else {
    if (request.method != "POST") curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(handle, CURLOPT_POSTFIELDS, request.body.data());
  }

  const CURLcode code = curl_easy_perform(handle);
  long status = 0;
  if (code == CURLE_OK) curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
  // Forget the pointers into this call's stack before the handle goes back to the pool.
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, nullptr);
  curl_slist_free_all(header_list);
  absl::Status failure = code == CURLE_OK ? absl::OkStatus() : TransportError(code, request, error_buffer);
  {
    absl::MutexLock lock(&pool_->mutex);
    if (static_cast<int>(pool_->idle.size()) < options_.max_idle_handles) {
      pool_->idle.push_back(handle);
      handle = nullptr;
    }
  }
  if (handle != nullptr) curl_easy_cleanup(handle);
  if (!failure.ok()) return failure;
  response.status = static_cast<int>(status);
  return response;
}

}  // namespace rlj
