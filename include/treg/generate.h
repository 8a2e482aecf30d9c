// Text generation with a CausalLM: batched, left-padded prompts, a KV cache (prefill, then one
// token per step), and sampling as transformers' generate() does it.
//
// Sampling applies HF's logits warpers in HF's order -- TemperatureLogitsWarper (logits / t),
// TopKLogitsWarper (keep the k largest), TopPLogitsWarper (keep the smallest set of most likely
// tokens whose probability reaches top_p, at least one) -- then draws from the softmax. Each prompt
// draws from its own random stream (seeded by `seed` and the prompt's index), so a prompt's
// sample does not depend on the batch it lands in or on the other prompts.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "treg/chat_template.h"
#include "treg/model.h"
#include "treg/tokenizer.h"

namespace treg {

struct GenerateOptions {
  int64_t max_new_tokens = 256;
  double temperature = 1.0;  // 0 = greedy (argmax; top_k / top_p / seed unused)
  double top_p = 1.0;        // 1 = off
  int64_t top_k = 0;         // 0 = off
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;  // a row stops after drawing any of these (e.g. every EOS id)
  int64_t batch_size = 16;        // prompts per batch
  bool bf16 = false;              // bf16 autocast (include/treg/autocast.h), as scoring runs it
};

struct GenerateResult {
  // Per prompt, in input order: the new tokens, WITHOUT the stop token that ended them.
  std::vector<std::vector<int64_t>> ids;
  std::vector<bool> stopped;  // true: ended on a stop id; false: reached max_new_tokens
  int64_t prompt_tokens = 0;  // summed over prompts
  int64_t new_tokens = 0;     // generated tokens, stop tokens included (what tokens/s counts)
  double seconds = 0;
};

// Generates for every prompt (token ids, BOS included where the model wants it; none empty).
// Prompts are batched in order of length (less padding) and answered in input order.
// `on_progress(prompts, tokens)` is told after every step how many more prompts finished and how
// many more tokens were generated (ProgressBar::advance takes the same). No gradients are recorded.
using GenerateProgress = std::function<void(int64_t prompts, int64_t tokens)>;
GenerateResult generate(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                        const GenerateOptions& options, const GenerateProgress& on_progress = {});

// One sampling step on logits [B, V] (fp32): the warpers above, then a draw per row with
// `uniforms` [B] in [0, 1) (inverse CDF over the vocabulary). temperature 0 -> argmax.
// Returns [B] int64. Exposed for tests.
torch::Tensor sample_next_tokens(const torch::Tensor& logits, const GenerateOptions& options,
                                 const std::vector<double>& uniforms);

// What a chat model's answer stops on: the EOS ids of the tokenizer and of the model config, and
// the template's end-of-turn token (a warning, not an error, when the template has none).
std::vector<int64_t> generation_stop_ids(const Tokenizer& tok, const ModelArgs& args,
                                         const ChatTemplate& chat);

}  // namespace treg
