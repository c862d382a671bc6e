// cmd_generate.cc: `rlj generate`: samples one completion from a checkpoint (rlj's or a Hugging Face
// directory), prompt as text (through the chat template) or as ids; --json adds ids and per-token log-probs.
#include <ATen/Parallel.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "common/tokenizer/tokenizer.h"
#include "model/checkpoint/checkpoint.h"
#include "model/sampler.h"
#include "tools/command.h"

namespace rlj::tools {
namespace {

struct GenerateFlags {
  std::string model;
  std::string prompt;
  std::string prompt_ids;
  std::string tokenizer;
  std::string chat_template = "auto";
  int max_new_tokens = 64;
  double temperature = 1.0;
  int top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  int threads = 0;
  bool json = false;
};

absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  for (const absl::string_view piece : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(piece, &id)) {
      return absl::InvalidArgumentError(absl::StrCat("--prompt-ids: '", piece, "' is not a token id"));
    }
    ids.push_back(id);
  }
  if (ids.empty()) return absl::InvalidArgumentError("--prompt-ids: no ids");
  return ids;
}

const char* FinishName(FinishReason finish) {
  switch (finish) {
    case FinishReason::kStopToken:
      return "stop_token";
    case FinishReason::kStopString:
      return "stop_string";
    case FinishReason::kLength:
      return "length";
  }
  return "length";
}

absl::Status Generate(const GenerateFlags& flags) {
  if (flags.prompt.empty() == flags.prompt_ids.empty()) {
    return absl::InvalidArgumentError("give exactly one of --prompt and --prompt-ids");
  }
  if (flags.threads > 0) at::set_num_threads(flags.threads);
  RLJ_ASSIGN_OR_RETURN(LoadedCheckpoint loaded, LoadCheckpoint(flags.model));
  std::string tokenizer_path = flags.tokenizer;
  std::error_code ec;
  if (tokenizer_path.empty()) {
    tokenizer_path = std::filesystem::is_regular_file(flags.model + "/tokenizer.json", ec) ? flags.model : "byte";
  }
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadTokenizer(tokenizer_path, flags.chat_template));
  std::vector<int32_t> prompt;
  if (!flags.prompt_ids.empty()) {
    RLJ_ASSIGN_OR_RETURN(prompt, ParseIds(flags.prompt_ids));
  } else {
    prompt = tokenizer->EncodePrompt(flags.prompt);
  }
  SamplingOptions options;
  options.temperature = flags.temperature;
  options.top_k = flags.top_k;
  options.top_p = flags.top_p;
  options.seed = flags.seed;
  options.max_new_tokens = flags.max_new_tokens;
  RLJ_ASSIGN_OR_RETURN(const auto completions, SampleCompletions(loaded.model, *tokenizer, {prompt}, options));
  const SampledCompletion& completion = completions.front();
  if (!flags.json) {
    std::printf("%s\n", completion.text.c_str());
    return absl::OkStatus();
  }
  nlohmann::ordered_json out;
  out["prompt_ids"] = prompt;
  out["ids"] = completion.tokens;
  out["text"] = completion.text;
  out["logprobs"] = completion.logprobs;
  out["finish"] = FinishName(completion.finish);
  std::printf("%s\n", out.dump().c_str());
  return absl::OkStatus();
}

Command AddGenerateCommand(CLI::App& parent) {
  auto* app = parent.add_subcommand("generate", "Sample a completion from a checkpoint");
  auto flags = std::make_shared<GenerateFlags>();
  app->add_option("--model", flags->model, "Checkpoint directory (rlj's or a Hugging Face model)")->required();
  app->add_option("--prompt", flags->prompt, "Prompt text (encoded with the tokenizer and chat template)");
  app->add_option("--prompt-ids", flags->prompt_ids, "Prompt as comma-separated token ids (no template)");
  app->add_option("--tokenizer", flags->tokenizer,
                  "byte, a tokenizer.json or its directory (default: the model's, else byte)");
  app->add_option("--chat-template", flags->chat_template,
                  "\"\" (raw prompt), chatml, llama3, plain, a string with {prompt}, or auto (the tokenizer files')")
      ->capture_default_str();
  app->add_option("--max-new-tokens", flags->max_new_tokens, "New tokens at most")->capture_default_str();
  app->add_option("--temperature", flags->temperature, "Sampling temperature; 0 is greedy")->capture_default_str();
  app->add_option("--top-k", flags->top_k, "Keep the k most likely ids (0 = off)")->capture_default_str();
  app->add_option("--top-p", flags->top_p, "Nucleus mass (1 = off)")->capture_default_str();
  app->add_option("--seed", flags->seed, "Sampling seed (same seed → same completion)")->capture_default_str();
  app->add_option("--threads", flags->threads, "Torch threads (0 = LibTorch's default)")->capture_default_str();
  app->add_flag("--json", flags->json, "Print prompt ids, new ids, text, per-token log-probs and the finish reason");
  return {app, [flags]() -> int {
            const absl::Status status = Generate(*flags);
            if (!status.ok()) return Fail("generate", std::string(status.message()));
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("", 82, AddGenerateCommand);

}  // namespace rlj::tools
