// utf8.h: UTF-8 validation and lossy repair (the "maximal subpart" rule Rust's from_utf8_lossy and Python's
// errors="replace" use), for text that crosses proto string fields, JSON and logs.
#pragma once

#include <string>
#include <string_view>

namespace rlj {

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or values beyond U+10FFFF).
bool IsValidUtf8(std::string_view text);

// `text` with every maximal ill-formed subsequence replaced by U+FFFD; valid input comes back unchanged.
std::string ToValidUtf8(std::string_view text);

// Characters (code points) of UTF-8 text: the bytes that do not continue a character.
size_t Utf8CodePoints(std::string_view text);

}  // namespace rlj
