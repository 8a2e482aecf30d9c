// Checkpoints: the model in the Hugging Face layout plus the trainer state needed to resume
// exactly, and what a run may continue from them (prepare_output_dir): one output_dir holds one
// run.
#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "treg/error.h"
#include "treg/io.h"
#include "treg/optimizer_shards.h"
#include "treg/safetensors.h"
#include "treg/trainer.h"

namespace treg {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kStateMagic = 0x5452454753544154;  // "TREGSTAT"
constexpr int64_t kStateVersion = 1;

// The fp32 master weights, when the checkpoint's HF model is saved in another dtype.
const char* const kMasterWeights = "master_weights.safetensors";

// Tokenizer and generation files that make a checkpoint directory loadable by HF / vLLM unchanged.
const char* kModelSideFiles[] = {"tokenizer.json",
                                 "tokenizer.model",
                                 "tokenizer_config.json",
                                 "special_tokens_map.json",
                                 "added_tokens.json",
                                 "vocab.json",
                                 "merges.txt",
                                 "generation_config.json",
                                 "chat_template.jinja"};

void save_archive(torch::serialize::OutputArchive& a, const std::string& path) {
  std::ostringstream os;
  a.save_to(os);
  write_file_atomic(path, os.str());
}

torch::Tensor scalar_i64(int64_t v) { return torch::tensor({v}, torch::kInt64); }

int64_t read_i64(torch::serialize::InputArchive& a, const std::string& key,
                 const std::string& where) {
  torch::Tensor t;
  if (!a.try_read(key, t)) fail(where, "missing entry '" + key + "'");
  return t.item<int64_t>();
}

constexpr const char* kConfigFile = "treg_config.yaml";

// What to do about a damaged checkpoint: fall back to the one before it.
std::string damaged_checkpoint_hint(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();  // "checkpoint-4/"
  const fs::path me = fs::weakly_canonical(p);
  std::string earlier;
  bool found = false;
  for (const std::string& c :
       list_checkpoints(p.has_parent_path() ? p.parent_path().string() : std::string("."))) {
    if (fs::weakly_canonical(c) == me) {
      found = true;
      break;
    }
    earlier = c;
  }
  if (!found || earlier.empty())
    return "delete " + dir +
           " and resume from an earlier checkpoint, or start over (overwrite_output_dir: true)";
  return "delete " + dir + " and resume from the checkpoint before it, " + earlier +
         " (resume_from_checkpoint=auto takes it once " + dir + " is gone)";
}

// A torch archive of a checkpoint, read with libtorch's terse errors turned into ones naming the
// file.
void load_archive(torch::serialize::InputArchive& a, const std::string& path,
                  const std::string& dir) {
  if (!file_exists(path))
    fail(path, "missing: the checkpoint is incomplete", damaged_checkpoint_hint(dir));
  try {
    a.load_from(path);
  } catch (const c10::Error& e) {
    const std::string why = e.what_without_backtrace();
    fail(path, "corrupt: not a readable torch archive (" + why.substr(0, why.find('\n')) + ")",
         damaged_checkpoint_hint(dir));
  }
}

void copy_model_side_files(const std::string& model_dir, const std::string& dir) {
  for (const char* f : kModelSideFiles) {
    const std::string src = path_join(model_dir, f);
    if (file_exists(src)) write_file_atomic(path_join(dir, f), read_file(src));
  }
}

void write_checkpoint_files(const std::string& tmp, const std::string& model_dir, CausalLM& model,
                            torch::optim::AdamW& optimizer, const TrainerState& state,
                            torch::ScalarType model_dtype,
                            const std::map<std::string, torch::Tensor>& fp32_weights,
                            bool sharded_optimizer) {
  make_dirs(tmp);

  // The model in HF's layout: the fp32 master weights themselves, or in `model_dtype` with the
  // master weights beside it; a LoRA model's adapters instead (the base is model_dir).
  if (model->lora()) {
    save_lora_adapter(model, tmp, model_dir);
  } else {
    save_model(model, tmp, model_dtype, 2LL << 30, fp32_weights);
    if (model_dtype != torch::kFloat32) {
      NamedTensors master;
      torch::NoGradGuard no_grad;
      for (const auto& p : model->named_parameters()) {
        auto held = fp32_weights.find(p.key());
        const torch::Tensor& t = held != fp32_weights.end() ? held->second : p.value();
        master.emplace_back(p.key(), t.detach().to(torch::kCPU, torch::kFloat32).contiguous());
      }
      save_safetensors(path_join(tmp, kMasterWeights), master);
    }
  }
  copy_model_side_files(model_dir, tmp);

  if (!sharded_optimizer) {
    torch::serialize::OutputArchive opt;
    optimizer.save(opt);
    save_archive(opt, path_join(tmp, "optimizer.pt"));
  }

  torch::serialize::OutputArchive st;
  st.write("magic", scalar_i64(kStateMagic));
  st.write("format_version", scalar_i64(kStateVersion));
  st.write("global_step", scalar_i64(state.global_step));
  st.write("total_steps", scalar_i64(state.total_steps));
  st.write("data_seed", scalar_i64(static_cast<int64_t>(state.data_seed)));
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    st.write("cpu_rng_state", gen.get_state());
  }
  save_archive(st, path_join(tmp, "trainer_state.pt"));

