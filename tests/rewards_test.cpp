// Token rewards end to end on tiny models: the dump's log-probs and rewards equal an independent
// recomputation through `treg logprobs`; response tokens line up with the training tokens for the
// llama3, gemma and chatml templates; kill -9 + resume gives a byte-identical dump; stale dumps are
// refused naming the field; the revision prompt's placeholders are checked.
#include "treg/rewards.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include "test_util.h"
#include "treg/autocast.h"
#include "treg/config.h"
#include "treg/data.h"
#include "treg/data_sources.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/reward_dump.h"
#include "treg/safetensors.h"
#include "treg/tokenizer.h"
#include "treg/train_parts.h"
#include "treg/trainer.h"

namespace treg {
namespace {

using nlohmann::json;

using test::error_of;

// The first `n` rows of the bundled training data (all four row shapes are in the first four).
std::string data_subset(const std::string& dir, int n) {
  std::ifstream in(test::source_path("configs/data/tiny_prefs.train.jsonl"));
  std::string path = dir + "/train.jsonl", line, out;
  for (int i = 0; i < n && std::getline(in, line); ++i) out += line + "\n";
  write_file_atomic(path, out);
  return path;
}

std::string write_config(const std::string& dir, const std::string& model, const std::string& train,
                         const std::string& extra = "") {
  std::string path = dir + "/cfg.yaml";
  write_file_atomic(path, "model_name_or_path: " + model + "\ntrain_file: " + train +
                              "\noutput_dir: " + dir + "/out\ndevice: cpu\nscore_batch_size: 2\n" +
                              extra);
  return path;
}

std::string treg() { return test::treg_binary(); }

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<json> rows;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t i = s.find(from); i != std::string::npos; i = s.find(from, i + to.size()))
    s.replace(i, from.size(), to);
  return s;
}

// ---- the revision prompt ----
TEST(Rewards, RevisionTemplateIsFigure2WithItsPlaceholders) {
  std::string t = load_revision_template(default_revision_prompt_path());
  EXPECT_NE(t.find("Please rewrite the Assistant's Answer to make it {direction}."),
            std::string::npos);
  EXPECT_NE(t.find("[The start of a rewritten {direction} answer]"), std::string::npos);
  std::string r =
      render_revision_prompt(t, "What is 2+2?", "It is {answer} 4.", "better", "helpful, correct");
  EXPECT_NE(r.find("[User Question]\n\nWhat is 2+2?\n\n[The start of Assistant's Answer]\n\nIt is "
                   "{answer} 4.\n"),
            std::string::npos);  // values are not substituted again
  EXPECT_NE(r.find("to be helpful, correct, etc."), std::string::npos);
  EXPECT_EQ(r.find("{direction}"), std::string::npos);
  EXPECT_EQ(render_revision_prompt("{{x}} {answer}", "", "A", "", ""), "{x} A");
}

TEST(Rewards, MissingOrUnknownPlaceholdersAreNamed) {
  std::string e = error_of(
      [] { check_revision_template("{instruction} {direction} {detailed_description}", "p.txt"); });
  EXPECT_NE(e.find("p.txt"), std::string::npos) << e;
  EXPECT_NE(e.find("missing placeholder(s) {answer}"), std::string::npos) << e;
  e = error_of([] {
    check_revision_template("{instruction} {answer} {direction} {detailed_description} {question}",
                            "p.txt");
  });
  EXPECT_NE(e.find("unknown placeholder(s) {question}"), std::string::npos) << e;
}

TEST(Rewards, InstructionOfMultiTurnPromptsIsATranscript) {
  EXPECT_EQ(instruction_text({{"user", "Q"}}), "Q");
  EXPECT_EQ(instruction_text({{"system", "S"}, {"user", "A"}, {"assistant", "B"}, {"user", "C"}}),
            "System: S\n\nUser: A\n\nAssistant: B\n\nUser: C");
  EXPECT_EQ(render_assistant_prefix("[The start of a rewritten {direction} answer]\n", "worse"),
            "[The start of a rewritten worse answer]\n");
}

TEST(Rewards, RewardFormulaByHand) {
  // sigmoid(1) = 0.7310585786300049, sigmoid(-2) = 0.11920292202211755 (by hand / any calculator).
  EXPECT_NEAR(token_reward(-1.0f, -2.0f), 0.2310585786300049, 1e-7);
  EXPECT_NEAR(token_reward(-3.0f, -1.0f), -0.38079707797788245, 1e-7);
  EXPECT_EQ(token_reward(-5.0f, -5.0f), 0.0f);
  EXPECT_NEAR(token_reward(0.0f, -100.0f), 0.5, 1e-7);
}

// ---- scoring on tiny models ----
struct Scored {
  std::string dir, model, train, cfg, dump;
  std::vector<json> rows;  // export-rewards
  json meta;
};

