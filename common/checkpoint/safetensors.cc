// safetensors.cc: the safetensors reader (one copy-on-write mmap of the file, every header field checked,
// tensors as views of the mapping) and the streaming atomic writer.
#include "common/checkpoint/safetensors.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "common/tensor/torch_util.h"

namespace rlj {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation's limit
constexpr const char* kMetadataKey = "__metadata__";

struct DTypeInfo {
  const char* name;
  c10::ScalarType type;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {"F32", c10::kFloat, 4}, {"BF16", c10::kBFloat16, 2}, {"F16", c10::kHalf, 2},
    {"I32", c10::kInt, 4},   {"I64", c10::kLong, 8},      {"U8", c10::kByte, 1},
};

const DTypeInfo* FindDType(std::string_view name) {
  for (const auto& info : kDTypes) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

const DTypeInfo* FindDType(c10::ScalarType type) {
  for (const auto& info : kDTypes) {
    if (type == info.type) return &info;
  }
  return nullptr;
}

// A private (copy-on-write) mapping of a whole file, unmapped on destruction: tensors viewing it may be written
// to without touching the file, and the pages are read from the page cache once, when first used.
class MappedFile {
 public:
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(data_, size_);
  }

  absl::Status Open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      const std::string message = absl::StrCat("cannot open ", path, ": ", std::strerror(err));
      return err == ENOENT ? absl::NotFoundError(message) : absl::UnavailableError(message);
    }
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
      const int err = errno;
      ::close(fd);
      return absl::UnavailableError(absl::StrCat("cannot stat ", path, ": ", std::strerror(err)));
    }
    size_ = static_cast<size_t>(info.st_size);
    if (size_ > 0) {
      void* mapped = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (mapped == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        return absl::UnavailableError(absl::StrCat("cannot mmap ", path, ": ", std::strerror(err)));
      }
      data_ = mapped;
    }
    ::close(fd);
    return absl::OkStatus();
  }

  char* data() const { return static_cast<char*>(data_); }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

struct HeaderEntry {
  std::string name;
  const DTypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

absl::Status Malformed(const std::string& path, std::string_view what) {
  return absl::DataLossError(absl::StrCat(path, ": ", AsAbsl(what)));
}

absl::Status MalformedTensor(const std::string& path, const std::string& name, std::string_view what) {
  return absl::DataLossError(absl::StrCat(path, ": tensor '", name, "': ", AsAbsl(what)));
}

absl::StatusOr<HeaderEntry> ParseEntry(const std::string& path, const std::string& name, const nlohmann::json& value) {
  if (!value.is_object()) return MalformedTensor(path, name, "header entry is not an object");
  HeaderEntry entry;
  entry.name = name;
  const auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) return MalformedTensor(path, name, "missing string field 'dtype'");
  entry.dtype = FindDType(dtype->get<std::string>());
  if (entry.dtype == nullptr) {
    return MalformedTensor(path, name,
                           absl::StrCat("unsupported dtype '", dtype->get<std::string>(), "' (F32, BF16, F16, I32, I64, U8)"));
  }
  const auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) return MalformedTensor(path, name, "missing array field 'shape'");
  uint64_t bytes = entry.dtype->size;
  for (const auto& dim : *shape) {
    if (!dim.is_number_unsigned()) return MalformedTensor(path, name, "shape holds a non-integer or negative dimension");
    const uint64_t size = dim.get<uint64_t>();
    if (size > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(bytes, size, &bytes)) {
      return MalformedTensor(path, name, "shape overflows");
    }
    entry.shape.push_back(static_cast<int64_t>(size));
  }
  const auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned()) {
    return MalformedTensor(path, name, "'data_offsets' must be two non-negative integers [begin, end]");
  }
  entry.begin = (*offsets)[0].get<uint64_t>();
  entry.end = (*offsets)[1].get<uint64_t>();
  if (entry.end < entry.begin) {
    return MalformedTensor(path, name, absl::StrCat("data_offsets [", entry.begin, ", ", entry.end, "] end before they begin"));
  }
  if (entry.end - entry.begin != bytes) {
    return MalformedTensor(path, name, absl::StrCat("data_offsets [", entry.begin, ", ", entry.end, "] hold ",
                                                    entry.end - entry.begin, " bytes, but the shape and dtype need ", bytes));
  }
  return entry;
}

}  // namespace

