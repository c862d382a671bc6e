// bench_sync.cc: `rlj bench sync`: aggregate weight-sync throughput: a real Learner gRPC server on loopback
// publishes an M-MB policy and A actors (threads, each with its own channel and TCP connection) fetch it
// concurrently through PolicyFetcher (chunk CRC checks and reassembly included); prints gb_per_s.
#include <ATen/ATen.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "actor/policy_fetcher.h"
#include "bench/bench_model_shape.h"
#include "common/grpc_security.h"
#include "common/grpc_util.h"
#include "common/heap_tuning.h"
#include "common/status.h"
#include "learner/learner_service.h"
#include "learner/rollout_buffer.h"
#include "learner/weight_publisher.h"
#include "model/tensor/torch_util.h"
#include "tools/command.h"

namespace rlj::tools {
namespace {

struct SyncFlags {
  double params_mb = 100;
  int actors = 4;
  int chunk_kib = 1024;
  std::string wire_dtype = "float32";
  int repeats = 3;
  double tensor_mb = 4;  // the policy is cut into tensors of about this size (like a model's weight matrices)
  bool default_heap = false;
  std::vector<std::string> channel_args;  // extra integer gRPC channel arguments, NAME=VALUE (experiments)
  std::string device = "cpu";  // where the actors' weights go: a GPU receives into pinned memory, then copies
};

// User + system CPU seconds of this process so far (server and actors together).
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// A channel of its own per actor (no subchannel sharing), so each actor has its own TCP connection: the
// actors' channel (MakeChannel), or, with --channel-arg, the same arguments plus the extra ones.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OwnChannel(const std::string& address,
                                                          const std::vector<std::string>& extra_args) {
  if (extra_args.empty()) return MakeChannel(address, kMaxMessageBytes, /*own_connection=*/true);
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  for (const std::string& arg : extra_args) {
    const size_t equals = arg.find('=');
    int value = 0;
    if (equals == std::string::npos || !absl::SimpleAtoi(arg.substr(equals + 1), &value)) {
      return absl::InvalidArgumentError(absl::StrCat("--channel-arg '", arg, "' is not NAME=INTEGER"));
    }
    args.SetInt(arg.substr(0, equals), value);
  }
  return MakeSecureChannel(address, std::move(args));
}

absl::StatusOr<WeightPublisherOptions> PublisherOptions(const SyncFlags& flags) {
  WeightPublisherOptions publisher_options;
  publisher_options.chunk_bytes = static_cast<size_t>(flags.chunk_kib) * 1024;
  if (flags.wire_dtype == "float32") {
    publisher_options.wire_dtype = v1::FLOAT32;
  } else if (flags.wire_dtype == "bfloat16") {
    publisher_options.wire_dtype = v1::BFLOAT16;
  } else {
    return absl::InvalidArgumentError("--wire-dtype must be float32 or bfloat16");
  }
  return publisher_options;
}

// float32 parameters of params_mb MB in total, in tensors of about tensor_mb MB.
absl::StatusOr<NamedTensors> RandomPolicy(const SyncFlags& flags) {
  const int64_t total = static_cast<int64_t>(flags.params_mb * 1e6 / 4);
  const int64_t per_tensor = std::max<int64_t>(1, static_cast<int64_t>(flags.tensor_mb * 1e6 / 4));
  NamedTensors tensors;
  RLJ_RETURN_IF_ERROR(TorchCall("random policy", [&] {
    at::manual_seed(1);
    for (int64_t offset = 0, i = 0; offset < total; offset += per_tensor, ++i) {
      tensors.emplace_back(absl::StrCat("layers.", i, ".weight"), at::randn({std::min(per_tensor, total - offset)}));
    }
  }));
  return tensors;
}

// The wall and CPU seconds of one round.
struct RoundTime {
  double seconds = 0;
  double cpu_seconds = 0;
};

// A GPU actor's install: the pinned tensors copied to the device, waited for.
absl::Status CopyToDevice(const NamedTensors& tensors, const c10::Device& device) {
  return TorchCall("copying the policy to the GPU", [&] {
    std::vector<at::Tensor> copies;
    for (const auto& [name, tensor] : tensors) copies.push_back(tensor.to(device, /*non_blocking=*/true));
    SyncDevice(device);
  });
}

// What a colocated actor (on the learner's GPU) would do instead of the wire: the learner's float32 weights
// copied device to device into bf16 weights; GB/s of the float32 bytes read, best of `repeats`.
absl::StatusOr<double> ColocatedGbPerS(const NamedTensors& tensors, const c10::Device& device, int repeats) {
  std::vector<at::Tensor> sources, targets;
  double best = 1e9, bytes = 0;
  RLJ_RETURN_IF_ERROR(TorchCall("colocated copy", [&] {
    for (const auto& [name, tensor] : tensors) {
      sources.push_back(tensor.to(device));
      targets.push_back(at::empty_like(sources.back(), at::TensorOptions().dtype(at::kBFloat16)));
      bytes += static_cast<double>(tensor.nbytes());
    }
    for (int r = 0; r <= repeats; ++r) {
      SyncDevice(device);
      const auto start = std::chrono::steady_clock::now();
      for (size_t i = 0; i < sources.size(); ++i) targets[i].copy_(sources[i], /*non_blocking=*/true);
      SyncDevice(device);
      if (r > 0) best = std::min(best, SecondsSince(start));
    }
  }));
  return bytes / best / 1e9;
}

// One round: every actor fetches the policy at once (from a start line, so the fetches overlap); each must
// receive all `wire_bytes`.
absl::StatusOr<RoundTime> FetchRound(const std::vector<std::shared_ptr<v1::Learner::Stub>>& stubs, uint64_t wire_bytes,
                                     const c10::Device& device) {
  const int actors = static_cast<int>(stubs.size());
  std::vector<absl::Status> results(stubs.size());
  std::vector<uint64_t> received(stubs.size(), 0);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int a = 0; a < actors; ++a) {
    threads.emplace_back([&, a] {
      PolicyFetcher fetcher(stubs[static_cast<size_t>(a)], absl::StrCat("bench-", a), /*pinned=*/device.is_cuda());
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();  // a start line, so the fetches overlap
      auto fetched = fetcher.Fetch(-1, std::chrono::milliseconds(0), std::chrono::milliseconds(600000));
      if (!fetched.ok()) {
        results[static_cast<size_t>(a)] = fetched.status();
      } else if (!fetched->has_value()) {
        results[static_cast<size_t>(a)] = absl::InternalError("the learner answered 'unchanged'");
      } else {
        received[static_cast<size_t>(a)] = (*fetched)->bytes;
        if (device.is_cuda()) results[static_cast<size_t>(a)] = CopyToDevice((*fetched)->tensors, device);
      }
    });
  }
  while (ready.load() < actors) std::this_thread::yield();
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = ProcessCpuSeconds();
  go.store(true);
  for (auto& thread : threads) thread.join();
  const RoundTime time{SecondsSince(start), ProcessCpuSeconds() - cpu_start};
  for (int a = 0; a < actors; ++a) {
    RLJ_RETURN_IF_ERROR(results[static_cast<size_t>(a)]);
    if (received[static_cast<size_t>(a)] != wire_bytes) {
      return absl::DataLossError(
          absl::StrCat("actor ", a, " received ", received[static_cast<size_t>(a)], " bytes of ", wire_bytes));
    }
  }
  return time;
}

