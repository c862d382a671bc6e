// teacher_test_util.h: a tiny seeded byte-level model for the teacher tests, a reference computation of its
// next-token log-probs (a plain full forward pass, no KV cache), and a teacher server around it.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

#include "common/tokenizer/byte_tokenizer.h"
#include "model/model_config.h"
#include "model/transformer.h"
#include "teacher/batch_engine.h"
#include "teacher/teacher_server.h"
#include "test_util.h"

namespace rlj::testing {

// 2 layers, d_model 32, the byte vocabulary, context 48; weights from normal(0, 0.3) so the distribution
// is far from uniform and greedy choices have clear margins.
inline Transformer TinyTeacherModel(uint64_t seed = 11) {
  TransformerConfig config;
  config.vocab_size = 259;
  config.d_model = 32;
  config.n_layers = 2;
  config.n_heads = 4;
  config.n_kv_heads = 2;
  config.ffn_hidden = 64;
  config.max_seq_len = 48;
  at::manual_seed(seed);
  Transformer model(config);
  at::NoGradGuard no_grad;
  for (auto& parameter : model->parameters()) {
    if (parameter.dim() == 2) {
      parameter.normal_(0.0, 0.3);
    } else {
      parameter.uniform_(0.5, 1.5);
    }
  }
  return model;
}

// log_softmax of the model's logits after `ids` (a full pass over the whole sequence), as doubles.
inline std::vector<double> ReferenceNextLogprobs(Transformer& model, const std::vector<int32_t>& ids) {
  c10::InferenceMode guard;
  at::Tensor tokens = at::empty({1, static_cast<int64_t>(ids.size())}, at::kLong);
  for (size_t i = 0; i < ids.size(); ++i) tokens[0][static_cast<int64_t>(i)] = ids[i];
  const at::Tensor logprobs = model->forward(tokens)
                                  .select(1, static_cast<int64_t>(ids.size()) - 1)[0]
                                  .to(at::kDouble)
                                  .log_softmax(-1)
                                  .contiguous();
  return std::vector<double>(logprobs.data_ptr<double>(), logprobs.data_ptr<double>() + logprobs.numel());
}

// The ids of `logprobs` sorted best first (ties: lower id first).
inline std::vector<int32_t> RankedIds(const std::vector<double>& logprobs, size_t k) {
  std::vector<int32_t> ids(logprobs.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return logprobs[a] > logprobs[b]; });
  ids.resize(std::min(k, ids.size()));
  return ids;
}

// The model, its tokenizer, an engine and (optionally) a server on 127.0.0.1:0.
struct TinyTeacher {
  explicit TinyTeacher(teacher::BatchEngineOptions engine_options = {}, bool serve = true,
                       teacher::TeacherServerOptions server_options = {}) {
    model = TinyTeacherModel();
    auto created = teacher::BatchEngine::Create(model, &tokenizer, engine_options);
    EXPECT_TRUE(created.ok()) << created.status();
    if (created.ok()) engine = *std::move(created);
    if (serve && engine) {
      auto started = teacher::TeacherServer::Start(engine.get(), &tokenizer, server_options);
      EXPECT_TRUE(started.ok()) << started.status();
      if (started.ok()) server = *std::move(started);
    }
  }
  ~TinyTeacher() {
    if (server) server->Stop();
    if (engine) engine->Stop();
  }

  Transformer model{nullptr};
  ByteTokenizer tokenizer;
  std::unique_ptr<teacher::BatchEngine> engine;
  std::unique_ptr<teacher::TeacherServer> server;
};

}  // namespace rlj::testing