Scored score(const std::string& name, const std::string& arch, int n_rows,
             const std::string& extra = "") {
  Scored s;
  s.dir = test::fresh_dir(name);
  s.model = test::tiny_model(arch);
  s.train = data_subset(s.dir, n_rows);
  s.cfg = write_config(s.dir, s.model, s.train, extra);
  s.dump = s.dir + "/out/token_rewards.bin";
  std::string out;
  int rc = test::run_command(treg() + " score-tokens --no-progress --config " + s.cfg, &out);
  EXPECT_EQ(rc, 0) << out;
  rc = test::run_command(treg() + " export-rewards --dump " + s.dump + " --out " + s.dir +
                             "/rewards.jsonl --metadata " + s.dir + "/meta.json",
                         &out);
  EXPECT_EQ(rc, 0) << out;
  s.rows = read_jsonl(s.dir + "/rewards.jsonl");
  s.meta = json::parse(read_file(s.dir + "/meta.json"));
  return s;
}

// The revision prompts used to quote the whole row: one 1 MB answer asked for a 176 GB forward.
// A cut prompt or response is now quoted as cut, so every context is bounded by max_length (twice,
// the answer is quoted and scored) plus the template; an uncut row is quoted as written.
TEST(Rewards, RevisionContextsAreBoundedByMaxLength) {
  const std::string dir = test::fresh_dir("rewards_bounded");
  auto tok = load_tokenizer(test::tiny_model("llama"));
  const ChatTemplate chat = make_chat_template(*tok, "");
  const RevisionSpec spec{load_revision_template(default_revision_prompt_path()),
                          "helpful, correct", "unhelpful, wrong", "Answer ({direction}): "};
  std::string long_prompt, long_answer;
  for (int i = 0; i < 2000; ++i) long_prompt += "why is the sky blue " + std::to_string(i) + "? ";
  for (int i = 0; i < 20000; ++i)
    long_answer += "because of scattering " + std::to_string(i) + ". ";
  const std::string path = dir + "/d.jsonl";
  write_file_atomic(
      path, json{{"prompt", long_prompt}, {"chosen", long_answer}, {"rejected", "no"}}.dump() +
                "\n" + json{{"prompt", "Q?"}, {"chosen", "Yes."}, {"rejected", "No."}}.dump() +
                "\n");
  DataOptions o;
  o.max_length = 64;
  o.max_prompt_length = 32;
  PreferenceData d = load_preference_data(path, *tok, chat, o);
  ASSERT_EQ(d.pairs.size(), 2u);
  const TokenizedPair& big = d.pairs[0];
  EXPECT_TRUE(big.prompt_cut && big.chosen_cut && !big.rejected_cut);
  const size_t empty_ctx = revision_context_ids("", "", "better", spec, *tok, chat).size();
  for (bool chosen : {true, false}) {
    ScoreContexts c = build_score_contexts(big, chosen, spec, *tok, chat);
    const size_t response = (chosen ? big.chosen_ids : big.rejected_ids).size();
    EXPECT_LE(c.plain.size(), 64u);
    // quoted prompt <= the kept prompt tokens, quoted answer <= the scored tokens (+ a few tokens
    // where decoded text re-encodes differently at the seams).
    const size_t bound = empty_ctx + big.prompt_ids.size() + 2 * response + 8;
    EXPECT_LE(c.better.size(), bound);
    EXPECT_LE(c.worse.size(), bound);
    EXPECT_GE(c.better.size(), empty_ctx + response);
  }
  // The quoted answer is the scored text: its end is in the context, the text after the cut is not.
  ScoreContexts c = build_score_contexts(big, true, spec, *tok, chat);
  const std::string quoted = tok->decode(c.better, /*skip_special=*/true);
  const std::string scored = tok->decode(big.chosen_ids, true);
  const size_t first = quoted.find(scored);  // quoted in the prompt, then scored after it
  ASSERT_NE(first, std::string::npos) << quoted;
  EXPECT_NE(quoted.find(scored, first + scored.size()), std::string::npos) << quoted;
  EXPECT_EQ(quoted.find("scattering 1999."), std::string::npos);
  EXPECT_NE(quoted.find("sky blue 1999?"), std::string::npos);  // the prompt keeps its end

  const TokenizedPair& small = d.pairs[1];
  EXPECT_FALSE(small.prompt_cut || small.chosen_cut || small.rejected_cut);
  ScoreContexts sc = build_score_contexts(small, true, spec, *tok, chat);
  std::vector<int64_t> want = revision_context_ids("Q?", "Yes.", "better", spec, *tok, chat);
  want.insert(want.end(), small.chosen_ids.begin(), small.chosen_ids.end());
  EXPECT_EQ(sc.better, want);
}

