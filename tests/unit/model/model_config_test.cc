// model_config_test.cc: TransformerConfig from and to the config proto, its validation messages.
#include "model/model_config.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;

TEST(TransformerConfig, FromProtoDefaultsAndKvHeadsZeroMeansHeads) {
  v1::ModelConfig proto;
  RLJ_ASSERT_OK_AND_ASSIGN(const TransformerConfig config, TransformerConfig::FromProto(proto));
  EXPECT_EQ(config.vocab_size, 259);
  EXPECT_EQ(config.d_model, 128);
  EXPECT_EQ(config.n_layers, 4);
  EXPECT_EQ(config.n_heads, 4);
  EXPECT_EQ(config.n_kv_heads, 4);  // proto default 0 → n_heads
  EXPECT_EQ(config.ffn_hidden, 384);
  EXPECT_EQ(config.max_seq_len, 256);
  EXPECT_EQ(config.rope_theta, 10000.0);
  EXPECT_EQ(config.norm_eps, 1e-5);
  EXPECT_TRUE(config.tie_embeddings);
  EXPECT_EQ(config.head_dim(), 32);
}

TEST(TransformerConfig, ProtoRoundTrip) {
  v1::ModelConfig proto;
  proto.set_architecture(v1::ModelConfig::llama);
  proto.set_vocab_size(1000);
  proto.set_d_model(64);
  proto.set_n_layers(3);
  proto.set_n_heads(8);
  proto.set_n_kv_heads(2);
  proto.set_ffn_hidden(96);
  proto.set_max_seq_len(512);
  proto.set_rope_theta(500000);
  proto.set_norm_eps(1e-6);
  proto.set_tie_embeddings(false);
  RLJ_ASSERT_OK_AND_ASSIGN(const TransformerConfig config, TransformerConfig::FromProto(proto));
  EXPECT_EQ(config.n_kv_heads, 2);
  EXPECT_EQ(config.head_dim(), 8);
  const v1::ModelConfig back = config.ToProto();
  EXPECT_EQ(back.SerializeAsString(), proto.SerializeAsString()) << back.DebugString();
  RLJ_ASSERT_OK_AND_ASSIGN(const TransformerConfig again, TransformerConfig::FromProto(back));
  EXPECT_EQ(again.num_parameters(), config.num_parameters());
}

TEST(TransformerConfig, NumParametersByHand) {
  TransformerConfig config;  // V=259, D=128, L=4, H=KVH=4, F=384, tied
  // embed 259*128 = 33152; per layer 2*128 + 4*128*128 + 3*128*384 = 256 + 65536 + 147456 = 213248
  EXPECT_EQ(config.num_parameters(), 33152 + 4 * 213248 + 128);
  config.tie_embeddings = false;
  EXPECT_EQ(config.num_parameters(), 2 * 33152 + 4 * 213248 + 128);
  config.n_kv_heads = 1;  // k and v shrink from 128x128 to 32x128 each: -2 * 96 * 128 per layer
  EXPECT_EQ(config.num_parameters(), 2 * 33152 + 4 * (213248 - 2 * 96 * 128) + 128);
}

TEST(TransformerConfig, RejectsBadValuesNamingTheKey) {
  auto with = [](auto setter) {
    v1::ModelConfig proto;
    setter(proto);
    return TransformerConfig::FromProto(proto);
  };
  using Code = absl::StatusCode;
  TransformerConfig gpt2;  // from a config.json: the struct holds its model_type as text
  gpt2.architecture = "gpt2";
  EXPECT_TRUE(FailsWith(gpt2.Validate(), Code::kInvalidArgument, "model.architecture"));
  EXPECT_TRUE(FailsWith(with([](auto& p) { p.set_vocab_size(0); }), Code::kInvalidArgument, "model.vocab_size"));
  EXPECT_TRUE(FailsWith(with([](auto& p) { p.set_d_model(-4); }), Code::kInvalidArgument, "model.d_model"));
  EXPECT_TRUE(
      FailsWith(with([](auto& p) { p.set_d_model(130); }), Code::kInvalidArgument, "model.d_model: must be divisible"));
  EXPECT_TRUE(FailsWith(with([](auto& p) { p.set_d_model(12); }), Code::kInvalidArgument, "even for RoPE"));
  EXPECT_TRUE(FailsWith(with([](auto& p) { p.set_n_layers(0); }), Code::kInvalidArgument, "model.n_layers"));
  EXPECT_TRUE(FailsWith(with([](auto& p) { p.set_n_heads(0); }), Code::kInvalidArgument, "model.n_heads"));
  EXPECT_TRUE(FailsWith(with([](auto& p) { p.set_n_kv_heads(3); }), Code::kInvalidArgument, "model.n_kv_heads"));
  EXPECT_TRUE(FailsWith(with([](auto& p) { p.set_n_kv_heads(-1); }), Code::kInvalidArgument, "model.n_kv_heads"));
  EXPECT_TRUE(FailsWith(with([](auto& p) { p.set_ffn_hidden(0); }), Code::kInvalidArgument, "model.ffn_hidden"));
  EXPECT_TRUE(FailsWith(with([](auto& p) { p.set_max_seq_len(1); }), Code::kInvalidArgument, "model.max_seq_len"));
  EXPECT_TRUE(FailsWith(with([](auto& p) { p.set_rope_theta(0); }), Code::kInvalidArgument, "model.rope_theta"));
  EXPECT_TRUE(FailsWith(with([](auto& p) { p.set_norm_eps(-1e-5); }), Code::kInvalidArgument, "model.norm_eps"));
}

}  // namespace
}  // namespace rlj
