"""Train a Japanese sentence encoder into the joint space of a shipped (English) model, its image side frozen.

    training/.venv/bin/python -m training.train_ja --data .cache/data/flickr8k-ja \
        --image-model models/joint/fne --out .cache/runs/fne-ja --epochs 20 --threads 1

The image side is the shipped model's projection, read from its image_projection.onnx (the float16 weights
the app runs), so every photo already indexed by the app answers Japanese queries without re-indexing. The
unit image vectors of the train and val photos are computed once; only the word embeddings and the GRU
learn, with the English runs' ranking loss and settings (SH, margin 0.2, Adam 2e-4, batch 128, clip 2,
batches grouped by length, selection on validation rsum). `--check-run` compares the projection with a
training checkpoint of the English model (its weight rounded to float16 must be the shipped one).

Checkpoints and resume as training.train: `last.pt` every epoch (atomic), `best.pt` on a new best
validation rsum, `log.jsonl`; the same command resumes after the last finished epoch.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training.data import DataError, Flickr8kData, _memmap, _read_tsv, epoch_batches, iterate_in_length_order, load_split, sha256_file  # noqa: E402
from training.model import TextEncoder, l2_normalize, ranking_loss  # noqa: E402
from training.train import (  # noqa: E402
    atomic_save,
    describe,
    load_checkpoint,
    rank_metrics,
    rng_states,
    set_rng_states,
    write_log,
)

FORMAT = "sagasu-joint-ja-v1"
CAPTIONS_FORMAT = "sagasu-flickr8k-captions/1"
CAPTION_FILES = ("vocab.txt", "captions.tsv", "tokens.i32", "offsets.i32", "caption_image.i32")
RESULT_ARGS = ("loss", "dim", "word_dim", "lr", "batch", "clip", "seed", "margin", "max_captions", "init_gru")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.train_ja", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="Japanese captions folder (npm run data:prepare -- --lang ja)")
    p.add_argument("--image-model", required=True, help="shipped joint model folder whose image side is frozen")
    p.add_argument("--check-run", help="English training run whose best.pt must round to the shipped projection")
    p.add_argument("--loss", choices=("sh", "mh"), default="sh")
    p.add_argument("--word-dim", type=int, default=300)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--clip", type=float, default=2.0)
    p.add_argument("--margin", type=float, default=0.2, help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-captions", type=int, default=None, metavar="N")
    p.add_argument("--init-gru", default=None, metavar="RUN",
                   help="start the GRU from this English run's best.pt (word embeddings start random either way)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    return args


# -- data ---------------------------------------------------------------------------------------------------


def open_japanese(root: str, verify: bool = True) -> Flickr8kData:
    """The English prepared data set the Japanese folder points at, with its captions replaced by the
    Japanese ones (same image indexes), so data.py's splits, batching and padding apply unchanged."""
    root = os.path.abspath(root)
    meta_path = os.path.join(root, "meta.json")
    if not os.path.exists(meta_path):
        raise DataError(f"{root}: no meta.json (run `npm run data:prepare -- --lang ja`)")
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != CAPTIONS_FORMAT:
        raise DataError(f"{meta_path}: format {meta.get('format')!r}, expected {CAPTIONS_FORMAT}")
    data = Flickr8kData(meta["images"]["dir"], verify=verify)
    if data.meta_sha256 != meta["images"]["metaSha256"]:
        raise DataError(f"{data.meta_path} changed since the Japanese captions were prepared; prepare them again")
    if verify:
        for name in CAPTION_FILES:
            got = sha256_file(os.path.join(root, name))
            if got != meta["files"][name]["sha256"]:
                raise DataError(f"{root}/{name}: sha256 {got}, meta.json says {meta['files'][name]['sha256']}")
    p = lambda n: os.path.join(root, n)  # noqa: E731
    with open(p("vocab.txt"), encoding="utf-8") as f:
        vocab = f.read().split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    if vocab[:2] != ["<pad>", "<unk>"]:
        raise DataError(f"{root}/vocab.txt: first tokens {vocab[:2]}")
    rows = _read_tsv(p("captions.tsv"), ("index", "image_index", "n", "caption"))
    n_tokens = os.path.getsize(p("tokens.i32")) // 4
    n_captions = len(rows)
    data.vocab = vocab
    data.tokens = _memmap(p("tokens.i32"), np.int32, (n_tokens,))
    data.caption_image = np.asarray(_memmap(p("caption_image.i32"), np.int32, (n_captions,)))
    data.offsets = np.asarray(_memmap(p("offsets.i32"), np.int32, (n_captions + 1,))).astype(np.int64)
    data.num_captions = n_captions
    data.lengths = np.diff(data.offsets)
    data.caption_split = data.image_split[data.caption_image]
    data.caption_texts = [r[3] for r in rows]
    if data.offsets[-1] != n_tokens or int(data.tokens.max()) >= len(vocab):
        raise DataError(f"{root}: offsets/tokens do not fit the vocabulary")
    data.ja_root, data.ja_meta, data.ja_meta_sha256 = root, meta, sha256_file(meta_path)
    return data


