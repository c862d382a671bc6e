// metrics_exposition_test.cc: the Prometheus registry's text exposition (exact text for counters, gauges,
// labels and histograms), collectors, the /metrics server scraped over real HTTP, ProcessTelemetry's
// endpoint file and learner metrics (as gauges and TensorBoard scalars; the reverse KL to the teacher only in
// distillation steps), and `promtool check metrics` on what is served.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/run_dir.h"
#include "common/telemetry/metrics_registry.h"
#include "common/telemetry/metrics_server.h"
#include "common/telemetry/process_telemetry.h"
#include "common/telemetry/tensorboard_writer.h"
#include "test_util.h"

namespace rlj::telemetry {
namespace {

using testing::ScratchDir;

struct PromtoolResult {
  int exit_code = -1;
  std::string output;
};

// `promtool check metrics` over `text` (stdin); its stdout and stderr together.
PromtoolResult Promtool(const std::string& text, const std::string& scratch_file) {
  {
    std::ofstream file(scratch_file, std::ios::binary);
    file << text;
  }
  PromtoolResult result;
  const std::string command = "promtool check metrics < '" + scratch_file + "' 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

bool HavePromtool() { return std::system("command -v promtool > /dev/null 2>&1") == 0; }

TEST(MetricsRegistry, RendersCountersGaugesAndLabelsExactly) {
  MetricsRegistry registry;
  registry.GetCounter("rlj_judge_verdicts_total", "Verdicts returned", {{"backend", "rule"}}).Increment(3);
  registry.GetCounter("rlj_judge_verdicts_total", "Verdicts returned", {{"backend", "openai"}}).Increment();
  registry.GetCounter("rlj_judge_verdicts_total", "Verdicts returned", {{"backend", "openai"}})
      .Increment(-5);  // ignored
  registry.GetGauge("rlj_learner_loss", "Loss of the last step").Set(0.25);
  registry.GetGauge("rlj_quote", "Label escaping", {{"text", "a\"b\\c\nd"}}).Set(-1.5);
  EXPECT_EQ(registry.Render(),
            "# HELP rlj_judge_verdicts_total Verdicts returned\n"
            "# TYPE rlj_judge_verdicts_total counter\n"
            "rlj_judge_verdicts_total{backend=\"openai\"} 1\n"
            "rlj_judge_verdicts_total{backend=\"rule\"} 3\n"
            "# HELP rlj_learner_loss Loss of the last step\n"
            "# TYPE rlj_learner_loss gauge\n"
            "rlj_learner_loss 0.25\n"
            "# HELP rlj_quote Label escaping\n"
            "# TYPE rlj_quote gauge\n"
            "rlj_quote{text=\"a\\\"b\\\\c\\nd\"} -1.5\n");
}

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithInf) {
  MetricsRegistry registry;
  Histogram& h = registry.GetHistogram("rlj_latency_seconds", "Latency", {0.1, 1});
  for (double v : {0.05, 0.1, 0.5, 2.0}) h.Observe(v);  // le=0.1 gets 0.05 and 0.1 (bounds are inclusive)
  EXPECT_EQ(registry.Render(),
            "# HELP rlj_latency_seconds Latency\n"
            "# TYPE rlj_latency_seconds histogram\n"
            "rlj_latency_seconds_bucket{le=\"0.1\"} 2\n"
            "rlj_latency_seconds_bucket{le=\"1\"} 3\n"
            "rlj_latency_seconds_bucket{le=\"+Inf\"} 4\n"
            "rlj_latency_seconds_sum 2.65\n"
            "rlj_latency_seconds_count 4\n");
}

TEST(MetricsRegistry, SampleValuesRoundTripAndSpellSpecialValues) {
  EXPECT_EQ(FormatSampleValue(3), "3");
  EXPECT_EQ(FormatSampleValue(0.5), "0.5");
  EXPECT_EQ(FormatSampleValue(std::nan("")), "NaN");
  EXPECT_EQ(FormatSampleValue(INFINITY), "+Inf");
  EXPECT_EQ(FormatSampleValue(-INFINITY), "-Inf");
  for (double v : {0.1, 1.0 / 3, 2.6499999999999999, 1e-300, 123456.789}) {
    EXPECT_EQ(std::strtod(FormatSampleValue(v).c_str(), nullptr), v) << FormatSampleValue(v);
  }
}

TEST(MetricsRegistry, CollectorsRunAtScrapeTimeUntilTheirHandleGoes) {
  MetricsRegistry registry;
  double queue = 7;
  {
    MetricsRegistry::CollectorHandle handle = registry.AddCollector([&queue](MetricsSnapshotWriter& out) {
      out.Gauge("rlj_queue_depth", "Samples waiting", queue);
      out.Counter("rlj_drops_total", "Dropped", 2, {{"why", "stale"}});
    });
    EXPECT_TRUE(absl::StrContains(registry.Render(), "rlj_queue_depth 7\n"));
    queue = 9;
    const std::string text = registry.Render();
    EXPECT_TRUE(absl::StrContains(text, "rlj_queue_depth 9\n")) << text;
    EXPECT_TRUE(absl::StrContains(text, "# TYPE rlj_drops_total counter\nrlj_drops_total{why=\"stale\"} 2\n")) << text;
  }
  EXPECT_EQ(registry.Render(), "");
}

TEST(MetricsServer, ServesTheRegistryOverHttpAndPromtoolAcceptsIt) {
  MetricsRegistry registry;
  registry.GetCounter("rlj_test_requests_total", "Requests", {{"method", "Score"}}).Increment(5);
  registry.GetGauge("rlj_test_temperature", "A gauge").Set(0.7);
  Histogram& h = registry.GetHistogram("rlj_test_latency_seconds", "Latency", LatencySecondsBuckets());
  h.Observe(0.003);
  h.Observe(1.5);
  RLJ_ASSERT_OK_AND_ASSIGN(auto server, MetricsServer::Start("127.0.0.1:0", &registry));
  ASSERT_TRUE(absl::StartsWith(server->address(), "127.0.0.1:")) << server->address();
  RLJ_ASSERT_OK_AND_ASSIGN(std::string scraped, ScrapeMetrics(server->address()));
  EXPECT_EQ(scraped, registry.Render());
  EXPECT_TRUE(absl::StrContains(scraped, "rlj_test_requests_total{method=\"Score\"} 5\n"));
  EXPECT_TRUE(absl::StrContains(scraped, "rlj_test_latency_seconds_count 2\n"));

  if (!HavePromtool()) GTEST_SKIP() << "promtool is not installed (Debian package prometheus)";
  ScratchDir dir;
  const PromtoolResult check = Promtool(scraped, dir.file("metrics.txt"));
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n--- text ---\n" << scraped;

  // promtool does find problems: a counter without _total is reported.
  const PromtoolResult bad =
      Promtool("# HELP requests Requests\n# TYPE requests counter\nrequests 1\n", dir.file("bad.txt"));
  EXPECT_NE(bad.output.find("_total"), std::string::npos) << bad.output;

  server->Stop();
  EXPECT_FALSE(ScrapeMetrics(server->address(), 2000).ok());
}

TEST(MetricsServer, RefusesABadListenAddress) {
  MetricsRegistry registry;
  EXPECT_FALSE(MetricsServer::Start("not-an-address", &registry).ok());
  EXPECT_FALSE(ScrapeMetrics("nowhere").ok());
}

TEST(ProcessTelemetry, PublishesItsAddressAndTheLearnerStep) {
  ScratchDir dir;
  v1::RunConfig config;
  RLJ_ASSERT_OK_AND_ASSIGN(auto telemetry, ProcessTelemetry::Start(config, dir.path(), "learner", "learner", true));
  ASSERT_FALSE(telemetry->metrics_address().empty());
  RLJ_ASSERT_OK_AND_ASSIGN(std::string endpoint, ReadFile(RunDir(dir.path()).endpoint_path("metrics-learner")));
  EXPECT_EQ(std::string(absl::StripAsciiWhitespace(endpoint)), telemetry->metrics_address());

  v1::StepMetrics step;
  step.set_step(3);
  step.set_loss(0.5);
  step.set_reward_mean(0.75);
  telemetry->RecordLearnerStep(step);
  step.set_step(4);
  step.set_loss(0.25);
  telemetry->RecordLearnerStep(step);
  RLJ_ASSERT_OK_AND_ASSIGN(std::string scraped, ScrapeMetrics(telemetry->metrics_address()));
  EXPECT_TRUE(absl::StrContains(scraped, "rlj_learner_loss 0.25\n")) << scraped;
  EXPECT_TRUE(absl::StrContains(scraped, "rlj_learner_reward_mean 0.75\n")) << scraped;
  EXPECT_TRUE(absl::StrContains(scraped, "rlj_learner_steps_total 2\n")) << scraped;
  if (HavePromtool()) {
    const PromtoolResult check = Promtool(scraped, dir.file("learner.txt"));
    EXPECT_EQ(check.exit_code, 0) << check.output << "\n--- text ---\n" << scraped;
  }
  ASSERT_NE(telemetry->tensorboard(), nullptr);
  EXPECT_TRUE(absl::StartsWith(telemetry->tensorboard()->path(), RunDir(dir.path()).root() + "/tensorboard/learner/"))
      << telemetry->tensorboard()->path();
}

// teacher_reverse_kl reads 0 in a step without teacher tokens; only distillation steps export it.
TEST(ProcessTelemetry, ExportsTheReverseKlToTheTeacherOnlyInDistillationSteps) {
  ScratchDir dir;
  v1::RunConfig config;
  RLJ_ASSERT_OK_AND_ASSIGN(auto telemetry, ProcessTelemetry::Start(config, dir.path(), "learner", "learner", true));
  v1::StepMetrics step;
  step.set_step(1);
  step.set_teacher_reverse_kl(0.375);
  telemetry->RecordLearnerStep(step);
  RLJ_ASSERT_OK_AND_ASSIGN(std::string without, ScrapeMetrics(telemetry->metrics_address()));
  EXPECT_FALSE(absl::StrContains(without, "rlj_learner_teacher_reverse_kl")) << without;
  EXPECT_TRUE(absl::StrContains(without, "rlj_learner_distill_tokens 0\n")) << without;
  step.set_step(2);
  step.set_distill_tokens(64);
  telemetry->RecordLearnerStep(step);
  RLJ_ASSERT_OK_AND_ASSIGN(std::string with, ScrapeMetrics(telemetry->metrics_address()));
  EXPECT_TRUE(absl::StrContains(with, "rlj_learner_teacher_reverse_kl 0.375\n")) << with;
  EXPECT_TRUE(absl::StrContains(with, "rlj_learner_distill_tokens 64\n")) << with;
  // TensorBoard: learner/teacher_reverse_kl at step 2 only; learner/distill_tokens at both.
  ASSERT_NE(telemetry->tensorboard(), nullptr);
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<tensorboard::Event> events, ReadEventFile(telemetry->tensorboard()->path()));
  std::vector<int64_t> reverse_kl_steps, distill_tokens_steps;
  for (const tensorboard::Event& event : events) {
    for (const auto& value : event.summary().value()) {
      if (value.tag() == "learner/distill_tokens") distill_tokens_steps.push_back(event.step());
      if (value.tag() != "learner/teacher_reverse_kl") continue;
      reverse_kl_steps.push_back(event.step());
      EXPECT_FLOAT_EQ(value.simple_value(), 0.375f);
    }
  }
  EXPECT_EQ(reverse_kl_steps, std::vector<int64_t>{2});
  EXPECT_EQ(distill_tokens_steps, (std::vector<int64_t>{1, 2}));
}

TEST(ProcessTelemetry, MetricsAndTensorBoardCanBeTurnedOff) {
  ScratchDir dir;
  v1::RunConfig config;
  config.mutable_telemetry()->set_metrics(false);
  config.mutable_telemetry()->set_tensorboard(false);
  RLJ_ASSERT_OK_AND_ASSIGN(auto telemetry, ProcessTelemetry::Start(config, dir.path(), "judge-0", "judge", true));
  EXPECT_EQ(telemetry->metrics_address(), "");
  EXPECT_EQ(telemetry->tensorboard(), nullptr);
}

TEST(ProcessTelemetry, ListenAddressesAndPrometheusUnits) {
  v1::TelemetryConfig config;
  config.set_metrics_listen("0.0.0.0:9100");
  config.set_judge_metrics_listen("127.0.0.1:9101");
  EXPECT_EQ(MetricsListenFor(config, "judge"), "127.0.0.1:9101");
  EXPECT_EQ(MetricsListenFor(config, "learner"), "0.0.0.0:9100");
  double scale = 0;
  EXPECT_EQ(PrometheusFieldName("latency_ms", &scale), "latency_seconds");
  EXPECT_DOUBLE_EQ(scale, 0.001);
  EXPECT_EQ(PrometheusFieldName("step_s", &scale), "step_seconds");
  EXPECT_DOUBLE_EQ(scale, 1);
  EXPECT_EQ(PrometheusFieldName("tokens_per_s", &scale), "tokens_per_second");
  EXPECT_EQ(PrometheusFieldName("loss", &scale), "loss");
}

}  // namespace
}  // namespace rlj::telemetry
