// tokenizer.json components the real golden tokenizers do not use, on hand-made tokenizer.json
// files whose expected ids follow by hand from the `tokenizers` library's documented semantics.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/tokenizer.h"

namespace {

using nlohmann::json;
using Ids = std::vector<int64_t>;

// A BPE tokenizer.json over `vocab` (ids in order) and `merges`, plus the given components.
std::unique_ptr<treg::Tokenizer> make(
    const std::string& name, const std::vector<std::string>& vocab,
    const std::vector<std::pair<std::string, std::string>>& merges, json extra) {
  json v = json::object();
  for (size_t i = 0; i < vocab.size(); ++i) v[vocab[i]] = i;
  json m = json::array();
  for (const auto& [a, b] : merges) m.push_back({a, b});
  json root = {{"model", {{"type", "BPE"}, {"vocab", v}, {"merges", m}}},
               {"added_tokens", json::array()}};
  for (auto& [k, val] : extra.items()) {
    if (k == "model")
      root["model"].update(val);
    else
      root[k] = val;
  }
  std::string dir = treg::test::fresh_dir("tok_comp_" + name);
  treg::write_file_atomic(dir + "/tokenizer.json", root.dump());
  return treg::load_tokenizer(dir);
}

json added(int id, const std::string& content, bool special = true) {
  return {{"id", id},        {"content", content}, {"special", special},  {"normalized", false},
          {"lstrip", false}, {"rstrip", false},    {"single_word", false}};
}

const std::string M = "\xE2\x96\x81";  // ▁

TEST(TokComponents, MetaspacePrependSchemes) {
  std::vector<std::string> vocab = {M, "a", M + "a", "<s>"};
  auto meta = [&](const std::string& scheme) {
    return make(
        "meta_" + scheme, vocab, {{M, "a"}},
        {{"pre_tokenizer",
          {{"type", "Metaspace"}, {"replacement", M}, {"prepend_scheme", scheme}, {"split", true}}},
         {"added_tokens", {added(3, "<s>")}},
         {"decoder",
          {{"type", "Metaspace"},
           {"replacement", M},
           {"prepend_scheme", scheme},
           {"split", true}}}});
  };
  auto first = meta("first"), always = meta("always"), never = meta("never");
  EXPECT_EQ(first->encode("a a"), (Ids{2, 2}));   // "▁a▁a" split before each ▁
  EXPECT_EQ(first->encode("<s>a"), (Ids{3, 1}));  // not at the start of the input: no ▁
  EXPECT_EQ(always->encode("<s>a"), (Ids{3, 2}));
  EXPECT_EQ(never->encode("a a"), (Ids{1, 2}));
  EXPECT_EQ(first->decode({2, 2}), "a a");  // the first ▁ is the prepended one
}

TEST(TokComponents, DigitsIndividualOrRuns) {
  std::vector<std::string> vocab = {"1", "2", "3", "12", "x"};
  auto individual = make("digits_1", vocab, {{"1", "2"}},
                         {{"pre_tokenizer", {{"type", "Digits"}, {"individual_digits", true}}}});
  auto runs = make("digits_n", vocab, {{"1", "2"}},
                   {{"pre_tokenizer", {{"type", "Digits"}, {"individual_digits", false}}}});
  EXPECT_EQ(individual->encode("x123"), (Ids{4, 0, 1, 2}));
  EXPECT_EQ(runs->encode("x123"), (Ids{4, 3, 2}));
}

TEST(TokComponents, UnicodeNormalizers) {
  std::vector<std::string> vocab = {"f", "i", "fi", "\xC3\xA9"};  // é precomposed
  auto nfkc = make("nfkc", vocab, {{"f", "i"}}, {{"normalizer", {{"type", "NFKC"}}}});
  auto nfc = make("nfc", vocab, {{"f", "i"}}, {{"normalizer", {{"type", "NFC"}}}});
  EXPECT_EQ(nfkc->encode("\xEF\xAC\x81"), (Ids{2}));  // U+FB01 "ﬁ" -> "fi"
  EXPECT_EQ(nfc->encode("e\xCC\x81"), (Ids{3}));      // e + U+0301 -> é
  EXPECT_EQ(nfc->encode("\xEF\xAC\x81"), (Ids{}));  // NFC keeps the ligature: no such token, no unk
}

TEST(TokComponents, SplitBehaviors) {
  std::vector<std::string> vocab = {"a", "b", "-", "a-", "-b", "--"};
  std::vector<std::pair<std::string, std::string>> merges = {{"a", "-"}, {"-", "b"}, {"-", "-"}};
  auto split = [&](const std::string& behavior, json pattern, bool invert = false) {
    return make(
        "split_" + behavior + (invert ? "_inv" : ""), vocab, merges,
        {{"pre_tokenizer",
          {{"type", "Split"}, {"pattern", pattern}, {"behavior", behavior}, {"invert", invert}}}});
  };
  json dash = {{"String", "-"}};
  EXPECT_EQ(split("Removed", dash)->encode("a-b"), (Ids{0, 1}));
  EXPECT_EQ(split("Isolated", dash)->encode("a-b"), (Ids{0, 2, 1}));
  EXPECT_EQ(split("MergedWithPrevious", dash)->encode("a-b"), (Ids{3, 1}));
  EXPECT_EQ(split("MergedWithNext", dash)->encode("a-b"), (Ids{0, 4}));
  EXPECT_EQ(split("Contiguous", dash)->encode("a--b"), (Ids{0, 5, 1}));
  EXPECT_EQ(split("Isolated", dash)->encode("a--b"), (Ids{0, 2, 2, 1}));
  // invert: the pattern matches what is kept; Removed drops the rest.
  EXPECT_EQ(split("Removed", {{"Regex", "[ab]"}}, true)->encode("a-b"), (Ids{0, 1}));
}

TEST(TokComponents, ByteFallbackAndFusedUnknowns) {
  std::vector<std::string> vocab = {"<unk>", "a", "<0xC3>", "<0xA9>"};
  auto fallback = make(
      "bytefb", vocab, {},
      {{"model", {{"unk_token", "<unk>"}, {"byte_fallback", true}}},
       {"decoder",
        {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}}}});
  auto fused =
      make("fuseunk", vocab, {}, {{"model", {{"unk_token", "<unk>"}, {"fuse_unk", true}}}});
  EXPECT_EQ(fallback->encode("a\xC3\xA9"), (Ids{1, 2, 3}));  // é is not in the vocab: its two bytes
  EXPECT_EQ(fallback->encode("\xE2\x82\xAC"), (Ids{0}));     // € has bytes without tokens: unk
  EXPECT_EQ(fallback->decode({1, 2, 3}), "a\xC3\xA9");
  EXPECT_EQ(fallback->decode({2}), "\xEF\xBF\xBD");  // a lone byte is U+FFFD
  EXPECT_EQ(fused->encode("\xC3\xA9\xC3\xA9"
                          "a\xC3\xA9"),
            (Ids{0, 1, 0}));
}

