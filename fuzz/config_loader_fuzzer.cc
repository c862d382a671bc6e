// config_loader_fuzzer.cc: libFuzzer target for the YAML config loader: arbitrary YAML text and `--set`
// overrides must give a config or an error, never a crash; a config that loads must read back, from the YAML
// the run directory would keep (MessageToYaml), as the same config.
#include <google/protobuf/util/message_differencer.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/config_loader.h"
#include "common/log.h"

namespace {

// The input is "<yaml>\0<override>\0<override>...": the text before the first NUL is the config, each
// NUL-separated piece after it an override ("learner.lr=0.1").
struct FuzzInput {
  std::string yaml;
  std::vector<std::string> overrides;
};

FuzzInput Split(std::string_view bytes) {
  FuzzInput input;
  size_t nul = bytes.find('\0');
  input.yaml = std::string(bytes.substr(0, nul));
  while (nul != std::string_view::npos && input.overrides.size() < 8) {
    const size_t begin = nul + 1;
    nul = bytes.find('\0', begin);
    input.overrides.emplace_back(
        bytes.substr(begin, nul == std::string_view::npos ? std::string_view::npos : nul - begin));
  }
  return input;
}

[[noreturn]] void Fail(const std::string& what, const std::string& detail) {
  std::fprintf(stderr, "config_loader_fuzzer: %s\n%s\n", what.c_str(), detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)rlj::log::Init("fuzz", "off");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const FuzzInput input = Split(std::string_view(reinterpret_cast<const char*>(data), size));
  const absl::StatusOr<rlj::v1::RunConfig> config = rlj::ParseRunConfig(input.yaml, "<fuzz>", input.overrides);

  // Any message at all: the same reader fills sub-configs (a judge config file).
  rlj::v1::JudgeConfig judge;
  (void)rlj::MergeYamlIntoMessage(input.yaml, "<fuzz judge>", &judge);

  if (!config.ok()) {
    if (config.status().message().empty()) Fail("an error without a message", input.yaml);
    return 0;
  }
  // What a run directory keeps (config.resolved.yaml) must load back as the same config.
  const std::string resolved = rlj::MessageToYaml(*config);
  const absl::StatusOr<rlj::v1::RunConfig> reread = rlj::ParseRunConfig(resolved, "<resolved>");
  if (!reread.ok())
    Fail("the resolved YAML of a valid config does not load: " + std::string(reread.status().message()), resolved);
  if (!google::protobuf::util::MessageDifferencer::Equals(*config, *reread)) {
    Fail("the resolved YAML loads as a different config", config->DebugString() + "\n---\n" + reread->DebugString());
  }
  return 0;
}
