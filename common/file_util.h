// file_util.h: whole-file reads and crash-safe writes (temp file, fsync, rename, fsync of the directory).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlj {

absl::StatusOr<std::string> ReadFile(const std::string& path);

// Replaces `path` with `content` so that a reader sees the old file or the new one, never a mix, and the
// new one survives a crash once this returns OK.
absl::Status WriteFileAtomically(const std::string& path, std::string_view content);

// fsync of a directory, so a rename inside it is durable.
absl::Status SyncDirectory(const std::string& dir);

// mkdir -p; an existing directory is fine.
absl::Status MakeDirectories(const std::string& dir);

}  // namespace rlj
