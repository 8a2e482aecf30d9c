// The training loop, as Algorithm 1 of the T-REG paper (the objective -- preference pairs here,
// SFT sequences for `treg sft` -- supplies the micro-batch loss; the loop is the same):
//   for each step: sample a mini-batch (x, y_w, y_l) with token rewards r̂ (from the reward dump),
//   compute L_pref + α·w·(L_reg(y_w) + L_reg(y_l)) (Eq. 1-2), update θ by gradient descent (AdamW).
// HF Trainer conventions: steps count optimizer updates (1-based in logs), the learning rate of
// step s is lr·multiplier(s), gradients are clipped to max_grad_norm before the update, gradient
// accumulation divides each micro-batch loss by the number of micro-batches.
#include "treg/trainer.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>

#include "treg/adamw.h"
#include "treg/autocast.h"
#include "treg/runtime.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/optimizer_shards.h"
#include "treg/zero.h"

namespace treg {
namespace {

std::atomic<bool> g_stop_requested{false};
extern "C" void on_sigint(int) { g_stop_requested = true; }

// HF's get_decay_parameter_names: no weight decay on biases and norm weights.
bool decays(const std::string& name) {
  return name.find("bias") == std::string::npos && name.find("norm") == std::string::npos;
}

// A one-line progress bar on stderr (redrawn in place on a terminal, one line per log step
// otherwise).
class StepProgress {
 public:
  StepProgress(int64_t total, int64_t start)
      : total_(total), start_(start), t0_(clock::now()), tty_(isatty(2)) {}
  void update(int64_t step, double loss, const std::string& metric, double value, double tok_s) {
    const double el = std::chrono::duration<double>(clock::now() - t0_).count();
    const double eta =
        step > start_ ? el / static_cast<double>(step - start_) * static_cast<double>(total_ - step)
                      : 0;
    const int width = 24;
    const int filled = static_cast<int>(width * step / std::max<int64_t>(1, total_));
    std::string bar(static_cast<size_t>(filled), '#');
    bar += std::string(static_cast<size_t>(width - filled), '.');
    char line[256];
    std::snprintf(line, sizeof line,
                  "[%s] step %lld/%lld  loss %.4f  %s %.3f  %.0f tok/s  ETA %02d:%02d",
                  bar.c_str(), static_cast<long long>(step), static_cast<long long>(total_), loss,
                  metric.c_str(), value, tok_s, static_cast<int>(eta) / 60, static_cast<int>(eta) % 60);
    if (tty_) std::fprintf(stderr, "\r%s\033[K", line);
    last_ = line;
  }
  void done() {
    if (tty_ && !last_.empty()) std::fprintf(stderr, "\n");
  }

