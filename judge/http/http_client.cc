// http_client.cc: CurlHttpClient: a pool of libcurl easy handles, one request per handle at a time.
#include "judge/http/http_client.h"

#include <curl/curl.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "judge/http/curl_util.h"

namespace rlj {

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
  curl::GlobalInitOnce();
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
  if (handle == nullptr)
    return absl::ResourceExhaustedError(absl::StrCat(request.method, " ", request.url, ": curl_easy_init failed"));
  curl_easy_reset(handle);  // keeps the handle's live connections and caches, drops the last request's options

  curl::Transfer transfer;
  curl::SetRequestOptions(handle, request, request.timeout, options_.connect_timeout, &transfer);

  const CURLcode code = curl_easy_perform(handle);
  long status = 0;
  if (code == CURLE_OK) curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
  // Forget the pointers into this call's stack before the handle goes back to the pool.
  curl::ReleaseTransfer(handle, &transfer);
  absl::Status failure =
      code == CURLE_OK ? absl::OkStatus() : curl::TransportError(code, request, transfer.error_buffer);
  {
    absl::MutexLock lock(&pool_->mutex);
    if (static_cast<int>(pool_->idle.size()) < options_.max_idle_handles) {
      pool_->idle.push_back(handle);
      handle = nullptr;
    }
  }
  if (handle != nullptr) curl_easy_cleanup(handle);
  if (!failure.ok()) return failure;
  transfer.response.status = static_cast<int>(status);
  return std::move(transfer.response);
}

}  // namespace rlj
