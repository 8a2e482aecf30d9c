// The reward dump: treg's own binary file holding, per preference pair, the training tokens and the
// per-token arrays score-tokens computed for them (reference log-probs, contrastive-prompt
// log-probs, token rewards). `treg train` reads everything it needs about the reference model from
// here.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace treg {

struct Config;
class Ranks;

// One response (chosen or rejected) of a pair; every array has ids.size() entries and entry t is
// about token ids[t] given the prompt and ids[0..t).
struct ResponseScores {
  std::vector<int64_t> ids;      // response tokens exactly as used in training (incl. end-of-turn)
  std::vector<float> ref_logps;  // log pi_ref(y_t | x, y<t), x = the plain prompt
  std::vector<float>
      logp_better;  // log pi_eval(y_t | x_better, y<t)  (reward_source=dpo: log pi_dpo)
  std::vector<float>
      logp_worse;              // log pi_eval(y_t | x_worse, y<t)   (reward_source=dpo: log pi_ref)
  std::vector<float> rewards;  // r_t = sigmoid(logp_better - logp_worse) - 0.5, in [-0.5, 0.5]
};

struct PairRecord {
  int64_t index = 0;                // position of the pair in the scored (kept) sequence
  int64_t source_line = 0;          // 1-based line in the data file it came from
  std::vector<int64_t> prompt_ids;  // chat template applied to the prompt, with generation prompt
  ResponseScores chosen, rejected;
};

class RewardDumpReader {
 public:
  // Opens and validates magic, version, metadata and index; a truncated or foreign file is an
  // error.
  explicit RewardDumpReader(const std::string& path);
  ~RewardDumpReader();
  const nlohmann::json& metadata() const;
  int64_t size() const;              // number of complete pairs
  PairRecord read(int64_t i) const;  // random access through the index
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- File layout (all integers little-endian) ----
//   header : "TREGRWD\0" | u32 version | u32 0 | u64 M | M bytes of metadata JSON | u32 crc32(JSON)
//   record : u32 'PAIR' | u64 L | L bytes payload | u32 crc32(payload)          (one per pair)
//            payload = i64 index, i64 source_line, u32 P, i32[P] prompt ids,
//                      then chosen and rejected: u32 N, i32[N] ids, f32[N] ref_logps,
//                      f32[N] logp_better, f32[N] logp_worse, f32[N] rewards
//   index  : u64 offset of each record                                         (after the last
//   record) footer : u64 index offset | u64 count | u32 crc32(index) | u32 0 | "TREGEND\0"
// While being written the file is "<path>.partial" (header + records); finish() appends index and
// footer and renames it into place, so a file at `path` is always complete.
constexpr uint32_t kRewardDumpVersion = 1;

class RewardDumpWriter {
 public:
  // Opens "<path>.partial". When one exists with the same metadata its valid records are kept (a
  // torn or corrupt tail is dropped, and the kept count is rounded down to a multiple of `align`
  // so that resumed batches are the same batches) and appending continues after them; otherwise a
  // fresh partial file is started. Records are fsynced every `fsync_every` pairs.
  RewardDumpWriter(const std::string& path, const nlohmann::json& metadata, int64_t align = 1,
                   int64_t fsync_every = 64);
  ~RewardDumpWriter();
  int64_t size() const;     // pairs in the file so far (resumed ones included)
  int64_t resumed() const;  // pairs found in the partial file at open
  void append(const PairRecord& record);
  // Writes index and footer, fsyncs and renames "<path>.partial" to `path`.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// CRC-32 (IEEE 802.3, as zlib's crc32) of `n` bytes, continuing from `crc`.
uint32_t crc32_update(uint32_t crc, const void* data, size_t n);

// ---- Metadata: what a dump was computed from ----
// The metadata a dump of `split` ("train" | "eval") must carry for `config`: model identity
// (sha256 of config.json and of the safetensors headers + sampled weight bytes), tokenizer
// fingerprint, data file sha256 and row count, revision prompt sha256 with both descriptions and
// the assistant prefix, chat template, max_length / max_prompt_length / max_completion_length,
// skip_bad_rows, reward source (and the DPO model's identity). Loads only the tokenizer, not the
// model.
nlohmann::json expected_dump_metadata(const Config& config, const std::string& split);

// Refuses a dump whose metadata differs from `expected` in any field `expected` has: the error
// names the field, both values, the dump and the command that regenerates it.
void check_dump_matches(const nlohmann::json& dump_meta, const nlohmann::json& expected,
                        const std::string& dump_path = "", const std::string& config_path = "");

// Identity of a model directory: {"path", "config_sha256", "weights_sha256"}.
nlohmann::json model_identity(const std::string& model_dir);

// Makes sure complete dumps matching `config` exist for the train split (and eval, if the run has
// one: has_eval_split in data_sources.h): a missing or partial one is scored (resuming a partial
// one), a complete matching one is reused, a mismatching one is an error. `treg train` calls it
// before training. With several `ranks`, rank 0 decides and all of them score (score_tokens).
void ensure_reward_dumps(const Config& config, const std::string& config_path = "",
                         std::shared_ptr<Ranks> ranks = nullptr);

}  // namespace treg
