// file_util.cc: POSIX file helpers with messages that name the path and the OS error.
#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace rlj {
namespace {

absl::Status OsError(const char* what, const std::string& path, int err) {
  const std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM || err == EROFS) return absl::PermissionDeniedError(message);
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(message);
  return absl::UnavailableError(message);
}

}  // namespace

absl::Status CheckReadableFile(const std::string& path, const std::string& what) {
  const std::string named = what.empty() ? path : absl::StrCat(what, " (", path, ")");
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": no path given"));
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return OsError("cannot open", named, errno);
  if (S_ISDIR(info.st_mode)) return absl::InvalidArgumentError(absl::StrCat(named, " is a directory, not a file"));
  if (!S_ISREG(info.st_mode)) return absl::InvalidArgumentError(absl::StrCat(named, " is not a regular file"));
  if (::access(path.c_str(), R_OK) != 0) return OsError("cannot read", named, errno);
  return absl::OkStatus();
}

absl::Status CheckReadableDirectory(const std::string& path, const std::string& what) {
  const std::string named = what.empty() ? path : absl::StrCat(what, " (", path, ")");
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": no path given"));
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return OsError("cannot open", named, errno);
  if (!S_ISDIR(info.st_mode)) return absl::InvalidArgumentError(absl::StrCat(named, " is a file, not a directory"));
  if (::access(path.c_str(), R_OK | X_OK) != 0) return OsError("cannot read", named, errno);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": it is a directory, not a file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return OsError("cannot open", path, errno);
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return OsError("cannot read", path, errno);
  return content.str();
}

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return OsError("cannot open directory", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return OsError("cannot fsync directory", dir, err);
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view content) {
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return OsError("cannot create", tmp, errno);
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return OsError("cannot write", tmp, err);
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return OsError("cannot fsync", tmp, err);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return OsError("cannot rename onto", path, err);
  }
  return SyncDirectory(std::filesystem::path(path).parent_path().string());
}

absl::Status MakeDirectories(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create directory ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace rlj
