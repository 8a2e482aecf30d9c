// `treg generate` on tiny models: both output formats, every input row shape, greedy answers equal
// to the library's, and bad input named by file and line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "treg/chat_template.h"
#include "treg/data.h"
#include "treg/generate.h"
#include "treg/io.h"
#include "treg/model.h"
#include "treg/tokenizer.h"

namespace treg {
namespace {

using nlohmann::json;

struct CliRun {
  int rc;
  std::string log;
};

CliRun run_cli(const std::string& args) {
  CliRun r;
  r.rc = test::run_command(test::treg_binary() + " generate --no-progress " + args, &r.log);
  return r;
}

// What the CLI does for one user message, through the library: render with the generation
// prompt, encode without specials, greedy with the EOS and end-of-turn ids, decode.
std::vector<std::string> library_answers(const std::string& model_dir,
                                         const std::vector<std::string>& instructions,
                                         int64_t max_new) {
  auto tok = load_tokenizer(model_dir);
  ChatTemplate chat = make_chat_template(*tok, "");
  CausalLM model = load_model(model_dir, torch::kCPU, torch::kFloat32);
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& s : instructions)
    prompts.push_back(tok->encode(chat.render({{"user", s}}, true), false));
  GenerateOptions o;
  o.temperature = 0;
  o.max_new_tokens = max_new;
  o.stop_ids = tok->special().eos_ids;
  o.stop_ids.push_back(end_of_turn_id(*tok, chat));
  for (int64_t id : model->args().eos_token_ids) o.stop_ids.push_back(id);
  GenerateResult res = generate(model, prompts, o);
  std::vector<std::string> out;
  for (const auto& ids : res.ids) out.push_back(tok->decode(ids, true));
  return out;
}

TEST(GenerateCli, AlpacaEvalJsonEqualsLibraryGreedy) {
  const std::string model = test::tiny_model("llama");
  const std::string dir = test::fresh_dir("gen-cli-alpaca");
  const std::vector<std::string> instr = {"Tell me about the weather.", "What is two plus two?",
                                          "Write a haiku about rivers and the sea and mountains."};
  json rows = json::array();
  rows.push_back({{"instruction", instr[0]}, {"dataset", "helpful_base"}});
  rows.push_back({{"instruction", instr[1]}});
  rows.push_back({{"instruction", instr[2]}, {"dataset", "koala"}});
  write_file_atomic(path_join(dir, "eval.json"), rows.dump(2));
  const std::string out = path_join(dir, "answers.json");
  CliRun r = run_cli("--model " + model + " --prompts " + path_join(dir, "eval.json") + " --out " +
                     out + " --temperature 0 --max-new-tokens 12 --batch-size 2");
  ASSERT_EQ(r.rc, 0) << r.log;
  json got = json::parse(read_file(out));
  ASSERT_TRUE(got.is_array());
  ASSERT_EQ(got.size(), 3u);
  const auto want = library_answers(model, instr, 12);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(got[i]["instruction"], instr[i]);
    EXPECT_EQ(got[i]["output"], want[i]) << i;
    EXPECT_EQ(got[i]["generator"], "tiny-llama");
  }
  EXPECT_EQ(got[0]["dataset"], "helpful_base");
  EXPECT_FALSE(got[1].contains("dataset"));
  EXPECT_EQ(got[2]["dataset"], "koala");
}

TEST(GenerateCli, ArenaHardJsonlAndOtherRowShapes) {
  const std::string model = test::tiny_model("qwen2");
  const std::string dir = test::fresh_dir("gen-cli-arena");
  const std::string in = path_join(dir, "question.jsonl");
  write_file_atomic(
      in, json({{"question_id", "q1"}, {"cluster", "c"}, {"turns", {{{"content", "Hi there"}}}}})
                  .dump() +
              "\n\n" + json({{"question_id", 7}, {"prompt", "Count to three."}}).dump() + "\n" +
              json({{"messages",
                     {{{"role", "user"}, {"content", "Name a fruit."}},
                      {{"role", "assistant"}, {"content", "old answer"}}}}})
                  .dump() +
              "\n");
  const std::string out = path_join(dir, "answers.jsonl");
  CliRun r = run_cli("--model " + model + " --prompts " + in + " --out " + out +
                     " --temperature 0 --max-new-tokens 8 --generator my-model");
  ASSERT_EQ(r.rc, 0) << r.log;
  std::vector<json> lines;
  for (const auto& l : [&] {
         std::vector<std::string> v;
         std::string s = read_file(out);
         size_t p = 0;
         while (p < s.size()) {
           size_t e = s.find('\n', p);
           v.push_back(s.substr(p, e - p));
           p = e + 1;
         }
         return v;
       }())
    lines.push_back(json::parse(l));
  ASSERT_EQ(lines.size(), 3u);
  const auto want = library_answers(model, {"Hi there", "Count to three.", "Name a fruit."}, 8);
  EXPECT_EQ(lines[0]["question_id"], "q1");
  EXPECT_EQ(lines[1]["question_id"], 7);
  EXPECT_EQ(lines[2]["question_id"], 2);  // no id: the row's index
  for (size_t i = 0; i < 3; ++i) {
    const json& a = lines[i];
    EXPECT_EQ(a["model_id"], "my-model");
    EXPECT_EQ(a["answer_id"].get<std::string>().size(), 22u);
    EXPECT_TRUE(a["tstamp"].is_number());
    ASSERT_EQ(a["choices"].size(), 1u);
    EXPECT_EQ(a["choices"][0]["index"], 0);
    const json& turn = a["choices"][0]["turns"][0];
    EXPECT_EQ(turn["content"], want[i]) << i;
    EXPECT_GE(turn["token_len"].get<int64_t>(), 1);
    EXPECT_LE(turn["token_len"].get<int64_t>(), 8);
  }
}

TEST(GenerateCli, MalformedRowNamesFileAndLine) {
  const std::string model = test::tiny_model("llama");
  const std::string dir = test::fresh_dir("gen-cli-bad");
  const std::string in = path_join(dir, "q.jsonl"), out = path_join(dir, "a.jsonl");
  write_file_atomic(in, "{\"instruction\": \"ok\"}\n{\"question\": \"no prompt key\"}\n");
  CliRun r = run_cli("--model " + model + " --prompts " + in + " --out " + out);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.log.find(in + ":2"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("\"instruction\""), std::string::npos) << r.log;
  EXPECT_FALSE(file_exists(out));
  // A JSON array names the line its bad element starts on.
  const std::string arr = path_join(dir, "eval.json");
  write_file_atomic(arr, "[\n  {\"instruction\": \"a\"},\n  {\"instruction\": 5}\n]\n");
  r = run_cli("--model " + model + " --prompts " + arr + " --out " + path_join(dir, "a.json"));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.log.find(arr + ":3"), std::string::npos) << r.log;
  write_file_atomic(in, "{\"instruction\": \"ok\"}\nnot json\n");
  r = run_cli("--model " + model + " --prompts " + in + " --out " + out);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.log.find(in + ":2"), std::string::npos) << r.log;
  r = run_cli("--model " + model + " --prompts " + in + " --out " + path_join(dir, "a.txt"));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.log.find("--format"), std::string::npos) << r.log;
}

}  // namespace
}  // namespace treg
