// tokenizer_fingerprint.h: a digest of what each id of a tokenizer means, so that processes that must share a
// vocabulary (a teacher and the student it distils into) can check that they do by comparing one string.
#pragma once

#include <string>
#include <string_view>

#include "common/tokenizer/tokenizer.h"

namespace rlj {

// Hex SHA-256 (64 characters) over the vocabulary size, every id's TokenBytes and IsSpecial, and the special
// ids (bos, eos, pad, stop ids, prefix ids). Special tokens count by their spelling, so <bos> and <s> at the
// same id differ. eos and the stop ids follow the chat template (its end-of-turn token), so a teacher and a
// student compare equal only with templates that end turns alike. Two tokenizers with the same ids, bytes
// and specials have the same fingerprint, whatever their kind or merges.
std::string TokenizerFingerprint(const Tokenizer& tokenizer);

// "byte", "hf", or "other" (a tokenizer of neither class, as tests make).
std::string_view TokenizerKind(const Tokenizer& tokenizer);

}  // namespace rlj
