// bench_train.cc: `rlj bench train`: tokens/s of full GRPO learner steps (policy forward + backward, frozen
// reference forward, clipped loss + k3 KL, grad clip, AdamW) through GrpoTrainer on a random Llama-style model
// of exactly the given shape, with the achieved GFLOP/s next to the machine's GEMM rate.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "absl/strings/str_cat.h"
#include "bench/bench_model_shape.h"
#include "common/status.h"
#include "learner/grpo_trainer.h"
#include "model/tensor/torch_util.h"
#include "model/transformer.h"
#include "tools/command.h"

namespace rlj::tools {
namespace {

struct TrainFlags : BenchModelShape {
  int batch = 16, seq_len = 80, threads = 2, repeats = 5, group_size = 4, micro_batch_tokens = 0;
  double peak_tflops = 0;  // the device's dense peak, for model FLOPs utilisation (H200 bf16: ~790)
  uint64_t seed = 1;
};

// `batch` random sequences of seq_len tokens: a prompt of seq_len / 4 tokens, the rest completion, in groups
// of group_size with rewards 0/1 alternating (every group has signal) and behaviour log-probs near the
// random policy's (-ln vocab), so ratios stay near 1 as in on-policy training.
std::vector<v1::RolloutGroup> RandomGroups(const TrainFlags& flags) {
  std::mt19937_64 random(flags.seed);
  std::uniform_int_distribution<int32_t> token(0, flags.vocab - 1);
  std::normal_distribution<float> noise(0.0f, 0.05f);
  const int prompt_len = std::max(1, flags.seq_len / 4);
  const int completion_len = flags.seq_len - prompt_len;
  const float behaviour = -std::log(static_cast<float>(flags.vocab));
  std::vector<v1::RolloutGroup> groups;
  for (int row = 0; row < flags.batch; ++row) {
    if (row % flags.group_size == 0) {
      groups.emplace_back();
      groups.back().set_group_id(absl::StrCat("g", groups.size()));
      for (int i = 0; i < prompt_len; ++i) groups.back().add_prompt_tokens(token(random));
    }
    v1::Rollout* rollout = groups.back().add_rollouts();
    for (int i = 0; i < completion_len; ++i) {
      rollout->add_completion_tokens(token(random));
      rollout->add_behaviour_logprobs(behaviour + noise(random));
    }
    rollout->set_reward(row % 2);
    rollout->set_valid(true);
  }
  return groups;
}

absl::StatusOr<nlohmann::json> RunBench(const TrainFlags& flags) {
  if (flags.batch < 2 || flags.seq_len < 2 || flags.repeats < 1 || flags.threads < 1 || flags.group_size < 2 ||
      flags.batch % flags.group_size != 0) {
    return absl::InvalidArgumentError(
        "--batch must be a multiple of --group-size (>= 2); --seq-len >= 2; --repeats and --threads >= 1");
  }
  at::set_num_threads(flags.threads);
  v1::RunConfig config;
  RLJ_ASSIGN_OR_RETURN(const TransformerConfig shape, flags.Config(flags.seq_len));
  RLJ_ASSIGN_OR_RETURN(const c10::Device device, ResolveDevice(flags.device));
  config.mutable_runtime()->set_device(device.str());
  *config.mutable_model() = shape.ToProto();
  v1::LearnerConfig* learner = config.mutable_learner();
  learner->set_lr(1e-5);
  learner->set_kl_coef(0.04);  // a frozen reference and its forward pass
  learner->set_kl_estimator(v1::LearnerConfig::k3);
  learner->set_clip_eps(0.2);
  learner->set_grad_clip(1.0);
  learner->set_steps(flags.repeats + 1);
  learner->set_bf16(flags.bf16);
  learner->set_micro_batch_tokens(flags.micro_batch_tokens);
  Transformer policy{nullptr};
  RLJ_RETURN_IF_ERROR(TorchCall("build model", [&] {
    at::manual_seed(flags.seed);
    policy = Transformer(shape);
  }));
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<GrpoTrainer> trainer, GrpoTrainer::Create(config, policy));
  const std::vector<v1::RolloutGroup> groups = RandomGroups(flags);

  RLJ_RETURN_IF_ERROR(trainer->Step(groups).status());  // warm-up: allocations, AdamW state, thread pool
  std::vector<double> seconds;
  v1::StepMetrics last;
  for (int repeat = 0; repeat < flags.repeats; ++repeat) {
    const auto start = std::chrono::steady_clock::now();
    RLJ_ASSIGN_OR_RETURN(last, trainer->Step(groups));
    SyncDevice(device);
    seconds.push_back(SecondsSince(start));
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];

