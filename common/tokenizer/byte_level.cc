// byte_level.cc: bytes_to_unicode() from GPT-2's encoder.py: printable Latin-1 bytes stand for themselves,
// the other 68 bytes for U+0100 onwards, in byte order.
#include "common/tokenizer/byte_level.h"

namespace rlj {
namespace {

struct Tables {
  std::array<char32_t, 256> char_of_byte{};
  std::array<std::string, 256> utf8_of_byte;
  std::array<int, 324> byte_of_char{};  // every character is below U+0144

  Tables() {
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int next = 0;
    byte_of_char.fill(-1);
    for (int b = 0; b < 256; ++b) {
      const char32_t cp = printable(b) ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
      char_of_byte[b] = cp;
      byte_of_char[cp] = b;
      std::string& utf8 = utf8_of_byte[b];
      if (cp < 0x80) {
        utf8.push_back(static_cast<char>(cp));
      } else {
        utf8.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        utf8.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    }
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

}  // namespace

const std::array<std::string, 256>& ByteLevelChars() { return GetTables().utf8_of_byte; }

int ByteOfByteLevelChar(char32_t cp) {
  return cp < GetTables().byte_of_char.size() ? GetTables().byte_of_char[cp] : -1;
}

std::string ToByteLevel(std::string_view bytes) {
  const auto& chars = ByteLevelChars();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) out += chars[static_cast<unsigned char>(c)];
  return out;
}

}  // namespace rlj
