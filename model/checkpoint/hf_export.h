// hf_export.h: a checkpoint written as a plain Hugging Face model directory (what `rlj export` makes): config.json
// with the tokenizer's special ids, model.safetensors in the chosen dtype, tokenizer.json, tokenizer_config.json
// and generation_config.json, and nothing rlj-specific, so transformers and vLLM load it unchanged.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace rlj {

struct HfExportOptions {
  std::string dtype = "float32";  // float32 | bfloat16 | float16: the stored weights and config.json's torch_dtype
  // Where the tokenizer comes from when the checkpoint carries no tokenizer.json: "byte" (rlj's byte tokenizer,
  // written as tokenizer.json), a tokenizer.json, or a directory holding one. "" = the checkpoint's, else byte.
  std::string tokenizer;
};

// Loads the checkpoint at `checkpoint_dir` (rlj's or Hugging Face's) and writes `out_dir` (created; must not
// already hold a config.json). The checkpoint's model.safetensors(.index.json) are rewritten as one file;
// generation_config.json is copied when the source has one, else written from the tokenizer's bos and stop ids.
absl::Status ExportHuggingFaceModel(const std::string& checkpoint_dir, const std::string& out_dir,
                                    const HfExportOptions& options = {});

}  // namespace rlj
