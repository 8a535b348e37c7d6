"""Time training steps and a validation pass, to size full runs (seconds per epoch).

    training/.venv/bin/python -m training.bench --data .cache/data/flickr8k --dims 512 1024 --threads 1 2

Each (features, dim, threads) runs in a fresh process (OMP_NUM_THREADS and torch.set_num_threads set
before anything else) over the first --batches batches of epoch 1 with the real length-bucketed batching,
after --warmup untimed steps. Seconds per epoch = seconds per step x steps in one epoch of the whole
training split. Prints one JSON line per configuration and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def one(args) -> dict:
    import numpy as np
    import torch

    from training.data import Flickr8kData, epoch_batches, load_split
    from training.model import build
    from training.train import evaluate, train_step

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    data = Flickr8kData(args.data)
    train = load_split(data, "train", args.features)
    val = load_split(data, "val", args.features)
    torch.manual_seed(0)
    model = build(len(data.vocab), data.feature_dim(args.features), args.dim, 300)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    targs = argparse.Namespace(margin=0.2, loss=args.loss, clip=2.0)
    batches = epoch_batches(train, data, 128, 0, 1)
    steps = min(args.batches, len(batches) - args.warmup)
    for pos in batches[: args.warmup]:
        train_step(model, optimizer, train, data, pos, targs)
    t0 = time.perf_counter()
    for pos in batches[args.warmup : args.warmup + steps]:
        train_step(model, optimizer, train, data, pos, targs)
    per_step = (time.perf_counter() - t0) / steps
    t1 = time.perf_counter()
    evaluate(model, val, data)
    val_seconds = time.perf_counter() - t1
    return {
        "features": args.features, "loss": args.loss, "dim": args.dim, "threads": torch.get_num_threads(),
        "steps_timed": steps, "seconds_per_step": round(per_step, 4), "steps_per_epoch": len(batches),
        "train_captions": int(len(train.caption_ids)),
        "epoch_seconds": round(per_step * len(batches), 1), "val_seconds": round(val_seconds, 1),
        "val_images": int(len(val.features)), "val_captions": int(len(val.caption_ids)),
        "mean_tokens": round(float(np.mean(data.lengths[train.caption_ids])), 2),
        "vocab": len(data.vocab), "loadavg_1min_before_after": [load_before, os.getloadavg()[0]],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.bench", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--features", nargs="+", default=["fne"])
    p.add_argument("--loss", default="sh")
    p.add_argument("--dims", nargs="+", type=int, default=[512, 1024])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        a.features, a.dim, a.threads = a.features[0], a.dims[0], a.threads[0]
        print(json.dumps(one(a)), flush=True)
        return 0
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = []
    for features in a.features:
        for dim in a.dims:
            for threads in a.threads:
                env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
                cmd = [sys.executable, "-m", "training.bench", "--one", "--data", a.data, "--features", features,
                       "--loss", a.loss, "--dims", str(dim), "--threads", str(threads),
                       "--batches", str(a.batches), "--warmup", str(a.warmup)]
                out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
                if out.returncode != 0:
                    print(out.stderr, file=sys.stderr)
                    return out.returncode
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results.append(r)
                print(json.dumps(r), flush=True)
    print("\n| features | D | threads | s/step | steps/epoch | s/epoch (train) | s/val pass |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['features']} | {r['dim']} | {r['threads']} | {r['seconds_per_step']:.3f} | "
              f"{r['steps_per_epoch']} | {r['epoch_seconds']:.0f} | {r['val_seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
