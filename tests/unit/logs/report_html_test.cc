// report_html_test.cc: the HTML report of a run with several steps, components, errors, canaries and
// learner metrics (and of the same run with distillation, which adds the reverse KL chart): self-contained (no
// external URL), escaped, and rendered in headless Chromium, where every chart draws with no JavaScript error;
// the pages and a screenshot are kept in <test cwd>/test_output/report/.
#include "logs/report_html.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/run_dir.h"
#include "logs/eval_curve.h"
#include "logs/run_logs.h"
#include "logs/summary.h"
#include "logs_fixtures.h"
#include "re2/re2.h"
#include "test_util.h"

namespace rlj::logs {
namespace {

using rlj::testing::MakeRow;
using rlj::testing::ScratchDir;

// A run of 8 steps: rewards rising with the step, a judge error every 7th row, a canary per step (one
// failing), learner metrics per step, and one completion trying to break out of the page. With `distill`, the
// verdicts and the learner also carry the reverse KL to the teacher, falling with the step.
void WriteDemoRun(const std::string& run_dir, bool distill = false) {
  std::vector<RewardLogRow> rows;
  int n = 0;
  for (int step = 0; step < 8; ++step) {
    for (int i = 0; i < 6; ++i, ++n) {
      const bool failed = n % 7 == 3;
      RewardLogRow row = MakeRow(step, failed ? std::nullopt : std::optional<double>(0.1 * step + 0.05 * i),
                                 std::string(static_cast<size_t>(10 + 3 * i), 'a'), 1.7e9 + n);
      row.components_json =
          failed ? "{}"
                 : absl::StrCat("{\"correct\":", i % 2, ",\"format\":", 0.5 + 0.05 * step,
                                distill ? absl::StrCat(",\"reverse_kl\":", 1.0 / (step + 1 + 0.1 * i)) : "", "}");
      row.latency_ms = 20 + step;
      row.cache_hit = i == 0;
      row.cost_usd = 0.0005;
      rows.push_back(row);
    }
    RewardLogRow canary = MakeRow(step, 1.0, "canary answer", 1.7e9 + n);
    canary.kind = row_kind::kCanary;
    canary.expected_reward = 1.0;
    canary.canary_pass = step != 5;
    rows.push_back(canary);
  }
  rows[2].completion = "</script><script>window.injected=1</script><b>bold</b>";
  rows[2].rationale = "<img src=x onerror=alert(1)> & friends";
  rows[2].reward = 5.0;  // the top sample
  testing::WriteRows(run_dir, "judge-0", rows);
  std::vector<v1::StepMetrics> steps;
  for (int step = 1; step <= 8; ++step) {
    v1::StepMetrics m;
    m.set_step(step);
    m.set_version(step);
    m.set_loss(1.0 / step);
    m.set_kl(0.01 * step);
    m.set_entropy(2.0 - 0.1 * step);
    m.set_reward_mean(0.1 * step);
    if (distill) {
      m.set_teacher_reverse_kl(1.0 / (step + 1));
      m.set_distill_tokens(200);
    }
    steps.push_back(m);
  }
  testing::WriteMetrics(run_dir, steps);
  // Held-out evaluations: before RL, every 2 steps, after RL.
  for (const auto& [kind, step, accuracy] : std::vector<std::tuple<std::string, int, double>>{{"before", 0, 0.30},
                                                                                              {"periodic", 2, 0.35},
                                                                                              {"periodic", 4, 0.42},
                                                                                              {"periodic", 6, 0.41},
                                                                                              {"after", 8, 0.45}}) {
    EvalPoint point;
    point.kind = kind;
    point.step = step;
    point.accuracy = accuracy;
    point.reward = accuracy;
    point.prompts = 100;
    ASSERT_TRUE(AppendEvalPoint(RunDir(run_dir).eval_curve_path(), point).ok());
  }
}

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

CommandResult RunShell(const std::string& command) {
  CommandResult result;
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[8192];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string Chromium() {
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    if (RunShell(absl::StrCat("command -v ", name, " 2>/dev/null")).exit_code == 0) return name;
  }
  return "";
}

std::string Attribute(const std::string& dom, const std::string& name) {
  std::string value;
  RE2::PartialMatch(dom, absl::StrCat("<body[^>]*\\s", name, "=\"([^\"]*)\""), &value);
  return value;
}

TEST(ReportHtml, IsSelfContainedAndEscapesWhatTheLogHolds) {
  ScratchDir dir;
  WriteDemoRun(dir.path());
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs logs, LoadRunLogs(dir.path()));
  const RunSummary summary = Summarize(logs, SummaryOptions());
  ReportOptions options;
  options.samples_shown = 3;
  const std::string html = RenderHtmlReport(logs, summary, options);
  EXPECT_TRUE(absl::StartsWith(html, "<!DOCTYPE html>"));
  // Nothing is fetched: no URL in any src/href, no <link>, and a CSP that forbids loading anything.
  EXPECT_FALSE(RE2::PartialMatch(html, R"((?i)(src|href)\s*=\s*["']?\s*(https?:|//))")) << "external reference";
  EXPECT_FALSE(absl::StrContains(html, "<link"));
  EXPECT_TRUE(absl::StrContains(html, "default-src 'none'"));
  // 9 fixed charts and 4 histogram ranges over 8 steps.
  EXPECT_EQ(ReportChartCount(logs, options), 13);
  EXPECT_TRUE(absl::StrContains(html, "data-charts-expected=\"13\""));
  EXPECT_FALSE(absl::StrContains(html, "data-chart=\"reverse_kl\"")) << "no distillation, no reverse KL chart";
  // The log's text cannot end the data script or add markup: only the page's own two </script> tags.
  size_t closes = 0;
  for (size_t at = html.find("</script>"); at != std::string::npos; at = html.find("</script>", at + 1)) ++closes;
  EXPECT_EQ(closes, 2u);
  EXPECT_FALSE(absl::StrContains(html, "<img src=x"));
  EXPECT_TRUE(absl::StrContains(html, "&lt;img src=x onerror=alert(1)&gt; &amp; friends"));
  EXPECT_TRUE(absl::StrContains(html, "Top 3 samples by reward"));
  EXPECT_EQ(HtmlEscape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}

TEST(ReportHtml, DistillationRunsChartTheReverseKlNextToTheReward) {
  ScratchDir dir;
  WriteDemoRun(dir.path(), /*distill=*/true);
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs logs, LoadRunLogs(dir.path()));
  const std::string html = RenderHtmlReport(logs, Summarize(logs, SummaryOptions()), ReportOptions());
  // The demo run's 13 charts and the reverse KL.
  EXPECT_EQ(ReportChartCount(logs, ReportOptions()), 14);
  EXPECT_TRUE(absl::StrContains(html, "data-charts-expected=\"14\""));
  const size_t reward = html.find("data-chart=\"reward\""), reverse_kl = html.find("data-chart=\"reverse_kl\""),
               eval = html.find("data-chart=\"eval\"");
  ASSERT_NE(reverse_kl, std::string::npos);
  EXPECT_LT(reward, reverse_kl);
  EXPECT_LT(reverse_kl, eval);
  EXPECT_TRUE(absl::StrContains(html, "\"reverse_kl\":{\"judge\":[[0,")) << "the chart's data";
  EXPECT_TRUE(absl::StrContains(html, "<th>reverse KL to teacher</th>")) << "the summary table";
}

// Headless Chromium's flags, with a profile of its own in `dir`.
std::string ChromiumFlags(const ScratchDir& dir) {
  return absl::StrCat(" --headless --no-sandbox --disable-gpu --disable-background-networking",
                      " --no-first-run --disable-extensions --user-data-dir=", dir.file("profile"),
                      " --enable-logging=stderr --v=0");
}

// `page` in headless Chromium: --dump-dom prints the DOM after the page's scripts ran, console messages go to
// stderr (2>file). Checks that the page expected `charts` charts and drew them all, with no JavaScript error
// and nothing wrong on the console; returns the DOM ("" when Chromium failed).
std::string RenderAndCheck(const std::string& chromium, const ScratchDir& dir, const std::string& page,
                           const std::string& charts) {
  const CommandResult dom = RunShell(absl::StrCat("timeout 180 ", chromium, ChromiumFlags(dir), " --dump-dom 'file://",
                                                  page, "' 2>'", dir.file("console.txt"), "'"));
  EXPECT_EQ(dom.exit_code, 0) << dom.output;
  if (dom.exit_code != 0) return "";
  const std::string expected = Attribute(dom.output, "data-charts-expected");
  EXPECT_EQ(expected, charts);
  EXPECT_EQ(Attribute(dom.output, "data-charts-drawn"), expected) << "not every chart drew";
  EXPECT_EQ(Attribute(dom.output, "data-errors"), "") << "JavaScript errors on the page";
  std::ifstream console_file(dir.file("console.txt"));
  const std::string console((std::istreambuf_iterator<char>(console_file)), std::istreambuf_iterator<char>());
  EXPECT_FALSE(absl::StrContains(console, "Uncaught")) << console;
  EXPECT_FALSE(RE2::PartialMatch(console, R"(CONSOLE\(\d+\).*(?i:error))")) << console;
  EXPECT_FALSE(absl::StrContains(console, "Content Security Policy")) << console;
  return dom.output;
}

// The report of `run_dir` written to <test cwd>/test_output/report/<name>; its path.
std::string WriteReportPage(const std::string& run_dir, const std::string& name) {
  absl::StatusOr<RunLogs> logs = LoadRunLogs(run_dir);
  EXPECT_TRUE(logs.ok()) << logs.status();
  if (!logs.ok()) return "";
  const std::string html = RenderHtmlReport(*logs, Summarize(*logs, SummaryOptions()), ReportOptions());
  const std::filesystem::path out_dir = std::filesystem::current_path() / "test_output" / "report";
  std::filesystem::create_directories(out_dir);
  const std::string page = (out_dir / name).string();
  std::ofstream file(page, std::ios::binary | std::ios::trunc);
  file << html;
  return page;
}

TEST(ReportHtml, RendersInHeadlessChromiumWithEveryChartDrawnAndNoErrors) {
  const std::string chromium = Chromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (tools/install-deps.sh installs it)";
  ScratchDir dir;
  WriteDemoRun(dir.path());
  const std::string page = WriteReportPage(dir.path(), "report.html");
  ASSERT_FALSE(page.empty());
  const std::string dom = RenderAndCheck(chromium, dir, page, "13");
  ASSERT_FALSE(dom.empty());
  EXPECT_FALSE(absl::StrContains(dom, "window.injected=1</script><b>")) << "log text escaped into markup";

  const std::string screenshot = (std::filesystem::path(page).parent_path() / "report.png").string();
  std::filesystem::remove(screenshot);
  const CommandResult shot =
      RunShell(absl::StrCat("timeout 180 ", chromium, ChromiumFlags(dir), " --hide-scrollbars",
                            " --window-size=1280,2400 --screenshot='", screenshot, "' 'file://", page, "' 2>&1"));
  ASSERT_EQ(shot.exit_code, 0) << shot.output;
  ASSERT_TRUE(std::filesystem::exists(screenshot)) << shot.output;
  std::ifstream png(screenshot, std::ios::binary);
  char magic[8] = {};
  png.read(magic, 8);
  EXPECT_EQ(std::string(magic, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_GT(std::filesystem::file_size(screenshot), 20000u) << "a blank page would be tiny";
  std::printf("report screenshot: %s\n", screenshot.c_str());
}

TEST(ReportHtml, DrawsTheReverseKlChartInHeadlessChromium) {
  const std::string chromium = Chromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (tools/install-deps.sh installs it)";
  ScratchDir dir;
  WriteDemoRun(dir.path(), /*distill=*/true);
  const std::string page = WriteReportPage(dir.path(), "report-distill.html");
  ASSERT_FALSE(page.empty());
  EXPECT_TRUE(absl::StrContains(RenderAndCheck(chromium, dir, page, "14"), "data-chart=\"reverse_kl\""));
}

}  // namespace
}  // namespace rlj::logs