namespace {

// Writes all of `bytes` to `fd`.
absl::Status WriteAll(int fd, const char* bytes, size_t size, const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::write(fd, bytes, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
    }
    bytes += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteSafetensors(const std::string& path, const NamedTensors& tensors,
                              const std::map<std::string, std::string>& metadata) {
  std::string header_text;
  std::vector<const at::Tensor*> sources;
  RLJ_RETURN_IF_ERROR(TorchCall(absl::StrCat("writing ", path), [&]() -> absl::Status {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) {
      nlohmann::ordered_json meta = nlohmann::ordered_json::object();
      for (const auto& [key, value] : metadata) meta[key] = value;
      header[kMetadataKey] = std::move(meta);
    }
    std::set<std::string> names;
    uint64_t offset = 0;
    for (const auto& [name, tensor] : tensors) {
      if (name == kMetadataKey || name.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": tensor name '", name, "' is reserved or empty"));
      }
      if (!names.insert(name).second) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "' appears twice"));
      }
      if (!tensor.defined()) return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "' is undefined"));
      const DTypeInfo* dtype = FindDType(tensor.scalar_type());
      if (dtype == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "': dtype ",
                                                       c10::toString(tensor.scalar_type()), " has no safetensors code here"));
      }
      const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * dtype->size;
      header[name] = {{"dtype", dtype->name}, {"shape", tensor.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
      offset += bytes;
      sources.push_back(&tensor);
    }
    header_text = header.dump();
    header_text.append((8 - header_text.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
    return absl::OkStatus();
  }));

  // Streamed to a temporary file (one tensor in memory at a time), fsync'ed and renamed into place.
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno)));
  auto write_body = [&]() -> absl::Status {
    const uint64_t header_size = header_text.size();
    RLJ_RETURN_IF_ERROR(WriteAll(fd, reinterpret_cast<const char*>(&header_size), 8, tmp));
    RLJ_RETURN_IF_ERROR(WriteAll(fd, header_text.data(), header_text.size(), tmp));
    for (const at::Tensor* source : sources) {
      at::Tensor cpu;
      RLJ_RETURN_IF_ERROR(TorchCall(absl::StrCat("writing ", path), [&] { cpu = source->detach().to(c10::kCPU).contiguous(); }));
      RLJ_RETURN_IF_ERROR(WriteAll(fd, static_cast<const char*>(cpu.data_ptr()), cpu.numel() * cpu.element_size(), tmp));
    }
    if (::fsync(fd) != 0) return absl::UnavailableError(absl::StrCat("cannot fsync ", tmp, ": ", std::strerror(errno)));
    return absl::OkStatus();
  };
  absl::Status status = write_body();
  ::close(fd);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = absl::UnavailableError(absl::StrCat("cannot rename ", tmp, " onto ", path, ": ", std::strerror(errno)));
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return SyncDirectory(parent.empty() ? "." : parent);
}

absl::StatusOr<NamedTensors> ReadSafetensors(const std::string& path) {
  auto mapping = std::make_shared<MappedFile>();
  MappedFile& file = *mapping;
  RLJ_RETURN_IF_ERROR(file.Open(path));
  if (file.size() < 8) return Malformed(path, absl::StrCat("truncated: ", file.size(), " bytes, no header size"));
  uint64_t header_size = 0;
  std::memcpy(&header_size, file.data(), 8);
  if (header_size > kMaxHeaderBytes || header_size > file.size() - 8) {
    return Malformed(path, absl::StrCat("header size ", header_size, " goes beyond the file (", file.size(), " bytes)"));
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(std::string_view(file.data() + 8, header_size));
  } catch (const nlohmann::json::exception& error) {
    return Malformed(path, absl::StrCat("header is not valid JSON: ", error.what()));
  }
  if (!header.is_object()) return Malformed(path, "header is not a JSON object");

  std::vector<HeaderEntry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      if (!value.is_object()) return Malformed(path, "__metadata__ is not an object");
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string()) return Malformed(path, absl::StrCat("__metadata__ value '", key, "' is not a string"));
      }
      continue;
    }
    RLJ_ASSIGN_OR_RETURN(HeaderEntry entry, ParseEntry(path, name, value));
    entries.push_back(std::move(entry));
  }

  // File order; the byte buffer must be covered exactly, without overlaps or holes.
  std::sort(entries.begin(), entries.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const uint64_t data_size = file.size() - 8 - header_size;
  uint64_t covered = 0;
  for (const HeaderEntry& entry : entries) {
    if (entry.end > data_size) {
      return MalformedTensor(path, entry.name, absl::StrCat("data_offsets [", entry.begin, ", ", entry.end,
                                                            "] go beyond the data section (", data_size,
                                                            " bytes; file truncated?)"));
    }
    if (entry.begin < covered) {
      return MalformedTensor(path, entry.name, absl::StrCat("data_offsets [", entry.begin, ", ", entry.end,
                                                            "] overlap the previous tensor, which ends at ", covered));
    }
    if (entry.begin > covered) {
      return MalformedTensor(path, entry.name, absl::StrCat("data_offsets begin at ", entry.begin,
                                                            ", leaving a hole after byte ", covered));
    }
    covered = entry.end;
  }
  if (covered != data_size) {
    return Malformed(path, absl::StrCat("the tensors cover ", covered, " of ", data_size, " data bytes"));
  }

  char* data = file.data() + 8 + header_size;
  return TorchCall(absl::StrCat("reading ", path), [&]() -> absl::StatusOr<NamedTensors> {
    NamedTensors tensors;
    tensors.reserve(entries.size());
    for (const HeaderEntry& entry : entries) {
      const auto options = at::TensorOptions().dtype(entry.dtype->type);
      char* bytes = data + entry.begin;
      at::Tensor tensor;
      if (entry.end > entry.begin && reinterpret_cast<uintptr_t>(bytes) % entry.dtype->size == 0) {
        // A view of the mapping, which lives as long as any of its tensors.
        tensor = at::from_blob(bytes, entry.shape, [mapping](void*) {}, options);
      } else {  // empty, or misaligned (a writer that did not pad the header): a copy
        tensor = at::empty(entry.shape, options);
        if (entry.end > entry.begin) std::memcpy(tensor.data_ptr(), bytes, entry.end - entry.begin);
      }
      tensors.emplace_back(entry.name, std::move(tensor));
    }
    return tensors;
  });
}

}  // namespace rlj
