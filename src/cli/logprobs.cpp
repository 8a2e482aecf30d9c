// treg logprobs: per-token log-probabilities of token-id sequences under a model.
//   in:  {"ids": [...]} per line      out: the same object plus "logprobs": [log p(ids[i+1] |
//   ids[..i])]
#include <spdlog/spdlog.h>

#include <fstream>

#include "cli/commands.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/model.h"
#include "treg/runtime.h"

namespace treg::cli {

namespace {

struct LogprobsOptions {
  std::string model, input, out;
  std::string device = "cpu", dtype = "float32";
  int64_t batch_size = 8;
  int64_t chunk_tokens = 1024;
};

std::vector<nlohmann::json> read_id_lines(const std::string& path, int64_t vocab) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open for reading");
  std::vector<nlohmann::json> rows;
  std::string line;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(where, std::string("not valid JSON: ") + e.what());
    }
    if (!row.is_object() || !row.contains("ids") || !row["ids"].is_array())
      fail(where, "expected an object with an \"ids\" array of token ids");
    if (row["ids"].empty()) fail(where, "\"ids\" is empty");
    for (size_t i = 0; i < row["ids"].size(); ++i) {
      const auto& v = row["ids"][i];
      if (!v.is_number_integer())
        fail(where, "ids[" + std::to_string(i) + "] = " + v.dump() + " is not an integer");
      const int64_t id = v.get<int64_t>();
      if (id < 0 || id >= vocab)
        fail(where,
             "ids[" + std::to_string(i) + "] = " + std::to_string(id) +
                 " is outside the model's vocabulary [0, " + std::to_string(vocab) + ")",
             "the ids were made with a different tokenizer than this model's");
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

int run_logprobs(const LogprobsOptions& o) {
  const torch::Device device = parse_device(o.device);
  const torch::ScalarType dtype = parse_dtype(o.dtype);
  if (o.batch_size <= 0)
    fail("--batch-size", "must be positive, got " + std::to_string(o.batch_size));
  CausalLM model = load_model(o.model, device, dtype);
  model->eval();
  std::vector<nlohmann::json> rows = read_id_lines(o.input, model->args().vocab_size);
  spdlog::info("logprobs: {} sequences from {} with {} on {} ({})", rows.size(), o.input, o.model,
               o.device, o.dtype);

  torch::NoGradGuard no_grad;
  std::string text;
  for (size_t start = 0; start < rows.size(); start += static_cast<size_t>(o.batch_size)) {
    const size_t end = std::min(rows.size(), start + static_cast<size_t>(o.batch_size));
    int64_t T = 0;
    for (size_t r = start; r < end; ++r)
      T = std::max<int64_t>(T, static_cast<int64_t>(rows[r]["ids"].size()));
    const int64_t B = static_cast<int64_t>(end - start);
    torch::Tensor ids = torch::zeros({B, T}, torch::kInt64);   // [B, T], right-padded with 0
    torch::Tensor mask = torch::zeros({B, T}, torch::kInt64);  // [B, T]
    auto ids_a = ids.accessor<int64_t, 2>();
    auto mask_a = mask.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      const auto& seq = rows[start + static_cast<size_t>(b)]["ids"];
      for (size_t t = 0; t < seq.size(); ++t) {
        ids_a[b][static_cast<int64_t>(t)] = seq[t].get<int64_t>();
        mask_a[b][static_cast<int64_t>(t)] = 1;
      }
    }
    TokenLogprobs lp = next_token_logprobs(model, ids.to(device), mask.to(device),
                                           /*with_sq_mass=*/false, o.chunk_tokens);
    torch::Tensor logps = lp.logps.to(torch::kCPU).to(torch::kFloat64).contiguous();  // [B, T-1]
    for (int64_t b = 0; b < B; ++b) {
      nlohmann::json row = rows[start + static_cast<size_t>(b)];
      const int64_t n = static_cast<int64_t>(row["ids"].size());
      std::vector<double> values(static_cast<size_t>(n - 1));
      for (int64_t t = 0; t + 1 < n; ++t)
        values[static_cast<size_t>(t)] = logps[b][t].item<double>();
      row["logprobs"] = values;
      text += row.dump() + "\n";
    }
  }
  write_file_atomic(o.out, text);
  spdlog::info("logprobs: wrote {}", o.out);
  return 0;
}

}  // namespace

void add_logprobs_command(CLI::App& app) {
  auto opts = std::make_shared<LogprobsOptions>();
  CLI::App* sub =
      app.add_subcommand("logprobs", "Per-token log-probabilities of {\"ids\": [...]} JSONL lines");
  sub->add_option("--model", opts->model,
                  "Hugging Face model directory (config.json + safetensors)")
      ->required();
  sub->add_option("--input", opts->input, "JSONL with {\"ids\": [...]} per line")->required();
  sub->add_option("--out", opts->out, "output JSONL (written atomically)")->required();
  sub->add_option("--device", opts->device, "cpu | cuda | cuda:N")->capture_default_str();
  sub->add_option("--dtype", opts->dtype, "float32 | bfloat16")->capture_default_str();
  sub->add_option("--batch-size", opts->batch_size, "sequences per forward pass")
      ->capture_default_str();
  sub->add_option("--chunk-tokens", opts->chunk_tokens, "positions per log-softmax chunk")
      ->capture_default_str();
  set_action(sub, [opts] { return run_logprobs(*opts); });
}

}  // namespace treg::cli
