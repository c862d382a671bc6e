// report_html.h: the run report as one self-contained HTML file (`rlj logs report -o report.html`): inline
// CSS and JavaScript, charts drawn by hand on <canvas>, no network access. Reward curve with a spread band,
// the reverse KL to the teacher (distillation runs), reward histograms over step ranges, per-component curves,
// judge latency and cost over time, error and cache-hit rates, canary accuracy, learner metrics, the summary,
// and the top and bottom samples with the judge's rationale. The page reports on itself in <body>:
// data-charts-expected, data-charts-drawn and data-errors (filled by window.onerror), so a headless browser can
// check it.
#pragma once

#include <string>

#include "logs/run_logs.h"
#include "logs/summary.h"

namespace rlj::logs {

struct ReportOptions {
  std::string title;         // default: "rlj run <run names>"
  int samples_shown = 10;    // top and bottom samples each
  int histogram_ranges = 4;  // step ranges with their own reward histogram
  int histogram_bins = 20;
  size_t max_field_chars = 4000;  // longer prompts/completions/rationales are cut (the full text is in the log)
};

// The number of <canvas> charts RenderHtmlReport draws for `logs` (what data-charts-expected says).
int ReportChartCount(const RunLogs& logs, const ReportOptions& options);

std::string RenderHtmlReport(const RunLogs& logs, const RunSummary& summary, const ReportOptions& options);

// `text` with &, <, >, " and ' escaped for HTML text and attribute values.
std::string HtmlEscape(const std::string& text);

}  // namespace rlj::logs
