// treg make-sft-data: SFT rows from preference pairs -- each pair's chosen answer to its prompt, and
// the revision demonstrations of rewards.h -- so that a model can be taught the task and what the
// contrastive revision prompts ask before it scores tokens (a tiny model cannot follow them
// untaught).
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "treg/config.h"
#include "treg/data.h"
#include "treg/data_sources.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/rewards.h"

namespace treg::cli {

namespace {

nlohmann::json messages_json(const std::vector<Message>& msgs) {
  nlohmann::json a = nlohmann::json::array();
  for (const Message& m : msgs) a.push_back({{"role", m.role}, {"content", m.content}});
  return a;
}

std::string sft_row(const std::vector<Message>& prompt, const std::string& completion) {
  return nlohmann::json{{"prompt", messages_json(prompt)},
                        {"completion", messages_json({{"assistant", completion}})}}
             .dump() +
         "\n";
}

}  // namespace

void add_make_sft_data_command(CLI::App& app) {
  struct Options {
    std::string config, split = "train", out;
    bool no_task = false, no_revision = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "make-sft-data",
      "Write SFT rows from the config's preference pairs: prompt -> chosen answer, and revision "
      "demonstrations (better prompt -> chosen, worse prompt -> rejected)");
  sub->add_option("--config", o->config, "YAML config (its data, revision prompt and descriptions)")
      ->required();
  sub->add_option("--split", o->split, "train | eval")->capture_default_str();
  sub->add_option("--out", o->out, "output JSONL (prompt/completion rows for treg sft)")->required();
  sub->add_flag("--no-task", o->no_task, "leave out the prompt -> chosen rows");
  sub->add_flag("--no-revision", o->no_revision, "leave out the revision demonstrations");
  set_action(sub, [o] {
    Config c = load_config(o->config);
    if (o->split != "train" && o->split != "eval")
      fail("--split", "expected train or eval, got '" + o->split + "'");
    const std::string path = split_data_file(c, o->split);
    if (path.empty()) fail(o->config, "the config has no " + o->split + " data");
    const RevisionSpec spec = revision_spec(c);
    std::ifstream in(path);
    if (!in) fail(path, "cannot open data file");
    std::string text, out;
    int64_t line = 0, pairs = 0, rows = 0, skipped = 0;
    while (std::getline(in, text)) {
      ++line;
      if (text.find_first_not_of(" \t\r\n") == std::string::npos) continue;
      RawPair pair;
      try {
        pair = parse_pair_line(text, path, line);
      } catch (const Error& e) {
        if (!c.skip_bad_rows) throw;
        spdlog::warn("{}", e.what());
        ++skipped;
        continue;
      }
      ++pairs;
      if (!o->no_task) out += sft_row(pair.prompt, pair.chosen), ++rows;
      if (!o->no_revision)
        for (const RevisionDemo& d : revision_demonstrations(pair, spec))
          out += sft_row({{"user", d.user}}, d.completion), ++rows;
    }
    const std::string dir = std::filesystem::path(o->out).parent_path().string();
    if (!dir.empty()) make_dirs(dir);
    write_file_atomic(o->out, out);
    spdlog::info("make-sft-data: {} pairs of {} -> {} SFT rows in {}{}", pairs, path, rows, o->out,
                 skipped ? fmt::format(" ({} bad rows skipped)", skipped) : std::string());
    return 0;
  });
}

}  // namespace treg::cli
