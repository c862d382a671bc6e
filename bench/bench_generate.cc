// bench_generate.cc: `rlj bench generate`: tokens/s of batched sampling (prefill + KV-cache decode) on a random
// Llama-style model of exactly the given shape, with the achieved GFLOP/s next to the machine's GEMM rate.
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/randn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "bench/bench_model_shape.h"
#include "common/status.h"
#include "common/tokenizer/byte_tokenizer.h"
#include "model/decode_step.h"
#include "model/sampler.h"
#include "model/tensor/torch_util.h"
#include "model/transformer.h"
#include "tools/command.h"

namespace rlj::tools {
namespace {

// Any vocabulary size, no stop ids (every row samples exactly --new-tokens); decodes as bytes mod 256.
class NoStopTokenizer final : public Tokenizer {
 public:
  explicit NoStopTokenizer(int32_t vocab) : vocab_(vocab) {}
  std::vector<int32_t> Encode(std::string_view text) const override { return bytes_.Encode(text); }
  absl::StatusOr<std::string> Decode(std::span<const int32_t> ids) const override {
    std::vector<int32_t> as_bytes(ids.begin(), ids.end());
    for (int32_t& id : as_bytes) id %= 256;
    return bytes_.Decode(as_bytes);
  }
  int32_t vocab_size() const override { return vocab_; }
  int32_t bos_id() const override { return -1; }
  int32_t eos_id() const override { return 0; }
  int32_t pad_id() const override { return 0; }
  std::vector<int32_t> stop_ids() const override { return {}; }

 private:
  int32_t vocab_;
  ByteTokenizer bytes_;
};

struct BenchFlags : BenchModelShape {
  int batch = 1, prompt_len = 16, new_tokens = 64, threads = 2, repeats = 3;
  uint64_t seed = 1;
  bool per_op_decode = false;
};

absl::StatusOr<nlohmann::json> RunBench(const BenchFlags& flags) {
  at::set_num_threads(flags.threads);
  RLJ_ASSIGN_OR_RETURN(const TransformerConfig config, flags.Config(flags.prompt_len + flags.new_tokens));
  if (flags.batch < 1 || flags.prompt_len < 1 || flags.new_tokens < 1 || flags.repeats < 1 || flags.threads < 1) {
    return absl::InvalidArgumentError("--batch, --prompt-len, --new-tokens, --repeats and --threads must be >= 1");
  }
  RLJ_ASSIGN_OR_RETURN(const ModelPlacement placement, ResolvePlacement(flags.device, flags.bf16));
  std::shared_ptr<Transformer> model;
  RLJ_RETURN_IF_ERROR(TorchCall("build model", [&] {
    at::manual_seed(flags.seed);
    model = std::make_shared<Transformer>(config);
    (*model)->to(placement.device, placement.dtype);
    (*model)->eval();
    (*model)->set_fused_decode(!flags.per_op_decode);
  }));
  std::mt19937_64 random(flags.seed);
  std::uniform_int_distribution<int32_t> token(0, flags.vocab - 1);
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(flags.batch));
  for (auto& prompt : prompts) {
    for (int i = 0; i < flags.prompt_len; ++i) prompt.push_back(token(random));
  }
  const NoStopTokenizer tokenizer(flags.vocab);
  SamplingOptions options;
  options.temperature = 1.0;
  options.max_new_tokens = flags.new_tokens;

  options.seed = flags.seed;  // warm-up: first-touch allocations, thread pool start
  RLJ_RETURN_IF_ERROR(SampleCompletions(*model, tokenizer, prompts, options).status());
  std::vector<double> seconds;
  int64_t generated = 0;
  for (int repeat = 0; repeat < flags.repeats; ++repeat) {
    options.seed = flags.seed + 1 + static_cast<uint64_t>(repeat);
    const auto start = std::chrono::steady_clock::now();
    RLJ_ASSIGN_OR_RETURN(const auto completions, SampleCompletions(*model, tokenizer, prompts, options));
    SyncDevice(placement.device);
    seconds.push_back(SecondsSince(start));
    generated = 0;
    for (const auto& completion : completions) generated += static_cast<int64_t>(completion.tokens.size());
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];

