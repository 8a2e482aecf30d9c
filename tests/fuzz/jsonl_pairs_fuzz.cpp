// Untrusted JSONL preference rows: parsed, rendered with the Llama-3 chat template, tokenized with
// the real Llama-3 tokenizer in both pair layouts (TRL's, SimPO's; alternate lines) and truncated; a
// kept pair fits max_length and its template header lies within its response.
#include <sstream>

#include "fuzz_util.h"
#include "treg/chat_template.h"
#include "treg/data.h"

namespace {
std::unique_ptr<treg::Tokenizer> tok;
std::unique_ptr<treg::ChatTemplate> chat;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tok = treg::fuzz::fixture_tokenizer("llama3");
  chat = std::make_unique<treg::ChatTemplate>(treg::make_chat_template(*tok, ""));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in{std::string(treg::fuzz::as_text(data, size))};
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    try {
      treg::RawPair row = treg::parse_pair_line(line, "fuzz.jsonl", n);
      treg::DataStats stats;
      const auto layout = (n / 2) % 2 ? treg::PairTokenization::kSimpo : treg::PairTokenization::kTrl;
      treg::TokenizedPair pair = treg::tokenize_pair(row, *tok, *chat, &stats, layout);
      treg::DataOptions opts;
      opts.max_length = 48;
      opts.max_prompt_length = 32;
      opts.max_completion_length = (n % 2) ? 0 : 12;
      if (treg::truncate_pair(pair, tok->special().bos_id, opts, &stats)) {
        const size_t longer = std::max(pair.chosen_ids.size(), pair.rejected_ids.size());
        treg::fuzz::require(pair.prompt_ids.size() + longer <= 48, "a kept pair fits max_length");
        treg::fuzz::require(!pair.chosen_ids.empty() && !pair.rejected_ids.empty(),
                            "a kept pair has both answers");
        treg::fuzz::require(pair.chosen_header <= pair.chosen_ids.size() &&
                                pair.rejected_header <= pair.rejected_ids.size(),
                            "the header lies within the response");
      }
    } catch (const treg::Error&) {
    }
  }
  return 0;
}