// The token counts score-tokens reports (and bench_score_tokens prints), recounted here from the
// contexts: each context alone, and what a compressed trie of each group runs (the two plain
// contexts of a pair with `packing`; always the two revision contexts of an answer, which share
// everything up to the first {direction}: the instruction and the whole quoted answer).
TEST(Rewards, TokenCountsAreTheContextsAndTheirSharedPrefixes) {
  auto lcp = [](const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
    return static_cast<int64_t>(n);
  };
  const std::string dir = test::fresh_dir("rewards_token_counts");
  const std::string model = test::tiny_model("llama");
  const std::string train = data_subset(dir, 4);
  for (bool packing : {false, true}) {
    SCOPED_TRACE(packing ? "packing" : "padded");
    const Config c = load_config(write_config(dir, model, train,
                                              std::string("packing: ") + (packing ? "true" : "false") +
                                                  "\nreward_dump: " + dir + "/d" +
                                                  (packing ? "1" : "0") + ".bin\n"));
    const ScoreSummary got = score_tokens(c, "train", /*progress=*/false);

    auto tok = load_tokenizer(model);
    const ChatTemplate chat = make_chat_template(*tok, "");
    const PreferenceData d =
        load_preference_data(train, *tok, chat, data_options(c, dir + "/bad_rows.jsonl"));
    const RevisionSpec spec = revision_spec(c);
    int64_t alone = 0, run = 0, scored = 0;
    for (const TokenizedPair& p : d.pairs) {
      const ScoreContexts w = build_score_contexts(p, true, spec, *tok, chat);
      const ScoreContexts l = build_score_contexts(p, false, spec, *tok, chat);
      for (const ScoreContexts* x : {&w, &l}) {
        alone += static_cast<int64_t>(x->plain.size() + x->better.size() + x->worse.size());
        const int64_t shared = lcp(x->better, x->worse);
        run += static_cast<int64_t>(x->better.size() + x->worse.size()) - shared;
        // The shared part ends after the quoted answer: it holds the scored tokens' text.
        const std::string head = tok->decode(
            std::vector<int64_t>(x->better.begin(), x->better.begin() + shared), true);
        const std::vector<int64_t>& ids = x == &w ? p.chosen_ids : p.rejected_ids;
        EXPECT_NE(head.find(tok->decode(ids, true)), std::string::npos) << head;
        EXPECT_LT(shared, x->better_start);
      }
      run += static_cast<int64_t>(w.plain.size() + l.plain.size()) -
             (packing ? lcp(w.plain, l.plain) : 0);
      scored += static_cast<int64_t>(p.chosen_ids.size() + p.rejected_ids.size());
    }
    EXPECT_EQ(got.scored, 4);
    EXPECT_EQ(got.response_tokens, scored);
    EXPECT_EQ(got.unshared_tokens, alone);
    EXPECT_EQ(got.context_tokens, run);
    EXPECT_LT(got.context_tokens, got.unshared_tokens);
  }
}

class RewardsArch : public ::testing::TestWithParam<std::string> {
 protected:
  // The bundled data has system prompts, which Gemma-2's own template refuses (as transformers
  // does): the gemma2 model renders with the built-in `gemma` format, which folds them.
  std::string chat_override() const { return GetParam() == "gemma2" ? "gemma" : ""; }
  std::string extra_config() const {
    return chat_override().empty() ? "" : "chat_template: " + chat_override() + "\n";
  }
};

// Every log-prob in the dump equals `treg logprobs` on contexts assembled here from text (the
// revision prompt filled by plain string replacement, rendered as one user turn, plus the assistant
// prefix).
TEST_P(RewardsArch, RewardsAndRefLogpsEqualIndependentRecomputation) {
  Scored s = score("rewards_recompute_" + GetParam(), GetParam(), 6, extra_config());
  ASSERT_EQ(s.rows.size(), 6u);
  auto tok = load_tokenizer(s.model);
  const ChatTemplate chat = make_chat_template(*tok, chat_override());
  const std::string tmpl = read_file(test::source_path("configs/prompts/revision.txt"));
  std::vector<json> raw = read_jsonl(s.train);

  std::string in;
  struct Slice {
    size_t row;
    std::string which, field;
    size_t start;
  };
  std::vector<Slice> slices;
  for (size_t i = 0; i < s.rows.size(); ++i) {
    const json& row = raw[i];
    // {instruction} by the documented rule, from the raw row.
    json prompt = row.contains("prompt") ? row["prompt"] : json();
    if (!row.contains("prompt")) {
      prompt = row["chosen"];
      prompt.erase(prompt.size() - 1);
    }
    std::string instruction;
    if (prompt.is_string()) {
      instruction = prompt.get<std::string>();
    } else if (prompt.size() == 1) {
      instruction = prompt[0]["content"];
    } else {
      for (const auto& m : prompt) {
        std::string role = m["role"] == "system" ? "System"
                           : m["role"] == "user" ? "User"
                                                 : "Assistant";
        instruction +=
            (instruction.empty() ? "" : "\n\n") + role + ": " + m["content"].get<std::string>();
      }
    }
    for (std::string which : {"chosen", "rejected"}) {
      const json& v = row[which];
      std::string answer =
          v.is_string() ? v.get<std::string>() : v.back()["content"].get<std::string>();
      std::vector<int64_t> resp = s.rows[i][which]["ids"];
      std::vector<int64_t> plain = s.rows[i]["prompt_ids"];
      slices.push_back({i, which, "ref_logps", plain.size()});
      plain.insert(plain.end(), resp.begin(), resp.end());
      in += json{{"ids", plain}}.dump() + "\n";
      for (std::string dir : {"better", "worse"}) {
        std::string text = tmpl;
        text = replace_all(text, "{instruction}", instruction);
        text = replace_all(text, "{answer}", answer);
        text = replace_all(text, "{detailed_description}",
                           dir == "better" ? "helpful, correct, coherent, concise"
                                           : "unhelpful, incorrect, incoherent, verbose");
        text = replace_all(text, "{direction}", dir);
        std::vector<int64_t> ids = tok->encode(chat.render({{"user", text}}, true), false);
        std::vector<int64_t> pre =
            tok->encode("[The start of a rewritten " + dir + " answer]\n", false);
        ids.insert(ids.end(), pre.begin(), pre.end());
        slices.push_back({i, which, "logp_" + dir, ids.size()});
        ids.insert(ids.end(), resp.begin(), resp.end());
        in += json{{"ids", ids}}.dump() + "\n";
      }
    }
  }
  write_file_atomic(s.dir + "/ctx.jsonl", in);
  std::string out;
  ASSERT_EQ(test::run_command(treg() + " logprobs --model " + s.model + " --input " + s.dir +
                                  "/ctx.jsonl --out " + s.dir + "/ctx_out.jsonl",
                              &out),
            0)
      << out;
  std::vector<json> lp = read_jsonl(s.dir + "/ctx_out.jsonl");
  ASSERT_EQ(lp.size(), slices.size());
  double max_diff = 0;
  for (size_t k = 0; k < slices.size(); ++k) {
    const Slice& sl = slices[k];
    std::vector<double> all = lp[k]["logprobs"];
    std::vector<double> got = s.rows[sl.row][sl.which][sl.field];
    ASSERT_EQ(all.size() + 1, sl.start + got.size());
    for (size_t j = 0; j < got.size(); ++j)
      max_diff = std::max(max_diff, std::fabs(all[sl.start - 1 + j] - got[j]));
  }
  EXPECT_LE(max_diff, 1e-5);
  // Eq. 3 from the dump's own two log-probs, in double.
  for (const json& r : s.rows)
    for (std::string which : {"chosen", "rejected"}) {
      std::vector<double> b = r[which]["logp_better"], w = r[which]["logp_worse"],
                          rw = r[which]["rewards"];
      for (size_t j = 0; j < rw.size(); ++j)
        EXPECT_NEAR(rw[j], 1.0 / (1.0 + std::exp(-(b[j] - w[j]))) - 0.5, 1e-6);
    }
}

