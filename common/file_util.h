// file_util.h: whole-file reads and crash-safe writes (temp file, fsync, rename, fsync of the directory).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlj {

// Fails with a message naming the path unless it is a regular file (or a pipe or device) this process can read.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// OK when `path` exists, is a regular file (not a directory) and is readable; else an error naming `what`
// (e.g. "data.eval_path") and the path. For inputs checked before any work starts.
absl::Status CheckReadableFile(const std::string& path, const std::string& what);
// The same for a directory (a checkpoint): it exists, is a directory and can be listed.
absl::Status CheckReadableDirectory(const std::string& path, const std::string& what);

// Replaces `path` with `content` so that a reader sees the old file or the new one, never a mix, and the
// new one survives a crash once this returns OK.
absl::Status WriteFileAtomically(const std::string& path, std::string_view content);

// fsync of a directory, so a rename inside it is durable.
absl::Status SyncDirectory(const std::string& dir);

// mkdir -p; an existing directory is fine.
absl::Status MakeDirectories(const std::string& dir);

}  // namespace rlj