  nlohmann::json js = {{"global_step", state.global_step},
                       {"epoch", state.epoch},
                       {"max_steps", state.total_steps},
                       {"data_seed", state.data_seed},
                       {"format", "treg trainer state v1; exact state is in trainer_state.pt"}};
  js["log_history"] = nlohmann::json::array();
  for (const auto& e : state.history)
    js["log_history"].push_back(nlohmann::json::parse(log_event_json(e)));
  write_file_atomic(path_join(tmp, "trainer_state.json"), js.dump(2) + "\n");
  if (!state.config_yaml.empty()) write_file_atomic(path_join(tmp, kConfigFile), state.config_yaml);
}

}  // namespace

std::vector<std::string> list_checkpoints(const std::string& output_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  if (!fs::is_directory(output_dir)) return {};
  for (const auto& e : fs::directory_iterator(output_dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.rfind("checkpoint-", 0) != 0) continue;
    const std::string num = name.substr(11);
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) continue;
    found.emplace_back(std::stoll(num), e.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

void rotate_checkpoints(const std::string& output_dir, int64_t keep) {
  if (keep <= 0) return;
  auto all = list_checkpoints(output_dir);
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) {
    spdlog::info("removing old checkpoint {} (save_total_limit {})", all[i], keep);
    fs::remove_all(all[i]);
  }
}

namespace {

// Fills "<dir>.tmp" with `write` and renames it to `dir` last, so `dir` is complete or absent. A
// failed write (a full disk) removes the .tmp directory rather than leave it to fill the disk.
std::string write_dir_atomically(const std::string& dir,
                                 const std::function<void(const std::string&)>& write,
                                 bool fresh = true) {
  const std::string tmp = dir + ".tmp";
  if (fresh) fs::remove_all(tmp);
  try {
    write(tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  fs::remove_all(dir);
  fs::rename(tmp, dir);
  return dir;
}

}  // namespace

std::string save_checkpoint_dir(const std::string& output_dir, const std::string& model_dir,
                                CausalLM& model, torch::optim::AdamW& optimizer,
                                const TrainerState& state, torch::ScalarType model_dtype,
                                const std::map<std::string, torch::Tensor>& fp32_weights,
                                bool sharded_optimizer) {
  return write_dir_atomically(
      checkpoint_path(output_dir, state.global_step),
      [&](const std::string& tmp) {
        write_checkpoint_files(tmp, model_dir, model, optimizer, state, model_dtype, fp32_weights,
                               sharded_optimizer);
      },
      /*fresh=*/!sharded_optimizer);
}

std::string checkpoint_path(const std::string& output_dir, int64_t step) {
  return path_join(output_dir, "checkpoint-" + std::to_string(step));
}

std::string save_merged_export(const std::string& checkpoint_dir, const std::string& model_dir,
                               CausalLM& model, torch::ScalarType dtype) {
  return write_dir_atomically(path_join(checkpoint_dir, "merged"), [&](const std::string& tmp) {
    save_model(model, tmp, dtype);
    copy_model_side_files(model_dir, tmp);
  });
}

TrainerState load_checkpoint_dir(const std::string& dir, CausalLM& model,
                                 torch::optim::AdamW& optimizer) {
  const std::string state_path = path_join(dir, "trainer_state.pt");
  if (!file_exists(state_path))
    fail(dir, "not a treg checkpoint: trainer_state.pt is missing",
         "resume_from_checkpoint takes a checkpoint-<step> directory written by treg train");
  torch::serialize::InputArchive st;
  load_archive(st, state_path, dir);
  if (read_i64(st, "magic", state_path) != kStateMagic)
    fail(state_path, "bad magic number: not a treg trainer state");
  const int64_t version = read_i64(st, "format_version", state_path);
  if (version != kStateVersion)
    fail(state_path, "trainer state format version " + std::to_string(version) +
                         ", this treg reads " + std::to_string(kStateVersion));
  TrainerState s;
  s.global_step = read_i64(st, "global_step", state_path);
  s.total_steps = read_i64(st, "total_steps", state_path);
  s.data_seed = static_cast<uint64_t>(read_i64(st, "data_seed", state_path));
  const std::string json_path = path_join(dir, "trainer_state.json");
  if (file_exists(json_path)) {
    nlohmann::json js;
    try {
      js = nlohmann::json::parse(read_file(json_path));
    } catch (const nlohmann::json::exception& e) {
      fail(json_path, std::string("corrupt: ") + e.what(), damaged_checkpoint_hint(dir));
    }
    for (const auto& row : js.value("log_history", nlohmann::json::array())) {
      LogEvent e;
      e.step = row.value("step", int64_t{0});
      for (const auto& [k, v] : row.items()) {
        if (k == "step") continue;
        if (v.is_number())
          e.values[k] = v.get<double>();
        else if (v.is_string())
          e.values[k] = std::stod(v.get<std::string>());  // "nan" / "inf"
      }
      s.history.push_back(std::move(e));
    }
  }
  if (file_exists(path_join(dir, kConfigFile)))
    s.config_yaml = read_file(path_join(dir, kConfigFile));
  torch::Tensor rng;
  if (st.try_read("cpu_rng_state", rng)) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng);
  }

  // Weights: a LoRA checkpoint's adapters, or the checkpoint's model copied into `model` by
  // parameter name.
  const bool adapters = file_exists(path_join(dir, "adapter_config.json"));
  if (adapters) {
    load_lora_adapter(model, dir);
  } else if (model->lora()) {
    fail(dir, "holds a full model, not LoRA adapters, and this run trains adapters (use_peft)",
         "resume it with use_peft: false, or start the LoRA run in a new output_dir");
  } else if (file_exists(path_join(dir, kMasterWeights))) {
    // The fp32 master weights of a checkpoint whose HF model is in a smaller dtype (save_dtype).
    const std::string path = path_join(dir, kMasterWeights);
    SafetensorsFile master(path);
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) {
      if (!master.contains(p.key()) || master.entry(p.key()).shape != p.value().sizes().vec())
        fail(path, "has no tensor '" + p.key() + "' of the model's shape",
             damaged_checkpoint_hint(dir));
      p.value().copy_(master.load(p.key(), p.value().options()));
    }
  } else {
    const auto device = model->parameters().front().device();
    CausalLM saved = load_model(dir, torch::kCPU, torch::kFloat32);
    auto src = saved->named_parameters();
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) {
      const torch::Tensor* q = src.find(p.key());
      if (!q) fail(dir, "checkpoint has no parameter '" + p.key() + "'");
      p.value().copy_(q->to(device));
    }
  }

  const std::string opt_path = path_join(dir, "optimizer.pt");
  // A sharded run's checkpoint: the caller reads the shards (load_optimizer_shards).
  if (!file_exists(opt_path) && optimizer_shard_count(dir) > 0) return s;
  torch::serialize::InputArchive opt;
  load_archive(opt, opt_path, dir);
  try {
    optimizer.load(opt);
  } catch (const c10::Error& e) {
    const std::string why = e.what_without_backtrace();
    fail(opt_path,
         "corrupt, or the AdamW state of another model (" + why.substr(0, why.find('\n')) + ")",
         damaged_checkpoint_hint(dir));
  }
  return s;
}