// The response ids in the dump are the training tokens: prompt + response == the whole conversation
// rendered by the model's chat template (TRL's layout, the default: the response holds the answer's
// end-of-turn token and whatever the template writes after it).
TEST_P(RewardsArch, ResponseTokensLineUpWithTrainingTokens) {
  Scored s = score("rewards_align_" + GetParam(), GetParam(), 8, extra_config());
  auto tok = load_tokenizer(s.model);
  const ChatTemplate chat = make_chat_template(*tok, chat_override());
  EXPECT_EQ(s.meta["chat_template"]["name"], chat_override().empty() ? "model" : chat_override());
  EXPECT_EQ(s.meta["chat_template"]["sha256"], sha256_hex(chat.source()));
  const std::string expected_eot = GetParam() == "llama"    ? "<|eot_id|>"
                                   : GetParam() == "gemma2" ? "<end_of_turn>"
                                                            : "<|im_end|>";
  EXPECT_EQ(chat.end_of_turn(), expected_eot);
  PreferenceData data = load_preference_data(s.train, *tok, chat, DataOptions{});
  ASSERT_EQ(data.pairs.size(), s.rows.size());
  const int64_t eot = tok->encode(chat.end_of_turn(), false).at(0);
  for (size_t i = 0; i < s.rows.size(); ++i) {
    const TokenizedPair& p = data.pairs[i];
    EXPECT_EQ(s.rows[i]["prompt_ids"].get<std::vector<int64_t>>(), p.prompt_ids);
    EXPECT_EQ(s.rows[i]["chosen"]["ids"].get<std::vector<int64_t>>(), p.chosen_ids);
    EXPECT_EQ(s.rows[i]["rejected"]["ids"].get<std::vector<int64_t>>(), p.rejected_ids);
    for (const auto* ans : {&p.chosen_text, &p.rejected_text}) {
      std::vector<Message> msgs = p.prompt;
      msgs.push_back({"assistant", *ans});
      const std::string full = chat.render(msgs, false);
      std::vector<int64_t> ids = p.prompt_ids;
      const auto& resp = ans == &p.chosen_text ? p.chosen_ids : p.rejected_ids;
      ids.insert(ids.end(), resp.begin(), resp.end());
      EXPECT_EQ(ids, tok->encode(full, false));
      EXPECT_NE(std::find(resp.begin(), resp.end(), eot), resp.end());
    }
    if (tok->special().bos_id >= 0) {
      EXPECT_EQ(p.prompt_ids[0], tok->special().bos_id);
      EXPECT_NE(p.prompt_ids[1], tok->special().bos_id);  // never doubled
    }
  }
}

INSTANTIATE_TEST_SUITE_P(TinyModels, RewardsArch, ::testing::Values("llama", "gemma2", "qwen2"));