// One round to connect and warm up, then `repeats` timed rounds; their wall and CPU seconds, each sorted.
struct Rounds {
  RoundTime warmup;
  std::vector<double> seconds;
  std::vector<double> cpu_seconds;
};

absl::StatusOr<Rounds> TimeRounds(const std::vector<std::shared_ptr<v1::Learner::Stub>>& stubs, uint64_t wire_bytes,
                                  int repeats, const c10::Device& device) {
  Rounds rounds;
  RLJ_ASSIGN_OR_RETURN(rounds.warmup, FetchRound(stubs, wire_bytes, device));
  for (int r = 0; r < repeats; ++r) {
    RLJ_ASSIGN_OR_RETURN(const RoundTime time, FetchRound(stubs, wire_bytes, device));
    rounds.seconds.push_back(time.seconds);
    rounds.cpu_seconds.push_back(time.cpu_seconds);
  }
  std::sort(rounds.seconds.begin(), rounds.seconds.end());
  std::sort(rounds.cpu_seconds.begin(), rounds.cpu_seconds.end());
  return rounds;
}

// The bench's JSON line: the flags, the policy on the wire, and the delivered GB/s (median, best, warm-up)
// and GB per CPU second.
nlohmann::json ResultJson(const SyncFlags& flags, uint64_t wire_bytes, size_t chunks, double publish_s,
                          const Rounds& rounds) {
  const double median = rounds.seconds[rounds.seconds.size() / 2];
  const double median_cpu = rounds.cpu_seconds[rounds.cpu_seconds.size() / 2];
  const double delivered = static_cast<double>(wire_bytes) * flags.actors;
  nlohmann::json out;
  out["bench"] = "sync";
  out["params_mb"] = flags.params_mb;
  out["actors"] = flags.actors;
  out["chunk_kib"] = flags.chunk_kib;
  out["wire_dtype"] = flags.wire_dtype;
  out["heap"] = flags.default_heap ? "glibc default" : "large buffers kept in the heap";
  if (!flags.channel_args.empty()) out["channel_args"] = flags.channel_args;
  out["wire_bytes_per_actor"] = wire_bytes;
  out["chunks"] = chunks;
  out["publish_s"] = publish_s;
  out["seconds"] = median;
  out["gb_per_s"] = delivered / median / 1e9;
  out["best_gb_per_s"] = delivered / rounds.seconds.front() / 1e9;
  out["warmup_gb_per_s"] = delivered / rounds.warmup.seconds / 1e9;
  // CPU cost, which the machine's load changes far less than wall time: the process's user + system CPU
  // seconds per round (median) and GB delivered per CPU second (wall GB/s on N idle cores is at most N x this).
  out["cpu_s"] = median_cpu;
  out["gb_per_cpu_s"] = delivered / median_cpu / 1e9;
  return out;
}