std::function<torch::Tensor(const std::string&)> checkpoint_fp32_reader(const std::string& dir) {
  const std::string master = path_join(dir, kMasterWeights);
  const auto cpu32 = torch::TensorOptions().dtype(torch::kFloat32);
  if (file_exists(master)) {
    auto file = std::make_shared<SafetensorsFile>(master);
    return [file, master, dir, cpu32](const std::string& name) {
      if (!file->contains(name)) fail(master, "has no tensor '" + name + "'", damaged_checkpoint_hint(dir));
      return file->load(name, cpu32);
    };
  }
  auto ckpt = std::make_shared<SafetensorsCheckpoint>(dir);
  return [ckpt, dir, cpu32](const std::string& name) {
    if (!ckpt->contains(name)) fail(dir, "checkpoint has no parameter '" + name + "'");
    return ckpt->load(name, cpu32);
  };
}

// ---- the output_dir of a run ----

namespace {

// Besides checkpoint-* directories, what a run writes into output_dir. Reward dumps, mixture files
// and bad-row files are not here: they are keyed by what made them (ensure_reward_dumps refuses a
// stale dump), so a new run may share them.
const char* kRunFiles[] = {"config.yaml", "metrics.jsonl", "report.html"};

std::vector<std::string> earlier_run(const std::string& output_dir) {
  std::vector<std::string> out;
  for (const std::string& c : list_checkpoints(output_dir)) out.push_back(c);
  for (const char* f : kRunFiles)
    if (file_exists(path_join(output_dir, f))) out.push_back(path_join(output_dir, f));
  return out;
}

// A kill during a save leaves checkpoint-<N>.tmp; nothing reads it, and on a full disk it is the
// space the next save needs. The output_dir lock makes sure no other run is writing it now.
void remove_stale_checkpoint_tmps(const std::string& output_dir) {
  if (!fs::is_directory(output_dir)) return;
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(output_dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && name.rfind("checkpoint-", 0) == 0 && name.size() > 15 &&
        name.compare(name.size() - 4, 4, ".tmp") == 0)
      stale.push_back(e.path());
  }
  for (const fs::path& p : stale) {
    spdlog::info("removing {}: an unfinished checkpoint of a run that was killed while saving",
                 p.string());
    fs::remove_all(p);
  }
}

