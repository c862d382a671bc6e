// deploy_k8s_test.cc: renders every deploy/k8s overlay with `kubectl kustomize` and checks the manifests
// against the code: the ConfigMap is a config rlj accepts, every container runs a real subcommand with flags
// it has, ports, probes, Services and peer addresses agree, and the teacher key Secret feeds the judge.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/config_loader.h"
#include "common/file_util.h"
#include "rlj_process.h"
#include "test_util.h"

namespace rlj {
namespace {

// The project's virtual environment first (tools/install-deps.sh pins kubectl there), then PATH.
std::string FindTool(const std::string& name) {
  const char* path = std::getenv("PATH");
  const std::string search = std::string(RLJ_VENV_BIN) + ":" + (path ? path : "/usr/bin:/bin");
  for (const absl::string_view dir : absl::StrSplit(search, ':')) {
    const std::string candidate = std::string(dir) + "/" + name;
    if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// Runs argv to completion and returns its output and exit status.
testing::Finished RunTool(const std::vector<std::string>& argv, const std::string& output_path) {
  testing::Finished finished;
  auto process = Subprocess::Spawn(argv, output_path);
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return finished;
  auto exit = (*process)->Wait(std::chrono::seconds(120));
  finished.exit = exit ? *exit : (*process)->Stop(std::chrono::seconds(5));
  finished.output = ReadFile(output_path).value_or("");
  return finished;
}

// The kustomize inside kubectl must understand `labels` and `patches` (kustomize v4+, kubectl 1.21+).
bool KustomizeIsRecentEnough(const std::string& kubectl, const std::string& scratch) {
  const testing::Finished version = RunTool({kubectl, "version", "--client"}, scratch + "/version.out");
  const size_t at = version.output.find("Kustomize Version: v");
  if (!version.exit.ok() || at == std::string::npos) return false;
  int major = 0;
  const std::string rest = version.output.substr(at + 20);
  return absl::SimpleAtoi(rest.substr(0, rest.find('.')), &major) && major >= 4;
}

// A container's command line as rlj sees it: ["learner", "/etc/rlj/config.yaml", "--listen", …]. Containers that
// go through `sh -c "exec rlj …"` (to expand $POD_NAME) are split on spaces, quotes dropped.
std::vector<std::string> RljArguments(const YAML::Node& container) {
  std::vector<std::string> args;
  for (const auto& arg : container["args"]) args.push_back(arg.as<std::string>());
  if (container["command"] && container["command"].size() == 2 && container["command"][0].as<std::string>() == "sh") {
    std::vector<std::string> words;
    for (const absl::string_view word : absl::StrSplit(args.at(0), ' ', absl::SkipEmpty())) {
      words.push_back(std::string(absl::StripSuffix(absl::StripPrefix(word, "\""), "\"")));
    }
    EXPECT_GE(words.size(), 2u);
    EXPECT_EQ(words[0], "exec");
    EXPECT_EQ(words[1], "rlj");
    return std::vector<std::string>(words.begin() + 2, words.end());
  }
  return args;
}

std::string FlagValue(const std::vector<std::string>& args, const std::string& flag) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == flag) return args[i + 1];
  }
  return "";
}

int PortOf(const std::string& address) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port)) << address;
  return port;
}

class K8sManifests : public ::testing::TestWithParam<std::string> {};