absl::StatusOr<nlohmann::json> RunBench(const SyncFlags& flags) {
  if (!(flags.params_mb > 0) || flags.actors < 1 || flags.repeats < 1 || !(flags.tensor_mb > 0)) {
    return absl::InvalidArgumentError("--params-mb, --actors, --repeats and --tensor-mb must be > 0");
  }
  RLJ_ASSIGN_OR_RETURN(const WeightPublisherOptions publisher_options, PublisherOptions(flags));
  RLJ_ASSIGN_OR_RETURN(const c10::Device device, ResolveDevice(flags.device));
  RLJ_ASSIGN_OR_RETURN(const NamedTensors tensors, RandomPolicy(flags));
  WeightPublisher publisher(publisher_options);
  v1::ModelConfig model;
  const auto publish_start = std::chrono::steady_clock::now();
  RLJ_RETURN_IF_ERROR(publisher.Publish(1, model, tensors));
  const double publish_s = SecondsSince(publish_start);
  const uint64_t wire_bytes = publisher.Latest()->manifest().total_bytes();

  RolloutBuffer buffer(1);
  LearnerServiceOptions service_options;
  service_options.vocab_size = 1;
  service_options.max_seq_len = 2;
  LearnerService service(service_options, &buffer, &publisher);
  ServerOptions server_options;
  server_options.max_concurrent_rpcs = std::max(16, flags.actors + 4);
  RLJ_ASSIGN_OR_RETURN(RunningServer server, StartServer(server_options, {&service}));

  std::vector<std::shared_ptr<v1::Learner::Stub>> stubs;
  for (int a = 0; a < flags.actors; ++a) {
    RLJ_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, OwnChannel(server.address, flags.channel_args));
    stubs.push_back(v1::Learner::NewStub(channel));
  }
  RLJ_ASSIGN_OR_RETURN(const Rounds rounds, TimeRounds(stubs, wire_bytes, flags.repeats, device));
  server.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server.server->Wait();
  nlohmann::json out = ResultJson(flags, wire_bytes, publisher.Latest()->num_chunks(), publish_s, rounds);
  out["device"] = device.str();
  if (device.is_cuda()) {
    RLJ_ASSIGN_OR_RETURN(const double colocated, ColocatedGbPerS(tensors, device, flags.repeats));
    out["colocated_gb_per_s"] = colocated;
  }
  return out;
}

Command AddSyncBench(CLI::App& parent) {
  auto* app = parent.add_subcommand(
      "sync", "Aggregate GB/s of A actors fetching a published M-MB policy at once over loopback gRPC; one JSON line");
  auto flags = std::make_shared<SyncFlags>();
  app->add_option("--params-mb", flags->params_mb, "Policy size in MB (float32 parameters)")->capture_default_str();
  app->add_option("--actors", flags->actors, "Concurrent fetching clients (threads, one channel each)")
      ->capture_default_str();
  app->add_option("--chunk-kib", flags->chunk_kib, "Stream chunk size (learner.weight_chunk_kib)")
      ->capture_default_str();
  app->add_option("--wire-dtype", flags->wire_dtype, "float32 or bfloat16 (learner.wire_dtype)")->capture_default_str();
  app->add_option("--repeats", flags->repeats, "Timed rounds after one warm-up; the median is reported")
      ->capture_default_str();
  app->add_option("--tensor-mb", flags->tensor_mb, "Size of each tensor of the random policy")->capture_default_str();
  app->add_option("--channel-arg", flags->channel_args,
                  "Extra integer gRPC channel argument for the actors' channels, NAME=VALUE (repeatable; experiments "
                  "with e.g. grpc.http2.max_frame_size)");
  app->add_option("--device", flags->device,
                  "cpu, or cuda[:N]: actors receive into pinned memory and copy to the GPU inside the timing, and "
                  "colocated_gb_per_s adds the device-to-device copy a colocated actor would make")
      ->capture_default_str();
  app->add_flag("--default-heap", flags->default_heap,
                "Keep glibc's default mmap threshold (the learner and actors raise it; see common/heap_tuning.h)");
  return {app, [flags]() -> int {
            if (!flags->default_heap) KeepLargeBuffersInTheHeap();
            const absl::StatusOr<nlohmann::json> result = RunBench(*flags);
            if (!result.ok()) return Fail("bench sync", std::string(result.status().message()));
            std::printf("%s\n", result->dump().c_str());
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("bench", 35, AddSyncBench);

}  // namespace rlj::tools
