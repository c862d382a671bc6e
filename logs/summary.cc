// summary.cc: the run summary: computed from the rows and the learner metrics, printed as text or JSON.
#include "logs/summary.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "logs/judge_alarms.h"
#include "logs/statistics.h"
#include "logs/step_series.h"
#include "logs/terminal_text.h"

namespace rlj::logs {
namespace {

std::string FormatTime(double unix_s) {
  if (unix_s <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M:%SZ", &tm);
  return buffer;
}

std::string Percent(double fraction) {
  if (std::isnan(fraction)) return "-";
  return absl::StrFormat("%.1f%%", 100 * fraction);
}

}  // namespace

SummaryOptions SummaryOptionsFromConfig(const v1::QualityConfig& quality) {
  SummaryOptions options;
  options.consistency_tolerance = quality.self_consistency_tolerance();
  options.length_threshold = quality.length_correlation_threshold();
  options.length_min_samples = quality.length_correlation_min_samples();
  options.length_recent = quality.length_correlation_window();
  return options;
}

nlohmann::json JsonNumber(double value) { return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(); }

std::vector<ErrorGroup> GroupErrors(const std::vector<RewardLogRow>& rows) {
  std::map<std::string, ErrorGroup> groups;
  for (const RewardLogRow& row : rows) {
    if (row.reward.has_value()) continue;
    const std::string kind = row.error_kind.empty() ? "unknown" : row.error_kind;
    ErrorGroup& group = groups[kind];
    if (group.count == 0) {
      group.kind = kind;
      group.first_time_unix_s = row.time_unix_s;
    }
    ++group.count;
    group.first_time_unix_s = std::min(group.first_time_unix_s, row.time_unix_s);
    if (row.time_unix_s >= group.last_time_unix_s) {
      group.last_time_unix_s = row.time_unix_s;
      group.example_message = row.error_message;
      group.example_key = RowKey(row);
    }
  }
  std::vector<ErrorGroup> sorted;
  for (auto& [kind, group] : groups) sorted.push_back(std::move(group));
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const ErrorGroup& a, const ErrorGroup& b) { return a.count > b.count; });
  return sorted;
}

namespace {

// The worse of two breaker states: open, then half_open, then closed.
std::string WorseCircuit(const std::string& a, const std::string& b) {
  for (const char* state : {"open", "half_open"}) {
    if (a == state || b == state) return state;
  }
  return a.empty() ? b : a;
}

// One entry per backend name, summed over the judge replicas.
std::vector<v1::JudgeBackendStatus> MergeBackends(const std::vector<v1::JudgeBackendStatus>& backends) {
  std::vector<v1::JudgeBackendStatus> merged;
  for (const v1::JudgeBackendStatus& b : backends) {
    if (b.http_requests() == 0 && b.concurrency_limit() == 0) continue;  // no HTTP machinery (rule, command)
    auto it = std::find_if(merged.begin(), merged.end(), [&](const auto& m) { return m.name() == b.name(); });
    if (it == merged.end()) {
      merged.push_back(b);
      continue;
    }
    // Every number is a sum over the replicas (counters, limits, what is in flight, spend).
    const google::protobuf::Reflection& r = *it->GetReflection();
    const google::protobuf::Descriptor& d = *it->GetDescriptor();
    for (int f = 0; f < d.field_count(); ++f) {
      const google::protobuf::FieldDescriptor* field = d.field(f);
      switch (field->cpp_type()) {
        case google::protobuf::FieldDescriptor::CPPTYPE_INT64:
          r.SetInt64(&*it, field, r.GetInt64(*it, field) + r.GetInt64(b, field));
          break;
        case google::protobuf::FieldDescriptor::CPPTYPE_INT32:
          r.SetInt32(&*it, field, r.GetInt32(*it, field) + r.GetInt32(b, field));
          break;
        case google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE:
          r.SetDouble(&*it, field, r.GetDouble(*it, field) + r.GetDouble(b, field));
          break;
        default:
          break;
      }
    }
    it->set_circuit(WorseCircuit(it->circuit(), b.circuit()));
  }
  return merged;
}

}  // namespace