 private:
  using clock = std::chrono::steady_clock;
  int64_t total_, start_;
  clock::time_point t0_;
  bool tty_;
  std::string last_;
};

bool finite(double v) { return std::isfinite(v); }

}  // namespace

void request_training_stop() { g_stop_requested = true; }

Trainer::Trainer(Config config, CausalLM policy, std::shared_ptr<PairSource> train,
                 std::shared_ptr<PairSource> eval, TrainerHooks hooks,
                 std::shared_ptr<Ranks> ranks)
    : Trainer(config, std::move(policy),
              std::make_shared<PreferenceObjective>(
                  config, std::move(train), config.eval_strategy == "no" ? nullptr : std::move(eval),
                  hooks),
              hooks, std::move(ranks)) {}

Trainer::Trainer(Config config, CausalLM policy, std::shared_ptr<Objective> objective,
                 TrainerHooks hooks, std::shared_ptr<Ranks> ranks)
    : config_(std::move(config)),
      policy_(std::move(policy)),
      objective_(std::move(objective)),
      hooks_(std::move(hooks)),
      ranks_(ranks ? std::move(ranks) : single_rank()),
      device_(policy_->parameters().front().device()) {
  config_.world_size = ranks_->world_size();
  // The plan walks global micro-batches; each rank takes its slice (rank_slice).
  plan_ = make_data_plan(objective_->size(),
                         config_.per_device_train_batch_size * ranks_->world_size(),
                         config_.gradient_accumulation_steps, config_.num_train_epochs,
                         config_.max_steps, static_cast<uint64_t>(config_.seed));
  warmup_ = resolved_warmup_steps(config_.warmup_steps, config_.warmup_ratio, plan_.total_steps);
  // HF's strategies: "epoch" acts at every epoch's end, "no" never (the final checkpoint is still
  // saved).
  auto interval = [&](const std::string& strategy, int64_t steps) {
    return strategy == "no" ? 0 : strategy == "epoch" ? plan_.steps_per_epoch : steps;
  };
  eval_interval_ = interval(config_.eval_strategy, config_.eval_steps);
  save_interval_ = interval(config_.save_strategy, config_.save_steps);
  with_eval_ = config_.eval_strategy != "no" && objective_->has_eval();
  policy_->set_gradient_checkpointing(config_.gradient_checkpointing);

  for (auto& p : policy_->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    params_.push_back(p.value());
    param_names_.push_back(p.key());
  }
  // The tensors AdamW steps: the module's, or with ZeRO-2 under bf16 the fp32 masters of the
  // layers' projections, which become bf16 replicas (zero.h).
  std::vector<torch::Tensor> stepped = params_;
  if (config_.zero_stage >= 1 && ranks_->world_size() > 1 && !params_.empty()) {
    const int64_t cap = config_.ddp_bucket_cap_mb * (int64_t{1} << 20) /
                        static_cast<int64_t>(params_.front().element_size());
    std::vector<bool> replicas(params_.size(), false);
    if (config_.zero_stage >= 2 && config_.bf16)
      for (size_t t = 0; t < params_.size(); ++t)
        replicas[t] = params_[t].scalar_type() == torch::kFloat32 &&
                      is_layer_projection_weight(policy_->args(), param_names_[t]);
    zero_ = std::make_shared<ZeroShards>(config_.zero_stage, params_, ranks_, cap, replicas);
    spdlog::info(zero_->describe());
    if (zero_->has_bf16_replicas())
      spdlog::info("ZeRO-2 under bf16: the decoder layers' projections are bf16 replicas of fp32 masters "
                   "(autocast computes on the bf16 rounding either way); embeddings, norms and lm_head stay fp32");
    stepped = zero_->optimizer_tensors();
  }
  // AdamW with HF Trainer defaults from the config; two groups as HF: decayed and not decayed.
  std::vector<torch::Tensor> decay, no_decay;
  for (size_t t = 0; t < stepped.size(); ++t) (decays(param_names_[t]) ? decay : no_decay).push_back(stepped[t]);
  auto options = [&](double wd) {
    auto o = std::make_unique<torch::optim::AdamWOptions>(config_.learning_rate);
    o->betas({config_.adam_beta1, config_.adam_beta2}).eps(config_.adam_epsilon).weight_decay(wd);
    return o;
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(config_.weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  optimizer_ = std::make_unique<FusedAdamW>(
      groups, torch::optim::AdamWOptions(config_.learning_rate));
  spdlog::info("AdamW: {}", FusedAdamW::available()
                                ? "LibTorch's fused kernel"
                                : "per-tensor ops (this LibTorch has no fused AdamW kernel; 2.4 and later do)");
}

double Trainer::set_learning_rate(int64_t step) {
  const double lr = config_.learning_rate *
                    lr_multiplier(config_.lr_scheduler_type, step, warmup_, plan_.total_steps);
  for (auto& g : optimizer_->param_groups())
    static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
  return lr;
}

std::vector<int64_t> Trainer::rank_slice(const std::vector<int64_t>& global) const {
  const int64_t b = config_.per_device_train_batch_size, first = ranks_->rank() * b;
  return std::vector<int64_t>(global.begin() + first, global.begin() + first + b);
}

void Trainer::sum_over_ranks(torch::Tensor& step_values) {
  if (!ranks_->grouped()) return;
  if (zero_ && zero_->stage() >= 2) {  // the gradients are with their owners already
    std::vector<torch::Tensor> values = {step_values};
    ranks_->all_reduce_sum(values);
    step_values = values[0];
    return;
  }
  std::vector<torch::Tensor> flat;
  for (auto& p : params_) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    flat.push_back(p.grad().reshape(-1));
  }
  std::vector<torch::Tensor> buffers = {torch::cat(flat), step_values};
  ranks_->all_reduce_sum(buffers);
  int64_t at = 0;
  for (auto& p : params_) {
    const int64_t n = p.numel();
    p.mutable_grad().copy_(buffers[0].narrow(0, at, n).view_as(p));
    at += n;
  }
}

std::map<std::string, double> Trainer::mean_over_ranks(std::map<std::string, double> values) {
  if (!ranks_->grouped()) return values;
  std::vector<double> v;
  for (const auto& [k, x] : values) v.push_back(x);  // same keys, same order on every rank
  std::vector<torch::Tensor> t = {torch::tensor(v, torch::kFloat64)};
  ranks_->all_reduce_sum(t);
  size_t i = 0;
  for (auto& [k, x] : values) x = t[0][static_cast<int64_t>(i++)].item<double>() / static_cast<double>(ranks_->world_size());
  return values;
}

std::map<std::string, double> Trainer::evaluate() {
  std::map<std::string, double> out;
  if (!with_eval_) return out;
  torch::NoGradGuard no_grad;
  policy_->eval();
  std::map<std::string, double> m = objective_->evaluate(policy_);
  policy_->train();
  for (const auto& [k, v] : m) out["eval_" + k] = v;
  return out;
}

void Trainer::log_event(const LogEvent& e) {
  history_.push_back(e);
  if (!ranks_->is_main()) return;
  append_metrics_line(path_join(config_.output_dir, "metrics.jsonl"), log_event_json(e));
}

std::string Trainer::save_checkpoint() {
  std::map<std::string, torch::Tensor> masters;  // of the bf16 replicas, on rank 0
  if (zero_) {
    if (zero_->has_bf16_replicas()) {
      std::vector<torch::Tensor> held = zero_->gather_masters_to_main();
      for (size_t t = 0; t < held.size(); ++t)
        if (held[t].defined()) masters[param_names_[t]] = held[t];
    }
    // Each rank writes its AdamW state into the directory rank 0 renames into place last.
    const std::string tmp = checkpoint_path(config_.output_dir, step_) + ".tmp";
    if (ranks_->is_main()) {
      std::filesystem::remove_all(tmp);
      make_dirs(tmp);
    }
    ranks_->barrier("checkpoint " + tmp);
    save_optimizer_shard(tmp, ranks_->rank(), ranks_->world_size(), *optimizer_, param_names_,
                         zero_->optimizer_tensors(), zero_->owned());
    ranks_->barrier("optimizer shards in " + tmp);
  }
  if (!ranks_->is_main()) return "";
  TrainerState s;
  s.global_step = step_;
  s.epoch = plan_.epoch_at(step_);
  s.data_seed = plan_.seed;
  s.total_steps = plan_.total_steps;
  s.history = history_;
  s.config_yaml = config_to_yaml(config_);
  std::string dir = save_checkpoint_dir(
      config_.output_dir, config_.model_name_or_path, policy_, *optimizer_, s,
      config_.save_dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32, masters,
      /*sharded_optimizer=*/zero_ != nullptr);
  rotate_checkpoints(config_.output_dir, config_.save_total_limit);
  spdlog::info("step {}: saved {}", step_, dir);
  return dir;
}

void Trainer::resume_from(const std::string& dir) {
  TrainerState s = load_checkpoint_dir(dir, policy_, *optimizer_);
  // The AdamW state: a plain run's optimizer.pt holds every tensor's (a ZeRO rank keeps its
  // share), a ZeRO run's shards hold them by name (each rank reads what it steps).
  if (optimizer_shard_count(dir) > 0 && !file_exists(path_join(dir, "optimizer.pt")))
    load_optimizer_shards(dir, *optimizer_, param_names_, zero_ ? zero_->optimizer_tensors() : params_,
                          zero_ ? zero_->owned() : std::vector<bool>(params_.size(), true));
  else if (zero_)
    zero_->drop_foreign_state(*optimizer_);
  // The fp32 masters of the bf16 replicas from the checkpoint's fp32 weights (the replicas were
  // loaded rounded).
  if (zero_) {
    if (zero_->has_bf16_replicas()) {
      auto read = checkpoint_fp32_reader(dir);
      zero_->load_masters([&](size_t t) { return read(param_names_[t]); });
    }
  }
  if (s.total_steps != plan_.total_steps)
    spdlog::warn(
        "{}: the checkpoint was made for {} total steps, this run has {}; the schedule differs",
        dir, s.total_steps, plan_.total_steps);
  if (s.data_seed != plan_.seed)
    spdlog::warn("{}: data order seed {} differs from this run's seed {}", dir, s.data_seed,
                 plan_.seed);
  step_ = s.global_step;
  history_ = s.history;
  spdlog::info("resumed from {} at step {} (epoch {:.3f})", dir, step_, plan_.epoch_at(step_));
}

TrainResult Trainer::train() {
  // ---- setup ----
  const bool main = ranks_->is_main();
  // config.yaml last: a run refused here, or failing to load its checkpoint, leaves the earlier
  // run's config.yaml as that run wrote it. Every rank resumes from the checkpoint rank 0 chose.
  std::string resume_dir;
  if (main) {
    make_dirs(config_.output_dir);
    resume_dir = prepare_output_dir(config_);
  }
  resume_dir = ranks_->broadcast("resume_dir", resume_dir);
  // As HF's Trainer (set_seed): the run's random draws (LoRA dropout) follow `seed`; a resumed run
  // takes the checkpoint's generator state instead.
  torch::manual_seed(static_cast<uint64_t>(config_.seed));
  if (!resume_dir.empty())
    resume_from(resume_dir);
  else if (!config_.resume_from_checkpoint.empty())
    spdlog::info("resume_from_checkpoint {}: no checkpoint in {}, starting from step 0",
                 config_.resume_from_checkpoint, config_.output_dir);
  if (main) {
    write_file_atomic(path_join(config_.output_dir, "config.yaml"), config_to_yaml(config_));
    // metrics.jsonl holds exactly the history up to the start step (a resumed run rewrites it).
    std::string text;
    for (const auto& e : history_) text += log_event_json(e) + "\n";
    write_file_atomic(path_join(config_.output_dir, "metrics.jsonl"), text);
  }
  spdlog::info("train: {} examples of {}, {} steps ({} per epoch) of {} × {}{}, lr {} ({}, {} warmup)",
               plan_.num_pairs, objective_->name(), plan_.total_steps, plan_.steps_per_epoch,
               plan_.micro_batch, plan_.accumulation,
               ranks_->grouped() ? fmt::format(" over {} rank{} ({})", ranks_->world_size(),
                                               ranks_->world_size() > 1 ? "s" : "", ranks_->backend())
                                 : "",
               config_.learning_rate, config_.lr_scheduler_type, warmup_);
  g_stop_requested = false;
  reset_cuda_peak(device_);  // peak_memory_alloc: the training's, not the loading's
  auto prev_handler = std::signal(SIGINT, on_sigint);
  policy_->train();
  TrainResult result;
  objective_->clear_metrics();
  int64_t tokens = 0;  // since the last log line
  StepProgress bar(plan_.total_steps, step_);
  auto t_log = std::chrono::steady_clock::now();
  std::string last_saved;
  auto last_good = [&] {
    auto all = list_checkpoints(config_.output_dir);
    return all.empty() ? std::string("none") : all.back();
  };

  if (main && with_eval_ && step_ == 0 && eval_interval_ > 0) {  // the untrained policy: where curves start
    LogEvent e{0, evaluate()};
    e.values["epoch"] = 0.0;
    log_event(e);
    spdlog::info("step 0: eval {}", objective_->summary(e.values, "eval_"));
  }

  // ---- loop ----
  try {
    while (step_ < plan_.total_steps) {
      if (g_stop_requested && ranks_->world_size() == 1) {
        result.interrupted = true;
        break;
      }
      const int64_t step = step_;  // 0-based index of this update; logs call it step + 1
      const double lr = set_learning_rate(step);
      optimizer_->zero_grad();
      double step_units = 0;
      for (int64_t micro = 0; micro < plan_.accumulation; ++micro)
        step_units += objective_->units(plan_.micro_batch_pairs(step, micro));
      std::vector<torch::Tensor> losses;
      int64_t step_tokens = 0;
      for (int64_t micro = 0; micro < plan_.accumulation; ++micro) {
        // Each rank's micro-batch loss is its share of the global step's: the sum over ranks of
        // the backward is the single-process one.
        MicroBatchLoss out = objective_->micro_batch(
            policy_, rank_slice(plan_.micro_batch_pairs(step, micro)), step + 1, step_units,
            plan_.accumulation * ranks_->world_size());
        if (zero_) zero_->begin_backward();
        out.backward.backward();
        if (zero_) zero_->end_backward();
        losses.push_back(out.loss.to(torch::kFloat64));
        step_tokens += out.tokens;
      }
      // One read of the step's micro-batch losses; a bad one stops before anything is updated.
      // Ranks sum them with the gradients, so all of them see a bad loss and stop together; and
      // whether any rank was asked to stop, with the step's tokens on all ranks (host values).
      torch::Tensor step_values = torch::stack(losses);
      sum_over_ranks(step_values);
      const torch::Tensor step_losses = step_values.to(torch::kCPU);
      bool stop_after_step = false;
      if (ranks_->grouped()) {
        std::vector<torch::Tensor> counts = {
            torch::tensor({g_stop_requested ? 1.0 : 0.0, static_cast<double>(step_tokens)},
                          torch::kFloat64)};
        ranks_->all_reduce_sum(counts);
        stop_after_step = counts[0][0].item<double>() > 0;
        step_tokens = static_cast<int64_t>(counts[0][1].item<double>());
      }
      tokens += step_tokens;
      for (int64_t micro = 0; micro < plan_.accumulation; ++micro) {
        const double loss = step_losses[micro].item<double>();
        if (!finite(loss))
          fail("step " + std::to_string(step + 1),
               "the loss is " + std::to_string(loss) + " (micro-batch " + std::to_string(micro) +
                   ", examples from " + objective_->name() + "); stopped without saving this state",
               "the last good checkpoint is " + last_good() +
                   "; lower learning_rate or check the training data");
      }
      const double max_norm = config_.max_grad_norm > 0 ? config_.max_grad_norm
                                                        : std::numeric_limits<double>::infinity();
      const double grad_norm = zero_ ? zero_->clip_grad_norm(max_norm)
                                     : torch::nn::utils::clip_grad_norm_(params_, max_norm);
      if (!finite(grad_norm))
        fail("step " + std::to_string(step + 1),
             "grad_norm is " + std::to_string(grad_norm) + "; stopped without updating or saving",
             "the last good checkpoint is " + last_good() +
                 "; lower learning_rate or check the reward dump");
      if (zero_)
        zero_->step(*optimizer_);
      else
        optimizer_->step();
      step_ = step + 1;

      if (step_ % config_.logging_steps == 0 || step_ == plan_.total_steps) {
        auto now = std::chrono::steady_clock::now();
        const double secs = std::max(1e-9, std::chrono::duration<double>(now - t_log).count());
        LogEvent e{step_, mean_over_ranks(objective_->metrics())};
        e.values["grad_norm"] = grad_norm;
        e.values["learning_rate"] = lr;
        e.values["epoch"] = plan_.epoch_at(step_);
        e.values["tokens_per_second"] = static_cast<double>(tokens) / secs;
        // torchtune's name: the CUDA caching allocator's peak (GiB) since the run started.
        const int64_t peak = cuda_peak_allocated_bytes(device_);
        if (peak >= 0) e.values["peak_memory_alloc"] = static_cast<double>(peak) / (1 << 30);
        log_event(e);
        const std::string headline = objective_->headline_metric();
        if (main)
          bar.update(step_, e.values["loss"], headline, e.values[headline],
                     e.values["tokens_per_second"]);
        spdlog::debug("step {}: {}", step_, log_event_json(e));
        if (!isatty(2))
          spdlog::info("step {}/{}: {} lr {:.3g} grad_norm {:.3f} {:.0f} tok/s{}", step_,
                       plan_.total_steps, objective_->summary(e.values, ""), lr, grad_norm,
                       e.values["tokens_per_second"],
                       peak >= 0 ? fmt::format(" peak {:.2f} GiB", e.values["peak_memory_alloc"]) : "");
        objective_->clear_metrics();
        tokens = 0;
        t_log = now;
      }
      if (main && with_eval_ && eval_interval_ > 0 && step_ % eval_interval_ == 0 &&
          step_ < plan_.total_steps) {
        LogEvent e{step_, evaluate()};
        e.values["epoch"] = plan_.epoch_at(step_);
        log_event(e);
        spdlog::info("step {}: eval {}", step_, objective_->summary(e.values, "eval_"));
        t_log = std::chrono::steady_clock::now();
      }
      if (save_interval_ > 0 && step_ % save_interval_ == 0 && step_ < plan_.total_steps) {
        const std::string dir = save_checkpoint();  // every rank: ZeRO gathers to rank 0
        if (main) last_saved = dir;
      }
      if (hooks_.after_step) hooks_.after_step(step_);
      if (stop_after_step) {
        result.interrupted = true;
        break;
      }
    }
  } catch (...) {
    bar.done();
    std::signal(SIGINT, prev_handler);
    throw;
  }
  bar.done();
  std::signal(SIGINT, prev_handler);

  // ---- cleanup ----
  if (result.interrupted) {
    spdlog::warn("interrupted: saving a checkpoint at step {} and stopping", step_);
  } else if (main && with_eval_) {
    LogEvent e{step_, evaluate()};
    e.values["epoch"] = plan_.epoch_at(step_);
    log_event(e);
    spdlog::info("final eval (step {}): {}", step_, objective_->summary(e.values, "eval_"));
  }
  const std::string final_dir = save_checkpoint();
  if (main) {
    result.last_checkpoint = final_dir;
    if (policy_->lora() && !result.interrupted) {
      // save_dtype, else the frozen projections' dtype (bf16 with bf16: true), as PEFT's
      // merge_and_unload keeps the base's.
      const bool bf16 = config_.save_dtype.empty() ? config_.bf16 : config_.save_dtype == "bfloat16";
      const std::string merged =
          save_merged_export(result.last_checkpoint, config_.model_name_or_path, policy_,
                             bf16 ? torch::kBFloat16 : torch::kFloat32);
      spdlog::info("LoRA: adapters in {} (PEFT layout), merged model in {}", result.last_checkpoint,
                   merged);
    }
    write_report();
  }
  result.steps_done = step_;
  result.history = history_;
  return result;
}

}  // namespace treg
