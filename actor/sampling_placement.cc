// sampling_placement.cc: SamplingPlacement and PlaceForSampling.
#include "actor/sampling_placement.h"

#include "common/status.h"
#include "model/transformer.h"

namespace rlj {

absl::StatusOr<ModelPlacement> SamplingPlacement(const v1::RunConfig& config) {
  const v1::ActorConfig& actor = config.actor();
  absl::StatusOr<ModelPlacement> placement =
      ResolvePlacement(actor.has_device() ? actor.device() : config.runtime().device(), actor.bf16());
  if (!placement.ok()) return Annotate(placement.status(), actor.has_device() ? "actor.device" : "runtime.device");
  return placement;
}

absl::Status PlaceForSampling(const v1::RunConfig& config, Transformer& model) {
  RLJ_ASSIGN_OR_RETURN(const ModelPlacement placement, SamplingPlacement(config));
  return TorchCall("moving the model to its sampling device", [&] {
    model->to(placement.device, placement.dtype);
    model->eval();
  });
}

}  // namespace rlj
