#!/usr/bin/env python3
"""Renders the chat templates of the real tokenizer fixtures (tests/data/tokenizers/*/
tokenizer_config.json) with Jinja2 exactly as transformers' apply_chat_template(tokenize=False)
does, and writes tests/data/tokenizer_chat_templates.jsonl for tests/chat_template_test.cpp.

Needs only jinja2 >= 3.1 (Debian: python3-jinja2; run it with /usr/bin/python3). The environment
mirrors transformers' _compile_jinja_template / render_jinja_template:
  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]),
  a `tojson` filter that is json.dumps(ensure_ascii=False) (not Jinja's HTML-escaping one), globals
  raise_exception (-> TemplateError) and strftime_now, and the render variables
  messages, tools=None, documents=None, add_generation_prompt and the tokenizer's special tokens
  (bos/eos/unk/sep/pad/cls/mask_token and additional_special_tokens that are set, as strings).
A template that raises gives {"error": message} instead of {"text": ...}.

Each line: {"tokenizer", "messages", "add_generation_prompt", "text" | "error"}.
Usage: make_tokenizer_chat_goldens.py [OUT]
"""
import json
import os
import sys
from datetime import datetime

import jinja2.ext
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "../tests/data/tokenizers")
TOKENIZERS = ["llama3", "llama3_1", "qwen3", "gemma3", "deepseek_v3"]
SPECIAL_TOKENS_ATTRIBUTES = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                             "mask_token", "additional_special_tokens"]

S = lambda c: {"role": "system", "content": c}
U = lambda c: {"role": "user", "content": c}
A = lambda c: {"role": "assistant", "content": c}
CONVERSATIONS = [
    [U("Hello!")],
    [U("What is 2+2?"), A("4.")],
    [S("You are a pirate."), U("Where is the treasure?")],
    [S("Be brief."), U("Name a colour."), A("Blue."), U("Another?")],
    [S("Be brief."), U("Name a colour."), A("Blue.")],
    [U("Hi"), A("Hello! How can I help?"), U("Tell me a joke."), A("Why did the chicken cross the road?")],
    [U("  padded question \n"), A("\n padded answer  ")],
    [U("Multi\nline\n\ninput with <b>tags</b> and ünïcödé 東京 😀")],
    # Qwen3 splits an answer at </think> into reasoning and content.
    [U("Think first."), A("<think>\nSome reasoning.\n</think>\n\nThe answer.")],
    # Templates that require alternating roles raise on these.
    [A("I speak first.")],
    [U("One"), U("Two")],
]


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def special_tokens(config):
    """transformers' special_tokens_map: the attributes that are set, AddedToken objects as their text."""
    out = {}
    for key in SPECIAL_TOKENS_ATTRIBUTES:
        v = config.get(key)
        if isinstance(v, dict):
            v = v.get("content")
        if v:
            out[key] = [t["content"] if isinstance(t, dict) else t for t in v] if isinstance(v, list) else v
    return out


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../tests/data/tokenizer_chat_templates.jsonl")
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    lines = []
    for name in TOKENIZERS:
        with open(os.path.join(FIXTURES, name, "tokenizer_config.json"), encoding="utf-8") as f:
            config = json.load(f)
        template = env.from_string(config["chat_template"])
        tokens = special_tokens(config)
        for messages in CONVERSATIONS:
            for gen in (False, True):
                row = {"tokenizer": name, "messages": messages, "add_generation_prompt": gen}
                try:
                    row["text"] = template.render(messages=messages, tools=None, documents=None,
                                                  add_generation_prompt=gen, **tokens)
                except TemplateError as e:
                    row["error"] = str(e)
                lines.append(json.dumps(row, ensure_ascii=False))
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} renderings -> {out} (jinja2 {jinja2.__version__})")


if __name__ == "__main__":
    main()