// Found by tests/fuzz/tokenizer_json_fuzz (ASan: stack-use-after-scope in the strtol-based parse):
// only "<0x" + two hex digits + ">" names a byte; " F" or "+F" (which strtol accepted) do not.
TEST(TokComponents, ByteFallbackNamesBytesOnlyByTwoHexDigits) {
  std::vector<std::string> vocab = {"<unk>", "<0x41>", "<0x F>", "<0x+F>", "<0xg1>", "<0xe9>"};
  auto tok = make("bytefb_digits", vocab, {},
                  {{"model", {{"unk_token", "<unk>"}, {"byte_fallback", true}}},
                   {"decoder", {{"type", "ByteFallback"}}}});
  EXPECT_EQ(tok->decode({1}), "A");
  EXPECT_EQ(tok->decode({2}), "<0x F>");
  EXPECT_EQ(tok->decode({3}), "<0x+F>");
  EXPECT_EQ(tok->decode({4}), "<0xg1>");
  EXPECT_EQ(tok->decode({5}),
            "\xEF\xBF\xBD");  // lower-case hex is a byte (0xE9), alone invalid UTF-8
}

// Found by tests/fuzz/tokenizer_json_fuzz (an added token without "content" escaped as an uncaught
// nlohmann out_of_range; tests/fuzz/corpus/tokenizer_json_fuzz/regress-missing-content): a
// malformed field, or an id no vocabulary has, is a treg::Error naming the file.
TEST(TokComponents, MalformedTokenizerJsonIsANamedError) {
  json no_content = added(4, "<x>");
  no_content.erase("content");
  std::string e = treg::test::error_of([&] {
    make("no_content", {"a", "b"}, {}, {{"added_tokens", {no_content}}});
  });
  EXPECT_NE(e.find("tokenizer.json: malformed tokenizer.json"), std::string::npos) << e;
  EXPECT_NE(e.find("'content'"), std::string::npos) << e;

  json string_id = added(4, "<x>");
  string_id["id"] = "four";
  e = treg::test::error_of([&] {
    make("string_id", {"a", "b"}, {}, {{"added_tokens", {string_id}}});
  });
  EXPECT_NE(e.find("id is not an integer"), std::string::npos) << e;

  // A vocab id written as a float (found by the fuzzer as 6.7e85: UBSan, float-to-int overflow).
  e = treg::test::error_of([&] {
    make("float_id", {"a", "b"}, {}, {{"model", {{"vocab", {{"a", 0}, {"b", 6.7e85}}}}}});
  });
  EXPECT_NE(e.find("vocab entry 'b' has id 6.7e+85, not an integer"), std::string::npos) << e;

  json huge = added(0, "<x>");
  huge["id"] = int64_t{1} << 40;  // would have sized a table of 2^40 strings
  e = treg::test::error_of([&] { make("huge_id", {"a", "b"}, {}, {{"added_tokens", {huge}}}); });
  EXPECT_NE(e.find("token '<x>' has id 1099511627776, outside [0, 16777216)"), std::string::npos)
      << e;
}