// The "key: value" lines of config_to_yaml (one per setting; strings are double-quoted on one
// line).
std::map<std::string, std::string> setting_lines(const std::string& yaml) {
  std::map<std::string, std::string> out;
  std::istringstream in(yaml);
  for (std::string line; std::getline(in, line);) {
    const size_t colon = line.find(": ");
    if (line.empty() || line[0] == '#' || line[0] == ' ' || colon == std::string::npos) continue;
    out[line.substr(0, colon)] = line.substr(colon + 2);
  }
  return out;
}

// Refuses to continue a run whose resolved config (`saved_yaml`, read from `source`) differs from
// this run's in a key that changes what is trained. Keys one of the two does not know (a treg of
// another version) are not compared.
void check_same_run(const std::string& saved_yaml, const std::string& source,
                    const Config& config) {
  const auto saved = setting_lines(saved_yaml);
  // The ranks may change if the global batch does not: per_device_train_batch_size x world_size.
  const size_t at = saved_yaml.find("\n# world_size: ");
  const int64_t saved_world = at == std::string::npos ? 1 : std::atoll(saved_yaml.c_str() + at + 15);
  for (const auto& [key, now] : setting_lines(config_to_yaml(config))) {
    auto it = saved.find(key);
    if (it == saved.end() || resume_compatible_key(key)) continue;
    if (key == "per_device_train_batch_size") {
      const int64_t was = std::atoll(it->second.c_str());
      if (was * saved_world == config.per_device_train_batch_size * config.world_size) continue;
      fail(source,
           "resume_from_checkpoint would continue a run with another global batch: "
           "per_device_train_batch_size x ranks was " +
               it->second + " x " + std::to_string(saved_world) + " there, this run has " + now +
               " x " + std::to_string(config.world_size),
           "keep per_device_train_batch_size x WORLD_SIZE at " +
               std::to_string(was * saved_world) + " (the ranks may change), or use a new output_dir");
    }
    if (it->second == now) continue;
    fail(source,
         "resume_from_checkpoint would continue a run made with another config: " + key + " was " +
             it->second + " there, this run has " + now,
         "to train with " + key + " " + now + ", use a new output_dir, or start over in " +
             config.output_dir +
             " with overwrite_output_dir: true and no resume_from_checkpoint (its checkpoints and "
             "metrics are removed); to continue the earlier run, set " +
             key + " back to " + it->second);
  }
}

}  // namespace

