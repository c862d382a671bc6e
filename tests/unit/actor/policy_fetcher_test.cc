// policy_fetcher_test.cc: PolicyFetcher against a real in-process gRPC server that plays scripted GetPolicy
// streams: exact reassembly (float32, bfloat16, empty tensors), "unchanged", and every kind of corrupt stream.
#include "actor/policy_fetcher.h"

#include <ATen/ATen.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "common/grpc_util.h"
#include "model/checkpoint/checkpoint.h"
#include "model/model_test_util.h"
#include "model/transformer.h"
#include "test_util.h"

namespace rlj {
namespace {

using std::chrono::milliseconds;

// A Learner whose GetPolicy writes a fixed list of messages, then ends with `status`.
class ScriptedLearner final : public v1::Learner::Service {
 public:
  grpc::Status GetPolicy(grpc::ServerContext* /*context*/, const v1::GetPolicyRequest* request,
                         grpc::ServerWriter<v1::PolicyMessage>* writer) override {
    last_request = *request;
    for (const v1::PolicyMessage& message : script) {
      if (!writer->Write(message)) break;
    }
    return status;
  }

  std::vector<v1::PolicyMessage> script;
  grpc::Status status = grpc::Status::OK;
  v1::GetPolicyRequest last_request;
};

std::string Bytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

// bfloat16 bit patterns, little-endian.
std::string Bf16Bytes(const std::vector<uint16_t>& bits) {
  std::string out;
  for (uint16_t b : bits) {
    out.push_back(static_cast<char>(b & 0xff));
    out.push_back(static_cast<char>(b >> 8));
  }
  return out;
}

v1::PolicyMessage Manifest(int64_t version) {
  v1::PolicyMessage message;
  v1::PolicyManifest* manifest = message.mutable_manifest();
  manifest->set_version(version);
  manifest->mutable_model()->set_d_model(8);
  auto add = [&](const std::string& name, v1::DType dtype, std::vector<int64_t> shape) {
    v1::TensorSpec* spec = manifest->add_tensors();
    spec->set_name(name);
    spec->set_dtype(dtype);
    for (int64_t d : shape) spec->add_shape(d);
  };
  add("a.weight", v1::FLOAT32, {2, 3});  // 24 bytes
  add("b.weight", v1::BFLOAT16, {5});    // 10 bytes
  add("c.bias", v1::FLOAT32, {0});       // 0 bytes
  manifest->set_total_bytes(34);
  return message;
}

v1::PolicyMessage Chunk(int64_t version, uint32_t tensor_index, uint64_t offset, const std::string& data) {
  v1::PolicyMessage message;
  v1::WeightChunk* chunk = message.mutable_chunk();
  chunk->set_version(version);
  chunk->set_tensor_index(tensor_index);
  chunk->set_offset(offset);
  chunk->set_data(data);
  chunk->set_crc32c(Crc32c(data));
  return message;
}

const std::vector<float> kA = {0.5f, -1.0f, 2.0f, 3.25f, 4.0f, 1000.0f};
// 1, -2, 0.5, 8, 0 in bfloat16.
const std::vector<uint16_t> kB = {0x3f80, 0xc000, 0x3f00, 0x4100, 0x0000};

// The well-formed stream of version 7: tensor a in two chunks (10 + 14 bytes), b in one, c as one empty chunk.
std::vector<v1::PolicyMessage> GoodStream() {
  const std::string a = Bytes(kA);
  return {Manifest(7), Chunk(7, 0, 0, a.substr(0, 10)), Chunk(7, 0, 10, a.substr(10)), Chunk(7, 1, 0, Bf16Bytes(kB)),
          Chunk(7, 2, 0, "")};
}

class PolicyFetcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RLJ_ASSERT_OK_AND_ASSIGN(server_, StartServer(ServerOptions{}, {&learner_}));
    fetcher_ = std::make_unique<PolicyFetcher>(v1::Learner::NewStub(MakeChannel(server_.address)), "actor-test");
  }
  void TearDown() override { server_.server->Shutdown(std::chrono::system_clock::now()); }

  absl::StatusOr<std::optional<FetchedPolicy>> Fetch(int64_t have_version = -1) {
    return fetcher_->Fetch(have_version, milliseconds(0), milliseconds(60000));
  }

  ScriptedLearner learner_;
  RunningServer server_;
  std::unique_ptr<PolicyFetcher> fetcher_;
};

TEST_F(PolicyFetcherTest, ReassemblesEveryTensorExactly) {
  learner_.script = GoodStream();
  RLJ_ASSERT_OK_AND_ASSIGN(std::optional<FetchedPolicy> fetched, Fetch(3));
  EXPECT_EQ(learner_.last_request.have_version(), 3);
  EXPECT_EQ(learner_.last_request.actor(), "actor-test");
  ASSERT_TRUE(fetched.has_value());
  EXPECT_EQ(fetched->version, 7);
  EXPECT_EQ(fetched->model.d_model(), 8);
  EXPECT_EQ(fetched->bytes, 34u);
  ASSERT_EQ(fetched->tensors.size(), 3u);

  const auto& [a_name, a] = fetched->tensors[0];
  EXPECT_EQ(a_name, "a.weight");
  EXPECT_EQ(a.scalar_type(), at::kFloat);
  EXPECT_EQ(a.sizes().vec(), std::vector<int64_t>({2, 3}));
  EXPECT_TRUE(at::equal(a, at::tensor(kA).reshape({2, 3})));

  const auto& [b_name, b] = fetched->tensors[1];
  EXPECT_EQ(b_name, "b.weight");
  EXPECT_EQ(b.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(b.to(at::kFloat), at::tensor(std::vector<float>{1.0f, -2.0f, 0.5f, 8.0f, 0.0f})));

  const auto& [c_name, c] = fetched->tensors[2];
  EXPECT_EQ(c_name, "c.bias");
  EXPECT_EQ(c.numel(), 0);
}