TEST(TokComponents, AddedTokenOptions) {
  std::vector<std::string> vocab = {"a", " ", "h", "i", "t", "s", "hi"};
  json strip = added(7, "<x>");
  strip["rstrip"] = true;
  strip["lstrip"] = true;
  json word = added(8, "hi", false);
  word["single_word"] = true;
  auto tok = make("added_opts", vocab, {{"h", "i"}}, {{"added_tokens", {strip, word}}});
  EXPECT_EQ(tok->encode("a  <x>  a"), (Ids{0, 7, 0}));  // lstrip/rstrip swallow the spaces
  EXPECT_EQ(tok->encode("hi a"), (Ids{8, 1, 0}));       // a whole word: the added token
  EXPECT_EQ(tok->encode("this"), (Ids{4, 6, 5}));       // inside a word: ordinary BPE
  EXPECT_EQ(tok->piece_to_id("<x>"), 7);
  EXPECT_EQ(tok->vocab_size(), 9);
}

TEST(TokComponents, TemplateProcessingAddsBosAndEos) {
  json post = {{"type", "TemplateProcessing"},
               {"single",
                {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                 {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
               {"pair", json::array()},
               {"special_tokens",
                {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}},
                 {"</s>", {{"id", "</s>"}, {"ids", {2}}, {"tokens", {"</s>"}}}}}}};
  auto tok =
      make("template", {"a", "<s>", "</s>"}, {},
           {{"post_processor", post}, {"added_tokens", {added(1, "<s>"), added(2, "</s>")}}});
  EXPECT_EQ(tok->encode("a", true), (Ids{1, 0, 2}));
  EXPECT_EQ(tok->encode("a", false), (Ids{0}));
  EXPECT_TRUE(tok->special().add_bos);
  EXPECT_TRUE(tok->special().add_eos);
  EXPECT_EQ(tok->decode({1, 0, 2}, /*skip_special=*/true), "a");
}

// GPT-2 style: ByteLevel splits with its own regex and maps bytes to characters (" " -> "Ġ").
TEST(TokComponents, ByteLevelWithItsOwnRegex) {
  const std::string G = "\xC4\xA0";  // Ġ
  std::vector<std::string> vocab = {G + "Hello", G + "world", "'s", G,   "H", "e", "l",
                                    "o",         "w",         "r",  "d", "s", "'", "x"};
  auto tok = make(
      "bytelevel_regex", vocab, {},
      {{"model", {{"ignore_merges", true}}},
       {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}},
       {"decoder", {{"type", "ByteLevel"}}}});
  EXPECT_EQ(tok->encode("Hello world"), (Ids{0, 1}));  // " Hello", " world" after the prefix space
  EXPECT_EQ(tok->encode(" Hello's"), (Ids{0, 2}));     // no second prefix space; 's split off
  EXPECT_EQ(tok->encode("x  x"),
            (Ids{3, 13, 3, 3, 13}));  // " x", " ", " x": \s+(?!\S) leaves one space
  EXPECT_EQ(tok->decode({0, 1}), " Hello world");
}

TEST(TokComponents, UnsupportedNormalizerAndDecoderAreErrors) {
  for (const auto& [key, type] :
       std::vector<std::pair<std::string, std::string>>{{"normalizer", "Precompiled"},
                                                        {"decoder", "WordPiece"},
                                                        {"post_processor", "RobertaProcessing"}}) {
    try {
      make("bad_" + key, {"a"}, {}, {{key, {{"type", type}}}});
      ADD_FAILURE() << key << " " << type << " accepted";
    } catch (const treg::Error& e) {
      EXPECT_NE(std::string(e.what()).find(type), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