RunSummary Summarize(const RunLogs& logs, const SummaryOptions& options) {
  RunSummary s;
  std::set<std::string> runs, replicas;
  std::vector<double> rewards, latencies, chars;
  int64_t cache_hits = 0;
  bool first = true;
  for (const RewardLogRow& row : logs.rows) {
    ++s.rows;
    if (!row.run.empty()) runs.insert(row.run);
    replicas.insert(row.replica);
    ++s.judges[row.model.empty() ? row.backend : absl::StrCat(row.backend, "/", row.model)];
    if (first) {
      s.first_step = s.last_step = row.policy_version;
      s.first_time_unix_s = s.last_time_unix_s = row.time_unix_s;
      first = false;
    }
    s.first_step = std::min(s.first_step, row.policy_version);
    s.last_step = std::max(s.last_step, row.policy_version);
    s.first_time_unix_s = std::min(s.first_time_unix_s, row.time_unix_s);
    s.last_time_unix_s = std::max(s.last_time_unix_s, row.time_unix_s);
    latencies.push_back(row.latency_ms);
    s.cost_usd += row.cost_usd;
    s.tokens_in += row.tokens_in;
    s.tokens_out += row.tokens_out;
    if (row.kind == row_kind::kCanary) {
      ++s.canary_rows;
      continue;
    }
    if (row.kind == row_kind::kConsistency) {
      ++s.consistency_rows;
      continue;
    }
    ++s.train_rows;
    if (row.cache_hit) ++cache_hits;
    if (row.reward.has_value()) {
      ++s.scored;
      rewards.push_back(*row.reward);
      chars.push_back(static_cast<double>(row.completion_chars));
    } else {
      ++s.errors;
    }
  }
  s.runs.assign(runs.begin(), runs.end());
  s.replicas.assign(replicas.begin(), replicas.end());
  s.error_rate = s.train_rows > 0 ? static_cast<double>(s.errors) / static_cast<double>(s.train_rows) : NAN;
  s.cache_hit_rate = s.train_rows > 0 ? static_cast<double>(cache_hits) / static_cast<double>(s.train_rows) : NAN;
  s.reward_mean = Mean(rewards);
  s.reward_std = StdDev(rewards);
  s.reward_p10 = Quantile(rewards, 0.1);
  s.reward_p50 = Quantile(rewards, 0.5);
  s.reward_p90 = Quantile(rewards, 0.9);
  s.completion_chars_mean = Mean(chars);
  s.latency_ms_p50 = Quantile(latencies, 0.5);
  s.latency_ms_p95 = Quantile(latencies, 0.95);
  s.latency_ms_p99 = Quantile(latencies, 0.99);
  const std::vector<StepStats> series = ComputeStepSeries(logs.rows);
  s.reward_first_step_mean = s.reward_last_step_mean = NAN;
  for (const StepStats& step : series) {
    if (step.scored == 0) continue;
    ++s.steps_with_rows;
    if (std::isnan(s.reward_first_step_mean)) s.reward_first_step_mean = step.reward_mean;
    s.reward_last_step_mean = step.reward_mean;
  }
  s.reverse_kl = SummarizeReverseKl(logs.rows, series);
  s.error_groups = GroupErrors(logs.rows);
  s.canary = CanaryAccuracy(logs.rows);
  s.consistency = SelfConsistency(logs.rows, options.consistency_tolerance);
  s.length_all = RewardLengthCorrelation(logs.rows, options.length_threshold, options.length_min_samples);
  s.length_recent =
      RewardLengthCorrelation(logs.rows, options.length_threshold, options.length_min_samples, options.length_recent);
  s.teacher_backends = MergeBackends(logs.backends);
  s.eval_curve = logs.eval_curve;
  if (const EvalPoint* best = BestPeriodicPoint(logs.eval_curve); best != nullptr) s.eval_best = *best;
  s.learner_steps = static_cast<int64_t>(logs.steps.size());
  if (!logs.steps.empty()) s.learner_last = logs.steps.back();

  if (s.rows == 0) s.warnings.push_back("the reward log has no rows yet");
  for (const auto* length : {&s.length_all, &s.length_recent}) {
    if (auto alarm = LengthAlarm(*length, options.length_threshold, length == &s.length_all ? "all" : "last")) {
      s.warnings.push_back(*std::move(alarm));
    }
  }
  if (auto alarm = CanaryAlarm(s.canary)) s.warnings.push_back(*std::move(alarm));
  if (auto alarm = HeldOutAlarm(s.eval_curve, s.reward_first_step_mean, s.reward_last_step_mean)) {
    s.warnings.push_back(*std::move(alarm));
  }
  if (s.consistency.pairs > 0 && s.consistency.agreement_rate < 0.8) {
    s.warnings.push_back(absl::StrFormat("self-consistency %.1f%% (%d of %d pairs agree within %.2f): a noisy judge",
                                         100 * s.consistency.agreement_rate, s.consistency.agreeing,
                                         s.consistency.pairs, options.consistency_tolerance));
  }
  if (s.train_rows > 0 && s.error_rate > 0.1) {
    s.warnings.push_back(
        absl::StrFormat("%.1f%% of verdicts failed (%d of %d)", 100 * s.error_rate, s.errors, s.train_rows));
  }
  return s;
}

