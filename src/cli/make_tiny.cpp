// treg make-tiny: a tiny random-init checkpoint (tokenizer + weights) in the Hugging Face layout.
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "treg/error.h"
#include "treg/model.h"

namespace treg::cli {

namespace {

struct MakeTinyOptions {
  std::string arch, out;
  uint64_t seed = 0;
  double init_std = 0.02;
  int64_t vocab_size = 256;
};

int run_make_tiny(const MakeTinyOptions& o) {
  TinySpec spec;
  spec.arch = o.arch;
  spec.seed = o.seed;
  spec.init_std = o.init_std;
  spec.vocab_size = o.vocab_size;
  write_tiny_weights(spec, o.out);
  spdlog::info("make-tiny: {} model (vocab {}, seed {}) written to {}", o.arch, spec.vocab_size, o.seed, o.out);
  return 0;
}

}  // namespace

void add_make_tiny_command(CLI::App& app) {
  auto opts = std::make_shared<MakeTinyOptions>();
  CLI::App* sub = app.add_subcommand("make-tiny", "Write a tiny random-init model in the Hugging Face layout");
  sub->add_option("--arch", opts->arch, "llama | llama3.2 | mistral | qwen2 | gemma2")->required();
  sub->add_option("--out", opts->out, "output directory")->required();
  sub->add_option("--seed", opts->seed, "seed of the weight init")->capture_default_str();
  sub->add_option("--init-std", opts->init_std, "std of the normal init (HF initializer_range)")->capture_default_str();
  sub->add_option("--vocab-size", opts->vocab_size, "vocabulary size")->capture_default_str();
  set_action(sub, [opts] { return run_make_tiny(*opts); });
}

}  // namespace treg::cli
