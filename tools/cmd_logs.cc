// cmd_logs.cc: `rlj logs RUN_DIR <view>`: the reward log of a run read back for people: summary, tail,
// top/bottom by reward, one sample in full, grep, the reward curve, errors by kind, export, the HTML report,
// two runs compared, and the logged samples re-scored offline by another judge.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config_loader.h"
#include "common/grpc_security.h"
#include "common/shutdown.h"
#include "common/status.h"
#include "judge/backend_registry.h"
#include "judge/quality/rescore.h"
#include "logs/compare.h"
#include "logs/curve_points.h"
#include "logs/export.h"
#include "logs/report_html.h"
#include "logs/run_logs.h"
#include "logs/step_series.h"
#include "logs/summary.h"
#include "logs/terminal_text.h"
#include "tools/command.h"

namespace rlj::tools {

namespace {

using logs::FormatNumber;
using logs::OneLine;

struct LogsFlags {
  std::string run_dir;  // `rlj logs RUN_DIR <view>`
  std::string config;   // run config whose quality section sets the summary thresholds
  int width = 0;        // 0 = the terminal's
};

int Width(const LogsFlags& flags) { return flags.width > 0 ? flags.width : logs::TerminalWidth(); }

absl::StatusOr<logs::RunLogs> Load(const std::string& run_dir, bool with_text) {
  if (run_dir.empty()) return absl::InvalidArgumentError("give the run directory: rlj logs RUN_DIR <view>");
  RewardLogReadOptions options;
  options.with_text = with_text;
  return logs::LoadRunLogs(run_dir, options);
}

absl::StatusOr<logs::SummaryOptions> SummaryOptionsFor(const LogsFlags& flags) {
  if (flags.config.empty()) return logs::SummaryOptionsFromConfig(v1::QualityConfig());
  RLJ_ASSIGN_OR_RETURN(v1::RunConfig config, LoadRunConfig(flags.config));
  return logs::SummaryOptionsFromConfig(config.quality());
}

std::string RewardText(const RewardLogRow& row) {
  return row.reward.has_value() ? FormatNumber(*row.reward) : absl::StrCat("error:", row.error_kind);
}

// One line per row: what fits a terminal, long text cut.
std::string RowsTable(const std::vector<const RewardLogRow*>& rows, int width) {
  logs::TextTable table;
  table.AddColumn("row");
  table.AddColumn("step", true);
  table.AddColumn("kind");
  table.AddColumn("actor");
  table.AddColumn("reward", true);
  table.AddColumn("ms", true);
  table.AddColumn("prompt", false, true);
  table.AddColumn("completion", false, true);
  for (const RewardLogRow* row : rows) {
    table.AddRow({logs::RowKey(*row), absl::StrCat(row->policy_version), row->kind, row->actor, RewardText(*row),
                  absl::StrFormat("%.0f", row->latency_ms), OneLine(row->prompt, 60), OneLine(row->completion, 80)});
  }
  return table.Render(width);
}

void PrintRows(const std::vector<const RewardLogRow*>& rows, int width) {
  if (rows.empty()) {
    std::printf("(no rows)\n");
    return;
  }
  std::printf("%s", RowsTable(rows, width).c_str());
}

std::string ShowRow(const RewardLogRow& row) {
  std::string out;
  auto field = [&](const std::string& name, const std::string& value) {
    absl::StrAppend(&out, absl::StrFormat("%-15s %s\n", name + ":", value));
  };
  auto block = [&](const std::string& name, const std::string& value) {
    absl::StrAppend(&out, "--- ", name, " ---\n", value.empty() ? "(empty)" : value, "\n");
  };
  field("row", logs::RowKey(row));
  field("kind", row.kind);
  field("run", row.run);
  field("step", absl::StrCat(row.policy_version, " (policy version that sampled it)"));
  field("actor", row.actor);
  field("sample", row.sample_id);
  field("prompt id", row.prompt_id);
  field("group", absl::StrCat(row.group_id, " #", row.index_in_group));
  field("reward", RewardText(row));
  field("components", row.components_json.empty() ? "{}" : row.components_json);
  if (row.expected_reward.has_value()) field("expected", FormatNumber(*row.expected_reward));
  if (row.canary_pass.has_value()) field("canary", *row.canary_pass ? "pass" : "FAIL");
  field("judge", absl::StrCat(row.backend, row.model.empty() ? "" : "/", row.model));
  field("latency", absl::StrFormat("%.1f ms%s", row.latency_ms, row.cache_hit ? " (cache hit)" : ""));
  field("tokens", absl::StrCat(row.tokens_in, " in, ", row.tokens_out, " out"));
  field("cost", absl::StrFormat("$%.6f", row.cost_usd));
  field("time", absl::StrFormat("%.3f (Unix seconds)", row.time_unix_s));
  if (!row.error_kind.empty() || !row.error_message.empty())
    field("error", absl::StrCat(row.error_kind, ": ", row.error_message));
  block("prompt", row.prompt);
  block("completion", row.completion);
  block("reference", row.reference);
  block("rationale", row.rationale);
  block("teacher's raw answer", row.raw_response);
  return out;
}

int RunSummaryView(const LogsFlags& flags, bool json) {
  auto options = SummaryOptionsFor(flags);
  if (!options.ok()) return Fail("logs summary", std::string(options.status().message()));
  auto run = Load(flags.run_dir, /*with_text=*/false);
  if (!run.ok()) return Fail("logs summary", std::string(run.status().message()));
  const logs::RunSummary summary = logs::Summarize(*run, *options);
  if (json) {
    std::printf("%s\n", logs::SummaryToJson(summary).dump(2).c_str());
  } else {
    std::printf("%s", logs::FormatSummary(summary, Width(flags)).c_str());
  }
  return 0;
}

int RunTail(const LogsFlags& flags, int count, bool follow) {
  auto run = Load(flags.run_dir, /*with_text=*/true);
  if (!run.ok()) return Fail("logs tail", std::string(run.status().message()));
  std::vector<const RewardLogRow*> last;
  const size_t begin =
      run->rows.size() > static_cast<size_t>(std::max(0, count)) ? run->rows.size() - static_cast<size_t>(count) : 0;
  for (size_t i = begin; i < run->rows.size(); ++i) last.push_back(&run->rows[i]);
  PrintRows(last, Width(flags));
  if (!follow) return 0;
  std::fflush(stdout);
  InstallShutdownHandler();
  RewardLogReadOptions options;
  for (const RewardLogRow& row : run->rows)
    options.after_id[row.replica] = std::max(options.after_id[row.replica], row.id);
  // New rows are polled for every half second until Ctrl-C.
  while (!WaitForShutdown(std::chrono::milliseconds(500))) {
    auto fresh = ReadRewardLog(run->reward_log, options);
    if (!fresh.ok()) return Fail("logs tail", std::string(fresh.status().message()));
    if (fresh->empty()) continue;
    std::vector<const RewardLogRow*> pointers;
    for (const RewardLogRow& row : *fresh) {
      options.after_id[row.replica] = std::max(options.after_id[row.replica], row.id);
      pointers.push_back(&row);
    }
    std::printf("%s", RowsTable(pointers, Width(flags)).c_str());
    std::fflush(stdout);
  }
  return 0;
}

int RunRanked(const LogsFlags& flags, int count, bool highest) {
  const std::string command = highest ? "logs top" : "logs bottom";
  if (count <= 0) return Fail(command, "N must be positive");
  auto run = Load(flags.run_dir, /*with_text=*/true);
  if (!run.ok()) return Fail(command, std::string(run.status().message()));
  const auto rows = logs::RankByReward(run->rows, static_cast<size_t>(count), highest);
  logs::TextTable table;
  table.AddColumn("row");
  table.AddColumn("step", true);
  table.AddColumn("reward", true);
  table.AddColumn("completion", false, true);
  table.AddColumn("rationale", false, true);
  for (const RewardLogRow* row : rows) {
    table.AddRow({logs::RowKey(*row), absl::StrCat(row->policy_version), RewardText(*row), OneLine(row->completion, 80),
                  OneLine(row->rationale, 80)});
  }
  if (rows.empty()) {
    std::printf("(no scored rows)\n");
  } else {
    std::printf("%s", table.Render(Width(flags)).c_str());
  }
  return 0;
}

int RunShow(const LogsFlags& flags, const std::string& key) {
  auto run = Load(flags.run_dir, /*with_text=*/true);
  if (!run.ok()) return Fail("logs show", std::string(run.status().message()));
  auto row = logs::FindRow(run->rows, key);
  if (!row.ok()) return Fail("logs show", std::string(row.status().message()));
  std::printf("%s", ShowRow(**row).c_str());
  return 0;
}

int RunGrep(const LogsFlags& flags, const std::string& pattern, int limit) {
  auto run = Load(flags.run_dir, /*with_text=*/true);
  if (!run.ok()) return Fail("logs grep", std::string(run.status().message()));
  auto found = logs::GrepRows(run->rows, pattern);
  if (!found.ok()) return Fail("logs grep", std::string(found.status().message()));
  const size_t total = found->size();
  if (limit > 0 && found->size() > static_cast<size_t>(limit)) found->resize(static_cast<size_t>(limit));
  PrintRows(*found, Width(flags));
  if (found->size() < total)
    std::fprintf(stderr, "(%zu of %zu matching rows shown; --limit 0 shows all)\n", found->size(), total);
  return 0;
}

int RunCurve(const LogsFlags& flags, const std::string& metric, int height) {
  auto run = Load(flags.run_dir, /*with_text=*/false);
  if (!run.ok()) return Fail("logs curve", std::string(run.status().message()));
  auto points = logs::CurvePoints(*run, metric);
  if (!points.ok()) return Fail("logs curve", std::string(points.status().message()));
  if (points->empty()) {
    std::printf("(no %s values in the log)\n", metric.c_str());
    return 0;
  }
  const int width = std::max(30, Width(flags) - 12);
  std::printf("%s", logs::PlotCurve(*points, width, std::max(5, height), logs::CurveLabel(metric)).c_str());
  return 0;
}

int RunErrors(const LogsFlags& flags) {
  auto run = Load(flags.run_dir, /*with_text=*/true);
  if (!run.ok()) return Fail("logs errors", std::string(run.status().message()));
  const auto groups = logs::GroupErrors(run->rows);
  if (groups.empty()) {
    std::printf("no failed verdicts in %zu rows\n", run->rows.size());
    return 0;
  }
  logs::TextTable table;
  table.AddColumn("kind");
  table.AddColumn("count", true);
  table.AddColumn("share", true);
  table.AddColumn("example row");
  table.AddColumn("latest message", false, true);
  for (const logs::ErrorGroup& group : groups) {
    table.AddRow(
        {group.kind, absl::StrCat(group.count),
         absl::StrFormat("%.1f%%", 100.0 * static_cast<double>(group.count) / static_cast<double>(run->rows.size())),
         group.example_key, OneLine(group.example_message, 100)});
  }
  std::printf("%s", table.Render(Width(flags)).c_str());
  return 0;
}

int RunExport(const LogsFlags& flags, const std::string& format, const std::string& output) {
  if (format != "jsonl" && format != "csv")
    return Fail("logs export", "--format is jsonl or csv, not '" + format + "'");
  auto run = Load(flags.run_dir, /*with_text=*/true);
  if (!run.ok()) return Fail("logs export", std::string(run.status().message()));
  std::ofstream file;
  std::ostream* out = &std::cout;
  if (!output.empty() && output != "-") {
    file.open(output, std::ios::binary | std::ios::trunc);
    if (!file) return Fail("logs export", "cannot write " + output);
    out = &file;
  }
  if (format == "jsonl") {
    logs::WriteJsonl(run->rows, *out);
  } else {
    logs::WriteCsv(run->rows, *out);
  }
  out->flush();
  if (!*out) return Fail("logs export", "writing " + (output.empty() ? std::string("stdout") : output) + " failed");
  if (out != &std::cout) std::fprintf(stderr, "%zu rows written to %s\n", run->rows.size(), output.c_str());
  return 0;
}

int RunReport(const LogsFlags& flags, const std::string& output, const std::string& title, int samples) {
  if (output.empty()) return Fail("logs report", "give the output file: -o report.html");
  auto options = SummaryOptionsFor(flags);
  if (!options.ok()) return Fail("logs report", std::string(options.status().message()));
  std::fprintf(stderr, "reading the reward log of %s…\n", flags.run_dir.c_str());
  auto run = Load(flags.run_dir, /*with_text=*/true);
  if (!run.ok()) return Fail("logs report", std::string(run.status().message()));
  std::fprintf(stderr, "%zu rows, %zu learner steps; rendering…\n", run->rows.size(), run->steps.size());
  const logs::RunSummary summary = logs::Summarize(*run, *options);
  logs::ReportOptions report;
  report.title = title;
  report.samples_shown = samples;
  const std::string html = logs::RenderHtmlReport(*run, summary, report);
  std::ofstream file(output, std::ios::binary | std::ios::trunc);
  file << html;
  file.close();
  if (!file) return Fail("logs report", "cannot write " + output);
  std::fprintf(stderr, "wrote %s (%zu bytes, %d charts)\n", output.c_str(), html.size(),
               logs::ReportChartCount(*run, report));
  return 0;
}

int RunCompare(const LogsFlags& flags, std::vector<std::string> runs, bool json) {
  if (!flags.run_dir.empty()) runs.insert(runs.begin(), flags.run_dir);
  if (runs.size() != 2) return Fail("logs compare", "compare takes two runs: rlj logs compare RUN_A RUN_B");
  auto options = SummaryOptionsFor(flags);
  if (!options.ok()) return Fail("logs compare", std::string(options.status().message()));
  std::vector<logs::RunForComparison> compared;
  for (const std::string& path : runs) {
    auto run = Load(path, /*with_text=*/false);
    if (!run.ok()) return Fail("logs compare", std::string(run.status().message()));
    compared.push_back({path, logs::Summarize(*run, *options), logs::ComputeStepSeries(run->rows)});
  }
  if (json) {
    std::printf("%s\n", logs::ComparisonToJson(compared[0], compared[1]).dump(2).c_str());
  } else {
    std::printf("%s", logs::FormatComparison(compared[0], compared[1], Width(flags)).c_str());
  }
  return 0;
}

int RunRescore(const LogsFlags& flags, const std::string& judge_config, const std::vector<std::string>& overrides,
               int limit, int batch, double threshold, bool json) {
  auto config = LoadRunConfig(judge_config, overrides);
  if (!config.ok()) return Fail("logs rescore", std::string(config.status().message()));
  // A remote backend dials another judge: with the config's TLS and token, like every rlj client.
  if (absl::Status s = InstallGrpcSecurity(config->security()); !s.ok()) {
    return Fail("logs rescore", std::string(s.message()));
  }
  auto backend = MakeJudgeBackend(config->judge());
  if (!backend.ok()) return Fail("logs rescore", std::string(backend.status().message()));
  auto run = Load(flags.run_dir, /*with_text=*/true);
  if (!run.ok()) return Fail("logs rescore", std::string(run.status().message()));
  RescoreOptions options;
  options.batch_size = static_cast<size_t>(std::max(1, batch));
  options.limit = static_cast<size_t>(std::max(0, limit));
  options.pass_threshold = threshold;
  options.progress = [](size_t done, size_t total) {
    std::fprintf(stderr, "\rrescored %zu / %zu", done, total);
    if (done == total) std::fprintf(stderr, "\n");
  };
  auto result = Rescore(run->rows, **backend, options);
  if (!result.ok()) return Fail("logs rescore", std::string(result.status().message()));
  const logs::AgreementStats& a = result->agreement;
  if (json) {
    nlohmann::json out = {{"judge", (*backend)->name()},
                          {"model", (*backend)->model()},
                          {"rows", result->rows.size()},
                          {"failed", result->failed},
                          {"pairs", a.pairs},
                          {"spearman", logs::JsonNumber(a.spearman)},
                          {"pearson", logs::JsonNumber(a.pearson)},
                          {"mean_abs_diff", logs::JsonNumber(a.mean_abs_diff)},
                          {"decision_agreement", logs::JsonNumber(a.decision_agreement)},
                          {"pass_threshold", threshold},
                          {"with_reference", a.with_reference},
                          {"original_accuracy", logs::JsonNumber(a.original_accuracy)},
                          {"rescored_accuracy", logs::JsonNumber(a.rescored_accuracy)}};
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("rescored %zu samples with %s%s%s (%lld failed)\n", result->rows.size(), (*backend)->name().c_str(),
              (*backend)->model().empty() ? "" : "/", (*backend)->model().c_str(),
              static_cast<long long>(result->failed));
  std::printf("pairs               %lld\n", static_cast<long long>(a.pairs));
  std::printf("spearman            %s\n", FormatNumber(a.spearman).c_str());
  std::printf("pearson             %s\n", FormatNumber(a.pearson).c_str());
  std::printf("mean |diff|         %s\n", FormatNumber(a.mean_abs_diff).c_str());
  std::printf("pass/fail agreement %s (reward >= %s passes)\n", FormatNumber(a.decision_agreement).c_str(),
              FormatNumber(threshold).c_str());
  if (a.with_reference > 0) {
    std::printf("accuracy vs reference over %lld samples: logged judge %s, new judge %s\n",
                static_cast<long long>(a.with_reference), FormatNumber(a.original_accuracy).c_str(),
                FormatNumber(a.rescored_accuracy).c_str());
  } else {
    std::printf("accuracy vs reference: no samples with a reference\n");
  }
  return 0;
}

Command AddLogsCommand(CLI::App& parent) {
  auto* app = parent.add_subcommand("logs", "Inspect a run's reward log: rlj logs RUN_DIR <view>");
  app->require_subcommand(1);
  auto flags = std::make_shared<LogsFlags>();
  app->add_option("run_dir", flags->run_dir, "Run directory (or a reward_log directory or one .sqlite file)");
  app->add_option("--config", flags->config, "Run config whose quality section sets the summary thresholds");
  app->add_option("--width", flags->width, "Output width in columns (default: the terminal's)");

  struct ViewFlags {
    bool json = false;
    bool follow = false;
    int count = 20;
    int top = 10;
    std::string key;
    std::string pattern;
    int limit = 200;
    std::string metric = "reward";
    int height = 16;
    std::string format = "jsonl";
    std::string output;
    std::string title;
    int samples = 10;
    std::vector<std::string> runs;
    std::string judge;
    std::vector<std::string> overrides;
    int rescore_limit = 0;
    int batch = 32;
    double threshold = 0.5;
  };
  auto view = std::make_shared<ViewFlags>();
  auto chosen = std::make_shared<std::function<int()>>();

  auto* summary =
      app->add_subcommand("summary", "Counts, reward spread and trend, latency, cost, errors, quality signals");
  summary->add_flag("--json", view->json, "One JSON object");
  summary->callback([=] { *chosen = [=] { return RunSummaryView(*flags, view->json); }; });

  auto* tail = app->add_subcommand("tail", "The latest rows; -f follows new ones");
  tail->add_flag("-f,--follow", view->follow, "Keep printing rows as they are logged (Ctrl-C stops)");
  tail->add_option("-n,--rows", view->count, "Rows shown")->capture_default_str();
  tail->callback([=] { *chosen = [=] { return RunTail(*flags, view->count, view->follow); }; });

  auto* top = app->add_subcommand("top", "The N highest-rewarded samples with the judge's rationale");
  top->add_option("N", view->top, "How many")->capture_default_str();
  top->callback([=] { *chosen = [=] { return RunRanked(*flags, view->top, true); }; });

  auto* bottom = app->add_subcommand("bottom", "The N lowest-rewarded samples with the judge's rationale");
  bottom->add_option("N", view->top, "How many")->capture_default_str();
  bottom->callback([=] { *chosen = [=] { return RunRanked(*flags, view->top, false); }; });

  auto* show = app->add_subcommand("show", "One sample in full, with the teacher's raw answer");
  show->add_option("ID", view->key, "Row id: REPLICA:ID (judge-0:17) or ID")->required();
  show->callback([=] { *chosen = [=] { return RunShow(*flags, view->key); }; });

  auto* grep =
      app->add_subcommand("grep", "Rows whose prompt, completion, reference, rationale, answer or error matches");
  grep->add_option("PATTERN", view->pattern, "RE2 regular expression, unanchored")->required();
  grep->add_option("--limit", view->limit, "Rows shown at most; 0 = all")->capture_default_str();
  grep->callback([=] { *chosen = [=] { return RunGrep(*flags, view->pattern, view->limit); }; });

  auto* curve = app->add_subcommand("curve", "A per-step curve in the terminal (reward with its p10..p90 band)");
  curve->add_option("--metric", view->metric, logs::CurveMetricNames(" | "))->capture_default_str();
  curve->add_option("--height", view->height, "Plot rows")->capture_default_str();
  curve->callback([=] { *chosen = [=] { return RunCurve(*flags, view->metric, view->height); }; });

  auto* errors = app->add_subcommand("errors", "Failed verdicts grouped by kind, with the latest message of each");
  errors->callback([=] { *chosen = [=] { return RunErrors(*flags); }; });

  auto* exporter = app->add_subcommand("export", "Every row and column as JSON lines or CSV");
  exporter->add_option("--format", view->format, "jsonl | csv")->capture_default_str();
  exporter->add_option("-o,--output", view->output, "File to write (default stdout)");
  exporter->callback([=] { *chosen = [=] { return RunExport(*flags, view->format, view->output); }; });

  auto* report =
      app->add_subcommand("report", "A self-contained HTML report (charts, summary, top and bottom samples)");
  report->add_option("-o,--output", view->output, "HTML file to write")->required();
  report->add_option("--title", view->title, "Page title");
  report->add_option("--samples", view->samples, "Top and bottom samples shown, each")->capture_default_str();
  report->callback([=] { *chosen = [=] { return RunReport(*flags, view->output, view->title, view->samples); }; });

  auto* compare = app->add_subcommand("compare", "Two runs side by side: rlj logs compare RUN_A RUN_B");
  compare->add_option("RUNS", view->runs, "Run directories (one when RUN_DIR is given before 'compare')");
  compare->add_flag("--json", view->json, "One JSON object");
  compare->callback([=] { *chosen = [=] { return RunCompare(*flags, view->runs, view->json); }; });

  auto* rescore = app->add_subcommand(
      "rescore", "Score the logged samples again with another judge, offline, and report agreement");
  rescore->add_option("--judge", view->judge, "Run config (YAML) whose judge section builds the new judge")->required();
  rescore->add_option("--set", view->overrides, "Override a key of that config: key=value (repeatable)");
  rescore->add_option("--limit", view->rescore_limit, "Samples rescored at most; 0 = all")->capture_default_str();
  rescore->add_option("--batch", view->batch, "Samples per judge call")->capture_default_str();
  rescore->add_option("--threshold", view->threshold, "Reward at or above which a sample passes")
      ->capture_default_str();
  rescore->add_flag("--json", view->json, "One JSON object");
  rescore->callback([=] {
    *chosen = [=] {
      return RunRescore(*flags, view->judge, view->overrides, view->rescore_limit, view->batch, view->threshold,
                        view->json);
    };
  });

  return {
      app, [chosen]() -> int {
        if (!*chosen)
          return Fail(
              "logs",
              "choose a view: summary, tail, top, bottom, show, grep, curve, errors, export, report, compare, rescore");
        return (*chosen)();
      }};
}

}  // namespace

RLJ_REGISTER_COMMAND("", 75, AddLogsCommand);

}  // namespace rlj::tools