// pair_tokenization: simpo puts the assistant header into each response (data.h). Those tokens are
// the template's, not the answer's: the same log-prob under both revision prompts, reward exactly 0;
// the revision prompts score the answer tokens after them.
TEST(RewardsCli, SimpoLayoutGivesTheAssistantHeaderRewardZero) {
  Scored s = score("rewards_simpo_layout", "llama", 4, "pair_tokenization: simpo\n");
  EXPECT_EQ(s.meta["pair_tokenization"], "simpo");
  auto tok = load_tokenizer(s.model);
  const std::vector<int64_t> header =
      tok->encode("<|start_header_id|>assistant<|end_header_id|>\n\n", false);
  const size_t H = header.size();
  ASSERT_EQ(s.rows.size(), 4u);
  double answer_reward_mass = 0;
  for (const json& row : s.rows)
    for (const char* side : {"chosen", "rejected"}) {
      const auto ids = row[side]["ids"].get<std::vector<int64_t>>();
      const auto rewards = row[side]["rewards"].get<std::vector<float>>();
      ASSERT_GT(ids.size(), H) << side;
      EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(H)),
                header)
          << side;
      for (size_t t = 0; t < H; ++t) EXPECT_EQ(rewards[t], 0.0f) << side << " token " << t;
      for (size_t t = H; t < rewards.size(); ++t) answer_reward_mass += std::abs(rewards[t]);
    }
  EXPECT_GT(answer_reward_mass, 0.0);
}

TEST(RewardsCli, ResumeAfterKill9IsByteIdentical) {
  std::string dir = test::fresh_dir("rewards_kill");
  std::string model = test::tiny_model("llama");
  std::string train = data_subset(dir, 11);
  auto cfg = [&](const std::string& sub) {
    make_dirs(dir + "/" + sub);
    std::string p = dir + "/" + sub + "/cfg.yaml";
    write_file_atomic(p, "model_name_or_path: " + model + "\ntrain_file: " + train +
                             "\noutput_dir: " + dir + "/" + sub +
                             "/out\ndevice: cpu\nscore_batch_size: 2\n");
    return p;
  };
  std::string out;
  ASSERT_EQ(test::run_command(treg() + " score-tokens --no-progress --config " + cfg("a"), &out), 0)
      << out;
  const std::string want = read_file(dir + "/a/out/token_rewards.bin");

  const std::string killed = dir + "/b/out/token_rewards.bin";
  int rc = test::run_command(
      "TREG_TEST_KILL_AFTER_PAIRS=5 " + treg() + " score-tokens --no-progress --config " + cfg("b"),
      &out);
  EXPECT_NE(rc, 0) << out;  // killed by SIGKILL
  EXPECT_FALSE(file_exists(killed));
  ASSERT_TRUE(file_exists(killed + ".partial"));
  // A torn tail too: half of a record's bytes appended.
  std::string partial = read_file(killed + ".partial");
  write_file_atomic(killed + ".partial", partial + partial.substr(partial.size() - 100, 50));
  ASSERT_EQ(test::run_command(treg() + " score-tokens --no-progress --config " + cfg("b"), &out), 0)
      << out;
  EXPECT_NE(out.find("resuming after 4 scored pairs"), std::string::npos) << out;
  EXPECT_FALSE(file_exists(killed + ".partial"));
  EXPECT_TRUE(read_file(killed) == want) << "resumed dump differs from the uninterrupted one";
  EXPECT_EQ(test::run_command("cmp " + killed + " " + dir + "/a/out/token_rewards.bin", &out), 0)
      << out;
}

