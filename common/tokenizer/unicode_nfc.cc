// unicode_nfc.cc: NFC over UTF-8: decode, fully decompose (tables + Hangul arithmetic), stable-sort runs of
// combining marks by class, compose starters with following unblocked marks, encode.
#include "common/tokenizer/unicode_nfc.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace rlj {
namespace {

struct CombiningClass {
  char32_t cp;
  uint8_t ccc;
};
struct Decomposition {
  char32_t cp;
  uint16_t offset;
  uint8_t length;
};
struct Composition {
  char32_t first, second, composite;
};

#include "common/tokenizer/unicode_nfc_tables.inc"

constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

uint8_t CombiningClassOf(char32_t cp) {
  if (cp < 0x300) return 0;
  const auto it = std::lower_bound(std::begin(kCombiningClasses), std::end(kCombiningClasses), cp,
                                   [](const CombiningClass& e, char32_t c) { return e.cp < c; });
  return it != std::end(kCombiningClasses) && it->cp == cp ? it->ccc : 0;
}

void Decompose(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t index = cp - kSBase;
    out.push_back(kLBase + index / kNCount);
    out.push_back(kVBase + (index % kNCount) / kTCount);
    if (index % kTCount != 0) out.push_back(kTBase + index % kTCount);
    return;
  }
  const auto it = std::lower_bound(std::begin(kDecompositions), std::end(kDecompositions), cp,
                                   [](const Decomposition& e, char32_t c) { return e.cp < c; });
  if (it == std::end(kDecompositions) || it->cp != cp) {
    out.push_back(cp);
    return;
  }
  out.insert(out.end(), kDecompositionData + it->offset, kDecompositionData + it->offset + it->length);
}

// The primary composite of <first, second>, or 0.
char32_t Compose(char32_t first, char32_t second) {
  if (first >= kLBase && first < kLBase + kLCount && second >= kVBase && second < kVBase + kVCount) {
    return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
  }
  if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 && second > kTBase &&
      second < kTBase + kTCount) {
    return first + (second - kTBase);
  }
  const auto it = std::lower_bound(std::begin(kCompositions), std::end(kCompositions), std::pair{first, second},
                                   [](const Composition& e, const std::pair<char32_t, char32_t>& key) {
                                     return e.first != key.first ? e.first < key.first : e.second < key.second;
                                   });
  return it != std::end(kCompositions) && it->first == first && it->second == second ? it->composite : 0;
}

// One UTF-8 sequence at text[i]: its code point and length, or length 0 when ill-formed.
std::pair<char32_t, size_t> DecodeOne(std::string_view text, size_t i) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  if (b0 < 0x80) return {b0, 1};
  size_t length = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC2 ? 2 : 0;
  if (length == 0 || b0 > 0xF4 || i + length > text.size()) return {0, 0};
  char32_t cp = b0 & (0x7F >> length);
  for (size_t k = 1; k < length; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xC0) != 0x80) return {0, 0};
    cp = (cp << 6) | (b & 0x3F);
  }
  const bool overlong = (length == 3 && cp < 0x800) || (length == 4 && cp < 0x10000);
  if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {0, 0};
  return {cp, length};
}

void AppendUtf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// NFC of a run of well-formed code points.
void NormalizeRun(std::vector<char32_t>& decomposed, std::string& out) {
  // Canonical ordering: stable sort of each maximal run of non-starters by combining class.
  for (size_t i = 0; i < decomposed.size();) {
    if (CombiningClassOf(decomposed[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < decomposed.size() && CombiningClassOf(decomposed[j]) != 0) ++j;
    std::stable_sort(decomposed.begin() + static_cast<std::ptrdiff_t>(i),
                     decomposed.begin() + static_cast<std::ptrdiff_t>(j),
                     [](char32_t a, char32_t b) { return CombiningClassOf(a) < CombiningClassOf(b); });
    i = j;
  }
  // Canonical composition.
  std::vector<char32_t> composed;
  composed.reserve(decomposed.size());
  std::ptrdiff_t starter = -1;  // index in `composed` of the last starter
  int last_class = -1;          // class of the last character appended after the starter
  for (const char32_t cp : decomposed) {
    const int cls = CombiningClassOf(cp);
    if (starter >= 0) {
      const bool blocked = last_class != -1 && (last_class == 0 || last_class >= cls);
      if (!blocked) {
        if (const char32_t composite = Compose(composed[static_cast<size_t>(starter)], cp); composite != 0) {
          composed[static_cast<size_t>(starter)] = composite;
          continue;
        }
      }
    }
    if (cls == 0) {
      starter = static_cast<std::ptrdiff_t>(composed.size());
      last_class = -1;
    } else {
      last_class = cls;
    }
    composed.push_back(cp);
  }
  for (const char32_t cp : composed) AppendUtf8(cp, out);
  decomposed.clear();
}

}  // namespace

std::string NormalizeNfc(std::string_view text) {
  bool simple = true;
  for (const char c : text) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0xCC) {  // lead bytes of U+0300 and above
      simple = false;
      break;
    }
  }
  if (simple) return std::string(text);
  std::string out;
  out.reserve(text.size());
  std::vector<char32_t> decomposed;
  for (size_t i = 0; i < text.size();) {
    const auto [cp, length] = DecodeOne(text, i);
    if (length == 0) {  // ill-formed: flush and copy the byte
      NormalizeRun(decomposed, out);
      out.push_back(text[i]);
      ++i;
      continue;
    }
    Decompose(cp, decomposed);
    i += length;
  }
  NormalizeRun(decomposed, out);
  return out;
}

const char* NfcUnicodeVersion() { return kUnicodeVersion; }

}  // namespace rlj
