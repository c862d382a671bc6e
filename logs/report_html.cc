// report_html.cc: renders the self-contained HTML report: the data as embedded JSON, the charts drawn by a
// small inline canvas library, the summary and sample tables as escaped HTML.
#include "logs/report_html.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "logs/distill_signal.h"
#include "logs/statistics.h"
#include "logs/step_series.h"
#include "logs/terminal_text.h"

namespace rlj::logs {
namespace {

// Contiguous ranges of the steps that have rewards, at most `ranges` of them (at least one, maybe empty).
std::vector<std::pair<int64_t, int64_t>> StepRanges(const std::vector<StepStats>& series, int ranges) {
  std::vector<int64_t> steps;
  for (const StepStats& s : series) {
    if (s.scored > 0) steps.push_back(s.step);
  }
  std::vector<std::pair<int64_t, int64_t>> out;
  if (steps.empty()) return {{0, 0}};
  const size_t n = std::min(steps.size(), static_cast<size_t>(std::max(1, ranges)));
  for (size_t i = 0; i < n; ++i) {
    const size_t begin = i * steps.size() / n;
    const size_t end = (i + 1) * steps.size() / n - 1;
    out.emplace_back(steps[begin], steps[end]);
  }
  return out;
}

std::string Cut(const std::string& text, size_t max_chars) {
  if (DisplayWidth(text) <= max_chars) return text;
  std::string cut = OneLine(text, max_chars);  // (one line is fine for the cut tail; the full text is in the log)
  return cut + " [cut; full text: rlj logs show]";
}

std::string EmbedJson(const nlohmann::json& value) {
  // "<" only occurs inside JSON strings, where \u003c means the same; no "</script>" can end the block early.
  return absl::StrReplaceAll(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                             {{"<", "\\u003c"}, {">", "\\u003e"}, {"&", "\\u0026"}});
}

std::string FormatUtc(double unix_s) {
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M UTC", &tm);
  return buffer;
}

std::string SamplesTable(const std::vector<const RewardLogRow*>& rows, const ReportOptions& options) {
  if (rows.empty()) return "<p class=\"empty\">No scored samples.</p>";
  std::string html =
      "<table class=\"samples\"><thead><tr><th>row</th><th>step</th><th>reward</th><th>prompt</th>"
      "<th>completion</th><th>reference</th><th>rationale</th></tr></thead><tbody>";
  for (const RewardLogRow* row : rows) {
    std::string rationale = HtmlEscape(Cut(row->rationale, options.max_field_chars));
    if (!row->raw_response.empty()) {
      rationale += absl::StrCat("<details><summary>teacher's raw answer</summary><pre>",
                                HtmlEscape(Cut(row->raw_response, options.max_field_chars)), "</pre></details>");
    }
    html += absl::StrCat("<tr><td class=\"key\">", HtmlEscape(RowKey(*row)), "</td><td>", row->policy_version,
                         "</td><td class=\"num\">", FormatNumber(row->reward.value_or(NAN)), "</td><td><pre>",
                         HtmlEscape(Cut(row->prompt, options.max_field_chars)), "</pre></td><td><pre>",
                         HtmlEscape(Cut(row->completion, options.max_field_chars)), "</pre></td><td><pre>",
                         HtmlEscape(Cut(row->reference, options.max_field_chars)), "</pre></td><td>", rationale,
                         "</td></tr>");
  }
  return html + "</tbody></table>";
}

std::string SummaryTable(const RunSummary& s) {
  const auto percent = [](double f) { return std::isnan(f) ? std::string("-") : FormatNumber(100 * f, 1) + "%"; };
  std::vector<std::pair<std::string, std::string>> items = {
      {"verdicts",
       absl::StrCat(s.train_rows, " train, ", s.canary_rows, " canary, ", s.consistency_rows, " re-scored")},
      {"steps", absl::StrCat(s.first_step, " – ", s.last_step)},
      {"reward mean ± std", absl::StrCat(FormatNumber(s.reward_mean), " ± ", FormatNumber(s.reward_std))},
      {"reward first → last step",
       absl::StrCat(FormatNumber(s.reward_first_step_mean), " → ", FormatNumber(s.reward_last_step_mean))},
      {"failed verdicts", absl::StrCat(s.errors, " (", percent(s.error_rate), ")")},
      {"judge latency p50 / p95",
       absl::StrCat(FormatNumber(s.latency_ms_p50, 1), " / ", FormatNumber(s.latency_ms_p95, 1), " ms")},
      {"judge cost", absl::StrCat("$", FormatNumber(s.cost_usd, 4))},
      {"cache hits", percent(s.cache_hit_rate)},
      {"canary accuracy", s.canary.total > 0 ? absl::StrCat(percent(s.canary.accuracy), " of ", s.canary.total) : "-"},
      {"self-consistency", s.consistency.pairs > 0 ? absl::StrCat(percent(s.consistency.agreement_rate), " of ",
                                                                  s.consistency.pairs, " pairs")
                                                   : "-"},
      {"reward~length (Spearman)", s.length_all.enough ? FormatNumber(s.length_all.spearman, 2) : "-"},
  };
  if (s.reverse_kl.samples > 0) {
    for (auto& line : ReverseKlLines(s.reverse_kl)) items.push_back(std::move(line));
  }
  std::string html = "<table class=\"summary\"><tbody>";
  for (const auto& [key, value] : items) {
    html += absl::StrCat("<tr><th>", HtmlEscape(key), "</th><td>", HtmlEscape(value), "</td></tr>");
  }
  return html + "</tbody></table>";
}

constexpr char kStyle[] = R"css(
:root { --fg:#1d232a; --muted:#68737d; --line:#d8dee4; --bg:#ffffff; --panel:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg);
       margin: 0 auto; padding: 24px; max-width: 1280px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.meta { color: var(--muted); margin-bottom: 12px; }
.warnings { background: #fff4e5; border: 1px solid #f0b86e; border-radius: 6px; padding: 8px 14px; }
.warnings li { margin: 2px 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 16px; }
.chart { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.chart h3 { font-size: 13px; margin: 0 0 6px; font-weight: 600; }
.chart canvas { width: 100%; height: 220px; display: block; }
.legend { font-size: 12px; color: var(--muted); min-height: 16px; }
.legend span { margin-right: 12px; white-space: nowrap; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
table { border-collapse: collapse; width: 100%; }
table.summary { width: auto; } table.summary th { text-align: left; font-weight: 500; color: var(--muted); padding: 2px 16px 2px 0; }
table.samples th, table.samples td { border-top: 1px solid var(--line); padding: 6px; vertical-align: top; text-align: left; }
table.samples pre { margin: 0; white-space: pre-wrap; word-break: break-word; max-height: 14em; overflow: auto;
                    font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } td.key { white-space: nowrap; color: var(--muted); }
details summary { cursor: pointer; color: var(--muted); font-size: 12px; }
.empty { color: var(--muted); }
#tip { position: fixed; pointer-events: none; background: #1d232a; color: #fff; font-size: 12px; padding: 3px 6px;
       border-radius: 4px; display: none; white-space: pre; }
)css";

// The chart library and the page's charts; reads the JSON in #rlj-data. Every chart that draws (data or a
// "no data" note) counts into data-charts-drawn; any error lands in data-errors.
constexpr char kScript[] = R"js(
(function () {
  'use strict';
  var body = document.body;
  var errors = [];
  function report() {
    body.setAttribute('data-errors', errors.join(' | '));
  }
  window.onerror = function (message, source, line) {
    errors.push(String(message) + ' (line ' + line + ')');
    report();
  };
  var drawn = 0;
  var PALETTE = ['#2f6fdf', '#e8663d', '#2e9e5b', '#9b59b6', '#c9a227', '#17a2b8', '#d6336c', '#6c757d'];

  function setup(canvas) {
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.clientWidth || 400, height = canvas.clientHeight || 220;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    var ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = '11px system-ui, sans-serif';
    return { ctx: ctx, width: width, height: height, left: 52, right: 10, top: 10, bottom: 26 };
  }
  function finite(v) { return typeof v === 'number' && isFinite(v); }
  function fmt(v) {
    if (!finite(v)) return '-';
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(1);
    if (a >= 100) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    return v.toFixed(a >= 1 ? 2 : 3);
  }
  function noData(canvas, note) {
    var g = setup(canvas);
    g.ctx.fillStyle = '#68737d';
    g.ctx.textAlign = 'center';
    g.ctx.fillText(note || 'no data in this run', g.width / 2, g.height / 2);
    drawn++;
  }
  function axes(g, xMin, xMax, yMin, yMax, yPercent) {
    var ctx = g.ctx, w = g.width - g.left - g.right, h = g.height - g.top - g.bottom;
    ctx.strokeStyle = '#d8dee4';
    ctx.fillStyle = '#68737d';
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    for (var i = 0; i <= 4; i++) {
      var y = g.top + h - (h * i) / 4;
      ctx.beginPath(); ctx.moveTo(g.left, y + 0.5); ctx.lineTo(g.left + w, y + 0.5); ctx.stroke();
      var value = yMin + ((yMax - yMin) * i) / 4;
      ctx.fillText(yPercent ? fmt(100 * value) + '%' : fmt(value), g.left - 4, y + 4);
    }
    ctx.textAlign = 'center';
    // Steps are whole numbers: over a short range, one tick per step instead of quarter steps.
    var span = xMax - xMin, ticks = 4;
    if (g.integerX && span <= 8 && Math.abs(span - Math.round(span)) < 1e-9) ticks = Math.max(1, Math.round(span));
    for (var j = 0; j <= ticks; j++) {
      var x = g.left + (w * j) / ticks;
      var xv = xMin + (span * j) / ticks;
      ctx.fillText(g.integerX || Math.abs(span) >= 8 ? Math.round(xv) : fmt(xv), x, g.height - 8);
    }
    return {
      x: function (v) { return g.left + ((v - xMin) / (xMax - xMin)) * w; },
      y: function (v) { return g.top + h - ((v - yMin) / (yMax - yMin)) * h; }
    };
  }
  function legend(canvas, items) {
    var box = canvas.parentNode.querySelector('.legend');
    if (!box) return;
    box.textContent = '';
    items.forEach(function (item) {
      var span = document.createElement('span');
      var swatch = document.createElement('i');
      swatch.style.background = item.color;
      span.appendChild(swatch);
      span.appendChild(document.createTextNode(item.name));
      box.appendChild(span);
    });
  }
  // spec: {series: [{name, color, points: [[x, y]], dash}], bands: [{name, color, points: [[x, lo, hi]]}],
  //        yMin, yMax, percent}
  function lineChart(canvas, spec) {
    var xs = [], ys = [];
    spec.series.forEach(function (s) { s.points.forEach(function (p) { if (finite(p[1])) { xs.push(p[0]); ys.push(p[1]); } }); });
    (spec.bands || []).forEach(function (b) { b.points.forEach(function (p) {
      if (finite(p[1]) && finite(p[2])) { xs.push(p[0]); ys.push(p[1]); ys.push(p[2]); } }); });
    if (xs.length === 0) { noData(canvas, spec.empty); return; }
    var g = setup(canvas);
    g.integerX = xs.every(function (x) { return x === Math.round(x); });
    var xMin = Math.min.apply(null, xs), xMax = Math.max.apply(null, xs);
    var yMin = finite(spec.yMin) ? spec.yMin : Math.min.apply(null, ys);
    var yMax = finite(spec.yMax) ? spec.yMax : Math.max.apply(null, ys);
    if (xMax === xMin) { xMin -= 1; xMax += 1; }
    if (yMax - yMin < 1e-12) { yMin -= 0.5; yMax += 0.5; }
    var pad = (yMax - yMin) * 0.05;
    if (!finite(spec.yMin)) yMin -= pad;
    if (!finite(spec.yMax)) yMax += pad;
    var s = axes(g, xMin, xMax, yMin, yMax, spec.percent);
    var ctx = g.ctx;
    (spec.bands || []).forEach(function (b) {
      var pts = b.points.filter(function (p) { return finite(p[1]) && finite(p[2]); });
      if (pts.length === 0) return;
      ctx.fillStyle = b.color;
      ctx.beginPath();
      pts.forEach(function (p, i) { if (i === 0) ctx.moveTo(s.x(p[0]), s.y(p[2])); else ctx.lineTo(s.x(p[0]), s.y(p[2])); });
      for (var i = pts.length - 1; i >= 0; i--) ctx.lineTo(s.x(pts[i][0]), s.y(pts[i][1]));
      ctx.closePath();
      ctx.fill();
      if (pts.length === 1) ctx.fillRect(s.x(pts[0][0]) - 2, s.y(pts[0][2]), 4, s.y(pts[0][1]) - s.y(pts[0][2]));
    });
    spec.series.forEach(function (series) {
      var pts = series.points.filter(function (p) { return finite(p[1]); });
      ctx.strokeStyle = series.color;
      ctx.fillStyle = series.color;
      ctx.lineWidth = 1.8;
      ctx.setLineDash(series.dash ? [5, 4] : []);
      ctx.beginPath();
      pts.forEach(function (p, i) { if (i === 0) ctx.moveTo(s.x(p[0]), s.y(p[1])); else ctx.lineTo(s.x(p[0]), s.y(p[1])); });
      ctx.stroke();
      ctx.setLineDash([]);
      if (pts.length <= 40) pts.forEach(function (p) { ctx.beginPath(); ctx.arc(s.x(p[0]), s.y(p[1]), 2.2, 0, 2 * Math.PI); ctx.fill(); });
    });
    legend(canvas, spec.series.concat(spec.bands || []));
    hover(canvas, spec, s);
    drawn++;
  }
  function histogram(canvas, h, color) {
    var total = h.counts.reduce(function (a, b) { return a + b; }, 0);
    if (total === 0) { noData(canvas, 'no scored samples'); return; }
    var g = setup(canvas);
    var top = Math.max.apply(null, h.counts);
    var s = axes(g, h.low, h.high, 0, top * 1.05, false);
    var width = (h.high - h.low) / h.counts.length;
    g.ctx.fillStyle = color;
    h.counts.forEach(function (c, i) {
      var x0 = s.x(h.low + i * width), x1 = s.x(h.low + (i + 1) * width);
      g.ctx.fillRect(x0 + 1, s.y(c), Math.max(1, x1 - x0 - 2), s.y(0) - s.y(c));
    });
    legend(canvas, [{ name: h.label + ' · ' + total + ' samples', color: color }]);
    drawn++;
  }
  var tip = document.getElementById('tip');
  function hover(canvas, spec, scale) {
    canvas.addEventListener('mousemove', function (event) {
      var rect = canvas.getBoundingClientRect();
      var mx = event.clientX - rect.left, best = null, bestDist = 1e9;
      spec.series.forEach(function (series) {
        series.points.forEach(function (p) {
          if (!finite(p[1])) return;
          var d = Math.abs(scale.x(p[0]) - mx);
          if (d < bestDist) { bestDist = d; best = { name: series.name, p: p }; }
        });
      });
      if (!best || bestDist > 30) { tip.style.display = 'none'; return; }
      tip.textContent = best.name + '\nstep ' + best.p[0] + ': ' + (spec.percent ? fmt(100 * best.p[1]) + '%' : fmt(best.p[1]));
      tip.style.left = (event.clientX + 12) + 'px';
      tip.style.top = (event.clientY + 12) + 'px';
      tip.style.display = 'block';
    });
    canvas.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
  }

  function column(rows, key) { return rows.map(function (r) { return [r.step, r[key]]; }); }
  function chart(id) { return document.querySelector('canvas[data-chart="' + id + '"]'); }
  function safely(id, draw) {
    try { draw(); } catch (e) { errors.push(id + ': ' + (e && e.message ? e.message : String(e))); }
  }

  var data = JSON.parse(document.getElementById('rlj-data').textContent);
  var steps = data.steps, learner = data.learner;
  safely('reward', function () {
    var series = [{ name: 'reward mean', color: PALETTE[0], points: column(steps, 'mean') }];
    if (learner.length > 0) series.push({ name: 'learner reward_mean', color: PALETTE[1], dash: true, points: column(learner, 'reward_mean') });
    lineChart(chart('reward'), {
      series: series,
      bands: [{ name: 'min–max', color: 'rgba(47,111,223,0.10)', points: steps.map(function (r) { return [r.step, r.min, r.max]; }) },
              { name: 'p10–p90', color: 'rgba(47,111,223,0.25)', points: steps.map(function (r) { return [r.step, r.p10, r.p90]; }) }]
    });
  });
  data.histograms.forEach(function (h, i) {
    safely('histogram-' + i, function () { histogram(chart('histogram-' + i), h, PALETTE[i % PALETTE.length]); });
  });
  // Distillation runs only (data.reverse_kl is absent otherwise, and so is the chart).
  if (data.reverse_kl) safely('reverse_kl', function () {
    var series = [{ name: 'verdicts (step mean)', color: PALETTE[6], points: data.reverse_kl.judge }];
    if (data.reverse_kl.learner.length > 0) {
      series.push({ name: 'learner teacher_reverse_kl', color: PALETTE[1], dash: true, points: data.reverse_kl.learner });
    }
    lineChart(chart('reverse_kl'), { series: series });
  });
  safely('eval', function () {
    var kinds = [['periodic', 'held-out accuracy', PALETTE[0]], ['before', 'before RL', PALETTE[4]], ['after', 'after RL', PALETTE[2]]];
    lineChart(chart('eval'), { yMin: 0, yMax: 1, percent: true,
      empty: 'no held-out evaluation in this run (data.eval_path, eval.every_steps)',
      series: kinds.map(function (k) {
        return { name: k[1], color: k[2], points: data.eval.filter(function (p) { return p.kind === k[0]; })
                                                    .map(function (p) { return [p.step, p.accuracy]; }) }; })
        .filter(function (s) { return s.points.length > 0; }) });
  });
  safely('components', function () {
    var names = {};
    steps.forEach(function (r) { Object.keys(r.components).forEach(function (k) { names[k] = true; }); });
    var series = Object.keys(names).sort().map(function (name, i) {
      return { name: name, color: PALETTE[i % PALETTE.length], points: steps.map(function (r) {
        return [r.step, name in r.components ? r.components[name] : null]; }) };
    });
    lineChart(chart('components'), { series: series, empty: 'the judge reported no reward components' });
  });
  safely('latency', function () {
    lineChart(chart('latency'), { yMin: 0, series: [
      { name: 'mean ms', color: PALETTE[0], points: column(steps, 'latency_mean') },
      { name: 'p95 ms', color: PALETTE[1], points: column(steps, 'latency_p95') }] });
  });
  safely('cost', function () {
    lineChart(chart('cost'), { yMin: 0, series: [
      { name: 'cumulative USD', color: PALETTE[2], points: column(steps, 'cost_cumulative') },
      { name: 'USD per step', color: PALETTE[4], points: column(steps, 'cost') }] });
  });
  safely('errors', function () {
    lineChart(chart('errors'), { yMin: 0, percent: true, series: [{ name: 'failed verdicts', color: PALETTE[6], points: column(steps, 'error_rate') }] });
  });
  safely('cache', function () {
    lineChart(chart('cache'), { yMin: 0, yMax: 1, percent: true, series: [{ name: 'cache hits', color: PALETTE[5], points: column(steps, 'cache_hit_rate') }] });
  });
  safely('canary', function () {
    lineChart(chart('canary'), { yMin: 0, yMax: 1, percent: true, empty: 'no canaries in this run (quality.canary_path)',
      series: [{ name: 'canary accuracy', color: PALETTE[3], points: column(steps, 'canary_accuracy') }] });
  });
  safely('learner', function () {
    var keys = ['loss', 'kl', 'entropy', 'clip_fraction'];
    lineChart(chart('learner'), { empty: 'no metrics.jsonl in this run', series: keys.map(function (k, i) {
      return { name: k, color: PALETTE[i], points: column(learner, k) }; }) });
  });
  body.setAttribute('data-charts-drawn', String(drawn));
  report();
})();
)js";

}  // namespace

std::string HtmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

int ReportChartCount(const RunLogs& logs, const ReportOptions& options) {
  const std::vector<StepStats> series = ComputeStepSeries(logs.rows);
  const int histograms = static_cast<int>(StepRanges(series, options.histogram_ranges).size());
  const int reverse_kl = ReverseKlChartData(series, logs.steps).is_null() ? 0 : 1;
  // reward, held-out, components, latency, cost, errors, cache, canary, learner + histograms (+ reverse KL)
  return 9 + histograms + reverse_kl;
}

std::string RenderHtmlReport(const RunLogs& logs, const RunSummary& summary, const ReportOptions& options) {
  const std::vector<StepStats> series = ComputeStepSeries(logs.rows);
  nlohmann::json steps = nlohmann::json::array();
  double cumulative = 0;
  for (const StepStats& s : series) {
    cumulative += s.cost_usd;
    nlohmann::json components = nlohmann::json::object();
    for (const auto& [name, value] : s.component_means) components[name] = JsonNumber(value);
    steps.push_back({{"step", s.step},
                     {"n", s.scored},
                     {"mean", JsonNumber(s.reward_mean)},
                     {"std", JsonNumber(s.reward_std)},
                     {"min", JsonNumber(s.reward_min)},
                     {"p10", JsonNumber(s.reward_p10)},
                     {"p50", JsonNumber(s.reward_p50)},
                     {"p90", JsonNumber(s.reward_p90)},
                     {"max", JsonNumber(s.reward_max)},
                     {"latency_mean", JsonNumber(s.latency_ms_mean)},
                     {"latency_p95", JsonNumber(s.latency_ms_p95)},
                     {"cost", s.cost_usd},
                     {"cost_cumulative", cumulative},
                     {"error_rate", JsonNumber(s.error_rate)},
                     {"cache_hit_rate", JsonNumber(s.cache_hit_rate)},
                     {"canary_accuracy", JsonNumber(s.canary_accuracy)},
                     {"components", components}});
  }
  nlohmann::json learner = nlohmann::json::array();
  for (const v1::StepMetrics& m : logs.steps) {
    learner.push_back({{"step", m.version() > 0 ? m.version() : m.step()},
                       {"reward_mean", JsonNumber(m.reward_mean())},
                       {"loss", JsonNumber(m.loss())},
                       {"kl", JsonNumber(m.kl())},
                       {"entropy", JsonNumber(m.entropy())},
                       {"clip_fraction", JsonNumber(m.clip_fraction())}});
  }
  // Histograms share one range (every scored reward) so the step ranges compare.
  std::vector<double> all_rewards;
  for (const RewardLogRow& row : logs.rows) {
    if (row.kind == row_kind::kTrain && row.reward.has_value()) all_rewards.push_back(*row.reward);
  }
  const double low = all_rewards.empty() ? 0 : *std::min_element(all_rewards.begin(), all_rewards.end());
  const double high = all_rewards.empty() ? 1 : *std::max_element(all_rewards.begin(), all_rewards.end());
  nlohmann::json histograms = nlohmann::json::array();
  const auto ranges = StepRanges(series, options.histogram_ranges);
  for (const auto& [first, last] : ranges) {
    std::vector<double> rewards;
    for (const RewardLogRow& row : logs.rows) {
      if (row.kind == row_kind::kTrain && row.reward.has_value() && row.policy_version >= first &&
          row.policy_version <= last) {
        rewards.push_back(*row.reward);
      }
    }
    const Histogram h = MakeHistogram(rewards, options.histogram_bins, low, high);
    histograms.push_back(
        {{"label", first == last ? absl::StrCat("step ", first) : absl::StrCat("steps ", first, "–", last)},
         {"low", h.low},
         {"high", h.high},
         {"counts", h.counts}});
  }
  nlohmann::json eval = nlohmann::json::array();
  for (const EvalPoint& p : logs.eval_curve) eval.push_back(EvalPointToJson(p));
  nlohmann::json data = {{"steps", steps},
                         {"learner", learner},
                         {"histograms", histograms},
                         {"eval", eval},
                         {"summary", SummaryToJson(summary)}};
  const nlohmann::json reverse_kl = ReverseKlChartData(series, logs.steps);
  if (!reverse_kl.is_null()) data["reverse_kl"] = reverse_kl;

  const std::string title =
      options.title.empty()
          ? absl::StrCat("rlj run ", summary.runs.empty() ? logs.run_dir : absl::StrJoin(summary.runs, ", "))
          : options.title;
  const int expected = ReportChartCount(logs, options);
  const auto card = [](const std::string& id, const std::string& heading) {
    return absl::StrCat("<div class=\"chart\"><h3>", HtmlEscape(heading), "</h3><canvas data-chart=\"", id,
                        "\"></canvas><div class=\"legend\"></div></div>");
  };
  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
      "script-src 'unsafe-inline'; img-src data:\">"
      "<title>",
      HtmlEscape(title), "</title><style>", kStyle, "</style></head>\n", "<body data-charts-expected=\"", expected,
      "\" data-charts-drawn=\"0\" data-errors=\"\">\n", "<h1>", HtmlEscape(title), "</h1><div class=\"meta\">",
      HtmlEscape(logs.reward_log), " · ", summary.rows, " rows from ", summary.replicas.size(), " judge replica(s)",
      summary.rows > 0
          ? absl::StrCat(" · ", FormatUtc(summary.first_time_unix_s), " – ", FormatUtc(summary.last_time_unix_s))
          : "",
      "</div>\n");
  if (!summary.warnings.empty()) {
    html += "<ul class=\"warnings\">";
    for (const std::string& warning : summary.warnings) html += "<li>" + HtmlEscape(warning) + "</li>";
    html += "</ul>\n";
  }
  html += "<h2>Summary</h2>" + SummaryTable(summary) + "\n";
  html += "<h2>Reward</h2><div class=\"grid\">" + card("reward", "Reward per step: mean, p10–p90 and min–max bands") +
          (reverse_kl.is_null() ? "" : card("reverse_kl", "Reverse KL to the teacher per step (distillation)")) +
          card("eval", "Held-out accuracy over steps (before RL, every eval.every_steps, after RL)") +
          card("components", "Reward components per step (means)") + "</div>\n";
  html += "<h2>Reward histograms over step ranges</h2><div class=\"grid\">";
  for (size_t i = 0; i < ranges.size(); ++i) {
    html += card(absl::StrCat("histogram-", i), histograms[i]["label"].get<std::string>());
  }
  html += "</div>\n<h2>Judge</h2><div class=\"grid\">" + card("latency", "Judge latency per step") +
          card("cost", "Judge cost") + card("errors", "Failed verdicts per step") +
          card("cache", "Cache hit rate per step") + card("canary", "Canary accuracy per step") + "</div>\n";
  html +=
      "<h2>Learner</h2><div class=\"grid\">" + card("learner", "Learner metrics per step (metrics.jsonl)") + "</div>\n";
  html += absl::StrCat(
      "<h2>Top ", options.samples_shown, " samples by reward</h2>",
      SamplesTable(RankByReward(logs.rows, static_cast<size_t>(options.samples_shown), true), options), "\n<h2>Bottom ",
      options.samples_shown, " samples by reward</h2>",
      SamplesTable(RankByReward(logs.rows, static_cast<size_t>(options.samples_shown), false), options), "\n");
  html += "<div id=\"tip\"></div>\n<script type=\"application/json\" id=\"rlj-data\">" + EmbedJson(data) +
          "</script>\n<script>" + kScript + "</script>\n</body></html>\n";
  return html;
}

}  // namespace rlj::logs
