// Untrusted text through the real tokenizers (Llama-3 byte-level BPE, Qwen3 with NFC, Gemma-3 with
// byte fallback, Llama-2 sentencepiece-style BPE): ids stay in the vocabulary, and Llama-3's
// byte-level pipeline gives back exactly the text it was given.
#include <vector>

#include "fuzz_util.h"
#include "tokenizer/utf8.h"

namespace {
std::vector<std::unique_ptr<treg::Tokenizer>> tokenizers;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  for (const char* name : {"llama3", "qwen3", "gemma3", "llama2"})
    tokenizers.push_back(treg::fuzz::fixture_tokenizer(name));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t which = data[0] % tokenizers.size();
  const bool add_special = data[0] & 0x80;
  const std::string text(treg::fuzz::as_text(data + 1, size - 1));
  const treg::Tokenizer& tok = *tokenizers[which];
  try {
    std::vector<int64_t> ids = tok.encode(text, add_special);
    for (int64_t id : ids) treg::fuzz::require(id >= 0 && id < tok.vocab_size(), "ids in vocab");
    const std::string back = tok.decode(ids, false);
    if (which == 0 && !add_special && treg::utf8::make_valid(text) == text)
      treg::fuzz::require(back == text, "llama3 decode(encode(text)) == text");
    (void)tok.decode(ids, true);
  } catch (const treg::Error&) {
  }
  return 0;
}
