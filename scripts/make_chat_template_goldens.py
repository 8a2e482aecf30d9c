#!/usr/bin/env python3
"""Renders the real chat templates with Jinja2, as transformers' apply_chat_template(tokenize=False)
does, and writes tests/data/chat_templates.jsonl for tests/chat_template_test.cpp.

Needs jinja2 (pip install jinja2). Each line: {"format", "template", "messages",
"add_generation_prompt", "text"}. Gemma-2 and Mistral reject a system message, so for them the
system message is first folded into the first user turn (system + "\n\n" + user), as the SimPO
Gemma-2 setup does; treg's built-in `gemma` and `mistral` templates fold the same way.
"""
import json
import os
import sys

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Verbatim `chat_template` strings from each model's tokenizer_config.json.
TEMPLATES = {
    # meta-llama/Meta-Llama-3-8B-Instruct
    "llama3": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
    # google/gemma-2-9b-it
    "gemma": "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}",
    # Qwen/Qwen2-7B-Instruct
    "chatml": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    # mistralai/Mistral-7B-Instruct-v0.2
    "mistral": "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
    # HuggingFaceH4/zephyr-7b-beta
    "zephyr": "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
}
TOKENS = {
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "gemma": {"bos_token": "<bos>", "eos_token": "<eos>"},
    "chatml": {"bos_token": None, "eos_token": "<|im_end|>"},
    "mistral": {"bos_token": "<s>", "eos_token": "</s>"},
    "zephyr": {"bos_token": "<s>", "eos_token": "</s>"},
}
FOLDS_SYSTEM = {"gemma", "mistral"}

S = lambda c: {"role": "system", "content": c}
U = lambda c: {"role": "user", "content": c}
A = lambda c: {"role": "assistant", "content": c}
CONVERSATIONS = [
    [U("Hello!")],
    [U("What is 2+2?"), A("4.")],
    [S("You are a pirate."), U("Where is the treasure?")],
    [S("Be brief."), U("Name a colour."), A("Blue."), U("Another?")],
    [U("Hi"), A("Hello! How can I help?"), U("Tell me a joke."), A("Why did the chicken cross the road?")],
    [U("  padded question \n"), A("\n padded answer  ")],
    [U("Multi\nline\n\ninput with <b>tags</b> and ünïcödé 東京 😀")],
]


def raise_exception(message):
    raise TemplateError(message)


def fold_system(messages):
    if messages and messages[0]["role"] == "system":
        rest = [dict(m) for m in messages[1:]]
        rest[0]["content"] = messages[0]["content"] + "\n\n" + rest[0]["content"]
        return rest
    return messages


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../tests/data/chat_templates.jsonl")
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # as transformers renders
    env.globals["raise_exception"] = raise_exception
    lines = []
    for fmt, source in TEMPLATES.items():
        template = env.from_string(source)
        for messages in CONVERSATIONS:
            rendered_messages = fold_system(messages) if fmt in FOLDS_SYSTEM else messages
            for gen in (False, True):
                text = template.render(messages=rendered_messages, add_generation_prompt=gen, **TOKENS[fmt])
                lines.append(json.dumps({"format": fmt, "template": source, "messages": messages,
                                         "add_generation_prompt": gen, "text": text}, ensure_ascii=False))
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} renderings -> {out}")


if __name__ == "__main__":
    main()