TEST(RewardsCli, StaleDumpIsRefusedNamingTheField) {
  Scored s = score("rewards_stale", "llama", 4);
  const std::string before = read_file(s.dump);
  Config c = load_config(s.cfg);
  EXPECT_NO_THROW(ensure_reward_dumps(c, s.cfg));  // complete and matching: reused
  EXPECT_TRUE(read_file(s.dump) == before);

  Config changed = load_config(s.cfg, {"max_length=4096"});
  std::string e = error_of([&] { ensure_reward_dumps(changed, s.cfg); });
  EXPECT_NE(e.find("'max_length' is 2048 in the dump but 4096"), std::string::npos) << e;
  EXPECT_NE(e.find("treg score-tokens --config " + s.cfg), std::string::npos) << e;
  EXPECT_NE(e.find(s.dump), std::string::npos) << e;

  // TF32 rounds a GPU's fp32 matmuls: log-probs of another forward.
  e = error_of([&] { ensure_reward_dumps(load_config(s.cfg, {"tf32=true"}), s.cfg); });
  EXPECT_NE(e.find("'precision' is \"fp32\" in the dump but \"fp32, TF32 matmuls\""),
            std::string::npos)
      << e;

  e = error_of(
      [&] { ensure_reward_dumps(load_config(s.cfg, {"better_description=kind"}), s.cfg); });
  EXPECT_NE(e.find("'revision_prompt.better_description'"), std::string::npos) << e;
  // The tiny llama ships Llama-3's template, the same text as the built-in llama3: still another
  // template (the built-in brings its own special tokens).
  e = error_of([&] { ensure_reward_dumps(load_config(s.cfg, {"chat_template=llama3"}), s.cfg); });
  EXPECT_NE(e.find("'chat_template.name' is \"model\" in the dump but \"llama3\""),
            std::string::npos)
      << e;

  // Another model (same shapes, other seed) is a different identity.
  std::string other = s.dir + "/other-model";
  std::string out;
  ASSERT_EQ(test::run_command(treg() + " make-tiny --arch llama --seed 3 --out " + other, &out), 0)
      << out;
  e = error_of(
      [&] { ensure_reward_dumps(load_config(s.cfg, {"model_name_or_path=" + other}), s.cfg); });
  EXPECT_NE(e.find("'model.weights_sha256'"), std::string::npos) << e;

  // Edited data.
  write_file_atomic(s.train, read_file(s.train) +
                                 read_file(s.train).substr(0, read_file(s.train).find('\n') + 1));
  e = error_of([&] { ensure_reward_dumps(c, s.cfg); });
  EXPECT_NE(e.find("'data."), std::string::npos) << e;

  // score-tokens itself replaces the stale dump; then ensure accepts it.
  ASSERT_EQ(test::run_command(treg() + " score-tokens --no-progress --config " + s.cfg, &out), 0)
      << out;
  EXPECT_NO_THROW(ensure_reward_dumps(c, s.cfg));
  EXPECT_EQ(RewardDumpReader(s.dump).size(), 5);

  // A missing dump is scored by ensure_reward_dumps.
  Config fresh = load_config(s.cfg, {"reward_dump=" + s.dir + "/fresh/d.bin"});
  ensure_reward_dumps(fresh, s.cfg);
  EXPECT_EQ(RewardDumpReader(s.dir + "/fresh/d.bin").size(), 5);

  // A truncated complete dump is a named error for a reader, and scored again before training.
  std::string bytes = read_file(s.dump);
  write_file_atomic(s.dump, bytes.substr(0, bytes.size() - 9));
  e = error_of([&] { RewardDumpReader r(s.dump); });
  EXPECT_NE(e.find(s.dump), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  EXPECT_NO_THROW(ensure_reward_dumps(c, s.cfg));
  EXPECT_TRUE(read_file(s.dump) == bytes);
}

// One flipped byte inside a record: train used to start on the dump and fail at the step reading
// it, and score-tokens called it "complete and up to date". Both now check every record first and
// score the dump again, to the same bytes.
TEST(RewardsCli, DamagedRecordIsFoundUpFrontAndScoredAgain) {
  Scored s = score("rewards_damaged", "llama", 6);
  const std::string good = read_file(s.dump);
  auto damage = [&] {
    std::string bytes = good;
    bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x10);
    write_file_atomic(s.dump, bytes);
  };
  damage();
  ASSERT_NE(error_of([&] {
              RewardDumpReader r(s.dump);
              for (int64_t i = 0; i < r.size(); ++i) r.read(i);
            }),
            "");
  std::string out;
  ASSERT_EQ(test::run_command(treg() + " score-tokens --no-progress --config " + s.cfg, &out), 0)
      << out;
  EXPECT_EQ(out.find("up to date; nothing to score"), std::string::npos) << out;
  EXPECT_NE(out.find("scoring it again"), std::string::npos) << out;
  EXPECT_TRUE(read_file(s.dump) == good) << "re-scored dump differs";

  damage();
  EXPECT_NO_THROW(ensure_reward_dumps(load_config(s.cfg), s.cfg));
  EXPECT_TRUE(read_file(s.dump) == good) << "train did not repair the dump before starting";
}

