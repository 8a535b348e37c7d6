"""Train the joint image-sentence space on the prepared Flickr8k data.

    training/.venv/bin/python -m training.train --data .cache/data/flickr8k --features fne --loss sh \
        --epochs 30 --out runs/fne-sh

Each epoch: one pass over the training captions (batches grouped by caption length), then R@1/5/10 and
median rank on the validation split, both directions. `<out>/last.pt` is written atomically after every
epoch and `<out>/best.pt` whenever the validation rsum improves; starting again with the same arguments
resumes from `last.pt` (a larger --epochs extends a finished run). `<out>/log.jsonl` holds one JSON line
per epoch. Model selection uses the validation split only; the test split is never read here.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch

if __package__ in (None, ""):  # run as a file: make `training` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training.data import FEATURE_KINDS, DataError, Flickr8kData, as_float, epoch_batches, iterate_in_length_order, load_split  # noqa: E402
from training.model import build, ranking_loss  # noqa: E402

FORMAT = "sagasu-joint-v1"
MARGIN = 0.2
# Arguments that change the result: a checkpoint only resumes under the same values.
RESULT_ARGS = (
    "features", "loss", "dim", "word_dim", "lr", "batch", "clip", "seed", "max_captions", "margin", "feature_dropout",
    "weight_decay", "rank", "augment", "average_from",
)
# Defaults of arguments that checkpoints written before the argument existed do not record.
DEFAULTS = {"feature_dropout": 0.0, "weight_decay": 0.0, "rank": 0, "augment": [], "average_from": 0}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train Sagasu's joint image-sentence space (Full-Network Embedding or one-layer baseline).",
    )
    p.add_argument("--data", required=True, help="prepared dataset folder (npm run data:prepare)")
    p.add_argument("--features", choices=FEATURE_KINDS, default="fne", help="image features (default fne)")
    p.add_argument("--loss", choices=("sh", "mh"), default="sh", help="sh: sum of hinges; mh: hardest negative")
    p.add_argument("--dim", type=int, default=1024, help="joint space dimension (default 1024)")
    p.add_argument("--word-dim", type=int, default=300, help="word embedding dimension (default 300)")
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (default 2e-4)")
    p.add_argument("--batch", type=int, default=128, help="captions per batch (default 128)")
    p.add_argument("--clip", type=float, default=2.0, help="gradient norm clip (default 2)")
    p.add_argument("--feature-dropout", type=float, default=0.0, help="dropout on the image features while training (default 0)")
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="decoupled weight decay (AdamW) on the image projection only (default 0)")
    p.add_argument("--rank", type=int, default=0,
                   help="low-rank image projection: features -> RANK -> D (default 0: full rank)")
    p.add_argument("--augment", action="append", default=[], metavar="DIR",
                   help="a prepared folder of the same photos with the training ones transformed (npm run data:augment); "
                        "each training caption's image features are drawn from the original or one of these (repeatable)")
    p.add_argument("--average-from", type=int, default=0, metavar="EPOCH",
                   help="from this epoch on, average the weights once per epoch (SWA, torch.optim.swa_utils); "
                        "validation, best.pt and so the export use the average (default 0: off)")
    p.add_argument("--margin", type=float, default=MARGIN, help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=30, help="total epochs (default 30)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    p.add_argument("--max-captions", type=int, default=None, metavar="N", help="train on the first N captions only")
    p.add_argument("--out", required=True, help="run folder: last.pt, best.pt, log.jsonl")
    # Test hook: exit (code 75) after this many training batches, as if the process had been killed.
    p.add_argument("--stop-after-batches", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rank < 0 or args.weight_decay < 0 or args.average_from < 0:
        p.error("--rank, --weight-decay and --average-from must not be negative")
    for name in ("dim", "word_dim", "batch", "epochs", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_captions is not None and args.max_captions < 1:
        p.error("--max-captions must be at least 1")
    return args


# -- evaluation ---------------------------------------------------------------------------------------------


def rank_metrics(scores: np.ndarray, caption_rows: np.ndarray) -> dict:
    """R@1/5/10, median and mean rank, both directions, from scores [images, captions].

    caption_rows[j] = the row (image) that caption j describes. Ties count against the ground truth:
    rank = 1 + number of wrong items scoring >= the ground truth.
    Annotation (i2t): for each image with at least one caption, the rank of its best-scored caption
    among all captions (only wrong captions count above it). Retrieval (t2i): for each caption, the rank
    of its image among all images.
    """
    n_images, n_captions = scores.shape
    own = caption_rows[None, :] == np.arange(n_images)[:, None]  # [images, captions]
    has_caption = own.any(axis=1)
    best = np.where(own, scores, -np.inf).max(axis=1)
    i2t = 1 + ((scores >= best[:, None]) & ~own).sum(axis=1)
    i2t = i2t[has_caption]
    gt = scores[caption_rows, np.arange(n_captions)]
    t2i = 1 + ((scores >= gt[None, :]) & ~own).sum(axis=0)

    def summary(ranks: np.ndarray) -> dict:
        r = ranks.astype(np.float64)
        return {
            "r1": float(100.0 * (r <= 1).mean()),
            "r5": float(100.0 * (r <= 5).mean()),
            "r10": float(100.0 * (r <= 10).mean()),
            "medr": float(np.floor(np.median(r))),
            "meanr": float(r.mean()),
            "queries": int(len(r)),
        }

    a, b = summary(i2t), summary(t2i)
    return {"i2t": a, "t2i": b, "rsum": a["r1"] + a["r5"] + a["r10"] + b["r1"] + b["r5"] + b["r10"]}


@torch.no_grad()
def encode_split(model, split, data: Flickr8kData, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings of a split's images [images, D] and captions [captions, D]."""
    model.eval()
    images = []
    for i in range(0, len(split.features), 1024):
        images.append(model.image(torch.from_numpy(as_float(split.features[i : i + 1024]))).numpy())
    captions = np.zeros((len(split.caption_ids), model.image.linear.out_features), dtype=np.float32)
    lengths = data.lengths[split.caption_ids]
    for pos in iterate_in_length_order(lengths, batch):
        tokens, lens = data.pad(split.caption_ids[pos])
        captions[pos] = model.text(torch.from_numpy(tokens), torch.from_numpy(lens)).numpy()
    model.train()
    dim = model.image.linear.out_features
    return (np.concatenate(images) if images else np.zeros((0, dim), np.float32)), captions


