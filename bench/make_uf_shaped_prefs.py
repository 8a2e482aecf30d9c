#!/usr/bin/python3
"""Preference rows shaped like UltraFeedback's for the benchmarks: lognormal (sigma 0.6) word counts,
mean prompt/response ratio 0.42, random words from a fixed list (so any tokenizer splits them into
a few tokens each). Usage: make_uf_shaped_prefs.py OUT.jsonl [ROWS=64] [RESPONSE_WORDS=96]"""
import json, math, random, sys

WORDS = ("the of and to in is was for on that with as by at from it an be this which or are have "
         "not had but were they his her their one all there been has when who will more if no out so "
         "said what up its about into than them can only other new some could time these two may then "
         "do first any my now such like our over man me even most made after also did many before "
         "must through back years where much your way well down should because each just those people "
         "answer question model token reward helpful correct concise").split()

def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__); sys.exit(0 if len(sys.argv) > 1 else 2)
    out = sys.argv[1]; rows = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    mean_resp = float(sys.argv[3]) if len(sys.argv) > 3 else 96.0
    rng = random.Random(42); s = 0.6
    def words(mean):
        n = max(3, round(rng.lognormvariate(math.log(mean) - s * s / 2, s)))
        return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."
    with open(out, "w") as f:
        for i in range(rows):
            f.write(json.dumps({"prompt": words(0.42 * mean_resp), "chosen": words(mean_resp),
                                "rejected": words(mean_resp), "prompt_id": f"uf-shaped-{i}"}) + "\n")

if __name__ == "__main__":
    main()
