// status.h: absl::Status helpers used across module boundaries, and conversions to and from grpc::Status.
#pragma once

#include <grpcpp/support/status.h>

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RLJ_STATUS_CONCAT_INNER_(a, b) a##b
#define RLJ_STATUS_CONCAT_(a, b) RLJ_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define RLJ_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status rlj_status_ = (expr);       \
    if (!rlj_status_.ok()) return rlj_status_; \
  } while (0)

// `lhs` = value of the StatusOr `rexpr`, or returns its status from the enclosing function.
#define RLJ_ASSIGN_OR_RETURN(lhs, rexpr) \
  RLJ_ASSIGN_OR_RETURN_IMPL_(RLJ_STATUS_CONCAT_(rlj_statusor_, __LINE__), lhs, rexpr)
#define RLJ_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                               \
  if (!statusor.ok()) return statusor.status();          \
  lhs = std::move(statusor).value()

namespace rlj {

// Debian's Abseil is built with its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0), which does
// not convert from std::string_view; pass std::string_view to Abseil through this.
inline absl::string_view AsAbsl(std::string_view text) { return absl::string_view(text.data(), text.size()); }
inline std::string_view AsStd(absl::string_view text) { return std::string_view(text.data(), text.size()); }

// Same code and message; grpc and absl share the canonical code numbering.
inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// `what` names the call ("Learner.GetPolicy"), so the message says which RPC failed.
inline absl::Status FromGrpcStatus(const grpc::Status& status, std::string_view what) {
  if (status.ok()) return absl::OkStatus();
  std::string message(what);
  message += ": ";
  message += status.error_message();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), message);
}

// Prefixes the message of a non-OK status with context, keeping its code.
inline absl::Status Annotate(const absl::Status& status, std::string_view context) {
  if (status.ok()) return status;
  std::string message(context);
  message += ": ";
  message.append(status.message().data(), status.message().size());
  return absl::Status(status.code(), message);
}

}  // namespace rlj
