// crc32c.h: CRC-32C (Castagnoli), hardware-accelerated where the CPU has SSE4.2; used for weight chunks
// and TensorBoard record framing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rlj {

// Extends `crc` (0 to start) over `size` bytes.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size);

inline uint32_t Crc32c(const void* data, size_t size) { return Crc32cExtend(0, data, size); }
inline uint32_t Crc32c(std::string_view bytes) { return Crc32c(bytes.data(), bytes.size()); }

// The masking TFRecord applies to stored CRCs.
inline uint32_t MaskCrc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

}  // namespace rlj
