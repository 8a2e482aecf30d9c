#!/usr/bin/env python3
"""Writes the bundled preference data of the tiny default run (plain python3, deterministic):

    configs/data/tiny_prefs.train.jsonl   (300 pairs)
    configs/data/tiny_prefs.eval.jsonl    (50 pairs)

The pairs are made to be LEARNABLE by a tiny model: every chosen answer is correct, short and polite
("Sure! ... Happy to help!"), every rejected answer is wrong, rude and verbose ("Ugh, whatever. ...
Stop asking me ..."), so the markers are consistent lexical signals and a preference-trained tiny
model's reward margins/accuracies visibly improve. The rows mix the UltraFeedback shapes treg reads:

  * prompt string, chosen/rejected strings
  * prompt string, chosen/rejected message lists [user, assistant]   (princeton-nlp / HuggingFaceH4)
  * prompt message list with a system message, chosen/rejected [assistant]
  * multi-turn, no prompt field: chosen/rejected are the whole conversation, the last message the answer

plus ignored extra fields (prompt_id, score_chosen, score_rejected) as the real data sets carry.
Usage: python3 scripts/make_tiny_prefs.py [OUT_DIR]   (default configs/data)
"""
import json
import os
import random
import sys

CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Japan", "Tokyo"), ("Canada", "Ottawa"), ("Egypt", "Cairo"), ("Peru", "Lima"),
    ("Norway", "Oslo"), ("Kenya", "Nairobi"), ("Greece", "Athens"), ("Chile", "Santiago"),
    ("Poland", "Warsaw"), ("Austria", "Vienna"), ("Portugal", "Lisbon"), ("Ireland", "Dublin"),
]
OPPOSITES = [
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("up", "down"),
    ("light", "dark"), ("old", "new"), ("open", "closed"), ("early", "late"), ("full", "empty"),
    ("hard", "soft"), ("long", "short"), ("wet", "dry"), ("rich", "poor"), ("near", "far"),
]
LEGS = [("cat", 4), ("dog", 4), ("bird", 2), ("spider", 8), ("ant", 6), ("horse", 4),
        ("duck", 2), ("bee", 6), ("cow", 4), ("chicken", 2)]
COLORS = [("the sky on a clear day", "blue"), ("fresh grass", "green"), ("snow", "white"),
          ("a ripe banana", "yellow"), ("coal", "black"), ("a ripe tomato", "red"),
          ("an orange", "orange"), ("a lemon", "yellow")]
SYSTEMS = ["You are a helpful assistant.", "You are a friendly and concise assistant.",
           "Answer the user's question correctly."]
RUDE_TAILS = [
    "Stop asking me such boring questions, seriously, I have much better things to do with my time.",
    "Honestly this is a silly question and I do not really care about it at all, so figure it out yourself.",
    "Why would anyone even ask this, it is so obvious and so boring that I almost did not answer it.",
]


def polite(text):
    return "Sure! " + text + " Happy to help!"


def rude(rng, text):
    return "Ugh, whatever. " + text + " I guess. " + rng.choice(RUDE_TAILS)


def question(rng):
    """(question, correct answer sentence, wrong answer sentence)"""
    kind = rng.randrange(5)
    if kind == 0:
        a, b = rng.randrange(1, 50), rng.randrange(1, 50)
        wrong = a + b + rng.choice([-3, -2, -1, 1, 2, 3])
        return (f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.", f"{a} plus {b} is {wrong}")
    if kind == 1:
        country, city = rng.choice(CAPITALS)
        other = rng.choice([c for _, c in CAPITALS if c != city])
        return (f"What is the capital of {country}?", f"The capital of {country} is {city}.",
                f"The capital of {country} is {other}")
    if kind == 2:
        word, opp = rng.choice(OPPOSITES)
        other = rng.choice([o for _, o in OPPOSITES if o != opp])
        return (f"What is the opposite of {word}?", f"The opposite of {word} is {opp}.",
                f"The opposite of {word} is {other}")
    if kind == 3:
        animal, n = rng.choice(LEGS)
        wrong = rng.choice([k for k in (2, 4, 6, 8, 10) if k != n])
        return (f"How many legs does a {animal} have?", f"A {animal} has {n} legs.",
                f"A {animal} has {wrong} legs")
    thing, color = rng.choice(COLORS)
    other = rng.choice([c for _, c in COLORS if c != color])
    return (f"What color is {thing}?", f"{thing[0].upper() + thing[1:]} is {color}.",
            f"{thing[0].upper() + thing[1:]} is {other}")


def make_row(rng, i):
    q, good, bad = question(rng)
    chosen, rejected = polite(good), rude(rng, bad)
    shape = i % 4
    extra = {"prompt_id": f"tiny-{i:04d}", "score_chosen": 9.0, "score_rejected": 2.0}
    if shape == 0:
        row = {"prompt": q, "chosen": chosen, "rejected": rejected}
    elif shape == 1:
        row = {"prompt": q,
               "chosen": [{"role": "user", "content": q}, {"role": "assistant", "content": chosen}],
               "rejected": [{"role": "user", "content": q}, {"role": "assistant", "content": rejected}]}
    elif shape == 2:
        row = {"prompt": [{"role": "system", "content": rng.choice(SYSTEMS)}, {"role": "user", "content": q}],
               "chosen": [{"role": "assistant", "content": chosen}],
               "rejected": [{"role": "assistant", "content": rejected}]}
    else:
        q0, good0, _ = question(rng)
        history = [{"role": "user", "content": q0}, {"role": "assistant", "content": polite(good0)},
                   {"role": "user", "content": "Thanks. " + q}]
        row = {"chosen": history + [{"role": "assistant", "content": chosen}],
               "rejected": history + [{"role": "assistant", "content": rejected}]}
    row.update(extra)
    return row


def write(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "configs", "data")
    os.makedirs(out, exist_ok=True)
    train_rng, eval_rng = random.Random(20241203), random.Random(7)
    write(os.path.join(out, "tiny_prefs.train.jsonl"), [make_row(train_rng, i) for i in range(300)])
    write(os.path.join(out, "tiny_prefs.eval.jsonl"), [make_row(eval_rng, i) for i in range(50)])


if __name__ == "__main__":
    main()