  // FLOPs per step: the policy's forward + backward (3 × 2 per weight per position) and the reference's
  // forward (2 per weight per position) over the B × (S - 1) input positions, on every linear layer (tied
  // lm_head included); attention scores and values over the full T × T square as computed (4·T·d per query
  // and layer forward; ×3 for the policy's forward + backward, ×1 for the reference).
  const double d = flags.d_model;
  const double positions = static_cast<double>(flags.batch) * (flags.seq_len - 1);
  const double linear_weights = flags.LinearWeights();
  const double attention_forward = 4.0 * (flags.seq_len - 1) * d * flags.layers * positions;
  const double flops = 8.0 * linear_weights * positions + 4.0 * attention_forward;
  const bool gpu = device.is_cuda();
  const c10::ScalarType dtype = gpu && flags.bf16 ? c10::kBFloat16 : c10::kFloat;  // autocast's, on CUDA
  const double gemm_limit = gpu ? GemmRate(8192, 8192, 8192, device, dtype) : GemmRate(1024, 1024, 1024);
  const double gemm_step_shape = GemmRate(static_cast<int64_t>(positions), flags.d_model, flags.ffn, device, dtype);
  const double tokens = static_cast<double>(flags.batch) * flags.seq_len;

  nlohmann::json out;
  out["bench"] = "train";
  out["impl"] = "rlj";
  WriteModelShape(flags, device, dtype, &out);
  out["batch"] = flags.batch;
  out["seq_len"] = flags.seq_len;
  out["threads"] = flags.threads;
  out["params"] = shape.num_parameters();
  out["tokens_per_step"] = tokens;
  out["completion_tokens_per_step"] = last.trained_tokens();
  out["seconds"] = median;
  out["tokens_per_s"] = tokens / median;
  out["best_tokens_per_s"] = tokens / seconds.front();
  out["completion_tokens_per_s"] = static_cast<double>(last.trained_tokens()) / median;
  out["gflops"] = flops / median / 1e9;
  out[gpu ? "gemm_gflops_8192" : "gemm_gflops_1024"] = gemm_limit / 1e9;
  out["micro_batch_tokens"] = flags.micro_batch_tokens;
  if (flags.peak_tflops > 0) out["mfu"] = flops / median / (flags.peak_tflops * 1e12);
  out["gemm_gflops_step_shape"] = gemm_step_shape / 1e9;
  out["fraction_of_gemm"] = flops / median / gemm_limit;
  out["loss"] = last.loss();
  out["kl"] = last.kl();
  return out;
}

Command AddTrainBench(CLI::App& parent) {
  auto* app = parent.add_subcommand(
      "train",
      "Tokens/s of full GRPO learner steps (policy fwd+bwd, reference fwd, clipped loss + k3 KL, grad clip, AdamW) "
      "on a random Llama-style model; one JSON line");
  auto flags = std::make_shared<TrainFlags>();
  AddModelShapeOptions(app, flags.get());
  app->add_option("--batch", flags->batch, "Sequences per step")->capture_default_str();
  app->add_option("--seq-len", flags->seq_len, "Tokens per sequence (a quarter prompt, the rest completion)")
      ->capture_default_str();
  app->add_option("--group-size", flags->group_size, "Completions per prompt")->capture_default_str();
  app->add_option("--threads", flags->threads, "Torch intra-op threads")->capture_default_str();
  app->add_option("--repeats", flags->repeats, "Timed steps after one warm-up; the median is reported")
      ->capture_default_str();
  app->add_option("--seed", flags->seed, "Weights and data seed")->capture_default_str();
  app->add_option("--micro-batch-tokens", flags->micro_batch_tokens, "learner.micro_batch_tokens (0 = the whole step)")
      ->capture_default_str();
  app->add_option("--peak-tflops", flags->peak_tflops,
                  "The device's peak dense TFLOP/s in the run's dtype: adds model FLOPs utilisation (mfu)");
  return {app, [flags]() -> int {
            const absl::StatusOr<nlohmann::json> result = RunBench(*flags);
            if (!result.ok()) return Fail("bench train", std::string(result.status().message()));
            std::printf("%s\n", result->dump().c_str());
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("bench", 30, AddTrainBench);

}  // namespace rlj::tools
