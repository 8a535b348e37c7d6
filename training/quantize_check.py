"""What the stored weight precision costs: one checkpoint exported fp32, fp16 and int8, each scored in onnxruntime.

    training/.venv/bin/python -m training.quantize_check --run .cache/runs/fne-sh [--data DIR] [--split val]
        [--out DIR] [--json]

For each precision: the export (training/export.py, its own parity check included), the rsum of its ONNX
files on --split (default val: test figures are not for choosing a precision), the size of
image_projection.onnx, and against the fp32 export: the largest |difference| of an image-caption cosine and
of an image-image cosine, and the smallest cosine between an image's fp32 and quantized embedding.
--out keeps the exports (default: a temporary folder, removed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training import export as export_mod  # noqa: E402
from training.data import DataError, Flickr8kData, as_float, iterate_in_length_order, load_split  # noqa: E402
from training.train import load_checkpoint, rank_metrics  # noqa: E402

PRECISIONS = ("fp32", "fp16", "int8")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.quantize_check", description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run folder of training.train (uses <run>/best.pt)")
    src.add_argument("--checkpoint", help="a best.pt or last.pt file")
    p.add_argument("--data", help="the prepared dataset (default: the one the run was trained on)")
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--out", help="keep the three exports in this folder")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p.parse_args(argv)


def encode(model_dir: str, split, data: Flickr8kData) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings [images, D] and [captions, D] of a split, from the exported ONNX files."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    cpu = ["CPUExecutionProvider"]
    text = ort.InferenceSession(os.path.join(model_dir, export_mod.TEXT_FILE), opts, providers=cpu)
    image = ort.InferenceSession(os.path.join(model_dir, export_mod.IMAGE_FILE), opts, providers=cpu)
    images = np.concatenate([image.run(None, {"features": as_float(split.features[i : i + 256])})[0]
                             for i in range(0, len(split.features), 256)])
    captions = np.zeros((len(split.caption_ids), images.shape[1]), dtype=np.float32)
    for pos in iterate_in_length_order(data.lengths[split.caption_ids], 256):
        tokens, lengths = data.pad(split.caption_ids[pos])
        captions[pos] = text.run(None, {"tokens": tokens, "lengths": lengths})[0]
    return images, captions


def main(argv=None) -> int:
    args = parse_args(argv)
    path = args.checkpoint or os.path.join(args.run, "best.pt")
    if not os.path.exists(path):
        print(f"quantize_check: {path} not found", file=sys.stderr)
        return 2
    ckpt = load_checkpoint(path)
    try:
        data = Flickr8kData(args.data or ckpt["data"]["root"])
        split = load_split(data, args.split, ckpt["config"]["features"])
    except DataError as e:
        print(f"quantize_check: {e}", file=sys.stderr)
        return 2
    if len(split.caption_ids) == 0:
        print(f"quantize_check: {data.root} has no {args.split} captions", file=sys.stderr)
        return 2
    work = args.out or tempfile.mkdtemp(prefix="sagasu-quantize-")
    try:
        report, reference = [], None
        for weights in PRECISIONS:
            out = os.path.join(work, weights)
            log = io.StringIO()
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                try:
                    code = export_mod.main(["--checkpoint", path, "--out", out, "--weights", weights,
                                            "--data", data.root])
                except SystemExit as e:  # the parity check fails by SystemExit
                    code = e.code if isinstance(e.code, int) else 1
            if code != 0:
                print(f"quantize_check: export --weights {weights} failed:\n{log.getvalue().strip()}", file=sys.stderr)
                return code or 1
            with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
                manifest = json.load(f)
            images, captions = encode(out, split, data)
            scores = images @ captions.T
            metrics = rank_metrics(scores, split.caption_rows)
            row = {"weights": weights, "rsum": metrics["rsum"], "i2t": metrics["i2t"], "t2i": metrics["t2i"],
                   "imageProjectionBytes": manifest["files"][export_mod.IMAGE_FILE]["bytes"],
                   "textEncoderBytes": manifest["files"][export_mod.TEXT_FILE]["bytes"]}
            if reference is None:
                reference = (images, scores)
            else:
                ref_images, ref_scores = reference
                row["maxImageCaptionCosDiff"] = float(np.abs(scores - ref_scores).max())
                row["maxImageImageCosDiff"] = float(np.abs(images @ images.T - ref_images @ ref_images.T).max())
                row["minImageCosToFp32"] = float((images * ref_images).sum(axis=1).min())
            report.append(row)
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)

    if args.json:
        recorded = (ckpt.get("val") or ckpt["history"][-1]["val"])["rsum"]
        print(json.dumps({"checkpoint": path, "split": args.split, "images": len(split.features),
                          "captions": len(split.caption_ids), "checkpointValRsum": recorded,
                          "precisions": report}, indent=2))
        return 0
    print(f"quantize_check: {args.split} split, {len(split.features)} images, {len(split.caption_ids)} captions")
    print(f"{'weights':8} {'rsum':>7} {'d rsum':>7} {'image MB':>9} {'text MB':>8} {'max|dcos| i-c':>14} "
          f"{'max|dcos| i-i':>14} {'1-min cos(img,fp32)':>20}")
    base = report[0]["rsum"]
    for r in report:
        extra = (f"{r['maxImageCaptionCosDiff']:14.2e} {r['maxImageImageCosDiff']:14.2e} {1 - r['minImageCosToFp32']:20.2e}"
                 if "maxImageCaptionCosDiff" in r else f"{'-':>14} {'-':>14} {'-':>20}")
        print(f"{r['weights']:8} {r['rsum']:7.2f} {r['rsum'] - base:+7.2f} {r['imageProjectionBytes'] / 1e6:9.2f} "
              f"{r['textEncoderBytes'] / 1e6:8.2f} {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