// NaN weights used to give an exit-0 dump full of NaN.
// bf16 as HF's Trainer runs it: fp32 weights, the forward under bf16 autocast (CPU autocast stands
// in for CUDA here). score-tokens stores the reference log-probs of that same forward, so at step 0
// the policy reproduces them and every DPO reward starts at 0, as in fp32. The recipe before, bf16
// weights for scoring, is off by the weights' rounding: measured here too, so this test can fail.
TEST(RewardsCli, Bf16ReferenceLogProbsAreThePolicysAtStepZero) {
  // Padded rows, and prefix-shared trees (`packing`: the scorer lays the plain contexts out as the
  // trainer lays out pairs).
  for (const char* packing : {"false", "true"}) {
  SCOPED_TRACE(std::string("packing ") + packing);
  Scored s = score(std::string("bf16_step0_packing_") + packing, "llama", 6,
                   std::string("bf16: true\npacking: ") + packing + "\n");
  EXPECT_EQ(s.meta["precision"], "fp32 weights, bf16 autocast");
  EXPECT_EQ(s.meta["run"]["autocast"], "bfloat16");
  const Config c = load_config(s.cfg);
  ASSERT_TRUE(c.bf16);
  auto dump = open_dump_source(s.dump);

  // The trainer's own forward and metrics at step 0.
  Trainer t(c, load_model(s.model, torch::kCPU, torch::kFloat32), dump, dump);
  const auto m = t.evaluate();
  for (const char* k : {"eval_rewards/chosen", "eval_rewards/rejected", "eval_rewards/margins"})
    EXPECT_LE(std::abs(m.at(k)), 1e-6) << k;

  // Per token: fp32 weights under autocast (one pair at a time, so other rows than the scorer's)
  // against bf16 weights.
  CausalLM fp32 = load_model(s.model, torch::kCPU, torch::kFloat32);
  CausalLM bf16 = load_model(s.model, torch::kCPU, torch::kBFloat16);
  double worst_autocast = 0, worst_bf16_weights = 0;
  torch::NoGradGuard no_grad;
  for (int64_t i = 0; i < dump->size(); ++i) {
    const PairRecord p = dump->get(i);
    if (std::string(packing) == "true") {
      // The pair as one tree, as the trainer lays it out.
      PairBatch b = collate_pairs({p}, "x", PairLayout::kPrefixShared);
      ResponseOutputs out;
      {
        AutocastGuard autocast(torch::kCPU, true);
        out = response_outputs(fp32, b, false, false);
      }
      ResponseTokens c, r;
      gather_responses(b, out, c, r);
      worst_autocast = std::max(
          {worst_autocast,
           (c.logps[0].narrow(0, 0, static_cast<int64_t>(p.chosen.ids.size())) - torch::tensor(p.chosen.ref_logps))
               .abs().max().item<double>(),
           (r.logps[0].narrow(0, 0, static_cast<int64_t>(p.rejected.ids.size())) - torch::tensor(p.rejected.ref_logps))
               .abs().max().item<double>()});
    }
    for (const ResponseScores* r : {&p.chosen, &p.rejected}) {
      std::vector<int64_t> seq = p.prompt_ids;
      seq.insert(seq.end(), r->ids.begin(), r->ids.end());
      const auto ids = torch::tensor(seq, torch::kInt64).unsqueeze(0);
      const auto mask = torch::ones_like(ids);
      const auto P = static_cast<int64_t>(p.prompt_ids.size());
      const auto n = static_cast<int64_t>(r->ids.size());
      const auto stored = torch::tensor(r->ref_logps);  // [n]
      torch::Tensor a, b;
      if (std::string(packing) == "false") {
        AutocastGuard autocast(torch::kCPU, true);
        a = next_token_logprobs(fp32, ids, mask).logps[0].narrow(0, P - 1, n).to(torch::kFloat32);
        worst_autocast = std::max(worst_autocast, (a - stored).abs().max().item<double>());
      }
      b = next_token_logprobs(bf16, ids, mask).logps[0].narrow(0, P - 1, n).to(torch::kFloat32);
      worst_bf16_weights = std::max(worst_bf16_weights, (b - stored).abs().max().item<double>());
    }
  }
  EXPECT_LE(worst_autocast, 1e-5);
  EXPECT_GE(worst_bf16_weights, 1e-3) << "bf16 weights would have matched: the test proves nothing";
  }
}

TEST(RewardsCli, NonFiniteLogProbsStopScoringNamingThePair) {
  std::string dir = test::fresh_dir("rewards_nan");
  std::string out;
  ASSERT_EQ(test::run_command("cp -r " + test::tiny_model("llama") + " " + dir + "/model", &out), 0)
      << out;
  const std::string weights = dir + "/model/model.safetensors";
  NamedTensors tensors;
  {
    SafetensorsCheckpoint ck(weights);
    for (const std::string& k : ck.keys()) {
      torch::Tensor t = ck.load(k, torch::kFloat32);
      if (k == "model.layers.1.mlp.down_proj.weight") t.index_put_({0, 0}, NAN);
      tensors.emplace_back(k, t);
    }
  }
  save_safetensors(weights, tensors);
  std::string cfg = write_config(dir, dir + "/model", data_subset(dir, 3));
  EXPECT_NE(test::run_command(treg() + " score-tokens --no-progress --config " + cfg, &out), 0)
      << out;
  EXPECT_NE(out.find("non-finite"), std::string::npos) << out;
  EXPECT_NE(out.find("data line 1"), std::string::npos) << out;
  EXPECT_FALSE(file_exists(dir + "/out/token_rewards.bin"));
}

// CPU sums are split by thread, so a .partial scored with another thread count is not resumed
// (its records would differ in the last bits from the ones this run appends); the log names why.
TEST(RewardsCli, PartialFromAnotherThreadCountIsScoredAgainNamingIt) {
  std::string dir = test::fresh_dir("rewards_threads");
  std::string cfg = write_config(dir, test::tiny_model("llama"), data_subset(dir, 6));
  const std::string dump = dir + "/out/token_rewards.bin";
  const std::string run = treg() + " score-tokens --no-progress --config " + cfg;
  std::string out;
  ASSERT_EQ(test::run_command("TREG_NUM_THREADS=2 " + run, &out), 0) << out;
  const std::string want = read_file(dump);
  std::remove(dump.c_str());
  EXPECT_NE(test::run_command("TREG_TEST_KILL_AFTER_PAIRS=3 TREG_NUM_THREADS=1 " + run, &out), 0);
  ASSERT_TRUE(file_exists(dump + ".partial"));
  ASSERT_EQ(test::run_command("TREG_NUM_THREADS=2 " + run, &out), 0) << out;
  EXPECT_NE(out.find("run.cpu_threads = 1, this run has 2; starting over"), std::string::npos)
      << out;
  EXPECT_TRUE(read_file(dump) == want);
}

