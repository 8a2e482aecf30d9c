// An untrusted reward dump (treg's binary format): header, index, footer and every record. The fuzz
// build accepts any checksum (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION) so mutations reach the
// parsing behind it.
#include "fuzz_util.h"
#include "treg/reward_dump.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = treg::fuzz::write_scratch("dump.bin", treg::fuzz::as_text(data, size));
  try {
    treg::RewardDumpReader reader(path);
    (void)reader.metadata().dump();
    for (int64_t i = 0; i < reader.size(); ++i) {
      treg::PairRecord r = reader.read(i);
      for (const treg::ResponseScores* s : {&r.chosen, &r.rejected})
        treg::fuzz::require(
            s->ref_logps.size() == s->ids.size() && s->logp_better.size() == s->ids.size() &&
                s->logp_worse.size() == s->ids.size() && s->rewards.size() == s->ids.size(),
            "every per-token array has one entry per token");
    }
  } catch (const treg::Error&) {
  }
  return 0;
}
