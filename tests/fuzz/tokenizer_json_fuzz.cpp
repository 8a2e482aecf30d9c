// tokenizer.json of an untrusted model directory: loaded, then used to encode and decode.
#include <vector>

#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      treg::fuzz::write_scratch("tokenizer.json", treg::fuzz::as_text(data, size));
  try {
    auto tok = treg::load_tokenizer(path);
    for (const char* text : {"Hello world! 123", "  leading spaces\n\ttabs",
                             "naïve café 日本語 🙂", "<s>special</s><|eot_id|>", ""}) {
      std::vector<int64_t> ids = tok->encode(text, true);
      for (int64_t id : ids) treg::fuzz::require(id >= 0 && id < tok->vocab_size(), "ids in vocab");
      (void)tok->decode(ids, false);
      (void)tok->decode(ids, true);
    }
    for (int64_t id = 0; id < std::min<int64_t>(tok->vocab_size(), 64); ++id)
      (void)tok->piece_to_id(tok->id_to_piece(id));
  } catch (const treg::Error&) {
  }
  return 0;
}