TEST(RewardsCli, CustomRevisionPromptWithMissingPlaceholderIsAnError) {
  std::string dir = test::fresh_dir("rewards_badprompt");
  std::string p = dir + "/rev.txt";
  write_file_atomic(p, "Rewrite {answer} to be {direction} ({detailed_description}).\n");
  std::string cfg = write_config(dir, test::tiny_model("llama"), data_subset(dir, 2),
                                 "revision_prompt: " + p + "\n");
  std::string out;
  EXPECT_NE(test::run_command(treg() + " score-tokens --no-progress --config " + cfg, &out), 0);
  EXPECT_NE(out.find(p), std::string::npos) << out;
  EXPECT_NE(out.find("missing placeholder(s) {instruction}"), std::string::npos) << out;
}

TEST(RewardsCli, DpoRewardSourceUsesTheLogRatioOfTwoModels) {
  std::string dir = test::fresh_dir("rewards_dpo");
  std::string dpo = dir + "/dpo-model", out;
  ASSERT_EQ(test::run_command(treg() + " make-tiny --arch llama --seed 5 --out " + dpo, &out), 0)
      << out;
  Scored s =
      score("rewards_dpo_scored", "llama", 3, "reward_source: dpo\ndpo_model: " + dpo + "\n");
  ASSERT_EQ(s.rows.size(), 3u);
  EXPECT_EQ(s.meta["reward_source"], "dpo");
  EXPECT_TRUE(s.meta.contains("dpo_model"));
  for (const json& r : s.rows) {
    std::vector<double> ref = r["chosen"]["ref_logps"], b = r["chosen"]["logp_better"],
                        w = r["chosen"]["logp_worse"], rw = r["chosen"]["rewards"];
    EXPECT_EQ(w, ref);  // pi_ref is the "worse" side
    for (size_t j = 0; j < rw.size(); ++j)
      EXPECT_NEAR(rw[j], 1.0 / (1.0 + std::exp(-(b[j] - ref[j]))) - 0.5, 1e-6);
    bool differs = false;
    for (size_t j = 0; j < b.size(); ++j) differs |= std::fabs(b[j] - ref[j]) > 1e-4;
    EXPECT_TRUE(differs);  // two different models
  }
  // Independent: pi_dpo on the plain context equals `treg logprobs --model dpo`.
  std::vector<int64_t> ids = s.rows[0]["prompt_ids"];
  std::vector<int64_t> resp = s.rows[0]["chosen"]["ids"];
  size_t start = ids.size();
  ids.insert(ids.end(), resp.begin(), resp.end());
  write_file_atomic(s.dir + "/in.jsonl", json{{"ids", ids}}.dump() + "\n");
  ASSERT_EQ(test::run_command(treg() + " logprobs --model " + dpo + " --input " + s.dir +
                                  "/in.jsonl --out " + s.dir + "/lp.jsonl",
                              &out),
            0)
      << out;
  std::vector<double> all = read_jsonl(s.dir + "/lp.jsonl")[0]["logprobs"];
  std::vector<double> b = s.rows[0]["chosen"]["logp_better"];
  for (size_t j = 0; j < b.size(); ++j) EXPECT_NEAR(all[start - 1 + j], b[j], 1e-5);
}

// The bundled data with the tiny default model: every shipped row scores, then the export and the
// HTML view. (Its speed is measured by bench/bench_score_tokens, not asserted here.)
TEST(RewardsCli, BundledDataScoresAndDraws) {
  std::string dir = test::fresh_dir("rewards_bundled");
  std::string cfg = write_config(
      dir, test::tiny_model("llama"), test::source_path("configs/data/tiny_prefs.train.jsonl"),
      "eval_file: " + test::source_path("configs/data/tiny_prefs.eval.jsonl") +
          "\nscore_batch_size: 8\n");
  // score_batch_size appears twice otherwise: rewrite without the default line.
  write_file_atomic(cfg, replace_all(read_file(cfg), "score_batch_size: 2\n", ""));
  std::string out;
  ASSERT_EQ(test::run_command(treg() + " score-tokens --config " + cfg, &out), 0) << out;
  EXPECT_NE(out.find("300 pairs"), std::string::npos) << out;
  EXPECT_NE(out.find("mean token reward: chosen"), std::string::npos) << out;
  EXPECT_NE(out.find("pairs/s"), std::string::npos) << out;  // the progress line
  EXPECT_TRUE(file_exists(dir + "/out/token_rewards.bin.config.yaml"));
  EXPECT_EQ(RewardDumpReader(dir + "/out/token_rewards.eval.bin").size(), 50);

  ASSERT_EQ(test::run_command(treg() + " view-rewards --dump " + dir +
                                  "/out/token_rewards.bin --out " + dir + "/v.html --pairs 3",
                              &out),
            0)
      << out;
  std::string html = read_file(dir + "/v.html");
  EXPECT_NE(html.find("<!DOCTYPE html>"), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);  // self-contained
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("Chosen"), std::string::npos);
  EXPECT_NE(html.find("Rejected"), std::string::npos);
  EXPECT_NE(html.find("title=\"r = "), std::string::npos);
  EXPECT_NE(html.find("Pair 2"), std::string::npos);
  EXPECT_EQ(html.find("Pair 3"), std::string::npos);
}

}  // namespace
}  // namespace treg
