// Checkpoints: the model in the Hugging Face layout plus the trainer state needed to resume exactly.
#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "treg/error.h"
#include "treg/io.h"
#include "treg/trainer.h"

namespace treg {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kStateMagic = 0x5452454753544154;  // "TREGSTAT"
constexpr int64_t kStateVersion = 1;

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

int64_t read_i64(torch::serialize::InputArchive& a, const std::string& key, const std::string& where) {
  torch::Tensor t;
  if (!a.try_read(key, t)) fail(where, "missing entry '" + key + "'");
  return t.item<int64_t>();
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

std::string save_checkpoint_dir(const std::string& output_dir, const std::string& model_dir, CausalLM& model,
                                torch::optim::AdamW& optimizer, const TrainerState& state) {
  const std::string final_dir = path_join(output_dir, "checkpoint-" + std::to_string(state.global_step));
  const std::string tmp = final_dir + ".tmp";
  fs::remove_all(tmp);
  make_dirs(tmp);

  // The model, fp32 master weights (HF's layout; config.json torch_dtype float32).
  save_model(model, tmp, torch::kFloat32);
  for (const char* f : kModelSideFiles) {
    const std::string src = path_join(model_dir, f);
    if (file_exists(src)) write_file_atomic(path_join(tmp, f), read_file(src));
  }

  torch::serialize::OutputArchive opt;
  optimizer.save(opt);
  save_archive(opt, path_join(tmp, "optimizer.pt"));

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
  for (const auto& e : state.history) js["log_history"].push_back(nlohmann::json::parse(log_event_json(e)));
  write_file_atomic(path_join(tmp, "trainer_state.json"), js.dump(2) + "\n");

  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  return final_dir;
}

TrainerState load_checkpoint_dir(const std::string& dir, CausalLM& model, torch::optim::AdamW& optimizer) {
  const std::string state_path = path_join(dir, "trainer_state.pt");
  if (!file_exists(state_path))
    fail(dir, "not a treg checkpoint: trainer_state.pt is missing",
         "resume_from_checkpoint takes a checkpoint-<step> directory written by treg train");
  torch::serialize::InputArchive st;
  st.load_from(state_path);
  if (read_i64(st, "magic", state_path) != kStateMagic) fail(state_path, "bad magic number: not a treg trainer state");
  const int64_t version = read_i64(st, "format_version", state_path);
  if (version != kStateVersion)
    fail(state_path, "trainer state format version " + std::to_string(version) + ", this treg reads " +
                         std::to_string(kStateVersion));
  TrainerState s;
  s.global_step = read_i64(st, "global_step", state_path);
  s.total_steps = read_i64(st, "total_steps", state_path);
  s.data_seed = static_cast<uint64_t>(read_i64(st, "data_seed", state_path));
  const std::string json_path = path_join(dir, "trainer_state.json");
  if (file_exists(json_path)) {
    for (const auto& row : nlohmann::json::parse(read_file(json_path)).value("log_history", nlohmann::json::array())) {
      LogEvent e;
      e.step = row.value("step", int64_t{0});
      for (const auto& [k, v] : row.items()) {
        if (k == "step") continue;
        if (v.is_number()) e.values[k] = v.get<double>();
        else if (v.is_string()) e.values[k] = std::stod(v.get<std::string>());  // "nan" / "inf"
      }
      s.history.push_back(std::move(e));
    }
  }
  torch::Tensor rng;
  if (st.try_read("cpu_rng_state", rng)) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng);
  }

  // Weights: load the checkpoint's model and copy into `model` by parameter name.
  const auto device = model->parameters().front().device();
  CausalLM saved = load_model(dir, torch::kCPU, torch::kFloat32);
  auto src = saved->named_parameters();
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    const torch::Tensor* q = src.find(p.key());
    if (!q) fail(dir, "checkpoint has no parameter '" + p.key() + "'");
    p.value().copy_(q->to(device));
  }

  torch::serialize::InputArchive opt;
  opt.load_from(path_join(dir, "optimizer.pt"));
  optimizer.load(opt);
  return s;
}

}  // namespace treg
