// safetensors_header_fuzzer.cc: libFuzzer target for the safetensors header parser: arbitrary bytes as a
// .safetensors file (header length, JSON header, data) give a checked header or an error naming the problem,
// never a crash; a header that parses describes tensors that lie inside the file, in order, each exactly as
// long as its shape and dtype say, covering the data section without overlaps or holes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "common/log.h"
#include "common/safetensors_header.h"

namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "safetensors_header_fuzzer: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)rlj::log::Init("fuzz", "off");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view file(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<rlj::SafetensorsHeader> header = rlj::ParseSafetensorsHeader(file, "<fuzz>");
  if (!header.ok()) {
    if (header.status().code() != absl::StatusCode::kDataLoss || header.status().message().empty()) {
      Fail("an error that is not DATA_LOSS with a message: " + header.status().ToString());
    }
    return 0;
  }
  if (header->data_offset < 8 || header->data_offset > size || header->data_offset + header->data_bytes != size) {
    Fail("the data section is not the rest of the file");
  }
  uint64_t covered = 0;
  for (const rlj::SafetensorsTensorEntry& tensor : header->tensors) {
    if (tensor.name.empty() || tensor.name == "__metadata__") Fail("a reserved or empty tensor name was accepted");
    if (tensor.element_size != rlj::SafetensorsElementSize(tensor.dtype) || tensor.element_size == 0) {
      Fail("tensor '" + tensor.name + "' has a dtype the reader cannot map");
    }
    if (tensor.begin != covered) Fail("tensor '" + tensor.name + "' leaves a hole or overlaps");
    unsigned __int128 bytes = tensor.element_size;
    for (const int64_t dim : tensor.shape) {
      if (dim < 0) Fail("tensor '" + tensor.name + "' has a negative dimension");
      bytes *= static_cast<uint64_t>(dim);
      if (bytes > size) bytes = size + 1;  // already too long for the file; keep the product from overflowing
    }
    if (bytes != tensor.end - tensor.begin) Fail("tensor '" + tensor.name + "' is not as long as its shape and dtype");
    if (tensor.end > header->data_bytes) Fail("tensor '" + tensor.name + "' ends beyond the data section");
    // What the reader will touch: every byte of the tensor inside the input (ASan checks the reads).
    volatile unsigned char sink = 0;
    for (uint64_t i = tensor.begin; i < tensor.end; ++i) sink = sink ^ data[header->data_offset + i];
    covered = tensor.end;
  }
  if (covered != header->data_bytes) Fail("the tensors do not cover the data section exactly");
  return 0;
}
