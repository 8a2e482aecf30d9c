#!/usr/bin/env python3
"""Writes configs/data/tiny_corpus.txt: ~200 KB of varied text the tiny tokenizers are trained on.

Deterministic (fixed seed, no dependencies), so every checkout trains the same tiny vocabulary.
Usage: python3 scripts/make_tiny_corpus.py [OUT_PATH]
"""
import random
import sys

SEED = 20240601
TARGET_BYTES = 200_000

SUBJECTS = ["the model", "a student", "my neighbour", "the reward", "this policy", "our team",
            "the teacher", "a small cat", "the old server", "every token", "the river", "she", "he",
            "they", "the committee", "a robot", "the chef", "the optimizer", "your answer", "the city"]
VERBS = ["learns", "writes", "answers", "explains", "measures", "prefers", "rejects", "compares",
         "builds", "reads", "counts", "moves", "checks", "improves", "describes", "ignores", "keeps"]
OBJECTS = ["the question", "a long story", "three apples", "the gradient", "every response",
           "the best option", "a short poem", "the data set", "its own mistakes", "the weather",
           "a difficult proof", "the map", "two numbers", "the final score", "a helpful reply"]
ADVERBS = ["quickly", "carefully", "slowly", "again", "today", "without help", "in silence",
           "step by step", "before noon", "at night", "with care", "for the first time"]
CONNECT = ["because", "although", "while", "so that", "and then", "but", "unless", "after"]
NON_ASCII = ["café", "naïve", "résumé", "Zürich", "São Paulo", "jalapeño", "façade", "Ångström",
             "über", "coöperate", "Москва", "привет", "東京", "こんにちは", "안녕하세요", "مرحبا",
             "नमस्ते", "Ελλάδα", "€42", "£7.50", "±3°C", "→", "naïve café", "smörgåsbord"]
QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?",
             "Can you explain why the sky is blue?", "Write a haiku about autumn.",
             "Why do we sleep?", "What's 17 times 23?", "Is it going to rain tomorrow?",
             "Summarize the plot of Hamlet in two sentences.", "Who wrote 'Pride and Prejudice'?"]
CODE = [
    "def add(a, b):\n    return a + b\n",
    "for (int i = 0; i < n; ++i) {\n  sum += x[i] * w[i];\n}\n",
    "if x > 0 and y < 10:\n    print(f\"x={x}, y={y}\")\n",
    "const items = data.filter((d) => d.score >= 0.5).map((d) => d.id);\n",
    "SELECT name, COUNT(*) FROM users WHERE age > 30 GROUP BY name;\n",
    "#include <vector>\nstd::vector<int> v{1, 2, 3};\n",
    "fn main() {\n    let mut total: u64 = 0;\n    println!(\"{}\", total);\n}\n",
    "git commit -m 'fix: handle empty input'\n",
    "{\"id\": 7, \"tags\": [\"a\", \"b\"], \"ok\": true}\n",
    "while (queue.size() > 0) { auto t = queue.front(); queue.pop(); }\n",
]


def sentence(rng):
    s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(ADVERBS)}"
    if rng.random() < 0.4:
        s += f", {rng.choice(CONNECT)} {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
    if rng.random() < 0.15:
        s += f" in {rng.choice(NON_ASCII)}"
    if rng.random() < 0.2:
        s += f" ({rng.randint(0, 99999)} times, {rng.randint(1, 12)}/{rng.randint(1, 28)}/{rng.randint(1990, 2030)})"
    end = rng.choice([".", ".", ".", "!", "?", "...", ";"])
    s = s[0].upper() + s[1:] + end
    if rng.random() < 0.1:
        s = s.replace(" is ", " isn't ").replace("they ", "they're ").replace("she ", "she'll ")
    return s


def paragraph(rng):
    kind = rng.random()
    if kind < 0.65:
        return " ".join(sentence(rng) for _ in range(rng.randint(2, 6)))
    if kind < 0.8:
        return f"Question: {rng.choice(QUESTIONS)} Answer: {sentence(rng)}"
    if kind < 0.92:
        return rng.choice(CODE).rstrip("\n").replace("\n", " ")
    nums = ", ".join(str(rng.randint(0, 10 ** rng.randint(1, 9))) for _ in range(rng.randint(3, 8)))
    return f"Numbers: {nums}; total = {rng.randint(0, 10 ** 6)}.{rng.randint(0, 99):02d} ({rng.choice(NON_ASCII)})"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "configs/data/tiny_corpus.txt"
    rng = random.Random(SEED)
    lines, size = [], 0
    while size < TARGET_BYTES:
        line = paragraph(rng)
        lines.append(line)
        size += len(line.encode("utf-8")) + 1
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
