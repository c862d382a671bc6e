// unicode_nfc.h: Unicode Normalization Form C (canonical decomposition, canonical ordering, canonical
// composition), the "NFC" normalizer of Hugging Face tokenizer.json files (Qwen2's). Tables generated from
// Python's unicodedata by make_unicode_nfc_tables.py.
#pragma once

#include <string>
#include <string_view>

namespace rlj {

// NFC of valid UTF-8 `text` (ill-formed sequences pass through byte for byte). Text without code points at
// or above U+0300 is returned unchanged without further work.
std::string NormalizeNfc(std::string_view text);

// The Unicode version of the tables.
const char* NfcUnicodeVersion();

}  // namespace rlj
