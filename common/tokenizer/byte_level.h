// byte_level.h: GPT-2's reversible map between bytes and printable Unicode characters, used by byte-level
// BPE vocabularies (GPT-2, Llama 3, Qwen2): every token is a string of these characters.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace rlj {

// The UTF-8 of the character standing for each byte.
const std::array<std::string, 256>& ByteLevelChars();

// The byte a character stands for, or -1 when `cp` is not one of the 256.
int ByteOfByteLevelChar(char32_t cp);

// Bytes → their byte-level characters (UTF-8).
std::string ToByteLevel(std::string_view bytes);

}  // namespace rlj