nlohmann::json BackendToJson(const v1::JudgeBackendStatus& b) {
  return {{"name", b.name()},
          {"kind", b.kind()},
          {"http_requests", b.http_requests()},
          {"retries",
           {{"rate_limited", b.retries_rate_limited()},
            {"server_error", b.retries_server_error()},
            {"timeout", b.retries_timeout()},
            {"transport", b.retries_transport()},
            {"malformed", b.retries_malformed()}}},
          {"retry_after_waits", b.retry_after_waits()},
          {"retry_after_seconds", b.retry_after_seconds()},
          {"failures", b.failures()},
          {"circuit", b.circuit()},
          {"circuit_opened", b.circuit_opened()},
          {"concurrency_limit", b.concurrency_limit()},
          {"in_flight", b.in_flight()}};
}

nlohmann::json SummaryToJson(const RunSummary& s) {
  nlohmann::json errors = nlohmann::json::array();
  for (const ErrorGroup& group : s.error_groups) {
    errors.push_back({{"kind", group.kind},
                      {"count", group.count},
                      {"example_message", group.example_message},
                      {"example_row", group.example_key},
                      {"first_time_unix_s", group.first_time_unix_s},
                      {"last_time_unix_s", group.last_time_unix_s}});
  }
  const auto length = [](const LengthCorrelation& l) {
    return nlohmann::json{
        {"samples", l.samples}, {"spearman", JsonNumber(l.spearman)}, {"enough", l.enough}, {"warn", l.warn}};
  };
  nlohmann::json out = {
      {"runs", s.runs},
      {"replicas", s.replicas},
      {"judges", s.judges},
      {"rows", s.rows},
      {"train_rows", s.train_rows},
      {"canary_rows", s.canary_rows},
      {"consistency_rows", s.consistency_rows},
      {"scored", s.scored},
      {"errors", s.errors},
      {"error_rate", JsonNumber(s.error_rate)},
      {"first_step", s.first_step},
      {"last_step", s.last_step},
      {"steps_with_rows", s.steps_with_rows},
      {"first_time_unix_s", s.first_time_unix_s},
      {"last_time_unix_s", s.last_time_unix_s},
      {"reward",
       {{"mean", JsonNumber(s.reward_mean)},
        {"std", JsonNumber(s.reward_std)},
        {"p10", JsonNumber(s.reward_p10)},
        {"p50", JsonNumber(s.reward_p50)},
        {"p90", JsonNumber(s.reward_p90)},
        {"first_step_mean", JsonNumber(s.reward_first_step_mean)},
        {"last_step_mean", JsonNumber(s.reward_last_step_mean)}}},
      {"latency_ms",
       {{"p50", JsonNumber(s.latency_ms_p50)},
        {"p95", JsonNumber(s.latency_ms_p95)},
        {"p99", JsonNumber(s.latency_ms_p99)}}},
      {"cost_usd", s.cost_usd},
      {"tokens_in", s.tokens_in},
      {"tokens_out", s.tokens_out},
      {"cache_hit_rate", JsonNumber(s.cache_hit_rate)},
      {"completion_chars_mean", JsonNumber(s.completion_chars_mean)},
      {"errors_by_kind", errors},
      {"canary",
       {{"total", s.canary.total},
        {"passed", s.canary.passed},
        {"failed_verdicts", s.canary.failed_verdicts},
        {"accuracy", JsonNumber(s.canary.accuracy)}}},
      {"self_consistency",
       {{"pairs", s.consistency.pairs},
        {"agreeing", s.consistency.agreeing},
        {"agreement_rate", JsonNumber(s.consistency.agreement_rate)},
        {"mean_abs_diff", JsonNumber(s.consistency.mean_abs_diff)},
        {"spearman", JsonNumber(s.consistency.spearman)}}},
      {"length_correlation", {{"all", length(s.length_all)}, {"recent", length(s.length_recent)}}},
      {"learner", {{"steps", s.learner_steps}}},
      {"warnings", s.warnings},
  };
  nlohmann::json held_out = {{"points", nlohmann::json::array()}};
  for (const EvalPoint& p : s.eval_curve) {
    held_out["points"].push_back(EvalPointToJson(p));
    held_out[p.kind == "periodic" ? "last" : p.kind] = EvalPointToJson(p);
  }
  if (s.eval_best) held_out["best"] = EvalPointToJson(*s.eval_best);
  out["held_out"] = held_out;
  // Only distillation runs have the key: the JSON of other runs stays as it was.
  if (s.reverse_kl.samples > 0) out["teacher_reverse_kl"] = ReverseKlToJson(s.reverse_kl);
  out["teacher_backends"] = nlohmann::json::array();
  for (const v1::JudgeBackendStatus& b : s.teacher_backends) out["teacher_backends"].push_back(BackendToJson(b));
  if (s.learner_steps > 0) {
    const v1::StepMetrics& m = s.learner_last;
    out["learner"]["last"] = {{"step", m.step()},
                              {"reward_mean", m.reward_mean()},
                              {"loss", JsonNumber(m.loss())},
                              {"kl", JsonNumber(m.kl())},
                              {"entropy", JsonNumber(m.entropy())},
                              {"grad_norm", JsonNumber(m.grad_norm())},
                              {"tokens_per_s", m.tokens_per_s()}};
    if (m.distill_tokens() > 0) {
      out["learner"]["last"]["teacher_reverse_kl"] = JsonNumber(m.teacher_reverse_kl());
      out["learner"]["last"]["distill_tokens"] = m.distill_tokens();
    }
  }
  return out;
}

