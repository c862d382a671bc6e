// split_regex.cc: Oniguruma → RE2 translation of split patterns and leftmost-first matching with the
// \s+(?!\S) emulation.
#include "common/tokenizer/split_regex.h"

#include <re2/re2.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace rlj {
namespace {

// Unicode White_Space (what Oniguruma's \s matches in UTF-8), as the inside of a character class.
constexpr std::string_view kWhiteSpaceClassBody = "\\t\\n\\x{0B}\\f\\r \\x{85}\\p{Z}";
constexpr std::string_view kTrailingSpaceRun = "\\s+(?!\\S)";

size_t Utf8LengthBefore(std::string_view text, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return end - start;
}

}  // namespace

SplitRegex::~SplitRegex() = default;

std::string QuoteRegex(std::string_view literal) {
  return RE2::QuoteMeta(re2::StringPiece(literal.data(), literal.size()));
}

absl::StatusOr<std::unique_ptr<SplitRegex>> SplitRegex::Compile(std::string_view pattern, std::string_view where) {
  std::unique_ptr<SplitRegex> split(new SplitRegex());
  std::string& out = split->translated_;
  auto fail = [&](std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(where), ": split pattern ", AsAbsl(what)));
  };
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (!in_class && pattern.substr(i).starts_with(kTrailingSpaceRun)) {
      if (split->has_trailing_space_group_) return fail("uses \\s+(?!\\S) twice");
      out += absl::StrCat("([", AsAbsl(kWhiteSpaceClassBody), "]+)");  // the only capturing group
      split->has_trailing_space_group_ = true;
      i += kTrailingSpaceRun.size() - 1;
      continue;
    }
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[++i];
      if (next == 's') {
        out += in_class ? std::string(kWhiteSpaceClassBody) : absl::StrCat("[", AsAbsl(kWhiteSpaceClassBody), "]");
      } else if (next == 'S') {
        if (in_class) return fail("uses \\S inside a character class, which RE2 cannot express");
        out += absl::StrCat("[^", AsAbsl(kWhiteSpaceClassBody), "]");
      } else {
        out += c;
        out += next;
      }
      continue;
    }
    if (in_class) {
      if (c == ']') in_class = false;
      if (c == '[' && (i + 1 >= pattern.size() || pattern[i + 1] != ':')) return fail("has a nested character class");
      out += c;
      continue;
    }
    if (c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // a literal ] first
      continue;
    }
    if (c == '(') {
      if (pattern.substr(i).starts_with("(?=") || pattern.substr(i).starts_with("(?!") ||
          pattern.substr(i).starts_with("(?<=") || pattern.substr(i).starts_with("(?<!")) {
        return fail(absl::StrCat("uses a lookaround at offset ", i, "; only \\s+(?!\\S) is supported"));
      }
      out += (i + 1 < pattern.size() && pattern[i + 1] == '?') ? "(" : "(?:";  // no other capturing group
      continue;
    }
    out += c;
  }
  RE2::Options options;
  options.set_encoding(RE2::Options::EncodingUTF8);
  options.set_log_errors(false);
  split->regex_ = std::make_unique<RE2>(out, options);
  if (!split->regex_->ok()) {
    return fail(absl::StrCat("'", AsAbsl(pattern), "' does not compile on RE2: ", split->regex_->error()));
  }
  return split;
}

std::vector<std::pair<size_t, size_t>> SplitRegex::Matches(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  re2::StringPiece groups[2];
  const re2::StringPiece input(text.data(), text.size());
  const int group_count = has_trailing_space_group_ ? 2 : 1;
  size_t pos = 0;
  while (pos < text.size()) {
    if (!regex_->Match(input, pos, text.size(), RE2::UNANCHORED, groups, group_count)) break;
    const auto begin = static_cast<size_t>(groups[0].data() - text.data());
    size_t end = begin + groups[0].size();
    if (end == begin) {  // an empty match splits nothing; step over one character
      pos = begin + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    // \s+(?!\S) before a non-space: the backtracking engine gives the run minus its last character (when
    // that leaves something; else the next alternative, \s+, takes the single character).
    if (group_count == 2 && groups[1].data() != nullptr && end < text.size()) {
      const size_t last = Utf8LengthBefore(text, end);
      if (end - begin > last) end -= last;
    }
    matches.emplace_back(begin, end);
    pos = end;
  }
  return matches;
}

}  // namespace rlj