def shipped_projection(model_dir: str) -> tuple[np.ndarray, dict]:
    """W [feature_dim, D] float32 exactly as the app computes it (float16 cast to float32, or int8 times its scale)."""
    import onnx
    from onnx import numpy_helper

    with open(os.path.join(model_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    graph = onnx.load(os.path.join(model_dir, "image_projection.onnx")).graph
    name = manifest["projectionWeight"]["initializer"]
    (init,) = [i for i in graph.initializer if i.name == name]
    w = numpy_helper.to_array(init).astype(np.float32)
    scale = manifest["projectionWeight"].get("scale")
    if scale:  # an int8 export: W = q * scale[column], as Cast -> Mul computes it in float32
        (s,) = [i for i in graph.initializer if i.name == scale["initializer"]]
        w = w * numpy_helper.to_array(s).astype(np.float32)[None, :]
    if list(w.shape) != manifest["projectionWeight"]["shape"]:
        raise DataError(f"{model_dir}: projection shape {w.shape}, manifest says {manifest['projectionWeight']['shape']}")
    return w, manifest


def check_against_run(w: np.ndarray, run: str) -> float:
    path = os.path.join(run, "best.pt")
    if not os.path.exists(path):
        raise DataError(f"{path} not found (--check-run names the English run the image model was exported from)")
    ckpt = load_checkpoint(path)
    trained = ckpt["model"]["image.linear.weight"].t().contiguous()
    rounded = trained.half().float().numpy()
    diff = float(np.abs(rounded - w).max())
    if diff != 0.0:
        raise SystemExit(f"train_ja: {run}/best.pt rounded to float16 differs from the shipped projection by {diff}")
    return float(np.abs(trained.numpy() - w).max())


@torch.no_grad()
def image_vectors(data: Flickr8kData, images: np.ndarray, w: np.ndarray) -> torch.Tensor:
    wt = torch.from_numpy(w)
    out = []
    for i in range(0, len(images), 512):
        feats = torch.from_numpy(data.features("fne", images[i : i + 512]).astype(np.float32))
        out.append(l2_normalize(feats @ wt))
    return torch.cat(out)


@torch.no_grad()
def encode_captions(text: TextEncoder, data: Flickr8kData, caption_ids: np.ndarray, dim: int) -> np.ndarray:
    text.eval()
    out = np.zeros((len(caption_ids), dim), dtype=np.float32)
    for pos in iterate_in_length_order(data.lengths[caption_ids], 256):
        tokens, lens = data.pad(caption_ids[pos])
        out[pos] = text(torch.from_numpy(tokens), torch.from_numpy(lens)).numpy()
    text.train()
    return out


def evaluate(text, split, vectors: torch.Tensor, data) -> dict:
    captions = encode_captions(text, data, split.caption_ids, vectors.shape[1])
    return rank_metrics(vectors.numpy() @ captions.T, split.caption_rows)


# -- training -----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        data = open_japanese(args.data)
        w, image_manifest = shipped_projection(args.image_model)
    except DataError as e:
        print(f"train_ja: {e}", file=sys.stderr)
        return 2
    if image_manifest["features"] != "fne" or image_manifest["featureDim"] != data.fne_dim:
        print(f"train_ja: {args.image_model} is not an FNE model of this data set", file=sys.stderr)
        return 2
    if image_manifest["data"]["metaSha256"] != data.meta_sha256:
        # The app projects the features its current CNN computes; train against those. A rebuilt CNN (e.g. a
        # new converter) may differ from the one the English model was trained on: say so, in the log.
        print(f"train_ja: note: {args.image_model} was trained on prepared data {image_manifest['data']['metaSha256'][:12]} "
              f"(CNN {str(image_manifest['data']['cnnSha256'])[:12]}); training against {data.root} "
              f"(CNN {str(data.meta_value('cnn', 'sha256'))[:12]}), the features the app computes now", flush=True)
    args.dim = int(image_manifest["dim"])
    if args.check_run:
        try:
            diff = check_against_run(w, args.check_run)
        except DataError as e:
            print(f"train_ja: {e}", file=sys.stderr)
            return 2
        print(f"train_ja: shipped projection = {args.check_run}/best.pt in float16 "
              f"(float32 vs float16 max |diff| {diff:.2e})", flush=True)

    train = load_split(data, "train", "fne", args.max_captions)
    val = load_split(data, "val", "fne")
    t0 = time.perf_counter()
    train_vecs, val_vecs = image_vectors(data, train.image_indices, w), image_vectors(data, val.image_indices, w)
    print(f"train_ja: {len(train_vecs)} + {len(val_vecs)} image vectors (frozen, D={args.dim}) in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)

    os.makedirs(args.out, exist_ok=True)
    for stale in glob.glob(os.path.join(args.out, "*.tmp-*")):
        os.remove(stale)
    last_path, best_path = os.path.join(args.out, "last.pt"), os.path.join(args.out, "best.pt")
    with open(os.path.join(args.image_model, "manifest.json"), "rb") as f:
        image_manifest_sha = hashlib.sha256(f.read()).hexdigest()
    config = {"vocab_size": len(data.vocab), "dim": args.dim, "word_dim": args.word_dim,
              "image_model": {"name": image_manifest["name"], "dir": os.path.abspath(args.image_model),
                              "manifestSha256": image_manifest_sha}}
    data_info = {"root": data.ja_root, "meta_sha256": data.ja_meta_sha256, "images_meta_sha256": data.meta_sha256}
    result = {k: getattr(args, k) for k in RESULT_ARGS}

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    text = TextEncoder(len(data.vocab), args.word_dim, args.dim)
    if args.init_gru:
        english = load_checkpoint(os.path.join(args.init_gru, "best.pt"))["model"]
        text.gru.load_state_dict({k[len("text.gru."):]: v for k, v in english.items() if k.startswith("text.gru.")})
    optimizer = torch.optim.Adam(text.parameters(), lr=args.lr)
    epoch, best, history = 0, None, []
    if os.path.exists(last_path):
        ckpt = load_checkpoint(last_path)
        same = (ckpt.get("format") == FORMAT and ckpt["result_args"] == result and ckpt["data"] == data_info
                and ckpt["config"]["image_model"]["manifestSha256"] == image_manifest_sha)
        if not same:
            print(f"train_ja: {last_path} was made with other arguments, data or image model; use another --out",
                  file=sys.stderr)
            return 2
        text.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_states(ckpt["rng"])
        epoch, best, history = ckpt["epoch"], ckpt["best"], ckpt["history"]
        write_log(args.out, history)
        print(f"train_ja: resuming {args.out} after epoch {epoch}", flush=True)
        if epoch >= args.epochs:
            print(f"train_ja: already trained for {epoch} epochs")
            return 0

    print(f"train_ja: {len(train.caption_ids)} training captions, vocabulary {len(data.vocab)}, "
          f"{sum(p.numel() for p in text.parameters()) / 1e6:.1f} M parameters, {len(val.image_indices)} val images x "
          f"{len(val.caption_ids)} val captions, {torch.get_num_threads()} threads", flush=True)
    while epoch < args.epochs:
        epoch += 1
        t0 = time.perf_counter()
        text.train()
        losses, sizes = [], []
        for pos in epoch_batches(train, data, args.batch, args.seed, epoch):
            tokens, lengths = data.pad(train.caption_ids[pos])
            rows = torch.from_numpy(train.caption_rows[pos])
            captions = text(torch.from_numpy(tokens), torch.from_numpy(lengths))
            loss = ranking_loss(train_vecs[rows], captions, args.margin, hardest=args.loss == "mh",
                                same_image=rows.view(-1, 1) == rows.view(1, -1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(text.parameters(), args.clip)
            optimizer.step()
            losses.append(loss.item())
            sizes.append(len(pos))
        t1 = time.perf_counter()
        metrics = evaluate(text, val, val_vecs, data)
        t2 = time.perf_counter()
        losses_a, sizes_a = np.array(losses), np.array(sizes)
        improved = best is None or metrics["rsum"] > best["val"]["rsum"]
        history.append({"epoch": epoch, "loss": float(losses_a.sum() / sizes_a.sum()), "batches": len(losses),
                        "seconds": round(t1 - t0, 3), "val_seconds": round(t2 - t1, 3), "val": metrics,
                        "best": improved, "train_captions": int(len(train.caption_ids))})
        if improved:
            best = {"epoch": epoch, "val": metrics}
            atomic_save({"format": FORMAT, "args": vars(args), "result_args": result, "config": config,
                         "model": text.state_dict(), "epoch": epoch, "val": metrics, "data": data_info}, best_path)
        atomic_save({"format": FORMAT, "args": vars(args), "result_args": result, "config": config,
                     "model": text.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                     "rng": rng_states(), "best": best, "history": history, "data": data_info}, last_path)
        write_log(args.out, history)
        print(f"epoch {epoch}/{args.epochs}  loss {history[-1]['loss']:.4f}  {t1 - t0:.1f} s (+{t2 - t1:.1f} s val)  "
              f"{describe(metrics)}{'  *best' if improved else ''}", flush=True)
        if not math.isfinite(history[-1]["loss"]):
            print("train_ja: the loss is not finite; stopping", file=sys.stderr)
            return 1
    print(f"train_ja: done; best epoch {best['epoch']}: {describe(best['val'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
