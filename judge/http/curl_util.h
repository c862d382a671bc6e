// curl_util.h: the libcurl pieces both HTTP clients share (the blocking CurlHttpClient and the event-loop
// HttpDispatcher): one-time global init, the options of one request, body/header capture, and the mapping
// of transport failures to Status codes.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "judge/http/http_client.h"

namespace rlj::curl {

void GlobalInitOnce();

// What one transfer needs to live as long as it runs.
struct Transfer {
  HttpResponse response;
  curl_slist* header_list = nullptr;
  char error_buffer[CURL_ERROR_SIZE] = {0};
};

// The request's headers as a libcurl list (with "Expect:": no 100-continue round trip); free it with
// curl_slist_free_all (ReleaseTransfer does for a transfer's list).
curl_slist* HeaderList(const HttpRequest& request);

// Sets every option of `request` on a reset easy handle, capturing into `transfer`. `timeout` is the whole
// exchange; the connect phase gets at most `connect_timeout` of it. The header list is the transfer's
// (built here unless the caller built it already with HeaderList). The request (its URL and body) and the
// transfer must outlive the transfer.
void SetRequestOptions(CURL* handle, const HttpRequest& request, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds connect_timeout, Transfer* transfer);

// Frees the transfer's header list and clears the handle's pointers into it.
void ReleaseTransfer(CURL* handle, Transfer* transfer);

// A failed transfer as a Status naming the method and URL, never a header: DeadlineExceeded for a timeout,
// InvalidArgument for a malformed URL, Unavailable for anything about reaching the server.
absl::Status TransportError(CURLcode code, const HttpRequest& request, const char* detail);

}  // namespace rlj::curl
