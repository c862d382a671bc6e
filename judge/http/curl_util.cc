// curl_util.cc: libcurl request options, capture callbacks and error mapping.
#include "judge/http/curl_util.h"

#include <algorithm>
#include <mutex>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace rlj::curl {
namespace {

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

}  // namespace

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

curl_slist* HeaderList(const HttpRequest& request) {
  curl_slist* list = nullptr;
  for (const auto& [name, value] : request.headers) {
    list = curl_slist_append(list, absl::StrCat(name, ": ", value).c_str());
  }
  // No 100-continue round trip for large bodies.
  return curl_slist_append(list, "Expect:");
}

void SetRequestOptions(CURL* handle, const HttpRequest& request, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds connect_timeout, Transfer* transfer) {
  if (transfer->header_list == nullptr) transfer->header_list = HeaderList(request);
  const long timeout_ms = std::max<long>(1, static_cast<long>(timeout.count()));
  const long connect_ms = std::max<long>(1, std::min<long>(timeout_ms, static_cast<long>(connect_timeout.count())));
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
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, transfer->header_list);
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, transfer->error_buffer);
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &transfer->response.body);
  curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, AppendHeader);
  curl_easy_setopt(handle, CURLOPT_HEADERDATA, &transfer->response.headers);
  if (request.method == "GET") {
    curl_easy_setopt(handle, CURLOPT_HTTPGET, 1L);
  } else {
    if (request.method != "POST") curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(handle, CURLOPT_POSTFIELDS, request.body.data());
  }
}

void ReleaseTransfer(CURL* handle, Transfer* transfer) {
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, nullptr);
  curl_slist_free_all(transfer->header_list);
  transfer->header_list = nullptr;
}

absl::Status TransportError(CURLcode code, const HttpRequest& request, const char* detail) {
  const std::string message =
      absl::StrCat(request.method, " ", request.url, ": ", curl_easy_strerror(code),
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

}  // namespace rlj::curl
