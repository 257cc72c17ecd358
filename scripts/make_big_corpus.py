#!/usr/bin/env python3
"""Writes a marker-separated text corpus of a given size for the paper-scale memory checks
(docs/data.md, "Memory"): documents of 3 to 20 paragraphs drawn at random from a source text's
non-empty lines (the FineWeb-Edu slice beside the checkout by default), each followed by a
`<|endoftext|>` line. Deterministic for a seed; about 200 MB/s.

    python3 scripts/make_big_corpus.py --out big.txt --gib 30.5 [--seed 0] [--source FILE]
"""
import argparse
import os
import random

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--out", required=True)
ap.add_argument("--gib", type=float, required=True, help="size of the corpus in GiB")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--source", default=os.path.join(here, "../../shared/data/fineweb-edu/sample10BT-head-1Mchars.txt"))
args = ap.parse_args()

with open(args.source, encoding="utf-8") as f:
    paragraphs = [line.strip() for line in f if line.strip()]
if not paragraphs:
    raise SystemExit(f"{args.source}: no text")
rng = random.Random(args.seed)
target = int(args.gib * (1 << 30))
written = 0
with open(args.out, "w", encoding="utf-8", newline="\n") as out:
    while written < target:
        block = []
        for _ in range(1000):
            doc = "\n".join(rng.choices(paragraphs, k=rng.randint(3, 20)))
            block.append(doc + "\n<|endoftext|>\n")
        text = "".join(block)
        out.write(text)
        written += len(text.encode("utf-8"))
print(f"{args.out}: {written / (1 << 30):.2f} GiB, {len(paragraphs)} source paragraphs, seed {args.seed}")
