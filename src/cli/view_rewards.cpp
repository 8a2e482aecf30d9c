// treg view-rewards --dump FILE --out FILE.html [--pairs N] [--model DIR]: the token rewards of the
// first N pairs as a self-contained HTML page, chosen and rejected side by side (paper Figure 3).
#include <spdlog/spdlog.h>

#include <cstdio>
#include <numeric>

#include "cli/commands.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/reward_dump.h"
#include "treg/token_html.h"
#include "treg/tokenizer.h"

namespace treg::cli {
namespace {

std::string response_column(const std::string& title, const ResponseScores& r, const Tokenizer& tok, double scale) {
  double sum = std::accumulate(r.rewards.begin(), r.rewards.end(), 0.0);
  double ref = std::accumulate(r.ref_logps.begin(), r.ref_logps.end(), 0.0);
  char stats[200];
  std::snprintf(stats, sizeof stats, "%zu tokens, sum r = %.4f, mean r = %.4f, log pi_ref(y|x) = %.3f", r.ids.size(), sum,
                r.ids.empty() ? 0.0 : sum / static_cast<double>(r.ids.size()), ref);
  return "<div class=\"col\"><h4>" + title + "</h4><div class=\"stats\">" + stats + "</div><div>" +
         html_colored_tokens(token_pieces(tok, r.ids), r.rewards, scale, "r") + "</div></div>";
}

}  // namespace

void add_view_rewards_command(CLI::App& app) {
  auto* sub = app.add_subcommand("view-rewards", "Draw token rewards of a reward dump as HTML (red +, blue -)");
  static std::string dump, out, model;
  static int64_t pairs = 8;
  static double scale = 0.0;
  sub->add_option("--dump", dump, "reward dump written by score-tokens")->required();
  sub->add_option("--out", out, "output .html")->required();
  sub->add_option("--pairs", pairs, "how many pairs (from the first)")->capture_default_str();
  sub->add_option("--model", model, "model/tokenizer directory to decode tokens (default: the one in the dump)");
  sub->add_option("--scale", scale, "reward that gets full colour (default: the largest |r| shown)");
  set_action(sub, [] {
    RewardDumpReader reader(dump);
    const auto& meta = reader.metadata();
    std::string dir = model;
    if (dir.empty()) {
      if (!meta.contains("run") || !meta["run"].contains("model_path"))
        fail(dump, "metadata names no model", "pass --model DIR");
      dir = meta["run"]["model_path"].get<std::string>();
    }
    auto tok = load_tokenizer(dir);
    const int64_t n = std::min<int64_t>(pairs, reader.size());
    std::vector<PairRecord> recs;
    double s = scale;
    for (int64_t i = 0; i < n; ++i) {
      recs.push_back(reader.read(i));
      if (scale <= 0)
        for (const auto* r : {&recs.back().chosen, &recs.back().rejected})
          for (float v : r->rewards) s = std::max(s, static_cast<double>(std::fabs(v)));
    }
    if (s <= 0) s = 0.5;
    std::string body = "<h1>Token rewards</h1>\n<p class=\"note\">" + html_escape(dump) + " &mdash; " +
                       std::to_string(reader.size()) + " pairs, showing " + std::to_string(n) +
                       ". Reward source: " + html_escape(meta.value("reward_source", std::string("?"))) +
                       "; r<sub>t</sub> = &sigma;(log &pi;(y<sub>t</sub>|x<sub>better</sub>) &minus; log "
                       "&pi;(y<sub>t</sub>|x<sub>worse</sub>)) &minus; 0.5.</p>\n" +
                       html_legend(s, "r");
    for (const PairRecord& p : recs) {
      body += "<div class=\"pair\"><h3>Pair " + std::to_string(p.index) + " (line " + std::to_string(p.source_line) +
              ")</h3><div class=\"prompt\">" + html_escape(tok->decode(p.prompt_ids, false)) +
              "</div><div class=\"cols\">" + response_column("Chosen", p.chosen, *tok, s) +
              response_column("Rejected", p.rejected, *tok, s) + "</div></div>\n";
    }
    write_file_atomic(out, html_page("treg token rewards", body));
    spdlog::info("{}: {} pairs drawn -> {}", dump, n, out);
    return 0;
  });
}

}  // namespace treg::cli
