// teacher_probe.cc: GET /health over cpp-httplib's client.
#include "teacher/teacher_probe.h"

#include <httplib.h>

#include "absl/strings/str_cat.h"

namespace rlj::teacher {

absl::Status ProbeTeacherHealth(const std::string& address, std::chrono::milliseconds timeout) {
  httplib::Client client(absl::StrCat("http://", address));
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  const httplib::Result result = client.Get("/health");
  if (!result) {
    return absl::UnavailableError(absl::StrCat("teacher at ", address, ": ", httplib::to_string(result.error())));
  }
  if (result->status != 200) {
    return absl::UnavailableError(absl::StrCat("teacher at ", address, ": /health answered HTTP ", result->status));
  }
  return absl::OkStatus();
}

}  // namespace rlj::teacher