  // FLOPs: 2 per weight of every linear layer (tied lm_head included, embedding lookup and norms not) per token
  // processed, plus attention's QK^T and PV (4 * keys * d_model per layer per query).
  const double d = flags.d_model;
  const double linear_weights = flags.LinearWeights();
  const double prefill_tokens = static_cast<double>(flags.batch) * flags.prompt_len;
  double attention_flops = 0;
  for (int query = 1; query <= flags.prompt_len; ++query) attention_flops += 4.0 * query * d * flags.layers;
  attention_flops *= flags.batch;
  for (int step = 0; step + 1 < flags.new_tokens; ++step) {
    attention_flops += 4.0 * (flags.prompt_len + step + 1) * d * flags.layers * flags.batch;
  }
  const double flops = 2.0 * linear_weights * (prefill_tokens + flags.batch * (flags.new_tokens - 1)) + attention_flops;
  const bool gpu = placement.device.is_cuda();
  const double gemm_limit =
      gpu ? GemmRate(8192, 8192, 8192, placement.device, placement.dtype) : GemmRate(1024, 1024, 1024);
  const double gemm_decode_shape = GemmRate(flags.batch, flags.d_model, flags.ffn, placement.device, placement.dtype);

  nlohmann::json out;
  out["bench"] = "generate";
  out["impl"] = "rlj";
  WriteModelShape(flags, placement.device, placement.dtype, &out);
  out["batch"] = flags.batch;
  out["prompt_len"] = flags.prompt_len;
  out["new_tokens"] = flags.new_tokens;
  out["threads"] = flags.threads;
  out["decode"] = gpu || flags.per_op_decode || flags.batch > kMaxFusedDecodeRows ? "per-op" : "fused";
  out["params"] = config.num_parameters();
  out["generated_tokens"] = generated;
  out["seconds"] = median;
  out["tokens_per_s"] = static_cast<double>(generated) / median;
  out["best_tokens_per_s"] = static_cast<double>(generated) / seconds.front();
  out["gflops"] = flops / median / 1e9;
  out[gpu ? "gemm_gflops_8192" : "gemm_gflops_1024"] = gemm_limit / 1e9;
  out["gemm_gflops_decode_shape"] = gemm_decode_shape / 1e9;
  out["fraction_of_gemm"] = flops / median / gemm_limit;
  return out;
}

Command AddGenerateBench(CLI::App& parent) {
  auto* app = parent.add_subcommand(
      "generate",
      "Tokens/s of batched sampling on a random Llama- or Qwen2-style model (tied embeddings); one JSON line");
  auto flags = std::make_shared<BenchFlags>();
  AddModelShapeOptions(app, flags.get());
  app->add_option("--batch", flags->batch, "Prompts sampled together")->capture_default_str();
  app->add_option("--prompt-len", flags->prompt_len, "Tokens per random prompt")->capture_default_str();
  app->add_option("--new-tokens", flags->new_tokens, "New tokens per prompt (no stop tokens)")->capture_default_str();
  app->add_option("--threads", flags->threads, "Torch intra-op threads")->capture_default_str();
  app->add_option("--repeats", flags->repeats, "Timed runs after one warm-up; the median is reported")
      ->capture_default_str();
  app->add_flag("--per-op-decode", flags->per_op_decode,
                "Decode steps as LibTorch ops even where the fused CPU step applies (batch <= 8), for comparison");
  app->add_option("--seed", flags->seed, "Weights, prompts and sampling seed")->capture_default_str();
  return {app, [flags]() -> int {
            const absl::StatusOr<nlohmann::json> result = RunBench(*flags);
            if (!result.ok()) return Fail("bench generate", std::string(result.status().message()));
            std::printf("%s\n", result->dump().c_str());
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("bench", 20, AddGenerateBench);

}  // namespace rlj::tools
