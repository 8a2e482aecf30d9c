// treg make-tiny: a tiny random-init checkpoint (tokenizer + weights) in the Hugging Face layout.
// The tokenizer is written first: its vocabulary size and special-token ids go into config.json and
// generation_config.json, so model and tokenizer agree as they do on the Hub.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "cli/commands.h"
#include "treg/error.h"
#include "treg/model.h"
#include "treg/tiny_tokenizer.h"
#include "treg/tokenizer.h"

namespace treg::cli {

namespace {

struct MakeTinyOptions {
  std::string arch, out;
  uint64_t seed = 0;
  double init_std = 0.02;
  int64_t vocab_size = 0;  // > 0: weights only, no tokenizer
};

// The tokenizer family of a model arch: newer models reuse their family's tiny tokenizer and chat
// template (llama3.2, mistral and phi3 the Llama-3 one, qwen3 Qwen2's, gemma3 Gemma-2's).
std::string tokenizer_arch(const std::string& arch) {
  if (arch == "llama3.2" || arch == "mistral" || arch == "phi3") return "llama";
  if (arch == "qwen3") return "qwen2";
  if (arch == "gemma3") return "gemma2";
  return arch;
}

// Special-token ids of the tiny tokenizer in `dir`, as load_tokenizer reads them. EOS also lists
// the family's end-of-turn / end-of-text tokens, as the real configs do (Llama-3: <|end_of_text|> +
// <|eot_id|>, Gemma-2: <eos> + <end_of_turn>, Qwen2: <|im_end|> + <|endoftext|>).
void read_special_ids(const std::string& dir, int64_t vocab, TinySpec* spec) {
  auto tok = load_tokenizer(dir);
  if (tok->vocab_size() != vocab)
    fail(dir, "load_tokenizer reports vocab " + std::to_string(tok->vocab_size()) +
                  " but write_tiny_tokenizer returned " + std::to_string(vocab));
  const SpecialTokens& sp = tok->special();
  spec->bos_token_id = sp.bos_id;
  spec->pad_token_id = sp.pad_id;
  spec->eos_token_ids = sp.eos_ids;
  for (const char* piece :
       {"<|end_of_text|>", "<|eot_id|>", "<eos>", "<end_of_turn>", "<|im_end|>", "<|endoftext|>"}) {
    const int64_t id = tok->piece_to_id(piece);
    auto& eos = spec->eos_token_ids;
    if (id >= 0 && std::find(eos.begin(), eos.end(), id) == eos.end()) eos.push_back(id);
  }
  if (spec->eos_token_ids.empty()) fail(dir, "the tiny tokenizer has no EOS token");
}

int run_make_tiny(const MakeTinyOptions& o) {
  TinySpec spec;
  spec.arch = o.arch;
  spec.seed = o.seed;
  spec.init_std = o.init_std;
  tiny_config(TinySpec{o.arch, 1});  // rejects an unknown --arch before anything is written
  if (o.vocab_size > 0) {
    spec.vocab_size = o.vocab_size;
  } else {
    spec.vocab_size = write_tiny_tokenizer(tokenizer_arch(o.arch), o.out);
    read_special_ids(o.out, spec.vocab_size, &spec);
  }
  write_tiny_weights(spec, o.out);
  spdlog::info("make-tiny: {} model (vocab {}, seed {}) written to {}", o.arch, spec.vocab_size,
               o.seed, o.out);
  return 0;
}

}  // namespace

void add_make_tiny_command(CLI::App& app) {
  auto opts = std::make_shared<MakeTinyOptions>();
  CLI::App* sub = app.add_subcommand(
      "make-tiny", "Write a tiny random-init model + tokenizer in the Hugging Face layout");
  sub->add_option(
         "--arch", opts->arch,
         "llama | llama3.2 (tied, llama3 RoPE scaling) | mistral | qwen2 | qwen3 | gemma2 | "
         "gemma3 (text) | phi3 (fused projections, longrope)")
      ->required();
  sub->add_option("--out", opts->out, "output directory")->required();
  sub->add_option("--seed", opts->seed, "seed of the weight init")->capture_default_str();
  sub->add_option("--init-std", opts->init_std, "std of the normal init (HF initializer_range)")
      ->capture_default_str();
  sub->add_option("--vocab-size", opts->vocab_size,
                  "weights only, with this vocabulary (no tokenizer files)");
  set_action(sub, [opts] { return run_make_tiny(*opts); });
}

}  // namespace treg::cli
