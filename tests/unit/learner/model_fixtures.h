// model_fixtures.h: what the learner tests that run a model share: a completion's log-probs under a model, and
// two data-parallel ranks (two threads over a real TCPStore and Gloo).
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "learner/rank_group.h"
#include "model/logprobs.h"
#include "model/transformer.h"

namespace rlj::testing {

// Per-token log-probs of `completion` after `prompt` under `model` (temperature 1).
inline std::vector<float> CompletionLogProbs(Transformer& model, const std::vector<int32_t>& prompt,
                                             const std::vector<int32_t>& completion) {
  at::NoGradGuard no_grad;
  std::vector<int64_t> sequence(prompt.begin(), prompt.end());
  sequence.insert(sequence.end(), completion.begin(), completion.end());
  const int64_t length = static_cast<int64_t>(sequence.size());
  const at::Tensor tokens = at::tensor(sequence).view({1, length});
  const at::Tensor logprobs =
      TokenLogProbs(model->forward(tokens.narrow(1, 0, length - 1)), tokens.narrow(1, 1, length - 1), 1.0);
  std::vector<float> out;
  for (size_t j = 0; j < completion.size(); ++j) {
    out.push_back(logprobs[0][static_cast<int64_t>(prompt.size() - 1 + j)].item<float>());
  }
  return out;
}

// A port nothing listens on right now (the kernel's pick for a socket bound to port 0).
inline int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

// Runs body(rank, group) on two threads that joined one Gloo rank group.
inline void WithTwoRanks(const std::function<void(int, RankGroup&)>& body) {
  const int port = FreePort();
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      RankGroupOptions options;
      options.rank = rank;
      options.world_size = 2;
      options.master_addr = "127.0.0.1";
      options.master_port = port;
      options.timeout = std::chrono::milliseconds(120000);
      auto group = RankGroup::Connect(options);
      ASSERT_TRUE(group.ok()) << group.status();
      EXPECT_EQ((*group)->rank(), rank);
      EXPECT_EQ((*group)->world_size(), 2);
      EXPECT_STREQ((*group)->backend(), "gloo");
      body(rank, **group);
    });
  }
  for (auto& thread : threads) thread.join();
}

}  // namespace rlj::testing