std::string FormatSummary(const RunSummary& s, int width) {
  std::string out;
  const auto section = [&](const std::string& title, const std::vector<std::pair<std::string, std::string>>& items) {
    TextTable table;
    table.AddColumn(title);
    table.AddColumn("", false, true);
    for (const auto& [key, value] : items) table.AddRow({key, value});
    out += table.Render(width);
    out += "\n";
  };
  std::vector<std::string> judges;
  for (const auto& [judge, count] : s.judges) judges.push_back(absl::StrCat(judge, " (", count, ")"));
  section("run",
          {
              {"runs", s.runs.empty() ? "-" : absl::StrJoin(s.runs, ", ")},
              {"replicas", absl::StrJoin(s.replicas, ", ")},
              {"judges", judges.empty() ? "-" : absl::StrJoin(judges, ", ")},
              {"rows", absl::StrCat(s.rows, " (", s.train_rows, " train, ", s.canary_rows, " canary, ",
                                    s.consistency_rows, " re-scored)")},
              {"steps", absl::StrCat(s.first_step, " .. ", s.last_step, " (", s.steps_with_rows, " with rewards)")},
              {"time", absl::StrCat(FormatTime(s.first_time_unix_s), " .. ", FormatTime(s.last_time_unix_s))},
          });
  section("reward", {
                        {"mean ± std", absl::StrCat(FormatNumber(s.reward_mean), " ± ", FormatNumber(s.reward_std))},
                        {"p10 / p50 / p90", absl::StrCat(FormatNumber(s.reward_p10), " / ", FormatNumber(s.reward_p50),
                                                         " / ", FormatNumber(s.reward_p90))},
                        {"first → last step", absl::StrCat(FormatNumber(s.reward_first_step_mean), " → ",
                                                           FormatNumber(s.reward_last_step_mean))},
                        {"completion length", absl::StrCat(FormatNumber(s.completion_chars_mean, 1), " chars (mean)")},
                    });
  if (s.reverse_kl.samples > 0) section("distillation", ReverseKlLines(s.reverse_kl));
  section("judge",
          {
              {"verdicts failed", absl::StrCat(s.errors, " of ", s.train_rows, " (", Percent(s.error_rate), ")")},
              {"latency p50/p95/p99",
               absl::StrCat(FormatNumber(s.latency_ms_p50, 1), " / ", FormatNumber(s.latency_ms_p95, 1), " / ",
                            FormatNumber(s.latency_ms_p99, 1), " ms")},
              {"cost", absl::StrFormat("$%.4f", s.cost_usd)},
              {"tokens in / out", absl::StrCat(s.tokens_in, " / ", s.tokens_out)},
              {"cache hits", Percent(s.cache_hit_rate)},
          });
  const auto correlation = [](const LengthCorrelation& l) {
    if (!l.enough) return absl::StrCat("- (", l.samples, " samples)");
    return absl::StrCat(FormatNumber(l.spearman, 2), " over ", l.samples, " samples", l.warn ? "  WARNING" : "");
  };
  section("quality",
          {
              {"canary accuracy", s.canary.total == 0 ? "- (no canaries)"
                                                      : absl::StrCat(Percent(s.canary.accuracy), " (", s.canary.passed,
                                                                     " of ", s.canary.total, ")")},
              {"self-consistency",
               s.consistency.pairs == 0
                   ? "- (no sample scored twice)"
                   : absl::StrCat(Percent(s.consistency.agreement_rate), " agree (", s.consistency.agreeing, " of ",
                                  s.consistency.pairs, "), mean |Δ| ", FormatNumber(s.consistency.mean_abs_diff))},
              {"reward~length (all)", correlation(s.length_all)},
              {"reward~length (recent)", correlation(s.length_recent)},
          });
  if (!s.error_groups.empty()) {
    TextTable table;
    table.AddColumn("error kind");
    table.AddColumn("count", true);
    table.AddColumn("latest example", false, true);
    for (const ErrorGroup& group : s.error_groups) {
      table.AddRow(
          {group.kind, absl::StrCat(group.count), absl::StrCat(group.example_key, " ", group.example_message)});
    }
    out += table.Render(width) + "\n";
  }
  if (!s.eval_curve.empty()) {
    std::vector<std::pair<std::string, std::string>> items;
    const auto describe = [](const EvalPoint& p) {
      return absl::StrCat(Percent(p.accuracy), " at step ", p.step, ", reward ", FormatNumber(p.reward), " (",
                          p.prompts, " prompts)");
    };
    const EvalPoint* last_periodic = nullptr;
    for (const EvalPoint& p : s.eval_curve) {
      if (p.kind == "before") items.emplace_back("before RL", describe(p));
      if (p.kind == "periodic") last_periodic = &p;
    }
    if (last_periodic != nullptr) items.emplace_back("latest periodic", describe(*last_periodic));
    if (s.eval_best) items.emplace_back("best periodic", describe(*s.eval_best));
    for (const EvalPoint& p : s.eval_curve) {
      if (p.kind == "after") items.emplace_back("after RL", describe(p));
    }
    section("held-out", items);
  }
  if (!s.teacher_backends.empty()) {
    TextTable table;
    for (const char* column : {"teacher backend", "requests", "retries 429/5xx/timeout/transport/malformed",
                               "Retry-After waits", "breaker (opened)", "limit / in flight"}) {
      table.AddColumn(column, std::string(column) != "teacher backend");
    }
    for (const v1::JudgeBackendStatus& b : s.teacher_backends) {
      table.AddRow({absl::StrCat(b.name(), " (", b.kind(), ")"), absl::StrCat(b.http_requests()),
                    absl::StrCat(b.retries_rate_limited(), "/", b.retries_server_error(), "/", b.retries_timeout(), "/",
                                 b.retries_transport(), "/", b.retries_malformed()),
                    absl::StrCat(b.retry_after_waits(), " (", FormatNumber(b.retry_after_seconds(), 1), " s)"),
                    absl::StrCat(b.circuit(), " (", b.circuit_opened(), ")"),
                    absl::StrCat(b.concurrency_limit(), " / ", b.in_flight())});
    }
    out += table.Render(width) + "\n";
  }
  if (s.learner_steps > 0) {
    const v1::StepMetrics& m = s.learner_last;
    section("learner", {{"steps logged", absl::StrCat(s.learner_steps)},
                        {"last step", absl::StrCat(m.step(), ": reward ", FormatNumber(m.reward_mean()), ", loss ",
                                                   FormatNumber(m.loss()), ", kl ", FormatNumber(m.kl()), ", entropy ",
                                                   FormatNumber(m.entropy()), LearnerReverseKlText(m))}});
  }
  for (const std::string& warning : s.warnings) out += "WARNING: " + warning + "\n";
  return out;
}

}  // namespace rlj::logs
