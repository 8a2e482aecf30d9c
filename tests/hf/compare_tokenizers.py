#!/usr/bin/env python3
"""`treg tokenize` against the real Hugging Face libraries, on real tokenizer files.

  ids:  token ids of `treg tokenize` vs the `tokenizers` library (the reference for tokenizer.json
        semantics), with and without special tokens, on the texts of every golden.jsonl fixture plus
        strings that hold the tokenizer's own special tokens.
  chat: `treg tokenize --chat` vs transformers' `apply_chat_template` (rendered by transformers'
        Jinja environment, then encoded by `tokenizers` without special tokens, as
        apply_chat_template(tokenize=True) does), for the template the tokenizer_config.json carries.

Usage: compare_tokenizers.py ids|chat TREG FIXTURES_DIR NAME WORK_DIR
Exit 1 on any difference (the first few are printed), 0 when every sequence is identical.
"""
import glob
import gzip
import json
import os
import shutil
import subprocess
import sys

MODE, TREG, FIXTURES, NAME, WORK = sys.argv[1:6]


def unpack():
    """The fixture as a tokenizer directory: tokenizer.json (gunzipped) + tokenizer_config.json."""
    src, dst = os.path.join(FIXTURES, NAME), os.path.join(WORK, NAME)
    os.makedirs(dst, exist_ok=True)
    with gzip.open(os.path.join(src, "tokenizer.json.gz"), "rb") as f, open(os.path.join(dst, "tokenizer.json"), "wb") as g:
        shutil.copyfileobj(f, g)
    shutil.copy(os.path.join(src, "tokenizer_config.json"), dst)
    return dst


def run_treg(args, lines):
    p = subprocess.run([TREG, "tokenize"] + args, input="".join(json.dumps(x) + "\n" for x in lines),
                       capture_output=True, text=True)
    if p.returncode != 0:
        print("treg tokenize %s failed (exit %d):\n%s" % (" ".join(args), p.returncode, p.stderr[-2000:]))
        sys.exit(1)
    return [json.loads(line)["ids"] for line in p.stdout.splitlines() if line.strip()]


def report(what, cases, got, want):
    bad = [(c, g, w) for c, g, w in zip(cases, got, want) if g != w]
    if len(got) != len(want):
        print("%s: treg gave %d results for %d inputs" % (what, len(got), len(want)))
        return False
    for c, g, w in bad[:5]:
        i = next((k for k, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
        print("%s MISMATCH on %s\n  first difference at token %d: treg %s  reference %s" % (
            what, json.dumps(c, ensure_ascii=False)[:300], i, g[max(0, i - 3):i + 5], w[max(0, i - 3):i + 5]))
    print("%s %s: %d/%d identical" % (NAME, what, len(cases) - len(bad), len(cases)))
    return not bad


def texts(tok_dir):
    out = []
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*", "golden.jsonl"))):
        with open(path, encoding="utf-8") as f:
            out += [json.loads(line)["text"] for line in f if line.strip()]
    # The tokenizer's own special tokens inside text, which the tokenizers library splits out.
    with open(os.path.join(tok_dir, "tokenizer.json"), encoding="utf-8") as f:
        added = [t["content"] for t in json.load(f).get("added_tokens", []) if t.get("special")][:6]
    for s in added:
        out += [s, s + "Hello world", "Hi " + s + "\nthere " + s + s, " " + s + " x"]
    return out


def compare_ids():
    from tokenizers import Tokenizer

    tok_dir = unpack()
    ref = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    cases = texts(tok_dir)
    ok = True
    for special in (False, True):
        want = [e.ids for e in ref.encode_batch(cases, add_special_tokens=special)]
        got = run_treg(["--tokenizer", tok_dir] + (["--add-special"] if special else []),
                       [{"text": t} for t in cases])
        ok &= report("ids add_special=%s" % special, cases, got, want)
    return ok


CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "  Name a colour.\n"},
     {"role": "assistant", "content": " Blue. "}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Write a haiku\nabout rain."}, {"role": "assistant", "content": "Soft rain on the roof"}],
    [{"role": "user", "content": "Translate: ciao"}],
]


def compare_chat():
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    tok_dir = unpack()
    with open(os.path.join(tok_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        if not json.load(f).get("chat_template"):
            print("%s: tokenizer_config.json carries no chat template; nothing to compare" % NAME)
            return True
    hf = AutoTokenizer.from_pretrained(tok_dir)
    ref = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    cases, want = [], []
    for conv in CONVERSATIONS:
        for gen in (False, True):
            if gen and conv[-1]["role"] == "assistant":
                conv = conv[:-1]
            text = hf.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
            cases.append({"messages": conv, "add_generation_prompt": gen})
            want.append(ref.encode(text, add_special_tokens=False).ids)
    got = run_treg(["--tokenizer", tok_dir, "--chat"], cases)
    return report("chat", cases, got, want)


if __name__ == "__main__":
    os.makedirs(WORK, exist_ok=True)
    sys.exit(0 if {"ids": compare_ids, "chat": compare_chat}[MODE]() else 1)
