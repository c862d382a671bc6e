// safetensors.cc: the safetensors reader (one copy-on-write mmap of the file, the header checked by
// common/safetensors_header.h, tensors as views of the mapping) and the streaming atomic writer.
#include "model/checkpoint/safetensors.h"

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
#include "common/safetensors_header.h"
#include "common/status.h"
#include "model/tensor/torch_util.h"

namespace rlj {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

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
      if (!tensor.defined())
        return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "' is undefined"));
      const DTypeInfo* dtype = FindDType(tensor.scalar_type());
      if (dtype == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "': dtype ",
                                                       c10::toString(tensor.scalar_type()),
                                                       " has no safetensors code here"));
      }
      const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * dtype->size;
      header[name] = {
          {"dtype", dtype->name}, {"shape", tensor.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
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
      RLJ_RETURN_IF_ERROR(
          TorchCall(absl::StrCat("writing ", path), [&] { cpu = source->detach().to(c10::kCPU).contiguous(); }));
      RLJ_RETURN_IF_ERROR(
          WriteAll(fd, static_cast<const char*>(cpu.data_ptr()), cpu.numel() * cpu.element_size(), tmp));
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
  RLJ_ASSIGN_OR_RETURN(const SafetensorsHeader header,
                       ParseSafetensorsHeader(std::string_view(file.data(), file.size()), path));
  char* data = file.data() + header.data_offset;
  return TorchCall(absl::StrCat("reading ", path), [&]() -> absl::StatusOr<NamedTensors> {
    NamedTensors tensors;
    tensors.reserve(header.tensors.size());
    for (const SafetensorsTensorEntry& entry : header.tensors) {
      const auto options = at::TensorOptions().dtype(FindDType(entry.dtype)->type);
      char* bytes = data + entry.begin;
      at::Tensor tensor;
      if (entry.end > entry.begin && reinterpret_cast<uintptr_t>(bytes) % entry.element_size == 0) {
        // A view of the mapping, which lives as long as any of its tensors.
        tensor = at::from_blob(
            bytes, entry.shape, [mapping](void*) {}, options);
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
