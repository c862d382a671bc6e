// sampling_placement.h: where a run's sampling models live (the actors', and the held-out evaluations' of
// `rlj run`): actor.device, else runtime.device, in bf16 there on CUDA unless actor.bf16 is off.
#pragma once

#include "absl/status/statusor.h"
#include "model/tensor/torch_util.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

class Transformer;

// Errors name actor.device (or runtime.device when the actor section has none).
absl::StatusOr<ModelPlacement> SamplingPlacement(const v1::RunConfig& config);

// Moves `model` to the run's sampling placement, in eval mode.
absl::Status PlaceForSampling(const v1::RunConfig& config, Transformer& model);

}  // namespace rlj