TEST_P(K8sManifests, AgreeWithTheCode) {
  const std::string kubectl = FindTool("kubectl");
  if (kubectl.empty()) GTEST_SKIP() << "kubectl is not installed (tools/install-deps.sh installs it)";
  testing::ScratchDir dir;
  if (!KustomizeIsRecentEnough(kubectl, dir.path()))
    GTEST_SKIP() << kubectl
                 << "'s kustomize is older than v4 (tools/install-deps.sh installs a newer one into the venv)";

  const std::string overlay = std::string(RLJ_SOURCE_DIR) + "/deploy/k8s/overlays/" + GetParam();
  const testing::Finished rendered = RunTool({kubectl, "kustomize", overlay}, dir.file("rendered.yaml"));
  ASSERT_TRUE(rendered.exit.ok()) << rendered.output;

  std::map<std::string, YAML::Node> objects;  // "Kind/name"
  for (const YAML::Node& doc : YAML::LoadAll(rendered.output)) {
    objects[doc["kind"].as<std::string>() + "/" + doc["metadata"]["name"].as<std::string>()] = doc;
    EXPECT_EQ(doc["metadata"]["labels"]["app.kubernetes.io/part-of"].as<std::string>(""), "rlj")
        << doc["kind"] << " " << doc["metadata"]["name"];
  }
  for (const char* name : {"StatefulSet/rlj-learner", "Service/rlj-learner", "Deployment/rlj-judge",
                           "Service/rlj-judge", "HorizontalPodAutoscaler/rlj-judge", "Deployment/rlj-actor",
                           "ConfigMap/rlj-config", "Secret/rlj-teacher-api-key"}) {
    ASSERT_TRUE(objects.count(name)) << name << " missing from " << GetParam();
  }

  // The ConfigMap is a run config the real loader accepts (unknown keys and wrong types fail it).
  const std::string config_text = objects["ConfigMap/rlj-config"]["data"]["config.yaml"].as<std::string>();
  RLJ_ASSERT_OK_AND_ASSIGN(const v1::RunConfig config, ParseRunConfig(config_text, "ConfigMap rlj-config"));
  ASSERT_TRUE(WriteFileAtomically(dir.file("config.yaml"), config_text).ok());

  // The HPA scales the judge Deployment; the learner keeps its run directory on a PVC.
  EXPECT_EQ(objects["HorizontalPodAutoscaler/rlj-judge"]["spec"]["scaleTargetRef"]["name"].as<std::string>(),
            "rlj-judge");
  EXPECT_GE(objects["StatefulSet/rlj-learner"]["spec"]["volumeClaimTemplates"].size(), 1u);
  EXPECT_GE(objects["Deployment/rlj-actor"]["spec"]["replicas"].as<int>(), 1);

  struct Component {
    std::string workload, service, subcommand;
    std::string config_listen;
  };
  const std::vector<Component> components = {
      {"StatefulSet/rlj-learner", "Service/rlj-learner", "learner", config.learner().listen()},
      {"Deployment/rlj-judge", "Service/rlj-judge", "judge", config.judge().listen()},
      {"Deployment/rlj-actor", "", "actor", ""},
  };
  std::map<std::string, std::string> service_addresses;  // subcommand → "service:port" peers dial
  for (const Component& component : components) {
    if (component.service.empty()) continue;
    const YAML::Node port = objects[component.service]["spec"]["ports"][0];
    service_addresses[component.subcommand] =
        objects[component.service]["metadata"]["name"].as<std::string>() + ":" + port["port"].as<std::string>();
    EXPECT_EQ(port["targetPort"].as<std::string>(), "grpc") << component.service;
  }

  for (const Component& component : components) {
    SCOPED_TRACE(component.workload);
    const YAML::Node containers = objects[component.workload]["spec"]["template"]["spec"]["containers"];
    ASSERT_EQ(containers.size(), 1u);
    const YAML::Node container = containers[0];
    const std::vector<std::string> args = RljArguments(container);
    ASSERT_GE(args.size(), 2u);
    EXPECT_EQ(args[0], component.subcommand);
    EXPECT_EQ(args[1], "/etc/rlj/config.yaml");
    EXPECT_EQ(container["volumeMounts"][0]["mountPath"].as<std::string>(), "/etc/rlj");

    // Every flag is one the subcommand has, and --set overrides name real keys with valid values.
    const testing::Finished help = testing::RunRlj({args[0], "--help"}, dir.file(args[0] + ".help"));
    ASSERT_TRUE(help.exit.ok()) << help.output;
    std::vector<std::string> overrides;
    for (size_t i = 2; i < args.size(); ++i) {
      if (!absl::StartsWith(args[i], "--")) continue;
      EXPECT_TRUE(absl::StrContains(help.output, args[i] + " ")) << "rlj " << args[0] << " has no flag " << args[i];
      if (args[i] == "--set") overrides.push_back(args.at(i + 1));
    }
    EXPECT_TRUE(ParseRunConfig(config_text, "ConfigMap rlj-config", overrides).ok());

    if (component.service.empty()) {
      // Actors dial the Services on the ports those Services expose.
      EXPECT_EQ(FlagValue(args, "--learner"), service_addresses["learner"]);
      EXPECT_EQ(FlagValue(args, "--judge"), service_addresses["judge"]);
      continue;
    }
    // Listening address = config's listen (all interfaces) = container port = probe port = Service port.
    const std::string listen = FlagValue(args, "--listen");
    EXPECT_EQ(listen, component.config_listen);
    EXPECT_TRUE(absl::StartsWith(listen, "0.0.0.0:")) << "a pod must listen beyond loopback: " << listen;
    const int port = PortOf(listen);
    EXPECT_EQ(container["ports"][0]["name"].as<std::string>(), "grpc");
    EXPECT_EQ(container["ports"][0]["containerPort"].as<int>(), port);
    EXPECT_EQ(PortOf(service_addresses[component.subcommand]), port);
    for (const char* probe : {"readinessProbe", "livenessProbe"}) {
      EXPECT_EQ(container[probe]["grpc"]["port"].as<int>(0), port) << probe << ": the gRPC health service";
    }
  }

  // The judge reads its teacher key from the variable the config names, fed by the Secret.
  const std::string key_env = config.judge().openai().api_key_env();
  ASSERT_FALSE(key_env.empty());
  EXPECT_TRUE(objects["Secret/rlj-teacher-api-key"]["data"][key_env]) << "the Secret has no " << key_env;
  bool judge_gets_key = false;
  for (const auto& env : objects["Deployment/rlj-judge"]["spec"]["template"]["spec"]["containers"][0]["env"]) {
    if (env["name"].as<std::string>() == key_env) {
      judge_gets_key = env["valueFrom"]["secretKeyRef"]["name"].as<std::string>() == "rlj-teacher-api-key" &&
                       env["valueFrom"]["secretKeyRef"]["key"].as<std::string>() == key_env;
    }
  }
  EXPECT_TRUE(judge_gets_key) << "the judge container does not take " << key_env << " from the Secret";

  const YAML::Node learner = objects["StatefulSet/rlj-learner"]["spec"]["template"]["spec"]["containers"][0];
  if (GetParam() == "gpu") {
    EXPECT_EQ(learner["resources"]["limits"]["nvidia.com/gpu"].as<int>(0), 1);
    EXPECT_EQ(FlagValue(RljArguments(learner), "--set"), "runtime.device=cuda");
  } else {
    const YAML::Node resources = learner["resources"];
    EXPECT_FALSE(resources && resources["limits"] && resources["limits"]["nvidia.com/gpu"])
        << "a GPU on the cpu overlay";
  }
}

INSTANTIATE_TEST_SUITE_P(Overlays, K8sManifests, ::testing::Values("cpu", "gpu"));

}  // namespace
}  // namespace rlj
