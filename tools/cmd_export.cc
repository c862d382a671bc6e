// cmd_export.cc: `rlj export`: a checkpoint as a plain Hugging Face model directory (config.json,
// model.safetensors, tokenizer files, generation_config.json) that transformers and vLLM load unchanged.
#include <cstdio>

#include "model/checkpoint/hf_export.h"
#include "tools/command.h"

namespace rlj::tools {
namespace {

Command AddExportCommand(CLI::App& parent) {
  auto* app = parent.add_subcommand("export", "Write a checkpoint as a Hugging Face model directory");
  struct Flags {
    std::string checkpoint;
    std::string out;
    HfExportOptions options;
  };
  auto flags = std::make_shared<Flags>();
  app->add_option("--checkpoint", flags->checkpoint, "Checkpoint directory (rlj's or Hugging Face's)")->required();
  app->add_option("--out", flags->out, "Output directory (must not hold a model yet)")->required();
  app->add_option("--dtype", flags->options.dtype, "float32, bfloat16 or float16")->capture_default_str();
  app->add_option("--tokenizer", flags->options.tokenizer,
                  "Tokenizer to ship when the checkpoint has none: byte (default), a tokenizer.json or its directory");
  return {app, [flags]() -> int {
            const absl::Status status = ExportHuggingFaceModel(flags->checkpoint, flags->out, flags->options);
            if (!status.ok()) return Fail("export", std::string(status.message()));
            std::printf("exported %s to %s (%s)\n", flags->checkpoint.c_str(), flags->out.c_str(),
                        flags->options.dtype.c_str());
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("", 85, AddExportCommand);

}  // namespace rlj::tools
