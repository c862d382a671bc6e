// cmd_tokenize.cc: `rlj tokenize`: one JSON string per stdin line → its token ids as a JSON array per line;
// `--decode` the reverse (a JSON array of ids per line → the decoded text as a JSON string).
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/tokenizer.h"
#include "tools/command.h"

namespace rlj::tools {
namespace {

// One line of output for one line of input, or an error naming the line.
absl::StatusOr<std::string> Transform(const Tokenizer& tokenizer, const std::string& line, bool decode, bool prompt) {
  const nlohmann::json input = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (decode) {
    if (!input.is_array()) return absl::InvalidArgumentError("expected a JSON array of token ids");
    std::vector<int32_t> ids;
    for (const auto& id : input) {
      if (!id.is_number_integer()) return absl::InvalidArgumentError("expected a JSON array of token ids");
      ids.push_back(id.get<int32_t>());
    }
    absl::StatusOr<std::string> text = tokenizer.Decode(ids);
    if (!text.ok()) return text.status();
    return nlohmann::json(*text).dump();
  }
  if (!input.is_string()) return absl::InvalidArgumentError("expected a JSON string");
  const std::string text = input.get<std::string>();
  return nlohmann::json(prompt ? tokenizer.EncodePrompt(text) : tokenizer.Encode(text)).dump();
}

Command AddTokenizeCommand(CLI::App& parent) {
  auto* app = parent.add_subcommand(
      "tokenize", "Token ids of each JSON string on stdin (one JSON array per line); --decode the reverse");
  struct Flags {
    std::string tokenizer;
    std::string chat_template;
    bool decode = false;
    bool prompt = false;
  };
  auto flags = std::make_shared<Flags>();
  app->add_option("--tokenizer", flags->tokenizer,
                  "\"byte\", a tokenizer.json, or a directory holding one (a checkpoint)")
      ->required();
  app->add_flag("--decode", flags->decode, "Read JSON arrays of ids, print the decoded texts as JSON strings");
  app->add_flag("--prompt", flags->prompt,
                "Encode as a prompt: the <bos> the tokenizer adds and the chat template (else the plain text)");
  app->add_option("--chat-template", flags->chat_template,
                  "With --prompt: \"\", chatml, llama3, plain, a string with {prompt}, or auto (the checkpoint's)");
  return {app, [flags]() -> int {
            absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
                LoadTokenizer(flags->tokenizer, flags->chat_template);
            if (!tokenizer.ok()) return Fail("tokenize", std::string(tokenizer.status().message()));
            std::ios::sync_with_stdio(false);
            std::string line;
            int64_t number = 0;
            while (std::getline(std::cin, line)) {
              ++number;
              if (line.empty()) continue;
              absl::StatusOr<std::string> out = Transform(**tokenizer, line, flags->decode, flags->prompt);
              if (!out.ok()) return Fail("tokenize", absl::StrCat("stdin line ", number, ": ", out.status().message()));
              std::cout << *out << '\n';
            }
            std::cout.flush();
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("", 80, AddTokenizeCommand);

}  // namespace rlj::tools
