#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into tests/fuzz/corpus/<target>/ (committed; the
fuzzers add what they find to a scratch copy, see scripts/fuzz.sh). Seeds are small valid inputs
of each format, made from the repository's own fixtures, plus a few near-misses; files named
regress-* are inputs that once found a bug, kept so that every fuzz run replays them.
Usage: tests/fuzz/make_corpus.py [TINY_MODEL_DIR]   (a `treg make-tiny` directory adds its
tokenizer.json and a real reward dump is not needed: dumps are written here from the layout)."""
import gzip, json, os, shutil, struct, sys, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "tests", "data")
OUT = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    header, blob = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + blob


def shrink_tokenizer(tok, keep):
    """The real pipeline (normalizer, pre-tokenizer, decoder, post-processor) with a small vocabulary."""
    model = tok["model"]
    vocab = {p: i for p, i in model["vocab"].items() if i < keep} if isinstance(model.get("vocab"), dict) else model.get("vocab")
    model["vocab"] = vocab
    if "merges" in model:
        kept = []
        for m in model["merges"]:
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            if a in vocab and b in vocab and a + b in vocab:
                kept.append(m)
        model["merges"] = kept
    added, remap = [], {}
    for t in tok.get("added_tokens", []):
        if t["id"] < keep or len(added) < 4:
            new_id = t["id"] if t["id"] < keep else keep + len(remap)
            remap[t["content"]] = new_id
            added.append(dict(t, id=new_id))
    tok["added_tokens"] = added
    pp = tok.get("post_processor") or {}
    for p in [pp] + pp.get("processors", []):
        for name, st in list((p.get("special_tokens") or {}).items()):
            if name in remap:
                st["ids"] = [remap[name]]
            else:
                del p["special_tokens"][name]
    return json.dumps(tok, ensure_ascii=False)


def reward_dump(records, metadata):
    meta = json.dumps(metadata).encode()
    out = b"TREGRWD\0" + struct.pack("<II", 1, 0) + struct.pack("<Q", len(meta)) + meta
    out += struct.pack("<I", zlib.crc32(meta))
    offsets = []
    for i, (prompt, chosen, rejected) in enumerate(records):
        p = struct.pack("<qq", i, i + 1) + struct.pack("<I", len(prompt)) + struct.pack(f"<{len(prompt)}i", *prompt)
        for ids in (chosen, rejected):
            n = len(ids)
            p += struct.pack("<I", n) + struct.pack(f"<{n}i", *ids)
            for k in range(4):
                p += struct.pack(f"<{n}f", *[-1.0 - 0.25 * k - 0.01 * t for t in range(n)])
        offsets.append(len(out))
        out += struct.pack("<IQ", 0x52494150, len(p)) + p + struct.pack("<I", zlib.crc32(p))
    index = struct.pack(f"<{len(offsets)}Q", *offsets)
    index_offset = len(out)
    out += index + struct.pack("<QQII", index_offset, len(offsets), zlib.crc32(index), 0) + b"TREGEND\0"
    return out


def main():
    # Seeds are rewritten; inputs that once found a bug (regress-*) are kept.
    for target in os.listdir(OUT) if os.path.isdir(OUT) else []:
        for name in os.listdir(os.path.join(OUT, target)):
            if not name.startswith("regress-"):
                os.remove(os.path.join(OUT, target, name))
    # safetensors headers
    f32 = struct.pack("<6f", *range(6))
    put("safetensors_header_fuzz", "two_tensors", safetensors(
        {"model.embed_tokens.weight": ("F32", [2, 3], f32), "lm_head.weight": ("BF16", [4], b"\0" * 8)},
        {"format": "pt"}))
    put("safetensors_header_fuzz", "empty_tensor", safetensors({"a": ("I64", [0, 5], b""), "b": ("U8", [3], b"abc")}))
    put("safetensors_header_fuzz", "no_tensors", safetensors({}, {"k": "v"}))
    # tokenizer.json: each real pipeline, shrunk
    for name, keep in [("llama3", 400), ("qwen3", 400), ("gemma3", 600), ("llama2", 400), ("deepseek_v3", 400), ("gptoss", 400)]:
        path = os.path.join(DATA, "tokenizers", name, "tokenizer.json.gz")
        with gzip.open(path, "rt", encoding="utf-8") as f:
            put("tokenizer_json_fuzz", name, shrink_tokenizer(json.load(f), keep))
    if len(sys.argv) > 1:
        shutil.copy(os.path.join(sys.argv[1], "tokenizer.json"), os.path.join(OUT, "tokenizer_json_fuzz", "tiny"))
    # text for the real tokenizers: first byte picks the tokenizer (and bit 7 add_special)
    texts = ["Hello world! 123 4567", "  spaces\n\n\ttabs  ", "naïve café 日本語 🙂 ﬁ", "<|eot_id|><s></s><start_of_turn>",
             "def f(x):\n    return x**2  # comment", "\u00e9\u0065\u0301 NFC vs NFD"]
    for k, t in enumerate(texts):
        put("tokenizer_encode_fuzz", f"text{k}", bytes([k % 4 | (0x80 if k % 2 else 0)]) + t.encode())
    # JSONL rows: the shapes the loader accepts, and some it must refuse by line
    rows = [
        {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
        {"prompt": "Hi", "chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
         "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}]},
        {"chosen": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour"},
                    {"role": "assistant", "content": "Red."}],
         "rejected": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour"},
                      {"role": "assistant", "content": "I like turtles. " * 20}]},
        {"prompt": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
         "chosen": [{"role": "assistant", "content": "d"}], "rejected": [{"role": "assistant", "content": "e"}]},
    ]
    put("jsonl_pairs_fuzz", "shapes", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    put("jsonl_pairs_fuzz", "bad", '{"prompt": "x", "chosen": 3, "rejected": "y"}\n{"prompt": "x"\n\n[1,2]\n')
    # configs: the shipped ones, the recipe copies, and overrides after a NUL byte
    for d in [os.path.join(ROOT, "configs"), os.path.join(DATA, "recipes")]:
        for name in sorted(os.listdir(d)):
            if name.endswith(".yaml"):
                with open(os.path.join(d, name)) as f:
                    put("config_fuzz", name, f.read())
    put("config_fuzz", "overrides", "loss_type: simpo\nbeta: 2.0\n\0beta=2.5\nlearning_rate=1e-6\nreg_alpha=0.5\n")
    # reward dumps written from the layout in include/treg/reward_dump.h
    meta = {"format": "treg-reward-dump", "split": "train", "pairs": 2}
    put("reward_dump_fuzz", "two_pairs", reward_dump([([1, 2, 3], [4, 5], [6]), ([7], [8, 9, 10], [11, 12])], meta))
    put("reward_dump_fuzz", "empty", reward_dump([], meta))
    # chat templates: the built-in formats' sources and the fixtures' own templates, then messages
    msgs = "\0system:Be brief.\nuser:Hi\nassistant:Hello!\nuser:Bye"
    with open(os.path.join(DATA, "chat_templates.jsonl")) as f:
        seen = set()
        for line in f:
            row = json.loads(line)
            if row["format"] not in seen:
                seen.add(row["format"])
                put("chat_template_fuzz", row["format"], row["template"] + msgs)
    for name in ["llama3_1", "qwen3", "gemma3"]:
        with open(os.path.join(DATA, "tokenizers", name, "tokenizer_config.json")) as f:
            tpl = json.load(f).get("chat_template")
        if isinstance(tpl, str):
            put("chat_template_fuzz", "tokenizer_" + name, tpl + msgs)


if __name__ == "__main__":
    main()