TEST_F(PolicyFetcherTest, UnchangedManifestMeansUpToDate) {
  v1::PolicyMessage unchanged;
  unchanged.mutable_manifest()->set_version(7);
  unchanged.mutable_manifest()->set_unchanged(true);
  learner_.script = {unchanged};
  RLJ_ASSERT_OK_AND_ASSIGN(std::optional<FetchedPolicy> fetched, Fetch(7));
  EXPECT_FALSE(fetched.has_value());
}

TEST_F(PolicyFetcherTest, EmptyStreamIsDataLoss) {
  EXPECT_TRUE(testing::FailsWith(Fetch(), absl::StatusCode::kDataLoss, "ended without a manifest"));
}

TEST_F(PolicyFetcherTest, RpcFailureKeepsItsCode) {
  learner_.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "no policy has been published yet");
  EXPECT_TRUE(testing::FailsWith(Fetch(), absl::StatusCode::kUnavailable, "no policy"));
}

struct Corruption {
  std::string name;
  std::function<void(std::vector<v1::PolicyMessage>*)> apply;
  std::string error;  // part of the DataLoss message
};

class PolicyFetcherCorruptionTest : public PolicyFetcherTest, public ::testing::WithParamInterface<Corruption> {};

TEST_P(PolicyFetcherCorruptionTest, IsDataLoss) {
  learner_.script = GoodStream();
  GetParam().apply(&learner_.script);
  EXPECT_TRUE(testing::FailsWith(Fetch(), absl::StatusCode::kDataLoss, GetParam().error));
}

INSTANTIATE_TEST_SUITE_P(
    Streams, PolicyFetcherCorruptionTest,
    ::testing::Values(
        Corruption{"FlippedByte", [](auto* s) { (*s)[2].mutable_chunk()->mutable_data()->at(3) ^= 0x01; },
                   "CRC-32C mismatch in tensor a.weight at offset 10"},
        Corruption{"Gap", [](auto* s) { s->erase(s->begin() + 1); }, "tensor a.weight chunk at offset 10, expected 0"},
        Corruption{"Repeated", [](auto* s) { s->insert(s->begin() + 2, (*s)[1]); }, "chunk at offset 0, expected 10"},
        Corruption{"TooManyBytes",
                   [](auto* s) {
                     (*s)[3] = Chunk(7, 1, 0, Bf16Bytes({1, 2, 3, 4, 5, 6}));
                   },
                   "receives more bytes than its shape holds"},
        Corruption{"OtherVersion", [](auto* s) { (*s)[3].mutable_chunk()->set_version(8); }, "chunk of v8 inside v7"},
        Corruption{"BadTensorIndex", [](auto* s) { (*s)[4].mutable_chunk()->set_tensor_index(3); },
                   "tensor index 3 of 3"},
        Corruption{"SecondManifest", [](auto* s) { s->push_back(Manifest(7)); }, "a second manifest"},
        Corruption{"EndsEarly",
                   [](auto* s) {
                     s->pop_back();
                     s->pop_back();
                   },
                   "tensor b.weight has 0 of 10 bytes"},
        Corruption{"WrongTotal", [](auto* s) { (*s)[0].mutable_manifest()->set_total_bytes(35); }, "total_bytes 35"},
        Corruption{"NoManifest", [](auto* s) { s->erase(s->begin()); }, "did not start with a manifest"}),
    [](const ::testing::TestParamInfo<Corruption>& info) { return info.param.name; });

// InstallPolicy builds the model on its placement: a bf16 placement (what a CUDA actor gets) gives bf16 weights
// equal to the fetched float32 ones rounded; float32 keeps them exactly.
TEST(InstallPolicy, BuildsTheModelInThePlacementsDtype) {
  const TransformerConfig shape = testing::SmallConfig();
  Transformer source(shape);
  const auto fetched = [&] {
    FetchedPolicy policy;
    policy.version = 3;
    policy.model = shape.ToProto();
    for (const auto& [name, tensor] : NamedParameters(source))
      policy.tensors.emplace_back(name, tensor.detach().clone());
    return policy;
  };
  for (const c10::ScalarType dtype : {c10::kBFloat16, c10::kFloat}) {
    Transformer model{nullptr};
    RLJ_ASSERT_OK(InstallPolicy(fetched(), 259, ModelPlacement{c10::Device(c10::kCPU), dtype}, &model));
    const NamedTensors installed = NamedParameters(model);
    const NamedTensors expected = NamedParameters(source);
    ASSERT_EQ(installed.size(), expected.size());
    for (size_t i = 0; i < installed.size(); ++i) {
      EXPECT_EQ(installed[i].second.scalar_type(), dtype) << installed[i].first;
      EXPECT_TRUE(at::equal(installed[i].second, expected[i].second.to(dtype))) << installed[i].first;
    }
  }
}

}  // namespace
}  // namespace rlj
