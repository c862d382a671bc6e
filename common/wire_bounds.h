// wire_bounds.h: the ranges of the numbers rlj's services accept from each other (rewards, log-probabilities):
// values outside them are a peer's bug or an attack, and would overflow float32 advantages, ratios and losses.
#pragma once

namespace rlj {

// A reward beyond ±this is refused: the judge turns such a verdict into an out_of_range error; the learner
// refuses a pushed rollout that carries one.
inline constexpr double kMaxAbsReward = 1e9;

// A sampled token's log-probability lies in [kMinBehaviourLogprob, kMaxBehaviourLogprob]: at most 0, with room
// for float rounding, and not below e^-10000, which no sampler picks; exp() of the difference of two such
// values stays finite in float32 only when both are sane.
inline constexpr double kMinBehaviourLogprob = -1e4;
inline constexpr double kMaxBehaviourLogprob = 1e-3;

// One Judge.Score call carries at most this many samples (an actor's batch: sampling.group_size ×
// actor.prompts_per_batch); the judge refuses larger calls and the config validator larger batches.
inline constexpr int kMaxSamplesPerScoreRequest = 4096;

}  // namespace rlj
