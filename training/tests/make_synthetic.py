"""Write a synthetic dataset in the exact format of `npm run data:prepare` (see training/data.py).

Learnable on purpose: each image has a few hidden "concepts"; its features are a noisy random projection of
them, standardized and ternarized like the real FNE; its captions name some of its concepts among filler
words. A working model therefore learns to match them, and a broken one does not.

    python -m training.tests.make_synthetic OUT [--images 400] [--seed 0]
    python -m training.tests.make_synthetic OUT --full   # Flickr8k's sizes: 8,091 images, 6000/1000/1000/91
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np

# MobileNetV2 1.0: (expansion t, output channels c, repeats n) of the inverted-residual stages.
STAGES = ((1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1))
FILLER = "a an the is are on in with of and at near two three one man woman dog child people".split()
FILLER += "running playing sitting standing water grass street snow ball red blue white black".split()


def mobilenet_layers() -> list[dict]:
    """The 52 Full-Network layers of MobileNetV2 in FNE column order (name, kind, offset, channels)."""
    out = []

    def add(name, kind, channels):
        offset = out[-1]["offset"] + out[-1]["channels"] if out else 0
        out.append({"name": f"MobilenetV2/{name}", "kind": kind, "offset": offset, "channels": channels})

    add("Conv/Relu6", "conv", 32)
    c_in, block = 32, 0
    for t, c, n in STAGES:
        for _ in range(n):
            prefix = "expanded_conv" if block == 0 else f"expanded_conv_{block}"
            hidden = c_in * t
            if t != 1:
                add(f"{prefix}/expand/Relu6", "conv", hidden)
            add(f"{prefix}/depthwise/Relu6", "depthwise", hidden)
            add(f"{prefix}/project/add_fold", "conv", c)
            c_in, block = c, block + 1
    add("Conv_1/Relu6", "conv", 1280)
    return out


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def make(out: str, images: int = 400, seed: int = 0, split_counts=None, empty_captions=(3, 1), concepts=48):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    layers = mobilenet_layers()
    fne_dim = layers[-1]["offset"] + layers[-1]["channels"]
    last = layers[-1]

    if split_counts is None:
        n_val = n_test = max(1, images // 5)
        n_none = max(1, images // 40)
        split_counts = (images - n_val - n_test - n_none, n_val, n_test, n_none)
    assert sum(split_counts) == images
    splits = np.array(sum(([s] * k for s, k in zip(("train", "val", "test", "none"), split_counts)), []))
    splits = splits[rng.permutation(images)]
    names = [f"{1000000000 + i}_{i:010x}.jpg" for i in range(images)]
    with open(os.path.join(out, "images.tsv"), "w", encoding="utf-8") as f:
        f.write("index\timage\tsplit\tsha256\n")
        for i in range(images):
            f.write(f"{i}\t{names[i]}\t{splits[i]}\t{hashlib.sha256(names[i].encode()).hexdigest()}\n")
    with open(os.path.join(out, "layers.json"), "w", encoding="utf-8") as f:
        json.dump(layers, f, indent=1)

    # Hidden concepts: 3 per image.
    z = np.zeros((images, concepts), dtype=np.float32)
    image_concepts = [rng.choice(concepts, size=3, replace=False) for _ in range(images)]
    for i, cs in enumerate(image_concepts):
        z[i, cs] = 1.0

    # Features: standardized (z @ P + noise), ternarized at +0.15 / -0.25 like the FNE; written in chunks.
    projection = rng.standard_normal((concepts, fne_dim)).astype(np.float32)
    mean = projection.sum(axis=0) * 3 / concepts
    std = np.sqrt((projection**2).sum(axis=0) * 3 / concepts - mean**2 * 1.0 + 1.0)
    with open(os.path.join(out, "fne.i8"), "wb") as f_fne, open(os.path.join(out, "one_layer.f32"), "wb") as f_one:
        for start in range(0, images, 512):
            stop = min(images, start + 512)
            raw = z[start:stop] @ projection + rng.standard_normal((stop - start, fne_dim), dtype=np.float32)
            standard = (raw - mean) / std
            ternary = np.where(standard > 0.15, 1, np.where(standard < -0.25, -1, 0)).astype(np.int8)
            f_fne.write(ternary.tobytes())
            cols = slice(last["offset"], last["offset"] + last["channels"])
            f_one.write(np.ascontiguousarray(standard[:, cols], dtype="<f4").tobytes())

    vocab = ["<pad>", "<unk>"] + FILLER + [f"thing{c:02d}" for c in range(concepts)]
    word = {w: i for i, w in enumerate(vocab)}
    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(w + "\n" for w in vocab))

    captions, caption_image = [], []
    for i in range(images):
        for n in range(5):
            named = rng.choice(image_concepts[i], size=int(rng.integers(1, 4)), replace=False)
            filler = rng.choice(len(FILLER), size=int(rng.integers(4, 16)))  # ~11.5 tokens, as Flickr8k
            ids = [word[f"thing{c:02d}"] for c in named] + [2 + k for k in filler]
            if rng.random() < 0.05:
                ids.append(1)  # an unknown word
            ids = [ids[k] for k in rng.permutation(len(ids))]
            captions.append(ids)
            caption_image.append(i)
    # Some empty captions (the real tokenizer can leave a caption with no token).
    for split, count in zip(("train", "val"), empty_captions):
        owners = [c for c, i in enumerate(caption_image) if splits[i] == split]
        for c in owners[:count]:
            captions[c] = []
    offsets = np.zeros(len(captions) + 1, dtype="<i4")
    offsets[1:] = np.cumsum([len(c) for c in captions])
    np.array([t for c in captions for t in c], dtype="<i4").tofile(os.path.join(out, "tokens.i32"))
    offsets.tofile(os.path.join(out, "offsets.i32"))
    np.array(caption_image, dtype="<i4").tofile(os.path.join(out, "caption_image.i32"))
    with open(os.path.join(out, "captions.tsv"), "w", encoding="utf-8") as f:
        f.write("index\timage_index\tn\tcaption\n")
        for c, ids in enumerate(captions):
            f.write(f"{c}\t{caption_image[c]}\t{c % 5}\t{' '.join(vocab[t] for t in ids)}\n")

    files = ["images.tsv", "fne.i8", "one_layer.f32", "layers.json", "vocab.txt", "captions.tsv", "tokens.i32",
             "offsets.i32", "caption_image.i32"]
    # The shape of src-main/engine/datasets/prepare.ts PreparedMeta (only what training reads must match).
    counts = dict(zip(("train", "val", "test", "none"), map(int, split_counts)))
    meta = {
        "format": "sagasu-flickr8k/1",
        "dataset": "synthetic (training/tests/make_synthetic.py)",
        "seed": seed,
        "limitImages": None,
        "images": images,
        "imagesBySplit": counts,
        "captions": len(captions),
        "emptyCaptions": int(sum(1 for c in captions if not c)),
        "tokens": int(offsets[-1]),
        "fneDim": fne_dim,
        "oneLayerDim": last["channels"],
        "oneLayer": {"name": last["name"], "offset": last["offset"]},
        "thresholds": {"positive": 0.15, "negative": -0.25},
        "vocab": {"size": len(vocab), "minCount": 1, "from": "synthetic", "padId": 0, "unkId": 1},
        "tokenizer": "synthetic-1",
        "cnn": {"mode": "float", "onnxSha256": "0" * 64, "converterVersion": 1},
        "stats": {"sha256": "1" * 64, "images": counts["train"]},
        "files": {n: {"bytes": os.path.getsize(os.path.join(out, n)), "sha256": sha256(os.path.join(out, n))}
                  for n in files},
    }
    with open(os.path.join(out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    return meta


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.tests.make_synthetic", description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--images", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--full", action="store_true", help="Flickr8k's sizes (8,091 images; 6000/1000/1000/91)")
    a = p.parse_args(argv)
    if a.full:
        meta = make(a.out, 8091, a.seed, (6000, 1000, 1000, 91))
    else:
        meta = make(a.out, a.images, a.seed)
    print(f"make_synthetic: {a.out}: {meta['images']} images {meta['imagesBySplit']}, {meta['captions']} captions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