bool resume_compatible_key(const std::string& key) {
  // How often to log, evaluate and save, where the run lives and how long it goes on: none of these
  // changes the update of any step (eval batches are means over pairs; gradient checkpointing
  // recomputes the same activations).
  static const std::set<std::string> keys = {"logging_steps",
                                             "eval_strategy",
                                             "eval_steps",
                                             "save_strategy",
                                             "save_steps",
                                             "save_total_limit",
                                             "save_dtype",
                                             "report_pairs",
                                             "ddp_timeout",
                                             "ddp_backend",
                                             "zero_stage",
                                             "output_dir",
                                             "overwrite_output_dir",
                                             "resume_from_checkpoint",
                                             "num_train_epochs",
                                             "max_steps",
                                             "device",
                                             "per_device_eval_batch_size",
                                             "gradient_checkpointing",
                                             "score_batch_size"};
  return keys.count(key) > 0;
}

std::string prepare_output_dir(const Config& config) {
  const std::string& out = config.output_dir;
  const std::string& resume = config.resume_from_checkpoint;
  if (config.overwrite_output_dir && !resume.empty())
    fail("config key 'overwrite_output_dir'",
         "true starts " + out + " over, but resume_from_checkpoint " + resume +
             " asks to continue a run",
         "drop one of them");
  remove_stale_checkpoint_tmps(out);
  const std::vector<std::string> earlier = earlier_run(out);

  if (config.overwrite_output_dir) {
    for (const std::string& p : earlier) {
      spdlog::info("overwrite_output_dir: removing {} of the earlier run", p);
      fs::remove_all(p);
    }
    return "";
  }
  if (resume.empty()) {
    if (earlier.empty()) return "";
    std::string list;
    for (const std::string& p : earlier)
      list += (list.empty() ? "" : ", ") + fs::path(p).filename().string();
    fail(out, "holds an earlier run (" + list + "); a new run there would mix with it",
         "use a new output_dir; or overwrite_output_dir: true to replace that run; or "
         "resume_from_checkpoint=auto to continue it");
  }

  std::string dir = resume;
  if (resume == "auto") {
    const auto all = list_checkpoints(out);
    dir = all.empty() ? "" : all.back();
  }
  // The run writes its checkpoints and metrics into output_dir, so both the checkpoint and the run
  // that output_dir holds must be this one.
  bool checked = false;
  if (!dir.empty() && file_exists(path_join(dir, kConfigFile))) {
    check_same_run(read_file(path_join(dir, kConfigFile)), path_join(dir, kConfigFile), config);
    checked = true;
  }
  const std::string out_config = path_join(out, "config.yaml");
  if (file_exists(out_config)) {
    check_same_run(read_file(out_config), out_config, config);
    checked = true;
  }
  if (!dir.empty() && !checked)
    spdlog::warn("{}: no saved config to compare with (an older treg wrote it); resuming unchecked",
                 dir);
  return dir;
}

}  // namespace treg
