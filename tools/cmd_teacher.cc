// cmd_teacher.cc: `rlj teacher`: serves a checkpoint over the OpenAI API (chat completions, completions with
// echo and logprobs, models, health) with concurrent requests batched into shared forward passes.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/config_loader.h"
#include "common/config_validate.h"
#include "common/log.h"
#include "common/run_dir.h"
#include "common/shutdown.h"
#include "common/status.h"
#include "common/telemetry/process_telemetry.h"
#include "common/tokenizer/tokenizer.h"
#include "model/checkpoint/checkpoint.h"
#include "model/tensor/torch_util.h"
#include "model/transformer.h"
#include "teacher/batch_engine.h"
#include "teacher/teacher_server.h"
#include "tools/command.h"

namespace rlj::tools {
namespace {

struct TeacherFlags {
  ConfigFlags config;
  std::string run_dir;
  std::string model;
  std::string listen;
  std::string served_model_name;
  std::string tokenizer;
  std::string tokenizer_path;
  std::string chat_template;
  bool chat_template_given = false;
  int max_batch = 0;
  int batch_wait_ms = -1;
  int threads = -1;
  std::string device;
};

// The flags given on the command line override the config's teacher section (a tokenizer flag starts from
// the run's tokenizer section when the teacher has none of its own).
void ApplyFlags(const TeacherFlags& flags, v1::RunConfig* config) {
  v1::TeacherConfig* teacher = config->mutable_teacher();
  const bool tokenizer_flag = !flags.tokenizer.empty() || !flags.tokenizer_path.empty() || flags.chat_template_given;
  if (tokenizer_flag && !teacher->has_tokenizer()) *teacher->mutable_tokenizer() = config->tokenizer();
  if (!flags.model.empty()) teacher->set_model(flags.model);
  if (!flags.listen.empty()) teacher->set_listen(flags.listen);
  if (!flags.served_model_name.empty()) teacher->set_served_model_name(flags.served_model_name);
  if (!flags.tokenizer.empty()) {
    v1::TokenizerConfig::Kind kind = v1::TokenizerConfig::byte;
    v1::TokenizerConfig::Kind_Parse(flags.tokenizer, &kind);  // --tokenizer admits only the schema's names
    teacher->mutable_tokenizer()->set_kind(kind);
  }
  if (!flags.tokenizer_path.empty()) teacher->mutable_tokenizer()->set_path(flags.tokenizer_path);
  if (flags.chat_template_given) teacher->mutable_tokenizer()->set_chat_template(flags.chat_template);
  if (flags.max_batch > 0) teacher->set_max_batch(flags.max_batch);
  if (flags.batch_wait_ms >= 0) teacher->set_batch_wait_ms(flags.batch_wait_ms);
  if (flags.threads >= 0) teacher->set_threads(flags.threads);
  if (!flags.device.empty()) teacher->set_device(flags.device);
}

// Loads the config (or the defaults), applies the flags, sets up the run directory (when there is one) and
// logging. Returns the run directory, "" when the teacher runs without one.
absl::StatusOr<std::string> Prepare(const TeacherFlags& flags, v1::RunConfig* config) {
  std::string run_dir = flags.run_dir;
  if (!flags.config.config_path.empty()) {
    RLJ_ASSIGN_OR_RETURN(PreparedCommand prepared, PrepareCommand(flags.config, flags.run_dir, "teacher"));
    *config = std::move(prepared.config);
    run_dir = prepared.run_dir;
  } else {
    RLJ_ASSIGN_OR_RETURN(*config, ParseRunConfig("", "<defaults>", flags.config.overrides));
    if (!run_dir.empty()) RLJ_RETURN_IF_ERROR(RunDir(run_dir).Create());
    RLJ_RETURN_IF_ERROR(log::Init("teacher", config->runtime().log_level(),
                                  run_dir.empty() ? "" : RunDir(run_dir).log_path("teacher")));
  }
  ApplyFlags(flags, config);
  // The flags are checked as a teacher section alone (the config was checked as loaded; its judge need not
  // point at this teacher).
  v1::RunConfig teacher_only;
  *teacher_only.mutable_teacher() = config->teacher();
  RLJ_RETURN_IF_ERROR(ValidateRunConfig(teacher_only));
  if (config->teacher().model().empty()) {
    return absl::InvalidArgumentError("no model to serve: pass --model DIR or set teacher.model");
  }
  return run_dir;
}

int RunTeacher(const TeacherFlags& flags) {
  InstallShutdownHandler();  // before any thread starts
  v1::RunConfig config;
  auto run_dir = Prepare(flags, &config);
  if (!run_dir.ok()) return Fail("teacher", std::string(run_dir.status().message()));
  const v1::TeacherConfig& teacher = config.teacher();

  SetTorchThreads(ResolveThreads(config, teacher.threads()));
  auto placement =
      ResolvePlacement(teacher.has_device() ? teacher.device() : config.runtime().device(), teacher.bf16());
  if (!placement.ok()) return Fail("teacher", std::string(placement.status().message()));
  auto checkpoint = LoadCheckpoint(teacher.model());
  if (!checkpoint.ok()) return Fail("teacher", std::string(checkpoint.status().message()));
  if (absl::Status s = TorchCall("moving the teacher to its device",
                                 [&] { checkpoint->model->to(placement->device, placement->dtype); });
      !s.ok()) {
    return Fail("teacher", std::string(s.message()));
  }

  // The teacher's tokenizer: its own section; else the tokenizer.json its checkpoint ships (what its ids mean,
  // whatever the student uses: distillation compares the two); else the run's. The server renders whole
  // conversations with the chat template itself; the tokenizer keeps it for its stop ids.
  const std::filesystem::path shipped = std::filesystem::path(teacher.model()) / "tokenizer.json";
  v1::TokenizerConfig tokenizer_config = teacher.has_tokenizer() ? teacher.tokenizer() : config.tokenizer();
  if (!teacher.has_tokenizer() && std::filesystem::is_regular_file(shipped)) {
    tokenizer_config.set_kind(v1::TokenizerConfig::hf);
    tokenizer_config.set_path(shipped.string());
  }
  if (tokenizer_config.kind() == v1::TokenizerConfig::hf && tokenizer_config.path().empty()) {
    tokenizer_config.set_path((std::filesystem::path(teacher.model()) / "tokenizer.json").string());
  }
  auto tokenizer =
      tokenizer_config.chat_template() == "auto"
          ? LoadTokenizer(tokenizer_config.kind() == v1::TokenizerConfig::hf ? tokenizer_config.path() : "byte", "auto")
          : MakeTokenizer(tokenizer_config);
  if (!tokenizer.ok()) return Fail("teacher", std::string(tokenizer.status().message()));
  const std::string chat_template = (*tokenizer)->chat_template().spec();

  teacher::BatchEngineOptions engine_options;
  engine_options.max_batch = teacher.max_batch();
  engine_options.batch_wait = std::chrono::milliseconds(teacher.batch_wait_ms());
  auto engine = teacher::BatchEngine::Create(checkpoint->model, tokenizer->get(), engine_options);
  if (!engine.ok()) return Fail("teacher", std::string(engine.status().message()));

  teacher::TeacherServerOptions server_options;
  server_options.listen = teacher.listen();
  server_options.served_model_name = teacher.served_model_name();
  server_options.chat_template = chat_template;
  server_options.http_threads = teacher.http_threads();
  server_options.max_body_bytes = static_cast<size_t>(teacher.max_body_bytes());
  auto server = teacher::TeacherServer::Start(engine->get(), tokenizer->get(), server_options);
  if (!server.ok()) return Fail("teacher", std::string(server.status().message()));

  const TransformerConfig& shape = checkpoint->config;
  log::Info(
      "teacher: {} ({} parameters, {} layers, d_model {}, context {}) on {} in {}, batches of up to {} (wait {} ms)",
      teacher.model(), shape.num_parameters(), shape.n_layers, shape.d_model, shape.max_seq_len,
      placement->device.str(), c10::toString(placement->dtype), teacher.max_batch(), teacher.batch_wait_ms());
  if (!run_dir->empty()) {
    if (absl::Status s = RunDir(*run_dir).WriteEndpoint("teacher", (*server)->address()); !s.ok()) {
      return Fail("teacher", std::string(s.message()));
    }
  }
  auto telemetry =
      telemetry::ProcessTelemetry::Start(config, *run_dir, "teacher", "teacher", /*with_tensorboard=*/false);
  if (!telemetry.ok()) return Fail("teacher", std::string(telemetry.status().message()));
  const teacher::BatchEngine* batch_engine = engine->get();
  const auto exported = (*telemetry)->metrics().AddCollector([batch_engine](telemetry::MetricsSnapshotWriter& out) {
    const teacher::BatchEngineStats s = batch_engine->stats();
    out.Counter("rlj_teacher_requests_total", "Requests answered", static_cast<double>(s.requests));
    out.Counter("rlj_teacher_batches_total", "Batches run", static_cast<double>(s.batches));
    out.Counter("rlj_teacher_rows_total", "Sequences asked for", static_cast<double>(s.rows));
    out.Counter("rlj_teacher_computed_rows_total", "Sequences computed after merging identical ones",
                static_cast<double>(s.computed_rows));
    out.Counter("rlj_teacher_forward_passes_total", "Model calls", static_cast<double>(s.forward_passes));
    out.Counter("rlj_teacher_prompt_tokens_total", "Prompt tokens prefilled", static_cast<double>(s.prompt_tokens));
    out.Counter("rlj_teacher_generated_tokens_total", "Tokens sampled", static_cast<double>(s.generated_tokens));
  });
  std::printf("teacher: serving %s at %s\n", teacher.served_model_name().c_str(), (*server)->base_url().c_str());
  std::fflush(stdout);

  WaitForShutdown();
  log::Info("teacher: stopping (signal {})", ShutdownSignal());
  (*server)->Stop();  // requests in flight finish first
  (*engine)->Stop();
  const teacher::BatchEngineStats stats = (*engine)->stats();
  log::Info("teacher: served {} requests in {} batches ({} forward passes)", stats.requests, stats.batches,
            stats.forward_passes);
  return 0;
}

Command AddTeacherCommand(CLI::App& parent) {
  auto* app = parent.add_subcommand(
      "teacher", "Serve a checkpoint over the OpenAI API (/v1/chat/completions, /v1/completions, /v1/models)");
  auto flags = std::make_shared<TeacherFlags>();
  AddConfigFlags(app, &flags->config, /*config_required=*/false);
  app->add_option("--model", flags->model, "Checkpoint directory to serve (default teacher.model)");
  app->add_option("--listen", flags->listen, "HOST:PORT (default teacher.listen, 127.0.0.1:0)");
  app->add_option("--served-model-name", flags->served_model_name, "Model id clients use (default teacher)");
  app->add_option("--tokenizer", flags->tokenizer, "Tokenizer kind: byte | hf (default: the config's)")
      ->check(CLI::IsMember({"byte", "hf"}));
  app->add_option("--tokenizer-path", flags->tokenizer_path, "hf: tokenizer.json (default <model>/tokenizer.json)");
  app->add_option("--chat-template", flags->chat_template,
                  "How chat messages become the prompt: \"\" (contents joined), chatml, llama3, plain, or a template "
                  "holding {prompt}")
      ->each([flags](const std::string&) { flags->chat_template_given = true; });
  app->add_option("--max-batch", flags->max_batch, "Sequences per forward pass (default teacher.max_batch)");
  app->add_option("--batch-wait-ms", flags->batch_wait_ms,
                  "How long a batch waits to fill (default teacher.batch_wait_ms)");
  app->add_option("--threads", flags->threads, "Torch threads (default teacher.threads, then runtime.threads)");
  app->add_option("--device", flags->device,
                  "auto | cpu | cuda | cuda:N (default teacher.device, then runtime.device)");
  app->add_option("--run-dir", flags->run_dir, "Run directory: writes endpoints/teacher and logs/teacher.log");
  return {app, [flags]() -> int { return RunTeacher(*flags); }};
}

}  // namespace

RLJ_REGISTER_COMMAND("", 45, AddTeacherCommand);

}  // namespace rlj::tools