def evaluate(model, split, data: Flickr8kData) -> dict:
    images, captions = encode_split(model, split, data)
    return rank_metrics(images @ captions.T, split.caption_rows)


# -- checkpoints --------------------------------------------------------------------------------------------


def atomic_write_bytes(path: str, write) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_save(obj, path: str) -> None:
    atomic_write_bytes(path, lambda f: torch.save(obj, f))


def rng_states() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": list(random.getstate()[1]) + [random.getstate()[0]],
    }


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = states["python"]
    random.setstate((p[-1], tuple(p[:-1]), None))


def result_args(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in RESULT_ARGS}


def load_checkpoint(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# -- training -----------------------------------------------------------------------------------------------


def describe(metrics: dict) -> str:
    a, b = metrics["i2t"], metrics["t2i"]
    return (
        f"i2t {a['r1']:.1f}/{a['r5']:.1f}/{a['r10']:.1f} medr {a['medr']:.0f} | "
        f"t2i {b['r1']:.1f}/{b['r5']:.1f}/{b['r10']:.1f} medr {b['medr']:.0f} | rsum {metrics['rsum']:.1f}"
    )


def augmented_view(data: Flickr8kData, root: str, kind: str, max_captions: int | None) -> np.ndarray:
    """The training photos' features from a prepared folder of their transformed copies, row for row."""
    other = Flickr8kData(root, verify=True)
    if other.image_names != data.image_names or other.vocab != data.vocab:
        raise DataError(f"{other.root} holds other photos or another vocabulary than {data.root}")
    return load_split(other, "train", kind, max_captions).features


def train_step(model, optimizer, split, data, pos: np.ndarray, args) -> float:
    """One optimizer step on the captions at positions `pos` of the split; returns the batch loss."""
    caption_ids = split.caption_ids[pos]
    tokens, lengths = data.pad(caption_ids)
    rows = split.caption_rows[pos]
    views = split.extra.get("views")
    if views:
        # Per caption, the original photo or one of its transformed copies, equally likely.
        pick = np.random.randint(0, len(views) + 1, size=len(rows))
        chosen = split.features[rows]
        for v, view in enumerate(views, start=1):
            chosen[pick == v] = view[rows[pick == v]]
        features = torch.from_numpy(as_float(chosen))
    else:
        features = torch.from_numpy(as_float(split.features[rows]))
    rows_t = torch.from_numpy(rows)
    images, captions = model(features, torch.from_numpy(tokens), torch.from_numpy(lengths))
    same_image = rows_t.view(-1, 1) == rows_t.view(1, -1)
    loss = ranking_loss(images, captions, args.margin, hardest=args.loss == "mh", same_image=same_image)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if args.clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
    optimizer.step()
    return loss.item()


def train_epoch(model, optimizer, split, data, args, epoch: int, budget: list) -> dict:
    """One pass over the training captions; returns the loss per caption (whole epoch, first and last
    quarter of the batches) and the number of batches."""
    batches = epoch_batches(split, data, args.batch, args.seed, epoch)
    losses, sizes = [], []
    model.train()
    for pos in batches:
        if budget[0] is not None:
            if budget[0] <= 0:
                print("train: stopping on purpose (--stop-after-batches)", flush=True)
                sys.exit(75)
            budget[0] -= 1
        losses.append(train_step(model, optimizer, split, data, pos, args))
        sizes.append(len(pos))
    losses, sizes = np.array(losses), np.array(sizes)
    q = max(1, len(losses) // 4)
    per = lambda s: float(losses[s].sum() / sizes[s].sum())  # noqa: E731
    return {
        "loss": per(slice(None)),
        "loss_first_quarter": per(slice(0, q)),
        "loss_last_quarter": per(slice(len(losses) - q, None)),
        "batches": int(len(losses)),
    }


def write_log(out: str, history: list) -> None:
    text = "".join(json.dumps(h, sort_keys=True) + "\n" for h in history)
    atomic_write_bytes(os.path.join(out, "log.jsonl"), lambda f: f.write(text.encode("utf-8")))


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        data = Flickr8kData(args.data, verify=True)
        train = load_split(data, "train", args.features, args.max_captions)
        val = load_split(data, "val", args.features)
        train.extra["views"] = [augmented_view(data, d, args.features, args.max_captions) for d in args.augment]
    except DataError as e:
        print(f"train: {e}", file=sys.stderr)
        return 2
    if len(train.caption_ids) == 0 or len(val.caption_ids) == 0:
        print("train: the dataset has no training or no validation captions", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    for stale in glob.glob(os.path.join(args.out, "*.tmp-*")):  # left by a process killed while saving
        os.remove(stale)
    last_path, best_path = os.path.join(args.out, "last.pt"), os.path.join(args.out, "best.pt")

    feature_dim = data.feature_dim(args.features)
    config = {
        "vocab_size": len(data.vocab),
        "feature_dim": feature_dim,
        "dim": args.dim,
        "word_dim": args.word_dim,
        "features": args.features,
        "spans": [vars(s) for s in data.spans(args.features)],
        "rank": args.rank,
    }
    data_info = {"root": data.root, "meta_sha256": data.meta_sha256}

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    model = build(len(data.vocab), feature_dim, args.dim, args.word_dim, args.feature_dropout, args.rank)
    if args.weight_decay:
        image = list(model.image.parameters())
        ids = {id(p) for p in image}
        optimizer = torch.optim.AdamW(
            [{"params": [p for p in model.parameters() if id(p) not in ids], "weight_decay": 0.0},
             {"params": image, "weight_decay": args.weight_decay}],
            lr=args.lr,
        )
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    # Weight averaging (SWA): flatter minima hold up better off the training distribution (Izmailov et al. 2018;
    # Cha et al. 2021, SWAD, for domain generalization).
    averaged = torch.optim.swa_utils.AveragedModel(model) if args.average_from else None
    epoch, best, history = 0, None, []

    if os.path.exists(last_path):
        ckpt = load_checkpoint(last_path)
        if ckpt.get("format") != FORMAT:
            print(f"train: {last_path} is not a {FORMAT} checkpoint", file=sys.stderr)
            return 2
        want, have = result_args(args), ckpt["result_args"]
        # An argument added after the checkpoint was written counts as its default.
        diff = {k: (have.get(k, DEFAULTS.get(k)), want[k]) for k in want if have.get(k, DEFAULTS.get(k)) != want[k]}
        if ckpt["data"]["meta_sha256"] != data.meta_sha256:
            diff["data (meta.json sha256)"] = (ckpt["data"]["meta_sha256"], data.meta_sha256)
        if diff:
            lines = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in diff.items())
            print(f"train: {last_path} was made with other arguments ({lines}). "
                  "Use the same arguments to resume, or another --out.", file=sys.stderr)
            return 2
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if averaged is not None:
            averaged.load_state_dict(ckpt["averaged"])
        set_rng_states(ckpt["rng"])
        epoch, best, history = ckpt["epoch"], ckpt["best"], ckpt["history"]
        write_log(args.out, history)  # drop anything logged after the checkpoint
        print(f"train: resuming {args.out} after epoch {epoch}"
              + (f" (best rsum {best['val']['rsum']:.1f} at epoch {best['epoch']})" if best else ""), flush=True)
        if epoch >= args.epochs:
            print(f"train: already trained for {epoch} epochs (--epochs {args.epochs}); nothing to do")
            return 0

    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"train: {args.features} features ({feature_dim}-d), {args.loss.upper()} loss, D={args.dim}, "
        f"{n_params / 1e6:.1f} M parameters, {len(train.caption_ids)} training captions"
        + (f" ({train.skipped_empty} empty skipped)" if train.skipped_empty else "")
        + f", {len(val.features)} val images x {len(val.caption_ids)} val captions"
        + (f" ({val.skipped_empty} empty skipped)" if val.skipped_empty else "")
        + (f", each training photo drawn from {len(args.augment) + 1} views" if args.augment else "")
        + f", {torch.get_num_threads()} threads",
        flush=True,
    )

    budget = [args.stop_after_batches]
    while epoch < args.epochs:
        epoch += 1
        t0 = time.perf_counter()
        stats = train_epoch(model, optimizer, train, data, args, epoch, budget)
        t1 = time.perf_counter()
        scored, raw = model, None
        if averaged is not None and epoch >= args.average_from:
            averaged.update_parameters(model)
            scored, raw = averaged.module, evaluate(model, val, data)
        metrics = evaluate(scored, val, data)
        t2 = time.perf_counter()
        improved = best is None or metrics["rsum"] > best["val"]["rsum"]
        entry = {
            "epoch": epoch,
            **stats,
            "seconds": round(t1 - t0, 3),
            "val_seconds": round(t2 - t1, 3),
            "val": metrics,
            **({"val_unaveraged": raw} if raw is not None else {}),
            "best": improved,
            "train_captions": int(len(train.caption_ids)),
            "skipped_empty_captions": {"train": train.skipped_empty, "val": val.skipped_empty},
        }
        history.append(entry)
        if improved:
            best = {"epoch": epoch, "val": metrics}
            atomic_save(
                {"format": FORMAT, "args": vars(args), "result_args": result_args(args), "config": config,
                 "model": scored.state_dict(), "epoch": epoch, "val": metrics, "data": data_info},
                best_path,
            )
        atomic_save(
            {"format": FORMAT, "args": vars(args), "result_args": result_args(args), "config": config,
             "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
             "rng": rng_states(), "best": best, "history": history, "data": data_info,
             **({"averaged": averaged.state_dict()} if averaged is not None else {})},
            last_path,
        )
        write_log(args.out, history)
        print(
            f"epoch {epoch}/{args.epochs}  loss {stats['loss']:.4f}  {t1 - t0:.1f} s (+{t2 - t1:.1f} s val)  "
            f"{describe(metrics)}{'  *best' if improved else ''}"
            + (f"  (unaveraged rsum {raw['rsum']:.1f})" if raw is not None else ""),
            flush=True,
        )
        if not math.isfinite(stats["loss"]):
            print("train: the loss is not finite; stopping", file=sys.stderr)
            return 1
    print(f"train: done; best epoch {best['epoch']}: {describe(best['val'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
