// treg export-rewards --dump FILE --out FILE.jsonl: the reward dump as JSON lines, one pair per line.
#include <spdlog/spdlog.h>

#include <fstream>

#include "cli/commands.h"
#include "treg/error.h"
#include "treg/reward_dump.h"

namespace treg::cli {
namespace {

nlohmann::json response_json(const ResponseScores& r) {
  return {{"ids", r.ids},
          {"ref_logps", r.ref_logps},
          {"logp_better", r.logp_better},
          {"logp_worse", r.logp_worse},
          {"rewards", r.rewards}};
}

}  // namespace

void add_export_rewards_command(CLI::App& app) {
  auto* sub = app.add_subcommand("export-rewards", "Write a reward dump as JSONL (one pair per line)");
  static std::string dump, out, meta_out;
  sub->add_option("--dump", dump, "reward dump written by score-tokens")->required();
  sub->add_option("--out", out, "output .jsonl")->required();
  sub->add_option("--metadata", meta_out, "also write the dump's metadata as JSON here");
  set_action(sub, [] {
    RewardDumpReader reader(dump);
    const std::string tmp = out + ".tmp.export";
    {
      std::ofstream f(tmp, std::ios::binary);
      if (!f) fail(out, "cannot open for writing");
      for (int64_t i = 0; i < reader.size(); ++i) {
        PairRecord p = reader.read(i);
        nlohmann::json line = {{"index", p.index},
                               {"source_line", p.source_line},
                               {"prompt_ids", p.prompt_ids},
                               {"chosen", response_json(p.chosen)},
                               {"rejected", response_json(p.rejected)}};
        f << line.dump() << "\n";
      }
      if (!f) fail(out, "write failed", "check free disk space");
    }
    if (std::rename(tmp.c_str(), out.c_str()) != 0) fail(out, "rename failed");
    if (!meta_out.empty()) {
      std::ofstream m(meta_out);
      m << reader.metadata().dump(2) << "\n";
    }
    spdlog::info("{}: {} pairs -> {}", dump, reader.size(), out);
    return 0;
  });
}

}  // namespace treg::cli
