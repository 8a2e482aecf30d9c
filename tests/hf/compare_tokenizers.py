#!/usr/bin/env python3
"""`treg tokenize` against the real Hugging Face libraries, on real tokenizer files.

  ids:  token ids of `treg tokenize` vs the `tokenizers` library (the reference for tokenizer.json
        semantics), with and without special tokens, on the texts of every golden.jsonl fixture plus
        strings that hold the tokenizer's own special tokens.
  chat: `treg tokenize --chat` vs transformers' `apply_chat_template` (rendered by transformers'
        Jinja environment, then encoded by `tokenizers` without special tokens, as
        apply_chat_template(tokenize=True) does), for the template the tokenizer_config.json carries.
  pairs: `treg tokenize --pairs trl|simpo` vs the two reference pipelines, written out below from
        their sources: TRL's DPOTrainer (trl/trainer/dpo_trainer.py, _prepare_dataset's
        tokenize_fn, conversational rows) and SimPO's run_simpo.py (apply_chat_template, task
        "simpo") + SimPOTrainer.tokenize_row before truncation (scripts/simpo_trainer.py).

Usage: compare_tokenizers.py ids|chat|pairs TREG FIXTURES_DIR NAME WORK_DIR
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


def chat_tokenizers():
    """(fixture dir, transformers tokenizer, tokenizers Tokenizer), or None without a chat template."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    tok_dir = unpack()
    with open(os.path.join(tok_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        if not json.load(f).get("chat_template"):
            print("%s: tokenizer_config.json carries no chat template; nothing to compare" % NAME)
            return None
    return tok_dir, AutoTokenizer.from_pretrained(tok_dir), Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))


def compare_chat():
    loaded = chat_tokenizers()
    if loaded is None:
        return True
    tok_dir, hf, ref = loaded
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


# Preference rows in the data's shapes: prompt text, message lists, a system prompt, several turns.
PAIR_ROWS = [
    {"prompt": "What is 2+2?", "chosen": "4.", "rejected": "5, I think."},
    {"prompt": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "  Name a colour.\n"}],
     "chosen": [{"role": "assistant", "content": " Blue. "}], "rejected": [{"role": "assistant", "content": "Hmm"}]},
    {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "user", "content": "Write a haiku\nabout rain."}, {"role": "assistant", "content": "Soft rain on the roof"}],
     "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
                  {"role": "user", "content": "Write a haiku\nabout rain."}, {"role": "assistant", "content": "No."}]},
]


def row_messages(row):
    """(prompt messages, chosen answer, rejected answer) of a row, as treg's data reader reads it."""
    prompt = row.get("prompt")
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    elif prompt is None:
        prompt = row["chosen"][:-1]
    answer = lambda a: a if isinstance(a, str) else a[-1]["content"]
    return prompt, answer(row["chosen"]), answer(row["rejected"])


def trl_pair(hf, enc, row):
    """TRL DPOTrainer: prompt ids = the prompt with generation prompt; each completion = the ids of
    prompt + answer past the prompt's length."""
    prompt, chosen, rejected = row_messages(row)
    p = enc(hf.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True))
    full = lambda a: enc(hf.apply_chat_template(prompt + [{"role": "assistant", "content": a}], tokenize=False))
    return p, full(chosen)[len(p):], full(rejected)[len(p):]


def simpo_pair(hf, enc, row):
    """run_simpo.py + SimPOTrainer.tokenize_row (no truncation). Where the tokenizer has no BOS
    (Qwen), run_simpo.py itself fails (startswith(None)); BOS is then left out."""
    prompt, chosen, rejected = row_messages(row)
    prompt = [dict(m) for m in prompt]
    template = hf.chat_template
    if prompt[0]["role"] != "system" and ("system" in template or "<|im_start|>" in template):
        prompt.insert(0, {"role": "system", "content": ""})  # maybe_insert_system_message
    text_prompt = hf.apply_chat_template(prompt, tokenize=False)
    bos = hf.bos_token

    def alone(a):
        t = hf.apply_chat_template([{"role": "assistant", "content": a}], tokenize=False)
        return t[len(bos):] if bos and t.startswith(bos) else t

    def answer_ids(text):  # build_tokenized_answer
        p, full = enc(text_prompt), enc(text_prompt + text)
        start = len(p) - (p != full[:len(p)])
        return full[:start], full[start:]

    (pc, c), (pr, r) = answer_ids(alone(chosen)), answer_ids(alone(rejected))
    p = enc(text_prompt)[:min(len(pc), len(pr))]
    if hf.bos_token_id is not None and (not p or p[0] != hf.bos_token_id):
        p = [hf.bos_token_id] + p
    for ids in (c, r):
        if hf.eos_token_id is not None and (not ids or ids[-1] != hf.eos_token_id):
            ids.append(hf.eos_token_id)
    return p, c, r


def compare_pairs():
    loaded = chat_tokenizers()
    if loaded is None:
        return True
    tok_dir, hf, ref = loaded
    enc = lambda text: ref.encode(text, add_special_tokens=False).ids
    ok = True
    for layout, pipeline in (("trl", trl_pair), ("simpo", simpo_pair)):
        cases, want = [], []
        for row in PAIR_ROWS:
            try:
                want.append(list(pipeline(hf, enc, row)))
                cases.append(row)
            except Exception as e:  # the template refuses this layout: so must treg
                p = subprocess.run([TREG, "tokenize", "--tokenizer", tok_dir, "--pairs", layout],
                                   input=json.dumps(row) + "\n", capture_output=True, text=True)
                print("%s %s: the reference pipeline fails (%s: %s); treg exit %d: %s" % (
                    NAME, layout, type(e).__name__, str(e)[:120], p.returncode, p.stderr.strip()[-200:]))
                ok &= p.returncode != 0
        p = subprocess.run([TREG, "tokenize", "--tokenizer", tok_dir, "--pairs", layout],
                           input="".join(json.dumps(x) + "\n" for x in cases), capture_output=True, text=True)
        if p.returncode != 0:
            print("treg tokenize --pairs %s failed (exit %d):\n%s" % (layout, p.returncode, p.stderr[-2000:]))
            return False
        got = [[r["prompt_ids"], r["chosen_ids"], r["rejected_ids"]]
               for r in map(json.loads, p.stdout.splitlines())]
        # One sequence per part, so a difference names prompt / chosen / rejected.
        flat = lambda xs: [part for x in xs for part in x]
        ok &= report("pairs %s (prompt, chosen, rejected of %d rows)" % (layout, len(cases)),
                     [dict(row=c, part=k) for c in cases for k in ("prompt", "chosen", "rejected")],
                     flat(got), flat(want))
    return ok


if __name__ == "__main__":
    os.makedirs(WORK, exist_ok=True)
    sys.exit(0 if {"ids": compare_ids, "chat": compare_chat, "pairs": compare_pairs}[MODE]() else 1)
